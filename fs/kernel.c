/** @file
 * Telling the kernel that what it caches for a path is stale
 * (fuse_invalidate_path: attributes, and pages, which item files do not
 * have: they are direct_io).
 *
 * Synchronous calls come from operations that hold none of our locks:
 * open (before the program's first fstat), flush (before close returns),
 * getattr (before a reply that must not be cached), rename, setxattr. The
 * kernel takes no inode lock for the notification, and item files have no
 * cached pages whose locks a concurrent read could hold, so this cannot
 * wait on the operation that calls it. Changes learned from a listing go
 * through a small worker instead (fs_kernel_inval_later): many at once,
 * and nothing waits for them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs_i.h"

void fs_kernel_inval_path(struct fs_state *st, const char *path)
{
    if (!path)
        return;
    pthread_rwlock_rdlock(&st->kern_lk);
    if (st->fuse)
        fuse_invalidate_path(st->fuse, path); /* -ENOENT: the kernel has no such node */
    pthread_rwlock_unlock(&st->kern_lk);
}

void fs_kernel_detach(struct fs_state *st)
{
    if (!st)
        return;
    pthread_rwlock_wrlock(&st->kern_lk);
    st->fuse = NULL;
    pthread_rwlock_unlock(&st->kern_lk);
}

void fs_kernel_inval_item(struct fs_state *st, struct fs_item *it)
{
    char *p = fs_item_path(st, it);
    fs_kernel_inval_path(st, p);
    free(p);
}

static void *inval_main(void *arg)
{
    struct fs_state *st = arg;
    pthread_mutex_lock(&st->inv_mu);
    for (;;) {
        char *path;
        while (!st->inv_n && !st->inv_stop)
            pthread_cond_wait(&st->inv_cv, &st->inv_mu);
        if (!st->inv_n && st->inv_stop)
            break;
        path = st->inv_q[0];
        memmove(st->inv_q, st->inv_q + 1, (st->inv_n - 1) * sizeof *st->inv_q);
        st->inv_n--;
        pthread_mutex_unlock(&st->inv_mu);
        fs_kernel_inval_path(st, path);
        free(path);
        pthread_mutex_lock(&st->inv_mu);
    }
    pthread_mutex_unlock(&st->inv_mu);
    return NULL;
}

void fs_kernel_inval_later(struct fs_state *st, const char *path)
{
    if (!path)
        return;
    pthread_mutex_lock(&st->inv_mu);
    if (st->inv_started && !st->inv_stop) {
        if (st->inv_n == st->inv_cap) {
            size_t cap = st->inv_cap ? st->inv_cap * 2 : 16;
            char **q = realloc(st->inv_q, cap * sizeof *q);
            if (q) {
                st->inv_q = q;
                st->inv_cap = cap;
            }
        }
        if (st->inv_n < st->inv_cap) {
            st->inv_q[st->inv_n++] = strdup(path);
            pthread_cond_signal(&st->inv_cv);
        }
    }
    pthread_mutex_unlock(&st->inv_mu);
}

void fs_kernel_start(struct fs_state *st)
{
    pthread_mutex_lock(&st->inv_mu);
    if (!st->inv_started && pthread_create(&st->inv_thread, NULL, inval_main, st) == 0)
        st->inv_started = 1;
    pthread_mutex_unlock(&st->inv_mu);
}

void fs_kernel_stop(struct fs_state *st)
{
    int started;
    pthread_mutex_lock(&st->inv_mu);
    started = st->inv_started;
    st->inv_stop = 1;
    pthread_cond_signal(&st->inv_cv);
    pthread_mutex_unlock(&st->inv_mu);
    if (started)
        pthread_join(st->inv_thread, NULL);
    for (size_t i = 0; i < st->inv_n; i++)
        free(st->inv_q[i]);
    free(st->inv_q);
    st->inv_q = NULL;
    st->inv_n = st->inv_cap = 0;
}
