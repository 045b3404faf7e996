/** @file
 * Private: a read-only tree over a JSON document's bytes, built by doc.c's
 * strict scanner (used by frames.c). Numbers keep their source token;
 * strings are decoded (UTF-8; a lone \u surrogate becomes its 3-byte WTF-8
 * form). Duplicate keys are all kept, in order.
 */
#ifndef SA_JSON_I_H
#define SA_JSON_I_H

#include <stddef.h>

enum sa_jt { SA_J_NULL, SA_J_FALSE, SA_J_TRUE, SA_J_NUM, SA_J_STR, SA_J_ARR, SA_J_OBJ };

struct sa_jn {
    unsigned char t;      /**< enum sa_jt */
    size_t n;             /**< SA_J_ARR: elements; SA_J_OBJ: members */
    const char *s;        /**< SA_J_NUM: the token; SA_J_STR: decoded bytes */
    size_t len;
    struct sa_jn *kids;   /**< SA_J_ARR: n values; SA_J_OBJ: 2n (key, value, ...) */
};

struct sa_jdoc;

/** Parse @p buf (any JSON value, strict as sa_doc_validate but without the
 * document shape rules). On success *doc is new (sa_jdoc_free) and *root
 * borrowed from it; @p buf must outlive *doc. On failure returns -1 with the
 * reason (line, column, byte) in @p why, or -2 when out of memory. */
int sa_jdoc_parse(const char *buf, size_t len, struct sa_jdoc **doc, const struct sa_jn **root,
                  char *why, size_t whylen);
void sa_jdoc_free(struct sa_jdoc *doc);

#endif
