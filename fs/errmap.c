/** @file
 * The only sa_err -> errno place (style.md "Errors at the boundary").
 * A table, not a switch with default (-Wswitch-enum).
 */
#include <errno.h>
#include <string.h>
#include <syslog.h>

#include "fs_i.h"

static const int errno_of[] = {
    [SA_OK] = 0,
    [SA_ERR_NOTFOUND] = ENOENT,
    [SA_ERR_DENIED] = EACCES,
    [SA_ERR_INVAL] = EINVAL,
    [SA_ERR_EXISTS] = EEXIST,
    [SA_ERR_CONFLICT] = ESTALE,
    [SA_ERR_BUSY] = EIO,
    [SA_ERR_TIMEOUT] = EIO,
    [SA_ERR_NET] = EIO,
    [SA_ERR_SERVER] = EIO,
    [SA_ERR_PROTO] = EIO,
    [SA_ERR_TOOBIG] = EFBIG,
    [SA_ERR_NOMEM] = ENOMEM,
    [SA_ERR_UNSUPP] = EOPNOTSUPP,
    [SA_ERR_CANCELLED] = EIO, /* only unmount cancels: nothing waits for the answer */
};

int fs_errno(enum sa_err e)
{
    if ((unsigned)e >= sizeof errno_of / sizeof errno_of[0])
        return EIO;
    return errno_of[e];
}

int fs_fail(struct fs_state *st, const char *op, const char *path, enum sa_err e)
{
    int err = fs_errno(e);
    const char *detail = sa_last_error();

    fs_log(st, err == ENOENT ? LOG_DEBUG : LOG_ERR, "%s %s: %s%s%s", op, path ? path : "-",
           sa_strerror(e), detail && *detail ? ": " : "", detail ? detail : "");
    return -err;
}

int fs_refuse(struct fs_state *st, const char *op, const char *path, int err, const char *why)
{
    fs_log(st, err == ENOENT ? LOG_DEBUG : LOG_ERR, "%s %s: %s (%s)", op, path ? path : "-",
           strerror(err), why);
    return -err;
}
