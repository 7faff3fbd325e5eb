/*
 * The shm store's wake-ups: a publisher (or a DELETE) has queued a
 * changed channel for every worker slot with subscribers of it, under the
 * zone lock; after unlocking it sends one datagram to each worker whose
 * wake-up was not pending yet: one wake per worker per batch, never per
 * event or per subscriber, and a publisher never waits for another worker
 * (the send is non-blocking and a full socket buffer means a wake-up is
 * pending anyway).  Because the slot table, the names of the workers'
 * sockets included, lives in the zone, old and new workers during a
 * reload reach each other like any other workers.
 *
 * A worker that died is found from its socket, never by probing pids
 * under the lock: a refused wake-up, or a refused connect() probe,
 * releases exactly its slot.
 */

#include "ngx_http_sse.h"

#include <sys/socket.h>
#include <sys/un.h>


/* called after unlocking: sends the wake-ups ngx_http_sse_notify() chose */

void
ngx_http_sse_wake(ngx_http_sse_zone_t *zone, ngx_uint_t *wake,
    ngx_uint_t nwake)
{
    u_char                byte;
    ngx_pid_t             pid;
    ngx_pid_t             gone_pid[NGX_HTTP_SSE_MAX_SLOTS];
    ngx_uint_t            i, ngone, local;
    ngx_uint_t            gone[NGX_HTTP_SSE_MAX_SLOTS];
    socklen_t             len;
    struct sockaddr_un    sa;
    ngx_http_sse_slot_t  *slot;

    ngone = 0;
    local = 0;
    byte = 0;

    for (i = 0; i < nwake; i++) {

        if ((ngx_int_t) wake[i] == zone->slot) {
            local = 1;
            continue;
        }

        slot = &zone->sh->slots[wake[i]];

        pid = (ngx_pid_t) slot->pid;
        if (pid == 0 || ngx_http_sse_ipc == NULL) {
            continue;
        }

        ngx_memzero(&sa, sizeof(struct sockaddr_un));
        sa.sun_family = AF_UNIX;
        ngx_memcpy(sa.sun_path, slot->addr, slot->addr_len);
        len = offsetof(struct sockaddr_un, sun_path) + slot->addr_len;

        if (sendto(ngx_http_sse_ipc->fd, &byte, 1, MSG_DONTWAIT,
                   (struct sockaddr *) &sa, len)
            == -1)
        {
            /*
             * EAGAIN: the receiver's queue is full, so it has wake-ups
             * pending and will see our channel in its queue anyway.
             * ECONNREFUSED: nobody has the name any more: the worker
             * exited or died; its slot is reaped below.
             */

            if (ngx_socket_errno == NGX_ECONNREFUSED
                || ngx_socket_errno == NGX_ENOENT)
            {
                gone[ngone] = wake[i];
                gone_pid[ngone++] = pid;

            } else if (ngx_socket_errno != NGX_EAGAIN) {
                /*
                 * The wake-up is lost: clear its flag, so that the next
                 * publish sends another (that worker's sweep also looks
                 * at its queue every second).
                 */
                ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, ngx_socket_errno,
                              "sse: wake-up of worker %P failed", pid);
                slot->wake_pending = 0;
            }
        }
    }

    if (ngone) {
        ngx_shmtx_lock(&zone->shpool->mutex);

        for (i = 0; i < ngone; i++) {
            ngx_http_sse_reap_slot(zone, gone[i], gone_pid[i]);
        }

        ngx_shmtx_unlock(&zone->shpool->mutex);
    }

    /*
     * This worker's own subscribers get the events now, before the
     * publisher's reply: the other workers are already woken and fan out
     * in parallel, and a publisher posting back to back is paced by the
     * fan-out instead of queueing events behind it.
     */

    if (local) {
        ngx_http_sse_process_zone(zone);
    }
}


/*
 * Finds the slots of workers that are gone without a publish to tell
 * (kill -9, a crash, while nothing was published to their channels): the
 * wake-up socket of such a slot refuses a connection.  connect() on a
 * datagram socket sends nothing, so live workers are not disturbed.  Runs
 * unlocked; the lock is taken only to release what is found.  For the
 * sweep, sse_status and a new worker that finds no free slot.
 */

void
ngx_http_sse_probe_slots(ngx_http_sse_zone_t *zone)
{
    int                   fd;
    ngx_pid_t             pid;
    ngx_pid_t             gone_pid[NGX_HTTP_SSE_MAX_SLOTS];
    ngx_uint_t            i, ngone;
    ngx_uint_t            gone[NGX_HTTP_SSE_MAX_SLOTS];
    socklen_t             len;
    struct sockaddr_un    sa;
    ngx_http_sse_slot_t  *slot;

    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        return;
    }

    ngone = 0;

    for (i = 0; i < NGX_HTTP_SSE_MAX_SLOTS; i++) {
        slot = &zone->sh->slots[i];
        pid = (ngx_pid_t) slot->pid;

        if (pid == 0 || pid == ngx_pid || slot->addr_len > 16) {
            continue;
        }

        ngx_memzero(&sa, sizeof(struct sockaddr_un));
        sa.sun_family = AF_UNIX;
        ngx_memcpy(sa.sun_path, slot->addr, slot->addr_len);
        len = offsetof(struct sockaddr_un, sun_path) + slot->addr_len;

        if (connect(fd, (struct sockaddr *) &sa, len) == -1
            && (ngx_socket_errno == NGX_ECONNREFUSED
                || ngx_socket_errno == NGX_ENOENT))
        {
            gone[ngone] = i;
            gone_pid[ngone++] = pid;
        }
    }

    close(fd);

    if (ngone == 0) {
        return;
    }

    ngx_shmtx_lock(&zone->shpool->mutex);

    for (i = 0; i < ngone; i++) {
        ngx_http_sse_reap_slot(zone, gone[i], gone_pid[i]);
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);
}
