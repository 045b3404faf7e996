/* Test harness for the client's unit tests: start sa-emulator ($SA_EMULATOR)
 * on a free port, talk to its control plane, fail_unless-style asserts.
 * The emulator is killed at exit, on a failed assert, on a fatal signal,
 * and (PR_SET_PDEATHSIG) if this process dies. A missing emulator is a
 * failure, never a skip. */
#ifndef SA_TEST_HARNESS_H
#define SA_TEST_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>

#include "sa/client.h"

struct emu {
    pid_t pid;
    int port;
    char url[64];
    char portfile[128];
};

/* Start `$SA_EMULATOR --port 0 --port-file F --quiet <args...>` (args is a
 * NULL-terminated list, may be NULL); waits up to 10 s for the port. */
void emu_start(struct emu *e, const char *const *args);
void emu_stop(struct emu *e);

/* Control plane and raw HTTP. Return the HTTP status; *body (if non-NULL)
 * gets the response body (new). */
long emu_http(struct emu *e, const char *method, const char *path, const char *json,
              char **body);
void emu_reset(struct emu *e);            /* POST /_emulator/reset */
void emu_reset_stats(struct emu *e);      /* POST /_emulator/reset-stats */
void emu_fault(struct emu *e, const char *json); /* POST /_emulator/faults */
void emu_clear_faults(struct emu *e);     /* DELETE /_emulator/faults */
void emu_seed(struct emu *e, const char *json);  /* POST /_emulator/seed */
long long emu_total(struct emu *e);       /* stats.total */
/* Requests counted for "METHOD /path" (exact key of stats.routes), or the
 * sum over keys that start with @p prefix when it ends with '*'. */
long long emu_count(struct emu *e, const char *route);

/* A client of the emulator (token NULL = "emulator-token=1"). */
struct sa_client *emu_client(struct emu *e, const char *token, double scale, int maxconn);

double t_now(void);

extern int t_failures;
void t_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));
#define fail_unless(cond)                                                                    \
    do {                                                                                     \
        if (!(cond))                                                                         \
            t_fail(__FILE__, __LINE__, "assertion failed: %s", #cond);                       \
    } while (0)
#define fail_unless_msg(cond, ...)                                                           \
    do {                                                                                     \
        if (!(cond))                                                                         \
            t_fail(__FILE__, __LINE__, __VA_ARGS__);                                         \
    } while (0)
/* An sa_err call that must return @p want; prints sa_last_error() otherwise. */
#define expect_err(want, call)                                                               \
    do {                                                                                     \
        enum sa_err got_ = (call);                                                           \
        if (got_ != (want))                                                                  \
            t_fail(__FILE__, __LINE__, "%s: got %s (%s), want %s", #call,                    \
                   sa_strerror(got_), sa_last_error(), sa_strerror(want));                   \
    } while (0)
#define expect_ok(call) expect_err(SA_OK, call)

/* Run one named test function; prints "ok"/"FAIL" lines. */
void t_run(const char *name, void (*fn)(void));
/* Exit status for main. */
int t_done(void);

#endif
