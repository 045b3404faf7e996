/** @file
 * Logging: syslog levels. Where a line goes:
 *   -o log_file=PATH  that file only, foreground or not (as rclone's
 *                     --log-file): appended, one write(2) per line, so lines
 *                     of concurrent threads never mix and each is on disk
 *                     when fs_log returns (line-buffered, nothing held back);
 *   else -f / -d      stderr;
 *   else (detached)   syslog.
 * The file and stderr lines have one format: `HH:MM:SS.mmm safs LEVEL: msg`
 * (UTC). Tokens never reach here (the client strips them).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

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

/* The whole line at once; a short write (disk full) drops the rest. */
static void write_line(int fd, const char *line, size_t n)
{
    while (n) {
        ssize_t w = write(fd, line, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        line += w;
        n -= (size_t)w;
    }
}

void fs_log(struct fs_state *st, int level, const char *fmt, ...)
{
    char msg[2048], line[2048 + 64];
    int log_fd = st && st->cfg && st->cfg->log_file ? st->cfg->log_fd : -1;
    va_list ap;

    if (st && level > st->loglevel)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (log_fd >= 0 || !st || st->foreground) {
        struct timespec ts;
        struct tm tm;
        int n;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        n = snprintf(line, sizeof line, "%02d:%02d:%02d.%03ld safs %s: %s\n", tm.tm_hour,
                     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, level_name(level), msg);
        if (n < 0)
            return;
        if ((size_t)n >= sizeof line) {
            n = sizeof line - 1;
            line[n - 1] = '\n';
        }
        if (log_fd >= 0) {
            write_line(log_fd, line, (size_t)n);
        } else {
            fputs(line, stderr);
            fflush(stderr);
        }
    } else {
        syslog(level, "%s", msg);
    }
}

void fs_client_log(void *ud, int level, const char *msg)
{
    fs_log(ud, level, "client: %s", msg);
}
