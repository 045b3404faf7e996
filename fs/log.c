/** @file
 * Logging: syslog levels; stderr in the foreground (-f), syslog when
 * detached. Tokens never reach here (the client strips them).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "fs_i.h"

static const char *level_name(int level)
{
    static const char *const names[] = {
        "emerg", "alert", "crit", "error", "warning", "notice", "info", "debug",
    };
    if (level < 0 || level > LOG_DEBUG)
        return "log";
    return names[level];
}

void fs_log(struct fs_state *st, int level, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;

    if (st && level > st->loglevel)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!st || st->foreground) {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        fprintf(stderr, "%02d:%02d:%02d.%03ld safs %s: %s\n", tm.tm_hour, tm.tm_min,
                tm.tm_sec, ts.tv_nsec / 1000000, level_name(level), msg);
        fflush(stderr);
    } else {
        syslog(level, "%s", msg);
    }
}

void fs_client_log(void *ud, int level, const char *msg)
{
    fs_log(ud, level, "client: %s", msg);
}
