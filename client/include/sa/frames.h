/** @file
 * get_annotations_per_frame (api.md §12 and §12.1), byte for byte.
 * Pure and thread-safe.
 */
#ifndef SA_FRAMES_H
#define SA_FRAMES_H

#include <stddef.h>

#include "sa/client.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Render the per-frame view of a Video document at @p fps.
 * Output: a JSON array, one `{"frame": n, "annotations": [...]}` per frame
 * 1..frames_count, written as Python's json.dumps(x, indent=4,
 * ensure_ascii=False) would (ints as ints, floats as Python's repr: `5.0`,
 * `12.35`, `1e-05`, `1e+16`), with a final newline. *out is new (free()).
 * Errors (any case where the SDK raises, api.md §12/§12.1): SA_ERR_INVAL with
 * a one-line reason naming the rule in @p why. fps <= 0: see §12.1 (0 is an
 * error, negative gives "[]\n"). */
enum sa_err sa_frames_render(const char *doc, size_t len, double fps, char **out,
                             size_t *outlen, char *why, size_t whylen);

#ifdef __cplusplus
}
#endif
#endif
