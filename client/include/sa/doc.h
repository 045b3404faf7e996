/** @file
 * Annotation documents as text (api.md §10–§11, filesystem.md §2).
 *
 * jansson 2.14 prints reals with %.17g (12.3 -> 12.300000000000001) and
 * rejects integers beyond int64, so documents are never round-tripped through
 * it: a small tokenizer validates them, pretty-prints them and splices the
 * few fields an upload sets, copying every number and string token verbatim.
 * Also used by the emulator.
 *
 * All functions are pure and thread-safe. Output buffers are *new*
 * (malloc'd, NUL-terminated for convenience; the length excludes the NUL);
 * the caller frees them with free(). On failure *out is NULL.
 */
#ifndef SA_DOC_H
#define SA_DOC_H

#include <stddef.h>
#include <stdint.h>

#include "sa/client.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Strict RFC 8259 JSON check of a whole annotation document: one value, an
 * object, nothing but whitespace after it; no NaN/Infinity, no comments, no
 * trailing commas, valid UTF-8, valid escapes. Shape: if present,
 * `metadata` must be an object, `instances`, `tags` and `comments` arrays.
 * On failure returns SA_ERR_INVAL and writes e.g.
 * "line 3, column 7 (byte 41): expected ',' or '}'" into @p why. */
enum sa_err sa_doc_validate(const char *buf, size_t len, char *why, size_t whylen);

/** Pretty-print as Python's json.dumps(doc, indent=4, ensure_ascii=False)
 * does: 4-space indent, ", " never (items end the line), ": " after keys,
 * `{}` and `[]` for empty containers, every token (numbers, strings with
 * their escapes) copied verbatim, key order kept, a final newline.
 * Validates as sa_doc_validate() does. */
enum sa_err sa_doc_pretty(const char *buf, size_t len, char **out, size_t *outlen,
                          char *why, size_t whylen);

/** What an upload sets (api.md §10.2 step 4, with safs' change):
 *  - metadata.name = @p name (metadata is created if absent);
 *  - metadata.lastAction = {"email": @p email, "timestamp": @p ts_ms};
 *  - Video (type 3): each instances[i].meta gets "creationType": "Preannotation"
 *    only if it has none (meta created if absent);
 *  - other types: each instance gets "creationType": "Preannotation" only if
 *    it has none, and, for image types (1 Vector, 2 Pixel, 5 Tiled),
 *    "probability": 100 if it has none.
 * Everything else is kept byte for byte (the output is compact where it was
 * spliced and verbatim elsewhere; the caller need not pretty-print it),
 * except whitespace before and after the document, which is dropped. */
enum sa_err sa_doc_prepare(const char *buf, size_t len, const char *name, const char *email,
                           int64_t ts_ms, int project_type, char **out, size_t *outlen,
                           char *why, size_t whylen);

/** What the platform serves (api.md §11: "status … the server fills it"):
 * the document with metadata.status = the JSON string of @p status (quoted
 * by sa_json_quote's rules). Where the top-level metadata object has a
 * `status` member (every one, if the key repeats) its value is replaced,
 * unless it already is that string (compared decoded); otherwise
 * `"status":…` is appended as metadata's last member, right after the last
 * member's value; without metadata, `"metadata":{"status":…}` becomes the
 * document's first member. Every other byte is kept (compact where spliced,
 * verbatim elsewhere), so a document whose metadata.status already equals
 * @p status comes back byte for byte. Validates as sa_doc_validate() does;
 * a NULL @p status is SA_ERR_INVAL. The emulator serves exactly these
 * bytes, so a client can compute what a download will return. */
enum sa_err sa_doc_with_status(const char *buf, size_t len, const char *status, char **out,
                               size_t *outlen, char *why, size_t whylen);

/** Does the document hold no annotation? 1 if every top-level member other
 * than `metadata` and `version` is absent, `[]`, `{}`, `null` or `""`
 * (whitespace inside the brackets allowed; with repeated keys the last one
 * counts, as in Python's json.loads); 0 if any holds something; -1 if the
 * text is not a strict JSON object (as sa_doc_validate reads it, but without
 * the shape rules: `"instances": {}` is simply empty) or memory ran out.
 * Any formatting: indentation, CRLF, no final newline. */
int sa_doc_is_empty(const char *buf, size_t len);

/** Has the document changed? Compares @p a (e.g. what a program wrote) with
 * @p b (the platform's current document) after normalizing both as an
 * upload would (sa_doc_prepare's defaults) and dropping server-owned metadata:
 * metadata.name, lastAction, status, id, projectId. Objects compare as
 * unordered key sets, numbers by value (12 == 12.0), strings by decoded
 * value. Returns 1 if equal, 0 if different, -1 if either is invalid JSON. */
int sa_doc_equal(const char *a, size_t alen, const char *b, size_t blen, int project_type);

/** Read metadata.id (integer) and metadata.name (decoded string, new) of a
 * document. Either out-param may be NULL. Missing fields give 0 / NULL and
 * still SA_OK; invalid JSON gives SA_ERR_INVAL. Fast: stops scanning once
 * the top-level metadata object has been read. */
enum sa_err sa_doc_meta(const char *buf, size_t len, long long *id, char **name);

/** The skeleton the platform serves for an item with no annotations
 * (api.md §11.4), compact JSON:
 * {"metadata":{"name":…,"height":null,"width":null,"status":…,"pinned":false,
 *  "annotatorEmail":null,"qaEmail":null,"projectId":P,"id":I},
 *  "instances":[],"tags":[],"comments":[]}  */
enum sa_err sa_doc_skeleton(const char *name, const char *status, long long project_id,
                            long long item_id, char **out, size_t *outlen);

/** JSON-escape @p s (UTF-8) as a quoted JSON string, new. NULL on ENOMEM. */
char *sa_json_quote(const char *s);

#ifdef __cplusplus
}
#endif
#endif
