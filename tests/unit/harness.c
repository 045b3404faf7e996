/* See harness.h. */
#include "harness.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int t_failures;

#define MAX_EMUS 8
static pid_t live[MAX_EMUS];
static char live_port[MAX_EMUS][128];

static void kill_all(void)
{
    for (int i = 0; i < MAX_EMUS; i++)
        if (live[i] > 0) {
            kill(live[i], SIGKILL);
            waitpid(live[i], NULL, 0);
            live[i] = 0;
            unlink(live_port[i]);
        }
}

static void on_signal(int sig)
{
    for (int i = 0; i < MAX_EMUS; i++)
        if (live[i] > 0)
            kill(live[i], SIGKILL);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_cleanup(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    atexit(kill_all);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGSEGV, on_signal);
    signal(SIGABRT, on_signal);
    signal(SIGBUS, on_signal);
}

double t_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void t_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    fflush(stderr);
    t_failures++;
    exit(1); /* atexit kills the emulators */
}

void t_run(const char *name, void (*fn)(void))
{
    double t0 = t_now();
    printf("-- %s\n", name);
    fflush(stdout);
    fn();
    printf("ok %s (%.2f s)\n", name, t_now() - t0);
    fflush(stdout);
}

int t_done(void)
{
    return t_failures ? 1 : 0;
}

void emu_start(struct emu *e, const char *const *args)
{
    const char *exe = getenv("SA_EMULATOR");
    char *argv[64];
    int argc = 0;

    install_cleanup();
    memset(e, 0, sizeof *e);
    if (!exe || !*exe || access(exe, X_OK) != 0)
        t_fail(__FILE__, __LINE__, "SA_EMULATOR is not set or not executable (%s)",
               exe ? exe : "unset");
    snprintf(e->portfile, sizeof e->portfile, "/tmp/sa-unit-port.%d.%ld", (int)getpid(),
             (long)(t_now() * 1000));
    unlink(e->portfile);
    argv[argc++] = (char *)exe;
    argv[argc++] = (char *)"--port";
    argv[argc++] = (char *)"0";
    argv[argc++] = (char *)"--port-file";
    argv[argc++] = e->portfile;
    argv[argc++] = (char *)"--quiet";
    for (int i = 0; args && args[i] && argc < 62; i++)
        argv[argc++] = (char *)args[i];
    argv[argc] = NULL;

    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        t_fail(__FILE__, __LINE__, "fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        execv(exe, argv);
        _exit(127);
    }
    e->pid = pid;
    for (int i = 0; i < MAX_EMUS; i++)
        if (!live[i]) {
            live[i] = pid;
            snprintf(live_port[i], sizeof live_port[i], "%s", e->portfile);
            break;
        }
    double end = t_now() + 10.0;
    while (t_now() < end) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            for (int i = 0; i < MAX_EMUS; i++)
                if (live[i] == pid)
                    live[i] = 0;
            t_fail(__FILE__, __LINE__, "the emulator exited at start-up (status %d)", st);
        }
        FILE *f = fopen(e->portfile, "r");
        if (f) {
            int port = 0;
            int ok = fscanf(f, "%d", &port) == 1;
            fclose(f);
            if (ok && port > 0) {
                e->port = port;
                snprintf(e->url, sizeof e->url, "http://127.0.0.1:%d", port);
                return;
            }
        }
        usleep(20000);
    }
    t_fail(__FILE__, __LINE__, "the emulator wrote no port file within 10 s");
}

void emu_stop(struct emu *e)
{
    if (e->pid > 0) {
        kill(e->pid, SIGTERM);
        double end = t_now() + 3.0;
        int reaped = 0;
        while (t_now() < end) {
            if (waitpid(e->pid, NULL, WNOHANG) == e->pid) {
                reaped = 1;
                break;
            }
            usleep(10000);
        }
        if (!reaped) {
            kill(e->pid, SIGKILL);
            waitpid(e->pid, NULL, 0);
        }
        for (int i = 0; i < MAX_EMUS; i++)
            if (live[i] == e->pid)
                live[i] = 0;
        e->pid = 0;
    }
    unlink(e->portfile);
}

struct hbuf {
    char *p;
    size_t n;
};

static size_t hwrite(char *p, size_t sz, size_t nm, void *ud)
{
    struct hbuf *b = ud;
    size_t n = sz * nm;
    char *q = realloc(b->p, b->n + n + 1);
    if (!q)
        return 0;
    memcpy(q + b->n, p, n);
    b->p = q;
    b->n += n;
    b->p[b->n] = '\0';
    return n;
}

long emu_http(struct emu *e, const char *method, const char *path, const char *json,
              char **body)
{
    char url[512];
    struct hbuf b = {0};
    long code = 0;
    CURL *h = curl_easy_init();
    struct curl_slist *hd = NULL;
    if (!h)
        t_fail(__FILE__, __LINE__, "curl_easy_init");
    snprintf(url, sizeof url, "%s%s", e->url, path);
    hd = curl_slist_append(hd, "Content-Type: application/json");
    hd = curl_slist_append(hd, "Authorization: emulator-token=1");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, hwrite);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (json) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, json);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(json));
    } else if (strcmp(method, "GET")) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
    }
    CURLcode cc = curl_easy_perform(h);
    if (cc != CURLE_OK)
        t_fail(__FILE__, __LINE__, "%s %s: %s", method, path, curl_easy_strerror(cc));
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(hd);
    curl_easy_cleanup(h);
    if (body)
        *body = b.p ? b.p : strdup("");
    else
        free(b.p);
    return code;
}

static void ctl(struct emu *e, const char *method, const char *path, const char *json)
{
    char *body = NULL;
    long st = emu_http(e, method, path, json, &body);
    if (st < 200 || st > 299)
        t_fail(__FILE__, __LINE__, "%s %s -> HTTP %ld: %s", method, path, st, body);
    free(body);
}

void emu_reset(struct emu *e)
{
    ctl(e, "POST", "/_emulator/reset", NULL);
}

void emu_reset_stats(struct emu *e)
{
    ctl(e, "POST", "/_emulator/reset-stats", NULL);
}

void emu_fault(struct emu *e, const char *json)
{
    ctl(e, "POST", "/_emulator/faults", json);
}

void emu_clear_faults(struct emu *e)
{
    ctl(e, "DELETE", "/_emulator/faults", NULL);
}

void emu_seed(struct emu *e, const char *json)
{
    ctl(e, "POST", "/_emulator/seed", json);
}

static json_t *stats(struct emu *e)
{
    char *body = NULL;
    long st = emu_http(e, "GET", "/_emulator/stats", NULL, &body);
    if (st != 200)
        t_fail(__FILE__, __LINE__, "GET /_emulator/stats -> HTTP %ld", st);
    json_t *j = json_loads(body, 0, NULL);
    if (!j)
        t_fail(__FILE__, __LINE__, "stats is not JSON: %s", body);
    free(body);
    return j;
}

long long emu_total(struct emu *e)
{
    json_t *j = stats(e);
    long long n = json_integer_value(json_object_get(j, "total"));
    json_decref(j);
    return n;
}

long long emu_count(struct emu *e, const char *route)
{
    json_t *j = stats(e);
    json_t *routes = json_object_get(j, "routes");
    size_t rl = strlen(route);
    long long n = 0;
    if (rl && route[rl - 1] == '*') {
        const char *k;
        json_t *v;
        json_object_foreach(routes, k, v) if (!strncmp(k, route, rl - 1)) n +=
            json_integer_value(v);
    } else {
        n = json_integer_value(json_object_get(routes, route));
    }
    json_decref(j);
    return n;
}

struct sa_client *emu_client(struct emu *e, const char *token, double scale, int maxconn)
{
    char err[256];
    /* slower runs (scripts/valgrind.sh) stretch every deadline */
    const char *slow = getenv("SAFS_TEST_TIMEOUT_SCALE");
    if (slow && atof(slow) > 0)
        scale = (scale > 0 ? scale : 1.0) * atof(slow);
    struct sa_config cfg = {
        .token = token ? token : "emulator-token=1",
        .url = e->url,
        .timeout_scale = scale,
        .max_connections = maxconn,
    };
    struct sa_client *c = sa_client_new(&cfg, err, sizeof err);
    if (!c)
        t_fail(__FILE__, __LINE__, "sa_client_new: %s", err);
    return c;
}
