/** @file
 * The emulator's state in SQLite: projects, folders, items and their
 * documents; workflows (fixed); seeding (demo, bench items, control plane).
 *
 * Ids start at fixed bases per table (projects 101, folders 1001, items
 * 100001) so a client that mixes kinds of ids up gets a 404, and restart
 * there after a reset.
 */
#include "emu_i.h"

#include "sa/doc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROJECT_ID_BASE 100
#define FOLDER_ID_BASE 1000
#define ITEM_ID_BASE 100000

/* ---- workflows ---------------------------------------------------------- */
struct wf_status {
  long long value;
  const char *name;
};
static const struct wf_status wf1[] = {
    {1, "NotStarted"}, {2, "InProgress"}, {3, "QualityCheck"},
    {4, "Returned"},   {5, "Completed"},  {6, "Skipped"}};
static const struct wf_status wf2[] = {
    {1, "NotStarted"}, {2, "InProgress"}, {7, "Review"}, {5, "Completed"}};

static const struct wf_status *wf_table(long long wf, size_t *n)
{
  if(wf == 1) {
    *n = sizeof wf1 / sizeof wf1[0];
    return wf1;
  }
  if(wf == 2) {
    *n = sizeof wf2 / sizeof wf2[0];
    return wf2;
  }
  *n = 0;
  return NULL;
}

int workflow_exists(long long wf)
{
  return wf == 1 || wf == 2;
}

const char *workflow_status_name(long long wf, long long v)
{
  size_t n;
  const struct wf_status *t = wf_table(wf, &n);
  for(size_t i = 0; i < n; i++)
    if(t[i].value == v)
      return t[i].name;
  return NULL;
}

json_t *workflow_json(long long wf, long long team)
{
  if(!workflow_exists(wf))
    return NULL;
  return json_pack("{s:I,s:s,s:s,s:s,s:I,s:s,s:s}", "id", wf, "name",
                   wf == 1 ? "System workflow" : "Custom review workflow",
                   "type", wf == 1 ? "system" : "custom", "description",
                   wf == 1 ? "The default workflow" : "A custom workflow",
                   "team_id", team, "createdAt", "2024-01-01T00:00:00.000Z",
                   "updatedAt", "2024-01-01T00:00:00.000Z");
}

json_t *workflow_statuses_json(long long wf)
{
  size_t n;
  const struct wf_status *t = wf_table(wf, &n);
  json_t *a = json_array();
  for(size_t i = 0; i < n; i++)
    json_array_append_new(
        a, json_pack("{s:I,s:I,s:I,s:I,s:{s:I,s:s}}", "id",
                     wf * 100 + (long long)i + 1, "workflow_id", wf,
                     "status_id", t[i].value, "value", t[i].value, "status",
                     "id", t[i].value, "name", t[i].name));
  return a;
}

/* ---- database ----------------------------------------------------------- */
static int exec(const char *sql, char *err, size_t errlen)
{
  char *msg = NULL;
  if(sqlite3_exec(emu.db, sql, NULL, NULL, &msg) != SQLITE_OK) {
    snprintf(err, errlen, "sqlite: %s", msg ? msg : "?");
    sqlite3_free(msg);
    return -1;
  }
  return 0;
}

sqlite3_stmt *store_prep_locked(const char *sql)
{
  sqlite3_stmt *st = NULL;
  if(sqlite3_prepare_v2(emu.db, sql, -1, &st, NULL) != SQLITE_OK) {
    fprintf(stderr, "sa-emulator: sqlite prepare: %s\n  %s\n",
            sqlite3_errmsg(emu.db), sql);
    abort();
  }
  return st;
}

static long long scalar_ll(const char *sql, long long a, long long b)
{
  sqlite3_stmt *st = store_prep_locked(sql);
  int np = sqlite3_bind_parameter_count(st);
  if(np >= 1)
    sqlite3_bind_int64(st, 1, a);
  if(np >= 2)
    sqlite3_bind_int64(st, 2, b);
  long long v = 0;
  if(sqlite3_step(st) == SQLITE_ROW)
    v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

long long store_next_ts_locked(void)
{
  long long t = now_ms();
  if(!emu.ms_timestamps) {
    /* what the platform sends: whole seconds, so two changes within one
     * second carry the same updatedAt */
    t -= ((t % 1000) + 1000) % 1000;
  }
  else if(t <= emu.last_ms)
    t = emu.last_ms + 1;
  emu.last_ms = t;
  return t;
}

int store_open(const char *path, char *err, size_t errlen)
{
  if(sqlite3_open_v2(path ? path : ":memory:", &emu.db,
                     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                         SQLITE_OPEN_NOMUTEX,
                     NULL) != SQLITE_OK) {
    snprintf(err, errlen, "cannot open database %s: %s",
             path ? path : ":memory:", sqlite3_errmsg(emu.db));
    return -1;
  }
  if(exec("PRAGMA journal_mode=MEMORY; PRAGMA synchronous=OFF;"
          "CREATE TABLE IF NOT EXISTS projects(id INTEGER PRIMARY KEY,"
          " name TEXT NOT NULL, type INTEGER NOT NULL,"
          " workflow_id INTEGER NOT NULL, root_folder INTEGER,"
          " created INTEGER NOT NULL, updated INTEGER NOT NULL);"
          "CREATE TABLE IF NOT EXISTS folders(id INTEGER PRIMARY KEY,"
          " project_id INTEGER NOT NULL, name TEXT NOT NULL,"
          " is_root INTEGER NOT NULL, created INTEGER NOT NULL,"
          " updated INTEGER NOT NULL);"
          "CREATE UNIQUE INDEX IF NOT EXISTS folders_name"
          " ON folders(project_id, name);"
          "CREATE TABLE IF NOT EXISTS items(id INTEGER PRIMARY KEY,"
          " project_id INTEGER NOT NULL, folder_id INTEGER NOT NULL,"
          " name TEXT NOT NULL, status INTEGER NOT NULL, doc BLOB,"
          " gen INTEGER NOT NULL DEFAULT 0, created INTEGER NOT NULL,"
          " updated INTEGER NOT NULL);"
          "CREATE UNIQUE INDEX IF NOT EXISTS items_name ON items(folder_id, name);"
          "CREATE INDEX IF NOT EXISTS items_project ON items(project_id, id);",
          err, errlen))
    return -1;
  emu.last_ms = scalar_ll("SELECT MAX(updated) FROM items", 0, 0);
  return 0;
}

void store_close(void)
{
  if(emu.db)
    sqlite3_close(emu.db);
  emu.db = NULL;
}

/* ---- rows to JSON -------------------------------------------------------- */
static void row_text(sqlite3_stmt *st, int col, char *out, size_t n)
{
  const unsigned char *s = sqlite3_column_text(st, col);
  snprintf(out, n, "%s", s ? (const char *)s : "");
}

static int project_from_stmt(sqlite3_stmt *st, struct project_row *out)
{
  if(sqlite3_step(st) != SQLITE_ROW)
    return 0;
  out->id = sqlite3_column_int64(st, 0);
  row_text(st, 1, out->name, sizeof out->name);
  out->type = sqlite3_column_int(st, 2);
  out->workflow_id = sqlite3_column_int64(st, 3);
  out->root_folder = sqlite3_column_int64(st, 4);
  out->created = sqlite3_column_int64(st, 5);
  out->updated = sqlite3_column_int64(st, 6);
  return 1;
}

#define PROJECT_COLS \
  "id, name, type, workflow_id, root_folder, created, updated"

int store_project_locked(long long id, struct project_row *out)
{
  sqlite3_stmt *st = store_prep_locked("SELECT " PROJECT_COLS " FROM projects WHERE id=?");
  sqlite3_bind_int64(st, 1, id);
  int rc = project_from_stmt(st, out);
  sqlite3_finalize(st);
  return rc;
}

int store_project_by_name_locked(const char *name, struct project_row *out)
{
  sqlite3_stmt *st =
      store_prep_locked("SELECT " PROJECT_COLS " FROM projects WHERE name=? ORDER BY id");
  sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
  int rc = project_from_stmt(st, out);
  sqlite3_finalize(st);
  return rc;
}

json_t *store_project_json_locked(const struct project_row *p, long long team)
{
  long long count =
      scalar_ll("SELECT COUNT(*) FROM items WHERE project_id=?", p->id, 0);
  long long done = scalar_ll(
      "SELECT COUNT(*) FROM items WHERE project_id=? AND status=5", p->id, 0);
  long long rootdone = scalar_ll(
      "SELECT COUNT(*) FROM items WHERE folder_id=? AND status=5",
      p->root_folder, 0);
  json_t *o = json_object();
  json_object_set_new(o, "id", json_integer(p->id));
  json_object_set_new(o, "team_id", json_integer(team));
  json_object_set_new(o, "name", json_string_lossy(p->name, strlen(p->name)));
  json_object_set_new(o, "type", json_integer(p->type));
  json_object_set_new(o, "description", json_string("Seeded by sa-emulator"));
  json_object_set_new(o, "instructions_link", json_string(""));
  json_object_set_new(o, "creator_id", json_string("emulator@example.com"));
  json_object_set_new(o, "entropy_status", json_integer(1));
  json_object_set_new(o, "sharing_status", json_integer(1));
  json_object_set_new(o, "status", json_integer(2));
  json_object_set_new(o, "folder_id", json_integer(p->root_folder));
  json_object_set_new(o, "workflow_id", json_integer(p->workflow_id));
  json_object_set_new(o, "sync_status", json_integer(1));
  json_object_set_new(o, "upload_state", json_integer(1));
  json_object_set_new(o, "imageCount", json_integer(count));
  json_object_set_new(o, "completedImagesCount", json_integer(done));
  json_object_set_new(o, "rootFolderCompletedImagesCount",
                      json_integer(rootdone));
  json_object_set_new(o, "createdAt", json_ts(p->created));
  json_object_set_new(o, "updatedAt", json_ts(p->updated));
  return o;
}

json_t *store_folder_json_locked(sqlite3_stmt *st, long long team)
{
  long long id = sqlite3_column_int64(st, 0);
  const char *name = (const char *)sqlite3_column_text(st, 1);
  long long done = scalar_ll(
      "SELECT COUNT(*) FROM items WHERE folder_id=? AND status=5", id, 0);
  json_t *o = json_object();
  json_object_set_new(o, "id", json_integer(id));
  json_object_set_new(o, "name", json_string_lossy(name, strlen(name)));
  json_object_set_new(o, "status", json_integer(1));
  json_object_set_new(o, "project_id",
                      json_integer(sqlite3_column_int64(st, 2)));
  json_object_set_new(o, "team_id", json_integer(team));
  json_object_set_new(o, "is_root",
                      json_boolean(sqlite3_column_int(st, 3) != 0));
  json_object_set_new(o, "completedCount", json_integer(done));
  json_object_set_new(o, "createdAt", json_ts(sqlite3_column_int64(st, 4)));
  json_object_set_new(o, "updatedAt", json_ts(sqlite3_column_int64(st, 5)));
  json_object_set_new(o, "folderUsers", json_array());
  return o;
}

json_t *store_item_json_locked(sqlite3_stmt *st)
{
  long long id = sqlite3_column_int64(st, 0);
  const char *name = (const char *)sqlite3_column_text(st, 1);
  char path[64];
  snprintf(path, sizeof path, "https://sa-emulator.invalid/items/%lld", id);
  json_t *o = json_object();
  json_object_set_new(o, "id", json_integer(id));
  json_object_set_new(o, "name", json_string_lossy(name, strlen(name)));
  json_object_set_new(o, "folder_id",
                      json_integer(sqlite3_column_int64(st, 2)));
  json_object_set_new(o, "project_id",
                      json_integer(sqlite3_column_int64(st, 3)));
  json_object_set_new(o, "annotation_status",
                      json_integer(sqlite3_column_int64(st, 4)));
  json_object_set_new(o, "approval_status", json_null());
  json_object_set_new(o, "is_pinned", json_false());
  json_object_set_new(o, "entropy_value", json_null());
  json_object_set_new(o, "createdAt", json_ts(sqlite3_column_int64(st, 5)));
  json_object_set_new(o, "updatedAt", json_ts(sqlite3_column_int64(st, 6)));
  json_object_set_new(o, "metadata", json_pack("{s:s}", "path", path));
  json_object_set_new(o, "assignments", json_array());
  return o;
}

/* ---- documents ----------------------------------------------------------- */
/* A JSON string, quoted as the client does (sa/doc.h); new. */
static char *json_quote(const char *s)
{
  char *q = sa_json_quote(s);
  if(!q)
    abort();
  return q;
}

static unsigned long long rng_next(unsigned long long *s)
{
  unsigned long long x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  *s = x;
  return x;
}

static double rng_coord(unsigned long long *s, int max)
{
  return (double)(rng_next(s) % ((unsigned long long)max * 100)) / 100.0;
}

static const char *const inst_types[] = {"bbox",    "polygon", "polyline",
                                         "point",   "ellipse", "cuboid"};

static void add_common(struct buf *b, long long pid, unsigned long long *s,
                       int i, long long id)
{
  int cls = (int)(rng_next(s) % 2);
  buf_printf(b,
             "\"classId\":%lld,\"className\":\"%s\",\"probability\":%d,"
             "\"visible\":true,\"locked\":false,\"groupId\":0,"
             "\"pointLabels\":{},\"attributes\":[{\"id\":%lld,"
             "\"groupId\":%lld,\"name\":\"%s\",\"groupName\":\"color\"}],"
             "\"trackingId\":null,\"error\":null,"
             "\"createdAt\":\"2024-05-0%dT10:1%d:00.123Z\","
             "\"createdBy\":{\"email\":\"annotator@example.com\","
             "\"role\":\"Annotator\"},"
             "\"updatedAt\":\"2024-05-0%dT11:2%d:30.456Z\","
             "\"updatedBy\":{\"email\":\"qa@example.com\",\"role\":\"QA\"}",
             pid * 100 + 1 + cls, cls ? "person" : "car",
             (int)(50 + rng_next(s) % 51), pid * 1000 + 11 + 11 * cls,
             pid * 1000 + 1 + cls, cls ? "blue" : "red", 1 + i % 9, i % 10,
             1 + i % 9, i % 10);
  /* leave creationType off a few instances */
  if((id + i) % 7 != 3)
    buf_printf(b, ",\"creationType\":\"%s\"",
               i % 3 ? "Manual" : "Preannotation");
}

char *gen_vector_doc(long long item_id, const char *name, long long pid,
                     const char *status, size_t *len)
{
  unsigned long long s = 0x9e3779b97f4a7c15ULL ^ (unsigned long long)item_id;
  for(int k = 0; k < 4; k++)
    rng_next(&s);
  struct buf b = {0};
  char *qn = json_quote(name);
  int w = 640 + (int)(rng_next(&s) % 1400), h = 480 + (int)(rng_next(&s) % 900);
  buf_printf(&b,
             "{\"metadata\":{\"name\":%s,\"width\":%d,\"height\":%d,"
             "\"status\":\"%s\",\"pinned\":false,\"isPredicted\":false,"
             "\"projectId\":%lld,\"id\":%lld,"
             "\"annotatorEmail\":\"annotator@example.com\","
             "\"qaEmail\":null,\"lastAction\":{\"email\":"
             "\"annotator@example.com\",\"timestamp\":%lld}},\"instances\":[",
             qn, w, h, status, pid, item_id,
             1714557600000LL + (long long)(rng_next(&s) % 100000000));
  free(qn);
  int n = 5 + (int)(rng_next(&s) % 13);
  for(int i = 0; i < n; i++) {
    const char *t = inst_types[i % 6];
    buf_printf(&b, "%s{\"type\":\"%s\",", i ? "," : "", t);
    if(i == 0) /* numbers a re-serialiser would change */
      buf_adds(&b, "\"points\":{\"x1\":12.3,\"y1\":0.1,\"x2\":340.55,"
                   "\"y2\":201.0},");
    else if(!strcmp(t, "bbox"))
      buf_printf(&b,
                 "\"points\":{\"x1\":%.2f,\"y1\":%.2f,\"x2\":%.2f,\"y2\":%.2f},",
                 rng_coord(&s, w / 2), rng_coord(&s, h / 2),
                 w / 2 + rng_coord(&s, w / 2), h / 2 + rng_coord(&s, h / 2));
    else if(!strcmp(t, "polygon") || !strcmp(t, "polyline")) {
      int np = 3 + (int)(rng_next(&s) % 6);
      buf_adds(&b, "\"points\":[");
      for(int k = 0; k < np; k++)
        buf_printf(&b, "%s%.2f,%.2f", k ? "," : "", rng_coord(&s, w),
                   rng_coord(&s, h));
      buf_adds(&b, "],");
    }
    else if(!strcmp(t, "point"))
      buf_printf(&b, "\"x\":%.2f,\"y\":%.3f,", rng_coord(&s, w),
                 rng_coord(&s, h));
    else if(!strcmp(t, "ellipse"))
      buf_printf(&b,
                 "\"cx\":%.2f,\"cy\":%.2f,\"rx\":%.1f,\"ry\":%.1f,"
                 "\"angle\":%s,",
                 rng_coord(&s, w), rng_coord(&s, h), rng_coord(&s, 90) + 1,
                 rng_coord(&s, 60) + 1, i < 6 ? "1e-7" : "0");
    else
      buf_printf(&b,
                 "\"points\":{\"f1\":{\"x\":%.2f,\"y\":%.2f},\"f2\":{\"x\":%.2f,"
                 "\"y\":%.2f},\"r1\":{\"x\":%.2f,\"y\":%.2f},\"r2\":{\"x\":"
                 "%.2f,\"y\":%.2f}},",
                 rng_coord(&s, w), rng_coord(&s, h), rng_coord(&s, w),
                 rng_coord(&s, h), rng_coord(&s, w), rng_coord(&s, h),
                 rng_coord(&s, w), rng_coord(&s, h));
    add_common(&b, pid, &s, i, item_id);
    buf_adds(&b, "}");
  }
  buf_printf(&b,
             "],\"tags\":[\"%s\",\"weather:%s\"],\"comments\":[{\"x\":%.2f,"
             "\"y\":%.2f,\"resolved\":%s,\"correspondence\":[{\"text\":"
             "\"Check the occluded %s, please.\",\"email\":"
             "\"qa@example.com\"}],\"createdAt\":"
             "\"2024-05-02T09:00:00.000Z\",\"createdBy\":{\"email\":"
             "\"qa@example.com\",\"role\":\"QA\"}}]}",
             item_id % 2 ? "day" : "night", item_id % 3 ? "clear" : "rain",
             rng_coord(&s, w), rng_coord(&s, h),
             item_id % 4 ? "false" : "true", item_id % 2 ? "car" : "person");
  return buf_take(&b, len);
}

static char *gen_video_doc(long long id, const char *name, long long pid,
                           const char *status, int variant, size_t *len)
{
  struct buf b = {0};
  char *qn = json_quote(name);
  long long dur = variant == 0 ? 10000000LL : variant == 1 ? 280000LL
                                                           : 5500000LL;
  buf_printf(&b,
             "{\"metadata\":{\"name\":%s,\"width\":1920,\"height\":1080,"
             "\"status\":\"%s\",\"url\":null,\"projectId\":%lld,\"id\":%lld,"
             "\"duration\":%lld,\"error\":null,\"annotatorEmail\":null,"
             "\"qaEmail\":null,\"lastAction\":{\"email\":"
             "\"annotator@example.com\",\"timestamp\":1714557600123}},"
             "\"instances\":[",
             qn, status, pid, id, dur);
  free(qn);
  long long half = dur / 2;
  buf_printf(&b,
             "{\"meta\":{\"type\":\"bbox\",\"classId\":%lld,\"className\":"
             "\"car\",\"pointLabels\":{},\"start\":0,\"end\":%lld,"
             "\"createdAt\":\"2024-05-01T10:00:00.000Z\",\"createdBy\":"
             "{\"email\":\"annotator@example.com\",\"role\":\"Annotator\"}},"
             "\"parameters\":[{\"start\":0,\"end\":%lld,\"timestamps\":["
             "{\"timestamp\":0,\"points\":{\"x1\":12.3,\"y1\":20,\"x2\":"
             "340.55,\"y2\":200.5},\"attributes\":[{\"id\":%lld,\"groupId\":"
             "%lld,\"name\":\"red\",\"groupName\":\"color\"}]},"
             "{\"timestamp\":%lld,\"points\":{\"x1\":100.25,\"y1\":40,\"x2\":"
             "420.75,\"y2\":260},\"attributes\":[]}]}]},",
             pid * 100 + 1, half, half, pid * 1000 + 11, pid * 1000 + 1, half);
  buf_printf(&b,
             "{\"meta\":{\"type\":\"point\",\"classId\":%lld,\"className\":"
             "\"person\",\"start\":0,\"end\":%lld},\"parameters\":[{\"start\":"
             "0,\"end\":%lld,\"timestamps\":[{\"timestamp\":0,\"x\":10.5,"
             "\"y\":0.1,\"attributes\":[]},{\"timestamp\":%lld,\"x\":99,"
             "\"y\":45.25,\"attributes\":[]}]}]},",
             pid * 100 + 2, dur, dur, dur);
  buf_printf(&b,
             "{\"meta\":{\"type\":\"polygon\",\"classId\":%lld,\"className\":"
             "\"car\",\"start\":%lld,\"end\":%lld},\"parameters\":[{\"start\":"
             "%lld,\"end\":%lld,\"timestamps\":[{\"timestamp\":%lld,\"points\":"
             "[1,2,30.5,4,50,60.25],\"attributes\":[]},{\"timestamp\":%lld,"
             "\"points\":[11,12,40.5,14,60,70.25],\"attributes\":[]}]}]},",
             pid * 100 + 1, dur / 4, dur, dur / 4, dur, dur / 4, dur);
  buf_printf(&b,
             "{\"meta\":{\"type\":\"event\",\"classId\":%lld,\"className\":"
             "\"person\",\"start\":%lld,\"end\":%lld},\"parameters\":[{\"start\":"
             "%lld,\"end\":%lld,\"timestamps\":[{\"timestamp\":%lld,"
             "\"attributes\":[]},{\"timestamp\":%lld,\"attributes\":[]}]}]}",
             pid * 100 + 2, dur / 5, dur / 3, dur / 5, dur / 3, dur / 5,
             dur / 3);
  buf_adds(&b, "],\"tags\":[\"traffic\"]}");
  return buf_take(&b, len);
}

static char *gen_other_doc(int type, long long id, const char *name,
                           long long pid, const char *status, size_t *len)
{
  struct buf b = {0};
  char *qn = json_quote(name);
  buf_printf(&b,
             "{\"metadata\":{\"name\":%s,\"status\":\"%s\",\"url\":null,"
             "\"projectId\":%lld,\"id\":%lld,\"annotatorEmail\":null,"
             "\"qaEmail\":null,\"lastAction\":{\"email\":"
             "\"annotator@example.com\",\"timestamp\":1714557600456}",
             qn, status, pid, id);
  free(qn);
  if(type == 2)
    buf_adds(&b, ",\"width\":800,\"height\":600,\"isSegmented\":false");
  buf_adds(&b, "},\"instances\":[");
  switch(type) {
  case 2: /* Pixel */
    buf_printf(&b,
               "{\"classId\":%lld,\"className\":\"car\",\"probability\":100,"
               "\"visible\":true,\"attributes\":[],\"parts\":[{\"color\":"
               "\"#000001\"},{\"color\":\"#000002\"}],\"creationType\":"
               "\"Manual\"},{\"classId\":%lld,\"className\":\"person\","
               "\"probability\":87.5,\"visible\":true,\"attributes\":[],"
               "\"parts\":[{\"color\":\"#000003\"}]}",
               pid * 100 + 1, pid * 100 + 2);
    buf_adds(&b, "],\"tags\":[],\"comments\":[]}");
    break;
  case 4: /* Document */
    buf_printf(&b,
               "{\"type\":\"entity\",\"start\":0,\"end\":5,\"classId\":%lld,"
               "\"className\":\"car\",\"attributes\":[],\"creationType\":"
               "\"Manual\",\"createdAt\":\"2024-05-01T10:00:00.000Z\"},"
               "{\"type\":\"entity\",\"start\":12,\"end\":20,\"classId\":%lld,"
               "\"className\":\"person\",\"attributes\":[]},{\"type\":\"tag\","
               "\"classId\":%lld,\"className\":\"car\",\"attributes\":[]}",
               pid * 100 + 1, pid * 100 + 2, pid * 100 + 1);
    buf_adds(&b, "],\"tags\":[\"contract\"],\"freeText\":\"Reviewed; "
                 "see \\\"section 2\\\".\"}");
    break;
  case 7: /* PointCloud */
    buf_printf(&b,
               "{\"type\":\"cuboid\",\"classId\":%lld,\"className\":\"car\","
               "\"points\":{\"position\":{\"x\":1.5,\"y\":-2.25,\"z\":0.1},"
               "\"rotation\":{\"x\":0,\"y\":0,\"z\":1.5707963},\"scale\":"
               "{\"x\":4.2,\"y\":1.8,\"z\":1.5}},\"attributes\":[]}",
               pid * 100 + 1);
    buf_adds(&b, "],\"tags\":[]}");
    break;
  case 8: /* Multimodal */
    buf_adds(&b, "],\"tags\":[],\"data\":{\"prompt\":{\"value\":"
                 "\"Describe the image.\"},\"answer\":{\"value\":"
                 "\"A street with two cars.\"},\"rating\":{\"value\":4}}}");
    break;
  default: /* Tiled and others: vector-like */
    buf_printf(&b,
               "{\"type\":\"bbox\",\"classId\":%lld,\"className\":\"car\","
               "\"probability\":100,\"points\":{\"x1\":1024.5,\"y1\":2048,"
               "\"x2\":4096.25,\"y2\":3000},\"attributes\":[],"
               "\"creationType\":\"Manual\"}",
               pid * 100 + 1);
    buf_adds(&b, "],\"tags\":[],\"comments\":[]}");
    break;
  }
  return buf_take(&b, len);
}

/* The served form of a stored document: metadata.status = the item's
 * current status name (api.md §11, "the server fills it"), spliced by the
 * client's own sa_doc_with_status so a client can compute the same bytes.
 * A stored text that is not a valid document (a raw_documents seed) is
 * served as it is. */
static void fill_status(char **doc, size_t *len, const char *status)
{
  char *out = NULL;
  size_t ol = 0;
  enum sa_err e = sa_doc_with_status(*doc, *len, status, &out, &ol, NULL, 0);
  if(e == SA_ERR_NOMEM)
    abort();
  if(e != SA_OK)
    return;
  free(*doc);
  *doc = out;
  *len = ol;
}

int store_item_doc_locked(long long item, long long pid, long long fid,
                          char **doc, size_t *len)
{
  sqlite3_stmt *st = store_prep_locked(
      "SELECT i.name, i.status, i.doc, i.gen, i.project_id, i.folder_id,"
      " p.workflow_id FROM items i JOIN projects p ON p.id = i.project_id"
      " WHERE i.id=?");
  sqlite3_bind_int64(st, 1, item);
  int found = 0;
  if(sqlite3_step(st) == SQLITE_ROW) {
    long long ipid = sqlite3_column_int64(st, 4);
    long long ifid = sqlite3_column_int64(st, 5);
    if((pid <= 0 || pid == ipid) && (fid <= 0 || fid == ifid)) {
      found = 1;
      const char *name = (const char *)sqlite3_column_text(st, 0);
      const char *sname = workflow_status_name(sqlite3_column_int64(st, 6),
                                               sqlite3_column_int64(st, 1));
      if(!sname)
        sname = "NotStarted";
      if(sqlite3_column_type(st, 2) != SQLITE_NULL) {
        size_t n = (size_t)sqlite3_column_bytes(st, 2);
        const void *p = sqlite3_column_blob(st, 2);
        *doc = malloc(n + 1);
        if(!*doc)
          abort();
        if(n)
          memcpy(*doc, p, n);
        (*doc)[n] = '\0';
        *len = n;
        fill_status(doc, len, sname);
      }
      else if(sqlite3_column_int(st, 3))
        /* generated with the current status name already in place */
        *doc = gen_vector_doc(item, name, ipid, sname, len);
      else if(sa_doc_skeleton(name, sname, ipid, item, doc, len) != SA_OK)
        abort();
    }
  }
  sqlite3_finalize(st);
  return found;
}

long long store_item_doc_size_locked(long long item, long long pid, int *found)
{
  char *d = NULL;
  size_t l = 0;
  *found = store_item_doc_locked(item, pid, 0, &d, &l);
  free(d);
  return *found ? (long long)l : -1;
}

void store_item_set_doc_locked(long long item, const char *doc, size_t len,
                               long long ts)
{
  sqlite3_stmt *st =
      store_prep_locked("UPDATE items SET doc=?, gen=0, updated=? WHERE id=?");
  if(doc)
    sqlite3_bind_blob64(st, 1, doc, len, SQLITE_TRANSIENT);
  else
    sqlite3_bind_null(st, 1);
  sqlite3_bind_int64(st, 2, ts);
  sqlite3_bind_int64(st, 3, item);
  sqlite3_step(st);
  sqlite3_finalize(st);
}

/* ---- seeding ------------------------------------------------------------- */
static int ensure_project(const char *name, int type, int wf,
                          struct project_row *out, char *err, size_t errlen)
{
  if(store_project_by_name_locked(name, out))
    return 0;
  if(type < 1 || type > 10) {
    snprintf(err, errlen, "bad project type %d", type);
    return -1;
  }
  if(!workflow_exists(wf)) {
    snprintf(err, errlen, "unknown workflow %d", wf);
    return -1;
  }
  long long ts = store_next_ts_locked();
  long long pid = scalar_ll("SELECT COALESCE(MAX(id), ?) + 1 FROM projects",
                            PROJECT_ID_BASE, 0);
  long long fid = scalar_ll("SELECT COALESCE(MAX(id), ?) + 1 FROM folders",
                            FOLDER_ID_BASE, 0);
  sqlite3_stmt *st = store_prep_locked("INSERT INTO projects VALUES(?,?,?,?,?,?,?)");
  sqlite3_bind_int64(st, 1, pid);
  sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int(st, 3, type);
  sqlite3_bind_int(st, 4, wf);
  sqlite3_bind_int64(st, 5, fid);
  sqlite3_bind_int64(st, 6, ts);
  sqlite3_bind_int64(st, 7, ts);
  sqlite3_step(st);
  sqlite3_finalize(st);
  st = store_prep_locked("INSERT INTO folders VALUES(?,?,'root',1,?,?)");
  sqlite3_bind_int64(st, 1, fid);
  sqlite3_bind_int64(st, 2, pid);
  sqlite3_bind_int64(st, 3, ts);
  sqlite3_bind_int64(st, 4, ts);
  sqlite3_step(st);
  sqlite3_finalize(st);
  return store_project_locked(pid, out) ? 0 : -1;
}

long long store_ensure_folder_locked(const struct project_row *p,
                                    const char *name)
{
  if(!name || !*name || !strcmp(name, "root"))
    return p->root_folder;
  sqlite3_stmt *st =
      store_prep_locked("SELECT id FROM folders WHERE project_id=? AND name=?");
  sqlite3_bind_int64(st, 1, p->id);
  sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
  long long fid = 0;
  if(sqlite3_step(st) == SQLITE_ROW)
    fid = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  if(fid)
    return fid;
  long long ts = store_next_ts_locked();
  fid = scalar_ll("SELECT COALESCE(MAX(id), ?) + 1 FROM folders",
                  FOLDER_ID_BASE, 0);
  st = store_prep_locked("INSERT INTO folders VALUES(?,?,?,0,?,?)");
  sqlite3_bind_int64(st, 1, fid);
  sqlite3_bind_int64(st, 2, p->id);
  sqlite3_bind_text(st, 3, name, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 4, ts);
  sqlite3_bind_int64(st, 5, ts);
  sqlite3_step(st);
  sqlite3_finalize(st);
  return fid;
}

struct seeder {
  sqlite3_stmt *find, *ins;
  long long next_id, ts;
};

static void seeder_init(struct seeder *sd)
{
  sd->find = store_prep_locked("SELECT id FROM items WHERE folder_id=? AND name=?");
  sd->ins = store_prep_locked("INSERT INTO items(id, project_id, folder_id, name, status,"
                              " doc, gen, created, updated) VALUES(?,?,?,?,?,?,?,?,?)");
  sd->next_id = scalar_ll("SELECT COALESCE(MAX(id), ?) + 1 FROM items",
                          ITEM_ID_BASE, 0);
  sd->ts = store_next_ts_locked();
}

static void seeder_done(struct seeder *sd)
{
  sqlite3_finalize(sd->find);
  sqlite3_finalize(sd->ins);
}

/* Returns the item id; *created says whether it is new. */
static long long seed_item(struct seeder *sd, long long pid, long long fid,
                           const char *name, int status, int gen,
                           int *created)
{
  sqlite3_reset(sd->find);
  sqlite3_bind_int64(sd->find, 1, fid);
  sqlite3_bind_text(sd->find, 2, name, -1, SQLITE_TRANSIENT);
  if(sqlite3_step(sd->find) == SQLITE_ROW) {
    *created = 0;
    return sqlite3_column_int64(sd->find, 0);
  }
  long long id = sd->next_id++;
  sqlite3_reset(sd->ins);
  sqlite3_bind_int64(sd->ins, 1, id);
  sqlite3_bind_int64(sd->ins, 2, pid);
  sqlite3_bind_int64(sd->ins, 3, fid);
  sqlite3_bind_text(sd->ins, 4, name, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int(sd->ins, 5, status);
  sqlite3_bind_null(sd->ins, 6);
  sqlite3_bind_int(sd->ins, 7, gen);
  sqlite3_bind_int64(sd->ins, 8, sd->ts);
  sqlite3_bind_int64(sd->ins, 9, sd->ts);
  sqlite3_step(sd->ins);
  *created = 1;
  return id;
}

static int check_limits(long long pid, long long fid, char *err, size_t errlen)
{
  long long nf = scalar_ll("SELECT COUNT(*) FROM items WHERE folder_id=?",
                           fid, 0);
  long long np = scalar_ll("SELECT COUNT(*) FROM items WHERE project_id=?",
                           pid, 0);
  if(nf > EMU_FOLDER_LIMIT) {
    snprintf(err, errlen, "folder would hold %lld items (limit %d)", nf,
             EMU_FOLDER_LIMIT);
    return -1;
  }
  if(np > EMU_PROJECT_LIMIT) {
    snprintf(err, errlen, "project would hold %lld items (limit %d)", np,
             EMU_PROJECT_LIMIT);
    return -1;
  }
  return 0;
}

static void set_status_locked(long long id, int status)
{
  sqlite3_stmt *st = store_prep_locked("UPDATE items SET status=? WHERE id=?");
  sqlite3_bind_int(st, 1, status);
  sqlite3_bind_int64(st, 2, id);
  sqlite3_step(st);
  sqlite3_finalize(st);
}

int store_seed(const struct seed_req *s, json_t **result, char *err,
               size_t errlen)
{
  int rc = -1;
  struct project_row p;
  struct seeder sd;
  json_t *items = result ? json_object() : NULL;
  pthread_mutex_lock(&emu.db_lock);
  sqlite3_exec(emu.db, "BEGIN", NULL, NULL, NULL);
  if(ensure_project(s->project, s->type, s->workflow, &p, err, errlen))
    goto out;
  long long fid = store_ensure_folder_locked(&p, s->folder);
  seeder_init(&sd);
  for(size_t i = 0; i < s->nitems; i++) {
    int created;
    long long id = seed_item(&sd, p.id, fid, s->items[i], 1, 0, &created);
    if(items)
      json_object_set_new(items, s->items[i], json_integer(id));
  }
  for(size_t i = 0; i < s->ndocs; i++) {
    int created;
    long long id = seed_item(&sd, p.id, fid, s->doc_names[i], 2, 0, &created);
    store_item_set_doc_locked(id, s->docs[i], s->doc_lens[i], sd.ts);
    set_status_locked(id, 2);
    if(items)
      json_object_set_new(items, s->doc_names[i], json_integer(id));
  }
  for(long long i = 1; i <= s->gen_count; i++) {
    char name[64];
    int created;
    snprintf(name, sizeof name, "img_%06lld.jpg", i);
    long long id = sd.next_id;
    seed_item(&sd, p.id, fid, name, id % 4 == 0 ? 5 : 2, 1, &created);
    if(i > EMU_FOLDER_LIMIT)
      break; /* check_limits reports it */
  }
  for(size_t i = 0; i < s->nstatus; i++) {
    int created;
    if(!workflow_status_name(p.workflow_id, s->status_vals[i])) {
      seeder_done(&sd);
      snprintf(err, errlen, "status %lld is not in workflow %lld",
               s->status_vals[i], p.workflow_id);
      goto out;
    }
    long long id =
        seed_item(&sd, p.id, fid, s->status_names[i], 1, 0, &created);
    set_status_locked(id, (int)s->status_vals[i]);
    if(items)
      json_object_set_new(items, s->status_names[i], json_integer(id));
  }
  seeder_done(&sd);
  if(check_limits(p.id, fid, err, errlen))
    goto out;
  rc = 0;
  if(result) {
    *result = json_pack("{s:I,s:I,s:O}", "project_id", p.id, "folder_id", fid,
                        "items", items);
  }
out:
  sqlite3_exec(emu.db, rc == 0 ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL);
  pthread_mutex_unlock(&emu.db_lock);
  json_decref(items);
  return rc;
}

/* ---- the demo data set --------------------------------------------------- */
static const char *const train_names[] = {
    "car 01.jpg", "car 02.jpg", "straße_ü.jpg", "東京.jpg", "50%_off.jpg",
    "tag#1.jpg", "why?.jpg", "a&b.jpg", "1+1.jpg", "quote'single.jpg",
    "semi;colon.jpg", "equals=sign.jpg", "ünïcödé façade.png",
    "dash-and_underscore.jpeg", "UPPER CASE.JPG", "emoji_🚗.jpg",
    "comma,name.jpg", "brackets[1].jpg", "(parens).jpg",
    "dots.in.name.jpg", "very_long_name_" "abcdefghijklmnopqrstuvwxyz"
                        "_0123456789_abcdefghijklmnopqrstuvwxyz.jpg",
    "train_023.jpg", "train_024.jpg", "train_025.jpg", "train_026.jpg",
    "train_027.jpg", "train_028.jpg"};

/* Creates an item with a document of the project's kind; status per index. */
static void demo_item(struct seeder *sd, const struct project_row *p,
                      long long fid, const char *name, int with_doc,
                      int variant)
{
  int created;
  static const int statuses[] = {2, 5, 3, 2, 4, 5, 6};
  int status = with_doc ? statuses[variant % 7] : 1;
  if(p->workflow_id == 2 && (status == 3 || status == 4 || status == 6))
    status = 7;
  long long id = seed_item(sd, p->id, fid, name, status, 0, &created);
  if(!created || !with_doc)
    return;
  const char *sname = workflow_status_name(p->workflow_id, status);
  size_t len;
  char *doc;
  if(p->type == 1 || p->type == 5)
    doc = p->type == 1 ? gen_vector_doc(id, name, p->id, sname, &len)
                       : gen_other_doc(5, id, name, p->id, sname, &len);
  else if(p->type == 3)
    doc = gen_video_doc(id, name, p->id, sname, variant, &len);
  else
    doc = gen_other_doc(p->type, id, name, p->id, sname, &len);
  store_item_set_doc_locked(id, doc, len, sd->ts);
  free(doc);
}

int store_seed_demo(char *err, size_t errlen)
{
  struct project_row p;
  struct seeder sd;
  int rc = -1;
  pthread_mutex_lock(&emu.db_lock);
  sqlite3_exec(emu.db, "BEGIN", NULL, NULL, NULL);
  if(ensure_project("Demo Vector", 1, 1, &p, err, errlen))
    goto out;
  seeder_init(&sd);
  demo_item(&sd, &p, p.root_folder, "street_001.jpg", 1, 0);
  demo_item(&sd, &p, p.root_folder, "street_002.jpg", 1, 1);
  demo_item(&sd, &p, p.root_folder, "street_003.jpg", 0, 0);
  long long train = store_ensure_folder_locked(&p, "train");
  size_t nt = sizeof train_names / sizeof train_names[0];
  for(size_t i = 0; i < nt; i++)
    demo_item(&sd, &p, train, train_names[i], i % 9 != 8, (int)i);
  long long val = store_ensure_folder_locked(&p, "val");
  for(int i = 1; i <= 6; i++) {
    char name[32];
    snprintf(name, sizeof name, "val_%03d.jpg", i);
    demo_item(&sd, &p, val, name, i != 4, i);
  }
  seeder_done(&sd);

  static const struct {
    const char *name;
    int type, wf, n;
    const char *ext;
  } others[] = {{"Demo Video", 3, 1, 3, ".mp4"},
                {"Demo Pixel", 2, 1, 4, ".png"},
                {"Demo Document", 4, 1, 2, ".txt"},
                {"Demo Tiled", 5, 1, 2, ".tif"},
                {"Demo PointCloud", 7, 1, 2, ".pcd"},
                {"Demo Multimodal", 8, 1, 2, ".json"},
                {"Demo Custom Workflow", 1, 2, 3, ".jpg"}};
  for(size_t k = 0; k < sizeof others / sizeof others[0]; k++) {
    if(ensure_project(others[k].name, others[k].type, others[k].wf, &p, err,
                      errlen))
      goto out;
    seeder_init(&sd);
    for(int i = 1; i <= others[k].n; i++) {
      char name[64];
      snprintf(name, sizeof name, "%s_%02d%s",
               others[k].type == 3 ? "clip" : "item", i, others[k].ext);
      demo_item(&sd, &p, p.root_folder, name,
                others[k].type != 2 || i != others[k].n, i - 1);
    }
    seeder_done(&sd);
  }
  rc = 0;
out:
  sqlite3_exec(emu.db, rc == 0 ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL);
  pthread_mutex_unlock(&emu.db_lock);
  return rc;
}

int store_run_cli_seeds(char *err, size_t errlen)
{
  if(emu.seed_demo && store_seed_demo(err, errlen))
    return -1;
  for(size_t i = 0; i < emu.nseeds; i++) {
    struct seed_req s = {0};
    s.project = emu.seeds[i].project;
    s.type = 1;
    s.workflow = 1;
    s.folder = emu.seeds[i].folder;
    s.gen_count = emu.seeds[i].n;
    if(store_seed(&s, NULL, err, errlen))
      return -1;
  }
  return 0;
}

int store_reset(char *err, size_t errlen)
{
  pthread_mutex_lock(&emu.db_lock);
  int rc = exec("DELETE FROM items; DELETE FROM folders; DELETE FROM projects;",
                err, errlen);
  pthread_mutex_unlock(&emu.db_lock);
  if(rc)
    return rc;
  return store_run_cli_seeds(err, errlen);
}
