/** @file
 * `safs --probe [SOURCE]`: a read-only run against a real account that checks
 * the assumptions api.md marks INFERRED and reports each (filesystem.md §7).
 */
#ifndef FS_PROBE_H
#define FS_PROBE_H

#include "config.h"
#include "sa/client.h"

/** Run every check, print one line per check to stdout ("ok   …",
 * "FAIL …", "skip …") and a summary. Makes no change on the platform.
 * Returns the process exit code: 0 if every check passed, 1 otherwise. */
int fs_probe(const struct fs_config *cfg, struct sa_client *c);

#endif
