/** @file
 * The API routes of docs/api.md §15 and §6.1, on one base URL (§1): main
 * API at "/", item service and work-management at "/api/v1/", assets at
 * "/api/v4/" and "/api/v3.01/". Every handler runs with emu.db_lock held
 * (taken by api_route), except the stream body, which locks per document.
 */
#include "emu_i.h"

#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers -------------------------------------------------------- */
static int json_ll(json_t *v, long long *out)
{
  if(json_is_integer(v)) {
    *out = json_integer_value(v);
    return 1;
  }
  if(json_is_real(v)) {
    double d = json_real_value(v);
    if(d != (double)(long long)d)
      return 0;
    *out = (long long)d;
    return 1;
  }
  if(json_is_string(v)) {
    char *end;
    const char *s = json_string_value(v);
    long long x = strtoll(s, &end, 10);
    if(!*s || *end)
      return 0;
    *out = x;
    return 1;
  }
  return 0;
}

static long long entity_ll(const struct request *q, const char *key)
{
  long long v = 0;
  if(q->entity && json_ll(json_object_get(q->entity, key), &v))
    return v;
  return 0;
}

/* Parses the body as a JSON object; replies 400 and returns NULL if not. */
static json_t *body_object(const struct request *q, struct reply *r,
                           int allow_empty)
{
  if(q->body_len == 0) {
    if(allow_empty)
      return json_object();
    reply_error(r, 400, "A JSON body is required");
    return NULL;
  }
  json_error_t jerr;
  json_t *v = json_loadb(q->body, q->body_len, 0, &jerr);
  if(!json_is_object(v)) {
    json_decref(v);
    reply_error(r, 400, "Invalid JSON body: %s", jerr.text);
    return NULL;
  }
  return v;
}

/* project_id from the query (or the entity context); replies on failure. */
static int need_project(const struct request *q, struct reply *r,
                        struct project_row *p)
{
  long long pid = 0;
  if(!req_param_ll(q, "project_id", &pid))
    pid = entity_ll(q, "project_id");
  if(pid <= 0) {
    reply_error(r, 400, "project_id is required");
    return 0;
  }
  if(!store_project_locked(pid, p)) {
    reply_error(r, 404, "Project not found");
    return 0;
  }
  return 1;
}

/* folder_id from the query: must belong to p; absent means the root. */
static int need_folder(const struct request *q, struct reply *r,
                       const struct project_row *p, long long *fid)
{
  long long f = 0;
  if(!req_param_ll(q, "folder_id", &f)) {
    if(req_param(q, "folder_id")) {
      reply_error(r, 400, "folder_id must be an integer");
      return 0;
    }
    *fid = p->root_folder;
    return 1;
  }
  sqlite3_stmt *st = store_prep_locked("SELECT 1 FROM folders WHERE id=? AND project_id=?");
  sqlite3_bind_int64(st, 1, f);
  sqlite3_bind_int64(st, 2, p->id);
  int ok = sqlite3_step(st) == SQLITE_ROW;
  sqlite3_finalize(st);
  if(!ok) {
    reply_error(r, 404, "Folder not found");
    return 0;
  }
  *fid = f;
  return 1;
}

static int page_offset(const struct request *q, struct reply *r,
                       long long *off)
{
  *off = 0;
  if(req_param(q, "offset") && (!req_param_ll(q, "offset", off) || *off < 0)) {
    reply_error(r, 400, "offset must be a non-negative integer");
    return 0;
  }
  return 1;
}

static json_t *page(json_t *data, long long count)
{
  return json_pack("{s:o,s:I}", "data", data, "count", count);
}

/* ---- main API ----------------------------------------------------------- */
static void h_user_me(const struct request *q, struct reply *r)
{
  reply_json(r, 200,
             json_pack("{s:s,s:s,s:s,s:s,s:i,s:I}", "id", "emulator-user",
                       "email", "emulator@example.com", "first_name", "Emu",
                       "last_name", "Lator", "user_role", 2, "team_id",
                       q->team_id));
}

static void h_team(const struct request *q, struct reply *r, long long id)
{
  if(id != q->team_id) {
    reply_error(r, 403, "No access to team %lld", id);
    return;
  }
  reply_json(r, 200,
             json_pack("{s:I,s:s,s:s,s:i,s:i,s:b,s:s,s:s}", "id", id, "name",
                       "Emulator Team", "description", "sa-emulator", "type",
                       1, "user_role", 2, "is_default", 1, "creator_id",
                       "emulator-user", "owner_id", "emulator-user"));
}

static void h_projects(const struct request *q, struct reply *r)
{
  long long off;
  if(!page_offset(q, r, &off))
    return;
  const char *name = req_param(q, "name");
  sqlite3_stmt *st = store_prep_locked(
      "SELECT id FROM projects WHERE (?1 IS NULL OR"
      " instr(lower(name), lower(?1)) > 0) ORDER BY id");
  if(name)
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
  json_t *data = json_array();
  long long count = 0;
  while(sqlite3_step(st) == SQLITE_ROW) {
    if(count >= off && count < off + EMU_MAX_PAGE) {
      struct project_row p;
      if(store_project_locked(sqlite3_column_int64(st, 0), &p))
        json_array_append_new(data, store_project_json_locked(&p, q->team_id));
    }
    count++;
  }
  sqlite3_finalize(st);
  reply_json(r, 200, page(data, count));
}

static void h_project(const struct request *q, struct reply *r, long long id)
{
  struct project_row p;
  if(!store_project_locked(id, &p)) {
    reply_error(r, 404, "Project not found");
    return;
  }
  reply_json(r, 200, store_project_json_locked(&p, q->team_id));
}

static json_t *folder_json_by(long long fid, long long pid, const char *name,
                              long long team)
{
  sqlite3_stmt *st;
  if(name) {
    st = store_prep_locked("SELECT " FOLDER_COLS " FROM folders f WHERE f.project_id=?"
                           " AND f.name=?");
    sqlite3_bind_int64(st, 1, pid);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
  }
  else {
    st = store_prep_locked("SELECT " FOLDER_COLS " FROM folders f WHERE f.id=?"
                           " AND (?2 <= 0 OR f.project_id=?2)");
    sqlite3_bind_int64(st, 1, fid);
    sqlite3_bind_int64(st, 2, pid);
  }
  json_t *o = NULL;
  if(sqlite3_step(st) == SQLITE_ROW)
    o = store_folder_json_locked(st, team);
  sqlite3_finalize(st);
  return o;
}

static void h_folder_by_name(const struct request *q, struct reply *r)
{
  struct project_row p;
  if(!need_project(q, r, &p))
    return;
  const char *name = req_param(q, "name");
  if(!name) {
    reply_error(r, 400, "name is required");
    return;
  }
  json_t *o = folder_json_by(0, p.id, name, q->team_id);
  if(!o) {
    reply_error(r, 404, "Folder not found");
    return;
  }
  reply_json(r, 200, o);
}

static void h_folder_by_id(const struct request *q, struct reply *r)
{
  long long fid, pid = 0;
  if(!req_param_ll(q, "folder_id", &fid)) {
    reply_error(r, 400, "folder_id is required");
    return;
  }
  req_param_ll(q, "project_id", &pid);
  json_t *o = folder_json_by(fid, pid, NULL, q->team_id);
  if(!o) {
    reply_error(r, 404, "Folder not found");
    return;
  }
  reply_json(r, 200, o);
}

static void h_folders(const struct request *q, struct reply *r)
{
  struct project_row p;
  long long off;
  if(!need_project(q, r, &p) || !page_offset(q, r, &off))
    return;
  const char *name = req_param(q, "name");
  sqlite3_stmt *st = store_prep_locked(
      "SELECT " FOLDER_COLS " FROM folders f WHERE f.project_id=?1 AND"
      " (?2 IS NULL OR instr(lower(f.name), lower(?2)) > 0) ORDER BY f.id");
  sqlite3_bind_int64(st, 1, p.id);
  if(name)
    sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
  json_t *data = json_array();
  long long count = 0;
  while(sqlite3_step(st) == SQLITE_ROW) {
    if(count >= off && count < off + EMU_MAX_PAGE)
      json_array_append_new(data, store_folder_json_locked(st, q->team_id));
    count++;
  }
  sqlite3_finalize(st);
  reply_json(r, 200, page(data, count));
}

/* Checks a new folder name; replies and returns 0 if it is not acceptable. */
static int folder_name_ok(struct reply *r, const char *name,
                          long long pid, long long self)
{
  if(!*name) {
    reply_error(r, 400, "Folder name is required");
    return 0;
  }
  if(utf8_len(name) > EMU_FOLDER_NAME_MAX) {
    reply_error(r, 400, "The folder name is too long (max %d characters)",
                EMU_FOLDER_NAME_MAX);
    return 0;
  }
  if(strpbrk(name, "/\\:*?\"<>|") || strstr(name, "\xe2\x80\x9c")) {
    reply_error(r, 400, "Folder name contains invalid characters");
    return 0;
  }
  if(!strcmp(name, "root")) {
    reply_error(r, 409, "A folder named root already exists");
    return 0;
  }
  sqlite3_stmt *st =
      store_prep_locked("SELECT id FROM folders WHERE project_id=? AND name=? AND id<>?");
  sqlite3_bind_int64(st, 1, pid);
  sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 3, self);
  int dup = sqlite3_step(st) == SQLITE_ROW;
  sqlite3_finalize(st);
  if(dup) {
    reply_error(r, 409, "A folder with this name already exists");
    return 0;
  }
  return 1;
}

static void h_folder_create(const struct request *q, struct reply *r)
{
  struct project_row p;
  if(!need_project(q, r, &p))
    return;
  json_t *b = body_object(q, r, 0);
  if(!b)
    return;
  const char *name = json_string_value(json_object_get(b, "name"));
  if(!name)
    reply_error(r, 400, "name must be a string");
  else if(folder_name_ok(r, name, p.id, 0)) {
    long long fid = store_ensure_folder_locked(&p, name);
    reply_json(r, 200, folder_json_by(fid, p.id, NULL, q->team_id));
  }
  json_decref(b);
}

static void h_folder_update(const struct request *q, struct reply *r,
                            long long fid)
{
  long long pid = 0;
  req_param_ll(q, "project_id", &pid);
  json_t *cur = folder_json_by(fid, pid, NULL, q->team_id);
  if(!cur) {
    reply_error(r, 404, "Folder not found");
    return;
  }
  pid = json_integer_value(json_object_get(cur, "project_id"));
  int is_root = json_is_true(json_object_get(cur, "is_root"));
  json_decref(cur);
  json_t *b = body_object(q, r, 0);
  if(!b)
    return;
  const char *name = json_string_value(json_object_get(b, "name"));
  if(!name)
    reply_error(r, 400, "name must be a string");
  else if(is_root)
    reply_error(r, 400, "The root folder cannot be renamed");
  else if(folder_name_ok(r, name, pid, fid)) {
    sqlite3_stmt *st = store_prep_locked("UPDATE folders SET name=?, updated=? WHERE id=?");
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, store_next_ts_locked());
    sqlite3_bind_int64(st, 3, fid);
    sqlite3_step(st);
    sqlite3_finalize(st);
    reply_json(r, 200, folder_json_by(fid, pid, NULL, q->team_id));
  }
  json_decref(b);
}

static void h_delete_images(const struct request *q, struct reply *r)
{
  struct project_row p;
  if(!need_project(q, r, &p))
    return;
  json_t *b = body_object(q, r, 0);
  if(!b)
    return;
  json_t *fids = json_object_get(b, "folder_ids");
  json_t *iids = json_object_get(b, "image_ids");
  if((fids && !json_is_array(fids)) || (iids && !json_is_array(iids)) ||
     (!fids && !iids)) {
    reply_error(r, 400, "folder_ids or image_ids (arrays) are required");
    json_decref(b);
    return;
  }
  size_t i;
  json_t *v;
  long long id;
  json_array_foreach(fids, i, v) {
    if(!json_ll(v, &id)) {
      reply_error(r, 400, "folder_ids must hold integers");
      json_decref(b);
      return;
    }
    if(id == p.root_folder) {
      reply_error(r, 400, "The root folder cannot be deleted");
      json_decref(b);
      return;
    }
  }
  long long nf = 0, ni = 0;
  sqlite3_exec(emu.db, "BEGIN", NULL, NULL, NULL);
  sqlite3_stmt *di = store_prep_locked("DELETE FROM items WHERE folder_id=? AND project_id=?");
  sqlite3_stmt *df = store_prep_locked("DELETE FROM folders WHERE id=? AND project_id=?"
                                       " AND is_root=0");
  json_array_foreach(fids, i, v) {
    json_ll(v, &id);
    sqlite3_reset(di);
    sqlite3_bind_int64(di, 1, id);
    sqlite3_bind_int64(di, 2, p.id);
    sqlite3_step(di);
    ni += sqlite3_changes(emu.db);
    sqlite3_reset(df);
    sqlite3_bind_int64(df, 1, id);
    sqlite3_bind_int64(df, 2, p.id);
    sqlite3_step(df);
    nf += sqlite3_changes(emu.db);
  }
  sqlite3_finalize(di);
  sqlite3_finalize(df);
  di = store_prep_locked("DELETE FROM items WHERE id=? AND project_id=?");
  json_array_foreach(iids, i, v) {
    if(!json_ll(v, &id))
      continue;
    sqlite3_reset(di);
    sqlite3_bind_int64(di, 1, id);
    sqlite3_bind_int64(di, 2, p.id);
    sqlite3_step(di);
    ni += sqlite3_changes(emu.db);
  }
  sqlite3_finalize(di);
  sqlite3_exec(emu.db, "COMMIT", NULL, NULL, NULL);
  json_decref(b);
  reply_json(r, 200, json_pack("{s:b,s:I,s:I}", "success", 1,
                               "deleted_folders", nf, "deleted_items", ni));
}

static json_t *class_json(long long pid, int k)
{
  static const char *const names[] = {"car", "person"};
  static const char *const colors[] = {"#F44336", "#2196F3"};
  long long cid = pid * 100 + 1 + k, gid = pid * 1000 + 1 + k;
  json_t *attrs = json_array();
  for(int a = 0; a < 2; a++)
    json_array_append_new(
        attrs, json_pack("{s:I,s:I,s:I,s:s,s:i,s:s,s:s}", "id",
                         pid * 1000 + 11 + 10 * k + a, "group_id", gid,
                         "project_id", pid, "name", a ? "blue" : "red",
                         "count", 0, "createdAt", "2024-01-01T00:00:00.000Z",
                         "updatedAt", "2024-01-01T00:00:00.000Z"));
  return json_pack(
      "{s:I,s:I,s:s,s:s,s:i,s:s,s:s,s:s,s:[{s:I,s:I,s:s,s:b,s:s,s:o}]}", "id",
      cid, "project_id", pid, "name", names[k], "color", colors[k], "count", 0,
      "type", "object", "createdAt", "2024-01-01T00:00:00.000Z", "updatedAt",
      "2024-01-01T00:00:00.000Z", "attribute_groups", "id", gid, "class_id",
      cid, "name", "color", "is_multiselect", 0, "group_type", "radio",
      "attributes", attrs);
}

static void h_classes(const struct request *q, struct reply *r)
{
  struct project_row p;
  long long off;
  if(!need_project(q, r, &p) || !page_offset(q, r, &off))
    return;
  json_t *data = json_array();
  for(long long k = off; k < 2; k++)
    json_array_append_new(data, class_json(p.id, (int)k));
  reply_json(r, 200, page(data, 2));
}

/* Runs the UPDATE @p st (finalized here) once for each string in @p names,
 * binding the @p nargs values @p args and then the name; returns the rows
 * changed. */
static long long update_by_names(sqlite3_stmt *st, const long long *args,
                                 int nargs, json_t *names)
{
  long long n = 0;
  size_t i;
  json_t *v;
  json_array_foreach(names, i, v) {
    if(!json_is_string(v))
      continue;
    sqlite3_reset(st);
    for(int k = 0; k < nargs; k++)
      sqlite3_bind_int64(st, k + 1, args[k]);
    sqlite3_bind_text(st, nargs + 1, json_string_value(v), -1,
                      SQLITE_TRANSIENT);
    sqlite3_step(st);
    n += sqlite3_changes(emu.db);
  }
  sqlite3_finalize(st);
  return n;
}

static void h_status_bulk(const struct request *q, struct reply *r)
{
  struct project_row p;
  if(!need_project(q, r, &p))
    return;
  json_t *b = body_object(q, r, 0);
  if(!b)
    return;
  long long fid, status;
  json_t *names = json_object_get(b, "image_names");
  if(!json_ll(json_object_get(b, "folder_id"), &fid))
    reply_error(r, 400, "folder_id (integer) is required");
  else if(!json_ll(json_object_get(b, "annotation_status"), &status))
    reply_error(r, 400, "annotation_status (integer) is required");
  else if(!json_is_array(names))
    reply_error(r, 400, "image_names (array) is required");
  else if(json_array_size(names) > EMU_STATUS_BULK_MAX)
    reply_error(r, 400, "At most %d image_names per request",
                EMU_STATUS_BULK_MAX);
  else if(!workflow_status_name(p.workflow_id, status))
    reply_error(r, 400, "Invalid annotation_status %lld for workflow %lld",
                status, p.workflow_id);
  else {
    sqlite3_stmt *chk = store_prep_locked("SELECT 1 FROM folders WHERE id=? AND project_id=?");
    sqlite3_bind_int64(chk, 1, fid);
    sqlite3_bind_int64(chk, 2, p.id);
    int ok = sqlite3_step(chk) == SQLITE_ROW;
    sqlite3_finalize(chk);
    if(!ok) {
      reply_error(r, 404, "Folder not found");
      json_decref(b);
      return;
    }
    long long ts = store_next_ts_locked(), n = 0;
    sqlite3_exec(emu.db, "BEGIN", NULL, NULL, NULL);
    sqlite3_stmt *st = store_prep_locked(
        "UPDATE items SET status=?, updated=? WHERE folder_id=? AND name=?");
    const long long args[] = {status, ts, fid};
    n = update_by_names(st, args, 3, names);
    sqlite3_exec(emu.db, "COMMIT", NULL, NULL, NULL);
    reply_json(r, 200, json_pack("{s:b,s:I}", "success", 1, "updated", n));
  }
  json_decref(b);
}

/* ---- delete annotations and its polls ------------------------------------ */
struct poll {
  long long id;
  int count;
};
static pthread_mutex_t poll_lock = PTHREAD_MUTEX_INITIALIZER;
static struct poll *polls;
static size_t npolls;
static long long next_poll = 1;

static void h_remove(const struct request *q, struct reply *r)
{
  struct project_row p;
  long long fid;
  if(!need_project(q, r, &p) || !need_folder(q, r, &p, &fid))
    return;
  json_t *b = body_object(q, r, 1);
  if(!b)
    return;
  json_t *names = json_object_get(b, "image_names");
  if(names && !json_is_array(names)) {
    reply_error(r, 400, "image_names must be an array");
    json_decref(b);
    return;
  }
  if(json_array_size(names) > EMU_REMOVE_MAX) {
    reply_error(r, 400, "At most %d image_names per request", EMU_REMOVE_MAX);
    json_decref(b);
    return;
  }
  long long ts = store_next_ts_locked(), n = 0;
  sqlite3_exec(emu.db, "BEGIN", NULL, NULL, NULL);
  if(names) {
    sqlite3_stmt *st =
        store_prep_locked("UPDATE items SET doc=NULL, gen=0, status=1, updated=?"
                          " WHERE folder_id=? AND name=?");
    const long long args[] = {ts, fid};
    n = update_by_names(st, args, 2, names);
  }
  else {
    sqlite3_stmt *st = store_prep_locked("UPDATE items SET doc=NULL, gen=0, status=1,"
                                         " updated=? WHERE folder_id=?");
    sqlite3_bind_int64(st, 1, ts);
    sqlite3_bind_int64(st, 2, fid);
    sqlite3_step(st);
    n = sqlite3_changes(emu.db);
    sqlite3_finalize(st);
  }
  sqlite3_exec(emu.db, "COMMIT", NULL, NULL, NULL);
  json_decref(b);
  if(n == 0) {
    reply_error(r, 400, "Invalid item names or empty folder.");
    return;
  }
  pthread_mutex_lock(&poll_lock);
  polls = realloc(polls, sizeof *polls * (npolls + 1));
  if(!polls)
    abort();
  long long id = next_poll++;
  polls[npolls].id = id;
  polls[npolls].count = 0;
  npolls++;
  pthread_mutex_unlock(&poll_lock);
  reply_json(r, 200, json_pack("{s:I}", "poll_id", id));
}

static void h_remove_status(const struct request *q, struct reply *r)
{
  long long id;
  if(!req_param_ll(q, "poll_id", &id)) {
    reply_error(r, 400, "poll_id is required");
    return;
  }
  int process = -2;
  pthread_mutex_lock(&poll_lock);
  for(size_t i = 0; i < npolls; i++)
    if(polls[i].id == id) {
      polls[i].count++;
      process = polls[i].count < emu.delete_polls ? 50 : 100;
    }
  pthread_mutex_unlock(&poll_lock);
  if(process == -2)
    reply_error(r, 404, "Unknown poll_id");
  else
    reply_json(r, 200, json_pack("{s:i}", "process", process));
}

/* ---- item service ---------------------------------------------------------- */
struct sqlq {
  struct buf sql;
  json_t *binds; /* array of values */
  char err[256];
};

static const char *field_col(const char *key)
{
  if(!strcmp(key, "name"))
    return "i.name";
  if(!strcmp(key, "id"))
    return "i.id";
  if(!strcmp(key, "annotation_status"))
    return "i.status";
  if(!strcmp(key, "folder_id"))
    return "i.folder_id";
  if(!strcmp(key, "project_id"))
    return "i.project_id";
  if(!strcmp(key, "approval_status") || !strcmp(key, "entropy_value"))
    return "NULL";
  if(!strcmp(key, "is_pinned"))
    return "0";
  return NULL;
}

static int compile_node(struct sqlq *s, json_t *node);

static int compile_list(struct sqlq *s, json_t *arr, const char *joiner,
                        const char *empty)
{
  if(!json_is_array(arr)) {
    snprintf(s->err, sizeof s->err, "$and/$or need an array");
    return -1;
  }
  if(json_array_size(arr) == 0) {
    buf_adds(&s->sql, empty);
    return 0;
  }
  buf_adds(&s->sql, "(");
  size_t i;
  json_t *v;
  json_array_foreach(arr, i, v) {
    if(i)
      buf_adds(&s->sql, joiner);
    if(compile_node(s, v))
      return -1;
  }
  buf_adds(&s->sql, ")");
  return 0;
}

static int compile_op(struct sqlq *s, const char *col, const char *op,
                      json_t *val)
{
  struct buf *b = &s->sql;
  if(!strcmp(op, "$eq") || !strcmp(op, "$is")) {
    if(json_is_null(val))
      buf_printf(b, "%s IS NULL", col);
    else {
      buf_printf(b, "%s = ?", col);
      json_array_append(s->binds, val);
    }
  }
  else if(!strcmp(op, "$ne")) {
    buf_printf(b, "%s IS NOT ?", col);
    json_array_append(s->binds, val);
  }
  else if(!strcmp(op, "$gt") || !strcmp(op, "$gte") || !strcmp(op, "$lt") ||
          !strcmp(op, "$lte")) {
    const char *o = !strcmp(op, "$gt")    ? ">"
                    : !strcmp(op, "$gte") ? ">="
                    : !strcmp(op, "$lt")  ? "<"
                                          : "<=";
    buf_printf(b, "%s %s ?", col, o);
    json_array_append(s->binds, val);
  }
  else if(!strcmp(op, "$in") || !strcmp(op, "$notin")) {
    int in = !strcmp(op, "$in");
    if(!json_is_array(val)) {
      snprintf(s->err, sizeof s->err, "%s needs an array", op);
      return -1;
    }
    if(json_array_size(val) == 0) {
      buf_adds(b, in ? "0" : "1");
      return 0;
    }
    buf_printf(b, "%s %sIN (", col, in ? "" : "NOT ");
    size_t i;
    json_t *v;
    json_array_foreach(val, i, v) {
      buf_adds(b, i ? ",?" : "?");
      json_array_append(s->binds, v);
    }
    buf_adds(b, ")");
  }
  else if(!strcmp(op, "$cont") || !strcmp(op, "$starts") ||
          !strcmp(op, "$ends")) {
    if(!json_is_string(val)) {
      snprintf(s->err, sizeof s->err, "%s needs a string", op);
      return -1;
    }
    if(json_string_length(val) == 0)
      buf_adds(b, "1");
    else if(!strcmp(op, "$cont")) {
      buf_printf(b, "instr(%s, ?) > 0", col);
      json_array_append(s->binds, val);
    }
    else {
      buf_printf(b, "substr(%s, %s, length(?)) = ?", col,
                 !strcmp(op, "$starts") ? "1" : "-length(?)");
      json_array_append(s->binds, val);
      if(strcmp(op, "$starts"))
        json_array_append(s->binds, val);
      json_array_append(s->binds, val);
    }
  }
  else if(!strcmp(op, "$isnull") || !strcmp(op, "$notnull")) {
    int isnull = !strcmp(op, "$isnull") == !json_is_false(val);
    buf_printf(b, "%s IS %sNULL", col, isnull ? "" : "NOT ");
  }
  else {
    snprintf(s->err, sizeof s->err, "unsupported operator %s", op);
    return -1;
  }
  return 0;
}

static int compile_node(struct sqlq *s, json_t *node)
{
  if(!json_is_object(node)) {
    snprintf(s->err, sizeof s->err, "a condition must be an object");
    return -1;
  }
  if(json_object_size(node) == 0) {
    buf_adds(&s->sql, "1");
    return 0;
  }
  const char *key;
  json_t *val;
  int first = 1;
  buf_adds(&s->sql, "(");
  json_object_foreach(node, key, val) {
    if(!first)
      buf_adds(&s->sql, " AND ");
    first = 0;
    if(!strcmp(key, "$and") || !strcmp(key, "$or")) {
      if(compile_list(s, val, !strcmp(key, "$and") ? " AND " : " OR ",
                      !strcmp(key, "$and") ? "1" : "0"))
        return -1;
      continue;
    }
    const char *col = field_col(key);
    if(!col) {
      snprintf(s->err, sizeof s->err, "unsupported filter field %s", key);
      return -1;
    }
    if(!json_is_object(val) || json_object_size(val) == 0) {
      snprintf(s->err, sizeof s->err, "filter on %s needs {\"$op\": value}",
               key);
      return -1;
    }
    const char *op;
    json_t *ov;
    int f2 = 1;
    json_object_foreach(val, op, ov) {
      if(!f2)
        buf_adds(&s->sql, " AND ");
      f2 = 0;
      if(compile_op(s, col, op, ov))
        return -1;
    }
  }
  buf_adds(&s->sql, ")");
  return 0;
}

static void bind_all(sqlite3_stmt *st, json_t *binds, int first)
{
  size_t i;
  json_t *v;
  json_array_foreach(binds, i, v) {
    int k = first + (int)i;
    if(json_is_string(v))
      sqlite3_bind_text(st, k, json_string_value(v),
                        (int)json_string_length(v), SQLITE_TRANSIENT);
    else if(json_is_integer(v))
      sqlite3_bind_int64(st, k, json_integer_value(v));
    else if(json_is_real(v))
      sqlite3_bind_double(st, k, json_real_value(v));
    else if(json_is_boolean(v))
      sqlite3_bind_int(st, k, json_is_true(v));
    else
      sqlite3_bind_null(st, k);
  }
}

static void h_items_search(const struct request *q, struct reply *r)
{
  long long pid = entity_ll(q, "project_id"), fid = entity_ll(q, "folder_id");
  if(pid <= 0)
    req_param_ll(q, "project_id", &pid);
  if(fid <= 0)
    req_param_ll(q, "folder_id", &fid);
  if(pid <= 0) {
    reply_error(r, 400, "project_id is required in x-sa-entity-context");
    return;
  }
  struct project_row p;
  if(!store_project_locked(pid, &p)) {
    reply_error(r, 404, "Project not found");
    return;
  }
  json_t *b = body_object(q, r, 1);
  if(!b)
    return;
  json_t *query = json_object_get(b, "query");
  if(!query)
    query = b;
  if(!json_is_object(query)) {
    reply_error(r, 400, "query must be an object");
    json_decref(b);
    return;
  }
  long long limit = EMU_MAX_PAGE, off = 0;
  json_t *jl = json_object_get(query, "limit");
  json_t *jo = json_object_get(query, "offset");
  if((jl && (!json_ll(jl, &limit) || limit < 0)) ||
     (jo && (!json_ll(jo, &off) || off < 0))) {
    reply_error(r, 400, "limit and offset must be non-negative integers");
    json_decref(b);
    return;
  }
  if(limit > EMU_MAX_PAGE || limit == 0)
    limit = EMU_MAX_PAGE;
  struct sqlq s = {0};
  s.binds = json_array();
  buf_adds(&s.sql, "FROM items i WHERE i.project_id = ?");
  json_array_append_new(s.binds, json_integer(pid));
  if(fid > 0) {
    buf_adds(&s.sql, " AND i.folder_id = ?");
    json_array_append_new(s.binds, json_integer(fid));
  }
  json_t *search = json_object_get(query, "search");
  if(search && !json_is_null(search)) {
    buf_adds(&s.sql, " AND ");
    if(compile_node(&s, search)) {
      reply_error(r, 400, "Invalid search: %s", s.err);
      goto out;
    }
  }
  if(json_array_size(s.binds) > 30000) {
    reply_error(r, 400, "Too many values in the search");
    goto out;
  }
  struct buf sql = {0};
  buf_printf(&sql, "SELECT COUNT(*) %s", s.sql.p);
  sqlite3_stmt *st = store_prep_locked(sql.p);
  bind_all(st, s.binds, 1);
  long long count = 0;
  if(sqlite3_step(st) == SQLITE_ROW)
    count = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sql.len = 0;
  buf_printf(&sql, "SELECT " ITEM_COLS " %s ORDER BY i.id LIMIT %lld OFFSET %lld",
             s.sql.p, limit, off);
  st = store_prep_locked(sql.p);
  bind_all(st, s.binds, 1);
  json_t *data = json_array();
  while(sqlite3_step(st) == SQLITE_ROW)
    json_array_append_new(data, store_item_json_locked(st));
  sqlite3_finalize(st);
  buf_free(&sql);
  reply_json(r, 200, page(data, count));
out:
  buf_free(&s.sql);
  json_decref(s.binds);
  json_decref(b);
}

static void h_item_get(const struct request *q, struct reply *r, long long id)
{
  long long pid = entity_ll(q, "project_id");
  if(pid <= 0)
    req_param_ll(q, "project_id", &pid);
  sqlite3_stmt *st = store_prep_locked("SELECT " ITEM_COLS " FROM items i WHERE i.id=?1"
                                       " AND (?2 <= 0 OR i.project_id=?2)");
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_int64(st, 2, pid);
  if(sqlite3_step(st) == SQLITE_ROW)
    reply_json(r, 200, store_item_json_locked(st));
  else
    reply_error(r, 404, "Item not found");
  sqlite3_finalize(st);
}

/* ---- work-management ------------------------------------------------------ */
static void h_workflows(const struct request *q, struct reply *r)
{
  int want[3] = {0, 1, 1};
  for(size_t i = 0; i < q->nparams; i++) {
    if(strcmp(q->params[i].key, "filter"))
      continue;
    const char *f = q->params[i].val;
    const char *ops = strstr(f, "||");
    if(!ops || strncmp(f, "id", (size_t)(ops - f)) || ops - f != 2)
      continue; /* filters on other fields are ignored */
    const char *val = strstr(ops + 2, "||");
    if(!val)
      continue;
    int in = !strncmp(ops + 2, "$in", 3);
    int keep[3] = {0, 0, 0};
    for(const char *v = val + 2; *v;) {
      long long id = strtoll(v, NULL, 10);
      if(id >= 1 && id <= 2)
        keep[id] = 1;
      const char *c = strchr(v, ',');
      if(!c || !in)
        break;
      v = c + 1;
    }
    for(int k = 1; k <= 2; k++)
      want[k] = want[k] && keep[k];
  }
  json_t *data = json_array();
  for(int k = 1; k <= 2; k++)
    if(want[k])
      json_array_append_new(data, workflow_json(k, q->team_id));
  reply_json(r, 200, page(data, (long long)json_array_size(data)));
}

static void h_wf_statuses(struct reply *r, long long wf)
{
  if(!workflow_exists(wf)) {
    reply_error(r, 404, "Workflow not found");
    return;
  }
  json_t *a = workflow_statuses_json(wf);
  reply_json(r, 200, page(a, (long long)json_array_size(a)));
}

static void h_wf_roles(struct reply *r, long long wf)
{
  if(!workflow_exists(wf)) {
    reply_error(r, 404, "Workflow not found");
    return;
  }
  json_t *a = json_pack("[{s:I,s:I,s:i,s:{s:i,s:s}},{s:I,s:I,s:i,s:{s:i,s:s}}]",
                        "id", wf * 10 + 1, "workflow_id", wf, "role_id", 4,
                        "role", "id", 4, "name", "Annotator", "id",
                        wf * 10 + 2, "workflow_id", wf, "role_id", 5, "role",
                        "id", 5, "name", "QA");
  reply_json(r, 200, page(a, 2));
}

/* ---- assets: download --------------------------------------------------- */
static void h_download_method(const struct request *q, struct reply *r)
{
  json_t *b = body_object(q, r, 0);
  if(!b)
    return;
  long long pid = 0;
  if(!json_ll(json_object_get(b, "project_id"), &pid))
    req_param_ll(q, "project_id", &pid);
  json_t *ids = json_object_get(b, "item_ids");
  struct project_row p;
  if(pid <= 0)
    reply_error(r, 400, "project_id is required");
  else if(!json_is_array(ids))
    reply_error(r, 400, "item_ids (array) is required");
  else if(!store_project_locked(pid, &p))
    reply_error(r, 404, "Project not found");
  else {
    json_t *small = json_object(), *large = json_array(), *batch = NULL;
    long long nb = 0;
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v) {
      long long id;
      int found;
      if(!json_ll(v, &id))
        continue;
      long long size = store_item_doc_size_locked(id, pid, &found);
      if(!found)
        continue;
      if(size > emu.large_threshold) {
        json_array_append_new(large, json_pack("{s:I}", "id", id));
        continue;
      }
      if(!batch || (long long)json_array_size(batch) >= emu.stream_batch) {
        char key[32];
        snprintf(key, sizeof key, "%lld", nb++);
        batch = json_array();
        json_object_set_new(small, key, json_pack("{s:o}", "data", batch));
      }
      json_array_append_new(batch, json_pack("{s:I}", "id", id));
    }
    reply_json(r, 200, json_pack("{s:o,s:o}", "small", small, "large", large));
  }
  json_decref(b);
}

struct stream_state {
  long long *ids;
  size_t n, idx;
  long long pid, fid;
  char *cur;
  size_t cur_len, cur_off;
  int drop;
  size_t sent, drop_at; /* drop: end with an error once sent == drop_at */
  long long limit;      /* >= 0: documents left to send (stream_limit) */
};

static const char stream_delim[] = "\\n;)\\n";

/* Loads the next document (plus delimiter) into s->cur; 0 at the end. */
static int stream_next(struct stream_state *s)
{
  while(s->idx < s->n && s->limit != 0) {
    char *doc = NULL;
    size_t len = 0;
    pthread_mutex_lock(&emu.db_lock);
    int found = store_item_doc_locked(s->ids[s->idx++], s->pid, s->fid, &doc,
                                      &len);
    pthread_mutex_unlock(&emu.db_lock);
    if(!found)
      continue;
    struct buf b = {0};
    buf_add(&b, doc, len);
    buf_add(&b, stream_delim, 6);
    free(doc);
    free(s->cur);
    s->cur = buf_take(&b, &s->cur_len);
    s->cur_off = 0;
    if(s->limit > 0)
      s->limit--;
    if(s->drop && !s->drop_at)
      s->drop_at = s->idx < s->n && s->limit != 0 ? s->cur_len + 1
                                                 : (len / 2 ? len / 2 : 1);
    return 1;
  }
  return 0;
}

ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
  struct stream_state *s = cls;
  (void)pos;
  if(s->cur_off >= s->cur_len && !stream_next(s))
    return s->drop ? MHD_CONTENT_READER_END_WITH_ERROR
                   : MHD_CONTENT_READER_END_OF_STREAM;
  if(s->drop && s->sent >= s->drop_at)
    return MHD_CONTENT_READER_END_WITH_ERROR;
  size_t n = s->cur_len - s->cur_off;
  if(n > max)
    n = max;
  if(s->drop && s->sent + n > s->drop_at)
    n = s->drop_at - s->sent;
  memcpy(out, s->cur + s->cur_off, n);
  s->cur_off += n;
  s->sent += n;
  return (ssize_t)n;
}

void stream_free(void *cls)
{
  struct stream_state *s = cls;
  if(!s)
    return;
  free(s->ids);
  free(s->cur);
  free(s);
}

void stream_set_drop(struct stream_state *s)
{
  s->drop = 1;
}

void stream_set_limit(struct stream_state *s, long long n)
{
  s->limit = n;
}

int api_is_stream(const char *method, const char *path)
{
  return !strcmp(method, "POST") &&
         !strcmp(path, "/api/v4/items/annotations/download");
}

static void h_stream(const struct request *q, struct reply *r)
{
  struct project_row p;
  long long fid = 0;
  if(!need_project(q, r, &p))
    return;
  if(req_param(q, "folder_id") && !need_folder(q, r, &p, &fid))
    return;
  json_t *b = body_object(q, r, 0);
  if(!b)
    return;
  json_t *ids = json_object_get(b, "image_ids");
  if(!json_is_array(ids)) {
    reply_error(r, 400, "image_ids (array) is required");
    json_decref(b);
    return;
  }
  struct stream_state *s = calloc(1, sizeof *s);
  if(!s)
    abort();
  s->ids = calloc(json_array_size(ids) + 1, sizeof *s->ids);
  if(!s->ids)
    abort();
  size_t i;
  json_t *v;
  json_array_foreach(ids, i, v) {
    long long id;
    if(json_ll(v, &id))
      s->ids[s->n++] = id;
  }
  s->pid = p.id;
  s->fid = fid;
  s->limit = -1;
  json_decref(b);
  r->status = 200;
  r->ctype = "application/json";
  r->stream = s;
}

static int item_in_project(const struct request *q, struct reply *r,
                           long long id, long long *pid_out)
{
  long long pid = 0;
  req_param_ll(q, "project_id", &pid);
  sqlite3_stmt *st = store_prep_locked("SELECT project_id FROM items WHERE id=?1"
                                       " AND (?2 <= 0 OR project_id=?2)");
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_int64(st, 2, pid);
  int ok = sqlite3_step(st) == SQLITE_ROW;
  if(ok && pid_out)
    *pid_out = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  if(!ok)
    reply_error(r, 404, "Item not found");
  return ok;
}

static void h_v301_download(const struct request *q, struct reply *r,
                            long long id)
{
  long long pid;
  if(!item_in_project(q, r, id, &pid))
    return;
  char *doc = NULL;
  size_t len = 0;
  store_item_doc_locked(id, pid, 0, &doc, &len);
  free(r->body);
  r->status = 200;
  r->body = doc;
  r->len = len;
  r->ctype = "application/json";
}

/* ---- assets: small upload (multipart) ---------------------------------- */
struct data_span {
  const char *p;
  size_t n;
};

static int find_data(void *ctx, const char *key, const char *val, size_t vlen)
{
  struct data_span *d = ctx;
  if(!strcmp(key, "data")) {
    d->p = val;
    d->n = vlen;
  }
  return 0;
}

static void h_upload(const struct request *q, struct reply *r)
{
  struct project_row p;
  long long fid;
  if(!need_project(q, r, &p) || !need_folder(q, r, &p, &fid))
    return;
  struct mpart *parts;
  char err[256];
  int n = multipart_parse(q->content_type, q->body, q->body_len, &parts, err,
                          sizeof err);
  if(n < 0) {
    reply_error(r, 400, "%s", err);
    return;
  }
  json_t *failed = json_array();
  long long ts = store_next_ts_locked();
  sqlite3_exec(emu.db, "BEGIN", NULL, NULL, NULL);
  sqlite3_stmt *find = store_prep_locked("SELECT id FROM items WHERE folder_id=? AND name=?");
  for(int i = 0; i < n; i++) {
    sqlite3_reset(find);
    sqlite3_bind_int64(find, 1, fid);
    sqlite3_bind_text(find, 2, parts[i].name, -1, SQLITE_TRANSIENT);
    long long id = 0;
    if(sqlite3_step(find) == SQLITE_ROW)
      id = sqlite3_column_int64(find, 0);
    struct data_span d = {NULL, 0};
    if(id && rawjson_valid(parts[i].data, parts[i].len, 1) &&
       rawjson_members(parts[i].data, parts[i].len, find_data, &d) == 0 &&
       d.p && d.p[0] == '{')
      store_item_set_doc_locked(id, d.p, d.n, ts);
    else
      json_array_append_new(failed, json_string_lossy(parts[i].name,
                                                      strlen(parts[i].name)));
  }
  sqlite3_finalize(find);
  sqlite3_exec(emu.db, "COMMIT", NULL, NULL, NULL);
  multipart_free(parts, n);
  reply_json(r, 200,
             json_pack("{s:o,s:{s:[],s:[],s:[],s:[]}}", "failedItems", failed,
                       "missingResources", "class", "template", "attribute",
                       "attributeGroup"));
}

/* ---- assets: large upload (JSON multipart protocol, §10.5) -------------- */
struct upload {
  char id[48], path[96];
  long long item;
  char **chunks; /* index chunk_id - 1 */
  size_t *lens;
  size_t nchunks;
  struct upload *next;
};
static pthread_mutex_t up_lock = PTHREAD_MUTEX_INITIALIZER;
static struct upload *uploads;
static long long next_upload = 1;

static void upload_free(struct upload *u)
{
  for(size_t i = 0; i < u->nchunks; i++)
    free(u->chunks[i]);
  free(u->chunks);
  free(u->lens);
  free(u);
}

static void h_mp_start(const struct request *q, struct reply *r, long long id)
{
  if(!item_in_project(q, r, id, NULL))
    return;
  struct upload *u = calloc(1, sizeof *u);
  if(!u)
    abort();
  pthread_mutex_lock(&up_lock);
  long long n = next_upload++;
  snprintf(u->id, sizeof u->id, "emu-upload-%lld-%lld", n, id);
  snprintf(u->path, sizeof u->path, "uploads/%lld/%lld.json", id, n);
  u->item = id;
  u->next = uploads;
  uploads = u;
  pthread_mutex_unlock(&up_lock);
  reply_json(r, 200, json_pack("{s:s,s:s}", "path", u->path, "upload_id",
                               u->id));
}

/* Finds the session of the upload_id header (up_lock held); replies 400. */
static struct upload *find_upload(const struct request *q, struct reply *r,
                                  long long item)
{
  if(!q->upload_id) {
    reply_error(r, 400, "The upload_id header is required");
    return NULL;
  }
  for(struct upload *u = uploads; u; u = u->next)
    if(!strcmp(u->id, q->upload_id)) {
      const char *path = req_param(q, "path");
      if(u->item != item)
        reply_error(r, 400, "upload_id belongs to another item");
      else if(path && strcmp(path, u->path))
        reply_error(r, 400, "path does not match the upload");
      else
        return u;
      return NULL;
    }
  reply_error(r, 400, "Unknown upload_id");
  return NULL;
}

static void h_mp_part(const struct request *q, struct reply *r, long long id)
{
  long long chunk;
  if(!req_param_ll(q, "chunk_id", &chunk) || chunk < 1 || chunk > 100000) {
    reply_error(r, 400, "chunk_id (1, 2, ...) is required");
    return;
  }
  json_error_t jerr;
  json_t *b = q->body_len ? json_loadb(q->body, q->body_len, JSON_ALLOW_NUL,
                                       &jerr)
                          : NULL;
  json_t *c = json_object_get(b, "data_chunk");
  if(!json_is_string(c)) {
    reply_error(r, 400, "body must be {\"data_chunk\": \"...\"}");
    json_decref(b);
    return;
  }
  pthread_mutex_lock(&up_lock);
  struct upload *u = find_upload(q, r, id);
  if(u) {
    size_t k = (size_t)chunk;
    if(k > u->nchunks) {
      u->chunks = realloc(u->chunks, k * sizeof *u->chunks);
      u->lens = realloc(u->lens, k * sizeof *u->lens);
      if(!u->chunks || !u->lens)
        abort();
      for(size_t i = u->nchunks; i < k; i++) {
        u->chunks[i] = NULL;
        u->lens[i] = 0;
      }
      u->nchunks = k;
    }
    free(u->chunks[k - 1]); /* a re-sent chunk replaces the first copy */
    size_t len = json_string_length(c);
    u->chunks[k - 1] = malloc(len + 1);
    if(!u->chunks[k - 1])
      abort();
    memcpy(u->chunks[k - 1], json_string_value(c), len);
    u->lens[k - 1] = len;
    reply_json(r, 200, json_pack("{s:s,s:I}", "status", "OK", "chunk_id",
                                 chunk));
  }
  pthread_mutex_unlock(&up_lock);
  json_decref(b);
}

static void h_mp_finish(const struct request *q, struct reply *r, long long id)
{
  pthread_mutex_lock(&up_lock);
  struct upload *u = find_upload(q, r, id);
  if(!u) {
    pthread_mutex_unlock(&up_lock);
    return;
  }
  struct buf doc = {0};
  int missing = u->nchunks == 0;
  for(size_t i = 0; i < u->nchunks; i++) {
    if(!u->chunks[i])
      missing = 1;
    else
      buf_add(&doc, u->chunks[i], u->lens[i]);
  }
  if(missing)
    reply_error(r, 400, "Chunks are missing");
  else if(!rawjson_valid(doc.p, doc.len, 1))
    reply_error(r, 400, "The assembled annotation is not a JSON object");
  else {
    store_item_set_doc_locked(id, doc.p, doc.len, store_next_ts_locked());
    for(struct upload **pp = &uploads; *pp; pp = &(*pp)->next)
      if(*pp == u) {
        *pp = u->next;
        break;
      }
    upload_free(u);
    reply_json(r, 200, json_pack("{s:s}", "status", "SUCCESS"));
  }
  pthread_mutex_unlock(&up_lock);
  buf_free(&doc);
}

void api_reset_state(void)
{
  pthread_mutex_lock(&up_lock);
  while(uploads) {
    struct upload *u = uploads;
    uploads = u->next;
    upload_free(u);
  }
  next_upload = 1;
  pthread_mutex_unlock(&up_lock);
  pthread_mutex_lock(&poll_lock);
  free(polls);
  polls = NULL;
  npolls = 0;
  next_poll = 1;
  pthread_mutex_unlock(&poll_lock);
}

static const char schema_text[] =
    "{\"$schema\":\"http://json-schema.org/draft-07/schema#\","
    "\"$id\":\"https://sa-emulator.invalid/schemas/vector/V1.00\","
    "\"title\":\"Vector annotation\",\"type\":\"object\","
    "\"required\":[\"metadata\"],\"properties\":{"
    "\"version\":{\"type\":\"string\"},"
    "\"metadata\":{\"type\":\"object\",\"required\":[\"name\"],"
    "\"properties\":{\"name\":{\"type\":\"string\"},"
    "\"width\":{\"type\":[\"number\",\"null\"]},"
    "\"height\":{\"type\":[\"number\",\"null\"]},"
    "\"status\":{\"type\":[\"string\",\"null\"]},"
    "\"pinned\":{\"type\":[\"boolean\",\"null\"]},"
    "\"isPredicted\":{\"type\":[\"boolean\",\"null\"]},"
    "\"projectId\":{\"type\":[\"integer\",\"null\"]},"
    "\"id\":{\"type\":[\"integer\",\"null\"]},"
    "\"annotatorEmail\":{\"type\":[\"string\",\"null\"]},"
    "\"qaEmail\":{\"type\":[\"string\",\"null\"]},"
    "\"lastAction\":{\"type\":[\"object\",\"null\"],\"properties\":{"
    "\"email\":{\"type\":\"string\"},\"timestamp\":{\"type\":\"number\"}}}}},"
    "\"instances\":{\"type\":\"array\",\"items\":"
    "{\"$ref\":\"#/definitions/instance\"}},"
    "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},"
    "\"comments\":{\"type\":\"array\",\"items\":{\"type\":\"object\"}}},"
    "\"definitions\":{\"attribute\":{\"type\":\"object\",\"properties\":{"
    "\"id\":{\"type\":\"integer\"},\"groupId\":{\"type\":\"integer\"},"
    "\"name\":{\"type\":\"string\"},\"groupName\":{\"type\":\"string\"}}},"
    "\"instance\":{\"type\":\"object\",\"required\":[\"type\"],\"properties\":{"
    "\"type\":{\"enum\":[\"bbox\",\"rbbox\",\"polygon\",\"polyline\","
    "\"point\",\"ellipse\",\"cuboid\",\"template\",\"tag\",\"mask\"]},"
    "\"classId\":{\"type\":\"integer\"},\"className\":{\"type\":\"string\"},"
    "\"probability\":{\"type\":\"number\"},"
    "\"visible\":{\"type\":\"boolean\"},\"locked\":{\"type\":\"boolean\"},"
    "\"creationType\":{\"type\":\"string\"},"
    "\"attributes\":{\"type\":\"array\",\"items\":"
    "{\"$ref\":\"#/definitions/attribute\"}},"
    "\"points\":{\"type\":[\"object\",\"array\"]},"
    "\"x\":{\"type\":\"number\"},\"y\":{\"type\":\"number\"}}}}}";

/* ---- routing --------------------------------------------------------------- */

/* Matches path against pat, where each "#" segment is a decimal id. */
static int match(const char *path, const char *pat, long long *ids)
{
  int k = 0;
  while(*pat) {
    if(*pat == '#') {
      if(*path < '0' || *path > '9')
        return 0;
      char *end;
      ids[k++] = strtoll(path, &end, 10);
      path = end;
      pat++;
      continue;
    }
    if(*path != *pat)
      return 0;
    path++;
    pat++;
  }
  return *path == '\0';
}

int api_route(struct request *q, struct reply *r)
{
  const char *m = q->method, *path = q->path;
  long long id[2] = {0, 0};
  int get = !strcmp(m, "GET"), post = !strcmp(m, "POST"),
      put = !strcmp(m, "PUT");
  int ok = 1;
  pthread_mutex_lock(&emu.db_lock);
  if(get && match(path, "/user/ME", id))
    h_user_me(q, r);
  else if(get && match(path, "/api/v1/team/#", id))
    h_team(q, r, id[0]);
  else if(get && match(path, "/api/v1/projects", id))
    h_projects(q, r);
  else if(get && match(path, "/api/v1/project/#", id))
    h_project(q, r, id[0]);
  else if(get && match(path, "/folder/getFolderByName", id))
    h_folder_by_name(q, r);
  else if(get && match(path, "/folder/getFolderById", id))
    h_folder_by_id(q, r);
  else if(get && match(path, "/folders", id))
    h_folders(q, r);
  else if(post && match(path, "/folder", id))
    h_folder_create(q, r);
  else if(put && match(path, "/folder/#", id))
    h_folder_update(q, r, id[0]);
  else if(put && match(path, "/image/delete/images", id))
    h_delete_images(q, r);
  else if(get && match(path, "/classes", id))
    h_classes(q, r);
  else if(get && match(path, "/templates", id))
    reply_json(r, 200, page(json_array(), 0));
  else if(put && match(path, "/image/updateAnnotationStatusBulk", id))
    h_status_bulk(q, r);
  else if(post && match(path, "/annotations/remove", id))
    h_remove(q, r);
  else if(get && match(path, "/annotations/getRemoveStatus", id))
    h_remove_status(q, r);
  else if(post && match(path, "/api/v1/items/search", id))
    h_items_search(q, r);
  else if(get && match(path, "/api/v1/items/#", id))
    h_item_get(q, r, id[0]);
  else if(get && match(path, "/api/v1/workflows", id))
    h_workflows(q, r);
  else if(get && match(path, "/api/v1/workflows/#/workflowstatuses", id))
    h_wf_statuses(r, id[0]);
  else if(get && match(path, "/api/v1/workflows/#/workflowroles", id))
    h_wf_roles(r, id[0]);
  else if(post && match(path, "/api/v4/items/annotations/download/method", id))
    h_download_method(q, r);
  else if(post && match(path, "/api/v4/items/annotations/download", id))
    h_stream(q, r);
  else if(post && match(path, "/api/v4/items/#/annotations/sync", id)) {
    if(item_in_project(q, r, id[0], NULL))
      reply_json(r, 200, json_pack("{s:s}", "status", "SUCCESS"));
  }
  else if(get && match(path, "/api/v4/items/#/annotations/sync/status", id)) {
    if(item_in_project(q, r, id[0], NULL))
      reply_json(r, 200, json_pack("{s:s}", "status", "SUCCESS"));
  }
  else if(post && match(path, "/api/v3.01/items/#/annotations/download", id))
    h_v301_download(q, r, id[0]);
  else if(post && match(path, "/api/v4/items/annotations/upload", id))
    h_upload(q, r);
  else if(post &&
          match(path, "/api/v3.01/items/#/annotations/upload/multipart/start",
                id))
    h_mp_start(q, r, id[0]);
  else if(post &&
          match(path, "/api/v4/items/#/annotations/upload/multipart/part", id))
    h_mp_part(q, r, id[0]);
  else if(post &&
          match(path, "/api/v4/items/#/annotations/upload/multipart/finish",
                id))
    h_mp_finish(q, r, id[0]);
  else if(get && match(path, "/api/v4/items/annotations/schema", id))
    reply_raw(r, 200, "application/json", schema_text, sizeof schema_text - 1);
  else
    ok = 0;
  pthread_mutex_unlock(&emu.db_lock);
  return ok;
}
