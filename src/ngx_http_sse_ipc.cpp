/*
 * Wake-ups between workers and the fan-out to a worker's own streams.
 *
 * Every worker binds an abstract unix datagram socket with a name the
 * kernel picks (autobind: unique, nothing to clean up, nothing another
 * process could squat on) and writes that name into its slot of the zone.
 * A publisher appends to a channel under the zone lock, queues the
 * channel for every worker slot with subscribers of it, and sends one
 * datagram to each slot whose wake-up was not pending yet: one wake per
 * worker per batch, never per event or per subscriber, and a publisher
 * never waits for another worker (the send is non-blocking and a full
 * socket buffer means a wake-up is pending anyway).  Because the names
 * are pids and the slot table lives in the zone, old and new workers
 * during a reload reach each other like any other workers.
 *
 * A woken worker takes its queue under the lock, copies the new events'
 * bytes out of the zone once, unlocks, and appends them to each of its
 * subscribers that has room for them.  A stream without room (a slow
 * socket, a replay still going on) is "behind": it keeps its position and
 * pulls the rest from the zone's history as its socket drains
 * (ngx_http_sse_sub_pull()), never holding more than sse_max_pending.
 */

#include "ngx_http_sse.h"

#include <sys/socket.h>
#include <sys/un.h>


ngx_queue_t  ngx_http_sse_streams;
ngx_uint_t   ngx_http_sse_nstreams;


namespace {

/* a copy of one event taken out of the zone */
typedef struct {
    ngx_http_sse_local_t   *local;
    uint64_t                seq;
    uint64_t                cum;
    size_t                  offset;     /* in the scratch buffer */
    ngx_msec_t              published;
    uint32_t                len;
    uint16_t                id_len;
} ngx_http_sse_copy_t;

/* why a worker's streams of a channel end after a fan-out */
#define NGX_HTTP_SSE_LOCAL_RENEWED  1   /* the channel is another epoch */
#define NGX_HTTP_SSE_LOCAL_DELETED  2   /* after what came before DELETE */


void ngx_http_sse_ipc_read_handler(ngx_event_t *ev);
void ngx_http_sse_wake_handler(ngx_event_t *ev);
void ngx_http_sse_sweep_handler(ngx_event_t *ev);
void ngx_http_sse_process_zone(ngx_http_sse_zone_t *zone);
ngx_int_t ngx_http_sse_gather(ngx_http_sse_local_t *local);
void ngx_http_sse_fan_out(ngx_http_sse_zone_t *zone);
void ngx_http_sse_end_local(ngx_http_sse_local_t *local);
void ngx_http_sse_settle(ngx_http_sse_zone_t *zone);
ngx_http_sse_local_t *ngx_http_sse_local_find(ngx_http_sse_zone_t *zone,
    ngx_http_sse_channel_t *ch);
ngx_int_t ngx_http_sse_pull_channel(ngx_http_sse_sub_chan_t *sc);
ngx_int_t ngx_http_sse_scratch_reserve(size_t size);
ngx_int_t ngx_http_sse_copies_reserve(ngx_uint_t n);
ngx_int_t ngx_http_sse_locals_push(ngx_http_sse_local_t *local);


ngx_connection_t          *ngx_http_sse_ipc;
ngx_http_sse_main_conf_t  *ngx_http_sse_main;
ngx_event_t                ngx_http_sse_sweep_event;

/* per worker scratch space, reused by every fan-out */
u_char                    *scratch;
size_t                     scratch_len;
size_t                     scratch_cap;
ngx_http_sse_copy_t       *copies;
size_t                     ncopies;
size_t                     copies_cap;
ngx_http_sse_local_t     **touched;
size_t                     ntouched;
size_t                     touched_cap;

} // namespace


ngx_int_t
ngx_http_sse_ipc_init(ngx_cycle_t *cycle)
{
    int                     fd;
    socklen_t               len;
    ngx_uint_t              i;
    ngx_connection_t       *c;
    struct sockaddr_un      sa;
    ngx_http_sse_zone_t   **zones, *zone;

    ngx_queue_init(&ngx_http_sse_streams);

    if (ngx_get_conf(cycle->conf_ctx, ngx_http_module) == NULL) {
        return NGX_OK;
    }

    ngx_http_sse_main = (ngx_http_sse_main_conf_t *)
        ngx_http_cycle_get_module_main_conf(cycle, ngx_http_sse_module);

    if (ngx_http_sse_main == NULL || ngx_http_sse_main->zones.nelts == 0) {
        return NGX_OK;
    }

    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_socket_errno,
                      "sse: socket(AF_UNIX) failed");
        return NGX_ERROR;
    }

    /* an address of just the family: the kernel picks an abstract name */

    ngx_memzero(&sa, sizeof(struct sockaddr_un));
    sa.sun_family = AF_UNIX;

    if (bind(fd, (struct sockaddr *) &sa, sizeof(sa_family_t)) == -1) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_socket_errno,
                      "sse: bind() of the wake-up socket failed");
        close(fd);
        return NGX_ERROR;
    }

    len = sizeof(struct sockaddr_un);

    if (getsockname(fd, (struct sockaddr *) &sa, &len) == -1
        || len > offsetof(struct sockaddr_un, sun_path) + 16)
    {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_socket_errno,
                      "sse: getsockname() of the wake-up socket failed");
        close(fd);
        return NGX_ERROR;
    }

    len -= offsetof(struct sockaddr_un, sun_path);

    c = ngx_get_connection(fd, cycle->log);
    if (c == NULL) {
        close(fd);
        return NGX_ERROR;
    }

    /*
     * Marked idle so that a graceful shutdown (reload, quit) calls its
     * read handler with c->close set at once: that is where this worker
     * ends its streams, so clients resume on the new workers without
     * waiting for worker_shutdown_timeout.
     */

    c->idle = 1;
    c->read->handler = ngx_http_sse_ipc_read_handler;
    c->read->log = cycle->log;
    c->write->log = cycle->log;

    if (ngx_add_event(c->read, NGX_READ_EVENT, 0) != NGX_OK) {
        ngx_close_connection(c);
        return NGX_ERROR;
    }

    ngx_http_sse_ipc = c;

    ngx_http_sse_sweep_event.handler = ngx_http_sse_sweep_handler;
    ngx_http_sse_sweep_event.log = cycle->log;
    ngx_http_sse_sweep_event.data = c;
    ngx_http_sse_sweep_event.cancelable = 1;

    zones = (ngx_http_sse_zone_t **) ngx_http_sse_main->zones.elts;

    for (i = 0; i < ngx_http_sse_main->zones.nelts; i++) {
        zone = zones[i];

        ngx_shmtx_lock(&zone->shpool->mutex);
        zone->slot = ngx_http_sse_slot_register(zone,
                                                (u_char *) sa.sun_path, len);
        ngx_shmtx_unlock(&zone->shpool->mutex);

        if (zone->slot < 0) {
            /* slots of workers that were killed go to refused wake-ups */
            ngx_http_sse_probe_slots(zone);

            ngx_shmtx_lock(&zone->shpool->mutex);
            zone->slot = ngx_http_sse_slot_register(zone,
                                                    (u_char *) sa.sun_path,
                                                    len);
            ngx_shmtx_unlock(&zone->shpool->mutex);
        }

        if (zone->slot < 0) {
            ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                          "sse zone \"%V\": all %d worker slots are taken; "
                          "this worker refuses subscribers with 503",
                          &zone->name, NGX_HTTP_SSE_MAX_SLOTS);
        }
    }

    return NGX_OK;
}


void
ngx_http_sse_ipc_exit(ngx_cycle_t *cycle)
{
    if (ngx_http_sse_main == NULL) {
        return;
    }

    ngx_http_sse_release_slots();

    if (ngx_http_sse_ipc) {
        ngx_close_connection(ngx_http_sse_ipc);
        ngx_http_sse_ipc = NULL;
    }

    ngx_http_sse_main = NULL;
}


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


/* expects the zone locked: the subscriber joins the channel */

ngx_http_sse_local_t *
ngx_http_sse_local_get(ngx_http_sse_zone_t *zone, ngx_http_sse_channel_t *ch)
{
    ngx_http_sse_local_t  *local;

    local = ngx_http_sse_local_find(zone, ch);
    if (local) {
        return local;
    }

    local = (ngx_http_sse_local_t *) ngx_alloc(sizeof(ngx_http_sse_local_t),
                                               ngx_cycle->log);
    if (local == NULL) {
        return NULL;
    }

    ngx_memzero(local, sizeof(ngx_http_sse_local_t));

    local->node.key = (ngx_rbtree_key_t) (uintptr_t) ch;
    local->zone = zone;
    local->channel = ch;
    local->epoch = ch->epoch;
    local->cursor = ch->last_seq;
    local->total = ch->total;
    local->floor = (uint64_t) -1;
    ngx_queue_init(&local->subs);

    ngx_rbtree_insert(&zone->locals, &local->node);
    zone->nlocals++;

    return local;
}


void
ngx_http_sse_local_put(ngx_http_sse_local_t *local)
{
    if (local->nsubs || local->busy) {
        return;
    }

    ngx_rbtree_delete(&local->zone->locals, &local->node);
    local->zone->nlocals--;
    ngx_free(local);
}


/*
 * Expects the zone locked: a stream behind on some of its channels takes
 * their next events from history, as many as its buffer takes
 * (sse_max_pending); the rest waits until its socket drains again.
 * NGX_HTTP_SSE_PULL_END: a deleted or renewed channel is done with;
 * NGX_HTTP_SSE_PULL_GAP: what it still needed is gone.
 */

ngx_int_t
ngx_http_sse_sub_pull(ngx_http_sse_sub_t *sub)
{
    ngx_int_t   rc;
    ngx_uint_t  i;

    for (i = 0; i < sub->nchans; i++) {
        if (!sub->chans[i].behind || sub->chans[i].local == NULL) {
            continue;
        }

        rc = ngx_http_sse_pull_channel(&sub->chans[i]);

        if (rc != NGX_OK) {
            return rc;
        }

        if (sub->chans[i].behind) {
            /* its buffer is full */
            break;
        }
    }

    return NGX_OK;
}


void
ngx_http_sse_sweep_arm(void)
{
    if (!ngx_http_sse_sweep_event.timer_set && ngx_http_sse_nstreams) {
        ngx_add_timer(&ngx_http_sse_sweep_event, 1000);
    }
}


/*
 * The worker shuts down (reload, quit): streams end now, so clients
 * resume on the new workers at once rather than after
 * worker_shutdown_timeout.  Streams that cannot send their last bytes at
 * once get a second; the sweep, made non-cancelable, keeps the worker
 * alive that long, then closes what is left (ngx_http_sse_close_all()).
 *
 * Having left every channel, the worker gives its zone slots back at
 * once, so that old workers that linger (a long request of another kind)
 * never hold the zone's 128, however fast reloads come.  A subscriber
 * that still reaches it gets a stream that ends at once (an EventSource
 * then reconnects, to a new worker), not a 503 (an EventSource would give
 * up).  Without streams the timer is cancelable: it does not delay the
 * exit.
 */

void
ngx_http_sse_shutdown(void)
{
    ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                  "sse: worker is shutting down, ending %ui streams",
                  ngx_http_sse_nstreams);

    ngx_http_sse_end_all(1);

    ngx_http_sse_release_slots();

    if (ngx_http_sse_sweep_event.timer_set) {
        ngx_del_timer(&ngx_http_sse_sweep_event);
    }

    ngx_http_sse_sweep_event.cancelable = ngx_http_sse_nstreams ? 0 : 1;
    ngx_add_timer(&ngx_http_sse_sweep_event, 1000);
}


/*
 * Gives back the worker's slot in every zone.  Only once it has left every
 * channel (ngx_http_sse_end_all()): a later subscriber on a keepalive
 * connection gets 503 shutting_down, a publish wakes the other workers.
 */

void
ngx_http_sse_release_slots(void)
{
    ngx_uint_t             i;
    ngx_http_sse_zone_t  **zones, *zone;

    if (ngx_http_sse_main == NULL) {
        return;
    }

    zones = (ngx_http_sse_zone_t **) ngx_http_sse_main->zones.elts;

    for (i = 0; i < ngx_http_sse_main->zones.nelts; i++) {
        zone = zones[i];

        if (zone->slot < 0 || zone->sh == NULL) {
            continue;
        }

        ngx_shmtx_lock(&zone->shpool->mutex);
        ngx_http_sse_slot_release(zone);
        ngx_shmtx_unlock(&zone->shpool->mutex);
    }
}


/* grows a malloc'ed array to hold need elements, doubling */

ngx_int_t
ngx_http_sse_grow(void **array, size_t *cap, size_t need, size_t size,
    size_t min)
{
    void    *p;
    size_t   n;

    if (need <= *cap) {
        return NGX_OK;
    }

    n = ngx_max(*cap * 2, need);
    n = ngx_max(n, min);

    p = realloc(*array, n * size);
    if (p == NULL) {
        return NGX_ERROR;
    }

    *array = p;
    *cap = n;

    return NGX_OK;
}


namespace {

void
ngx_http_sse_ipc_read_handler(ngx_event_t *ev)
{
    u_char             buf[64];
    ngx_connection_t  *c;

    c = (ngx_connection_t *) ev->data;

    if (c->close) {
        c->idle = 0;
        c->close = 0;
        ngx_http_sse_shutdown();
        return;
    }

    while (recv(c->fd, buf, sizeof(buf), 0) > 0) {
        /* the datagrams carry nothing: the queues in the zone do */
    }

    ngx_http_sse_wake_handler(ev);
}


void
ngx_http_sse_wake_handler(ngx_event_t *ev)
{
    ngx_uint_t             i;
    ngx_http_sse_zone_t  **zones;

    if (ngx_http_sse_main == NULL) {
        return;
    }

    zones = (ngx_http_sse_zone_t **) ngx_http_sse_main->zones.elts;

    for (i = 0; i < ngx_http_sse_main->zones.nelts; i++) {
        ngx_http_sse_process_zone(zones[i]);
    }
}


void
ngx_http_sse_process_zone(ngx_http_sse_zone_t *zone)
{
    ngx_uint_t               n;
    ngx_http_sse_local_t    *local;
    ngx_http_sse_channel_t  *ch;

    if (zone->slot < 0) {
        return;
    }

    scratch_len = 0;
    ncopies = 0;
    ntouched = 0;

    ngx_shmtx_lock(&zone->shpool->mutex);

    zone->sh->slots[zone->slot].wake_pending = 0;

    /* the queue holds each changed channel once: the cost is what changed */

    for (n = 0; /* void */; n++) {
        ch = ngx_http_sse_dequeue(zone, zone->slot);
        if (ch == NULL) {
            break;
        }

        local = ngx_http_sse_local_find(zone, ch);
        if (local == NULL) {
            /* its last subscriber here left meanwhile */
            continue;
        }

        if (ngx_http_sse_gather(local) != NGX_OK) {
            /*
             * Out of memory: its streams are not behind yet, so nothing
             * else would bring them these events; the channel goes back
             * on the queue for the next wake-up or the sweep, and this
             * round ends (taking it again now would fail again).
             */
            if (local->share) {
                ngx_http_sse_requeue(zone, local->share);
            }

            break;
        }
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    if (n) {
        (void) ngx_atomic_fetch_add(&zone->sh->wakeups, 1);
        (void) ngx_atomic_fetch_add(&zone->sh->woken, n);
    }

    ngx_http_sse_fan_out(zone);
}


/*
 * Expects the zone locked: copies the channel's events that this worker
 * has not fanned out yet into the scratch buffer.
 */

ngx_int_t
ngx_http_sse_gather(ngx_http_sse_local_t *local)
{
    size_t                   size;
    uint64_t                 seq;
    ngx_http_sse_copy_t     *cp;
    ngx_http_sse_event_t    *ev;
    ngx_http_sse_channel_t  *ch = local->channel;

    if (local->busy) {
        return NGX_OK;
    }

    if (ngx_http_sse_locals_push(local) != NGX_OK) {
        return NGX_ERROR;
    }

    local->busy = 1;

    if (ch->epoch != local->epoch) {
        /* deleted and published to again: these streams are over */
        local->ending = NGX_HTTP_SSE_LOCAL_RENEWED;
        return NGX_OK;
    }

    if (local->cursor < ch->last_seq && ch->nevents) {

        /*
         * What was evicted before this worker read it is not copied: its
         * streams that still miss it find the gap when they pull.
         */

        seq = ngx_max(local->cursor + 1, ch->first_seq);
        size = (size_t) (ch->total - ngx_http_sse_cum_before(ch, seq));

        if (ngx_http_sse_copies_reserve(ch->last_seq - seq + 1) != NGX_OK
            || ngx_http_sse_scratch_reserve(size) != NGX_OK)
        {
            return NGX_ERROR;
        }

        for ( /* void */ ; seq <= ch->last_seq; seq++) {
            ev = ngx_http_sse_channel_event(ch, seq);

            cp = &copies[ncopies++];
            cp->local = local;
            cp->seq = seq;
            cp->cum = ev->cum;
            cp->offset = scratch_len;
            cp->len = ev->len;
            cp->id_len = ev->id_len;
            cp->published = ev->msec;

            ngx_memcpy(scratch + scratch_len, ev->wire, ev->len);
            scratch_len += ev->len;
        }
    }

    local->cursor = ch->last_seq;
    local->total = ch->total;

    if (ch->deleted) {
        /* the streams end after what was published before the DELETE */
        local->ending = NGX_HTTP_SSE_LOCAL_DELETED;
    }

    return NGX_OK;
}


void
ngx_http_sse_fan_out(ngx_http_sse_zone_t *zone)
{
    uint64_t                  floor;
    ngx_int_t                 rc;
    ngx_uint_t                i, j;
    ngx_queue_t              *q, *next;
    ngx_http_sse_sub_t       *sub;
    ngx_http_sse_copy_t      *cp;
    ngx_http_sse_local_t     *local;
    ngx_http_sse_sub_chan_t  *sc;

    j = 0;

    for (i = 0; i < ntouched; i++) {
        local = touched[i];
        floor = local->cursor;

        for (q = ngx_queue_head(&local->subs);
             q != ngx_queue_sentinel(&local->subs);
             q = next)
        {
            next = ngx_queue_next(q);
            sc = ngx_queue_data(q, ngx_http_sse_sub_chan_t, link);
            sub = sc->sub;

            if (sub->done) {
                continue;
            }

            for (cp = copies + j;
                 cp < copies + ncopies && cp->local == local;
                 cp++)
            {
                rc = ngx_http_sse_sub_append_event(sc, cp->seq,
                                                   scratch + cp->offset,
                                                   cp->len, cp->id_len,
                                                   cp->cum, cp->published);
                if (rc == NGX_ERROR) {
                    /* no memory for its buffer (the zone is not locked) */
                    ngx_http_sse_sub_drop(sub);
                    break;
                }

                if (rc != NGX_OK) {
                    break;
                }
            }

            if (sub->done) {
                continue;
            }

            if (sc->behind && sc->pos.seq < floor) {
                floor = sc->pos.seq;
            }

            /*
             * The stream writes what it has and pulls more while its
             * socket takes it; what it still lacks then is how far behind
             * it is.  NGX_DONE: it may be gone, sc with it.
             */

            if (ngx_http_sse_sub_send(sub) == NGX_OK && sc->behind) {
                (void) ngx_http_sse_sub_too_far(sub, sc, local->total);
            }
        }

        while (j < ncopies && copies[j].local == local) {
            j++;
        }

        local->floor = floor;

        if (local->ending) {
            ngx_http_sse_end_local(local);
        }
    }

    ngx_http_sse_settle(zone);

    if (zone->delivered) {
        (void) ngx_atomic_fetch_add(&zone->sh->delivered, zone->delivered);
        zone->delivered = 0;
    }

    ngx_http_sse_metrics_flush(zone);

    ntouched = 0;
    ncopies = 0;
    scratch_len = 0;
}


/*
 * After a fan-out: tells the zone how far every stream of this worker has
 * each channel, so that history past its limit can go.
 */

void
ngx_http_sse_settle(ngx_http_sse_zone_t *zone)
{
    ngx_uint_t             i;
    ngx_http_sse_local_t  *local;

    ngx_shmtx_lock(&zone->shpool->mutex);

    for (i = 0; i < ntouched; i++) {
        local = touched[i];

        if (local->nsubs && local->share) {
            ngx_http_sse_channel_consumed(zone, local->share,
                                          ngx_min(local->cursor,
                                                  local->floor));
        }
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    /* kept while fanned out: a stream of another channel may leave this */

    for (i = 0; i < ntouched; i++) {
        touched[i]->busy = 0;
        ngx_http_sse_local_put(touched[i]);
    }
}


void
ngx_http_sse_end_local(ngx_http_sse_local_t *local)
{
    ngx_uint_t                ending;
    ngx_queue_t              *q, *next;
    ngx_http_sse_sub_chan_t  *sc;

    /* local->busy is set: it stays while its streams leave */

    ending = local->ending;
    local->ending = 0;

    for (q = ngx_queue_head(&local->subs);
         q != ngx_queue_sentinel(&local->subs);
         q = next)
    {
        next = ngx_queue_next(q);
        sc = ngx_queue_data(q, ngx_http_sse_sub_chan_t, link);

        if (ending == NGX_HTTP_SSE_LOCAL_DELETED && sc->behind) {
            /* it ends when its pulls reach the end of the channel */
            continue;
        }

        ngx_http_sse_sub_reason(sc->sub, NGX_HTTP_SSE_CLOSE_DELETED);
        ngx_http_sse_sub_end(sc->sub, 1);
    }
}


ngx_http_sse_local_t *
ngx_http_sse_local_find(ngx_http_sse_zone_t *zone, ngx_http_sse_channel_t *ch)
{
    ngx_rbtree_key_t    key;
    ngx_rbtree_node_t  *node, *sentinel;

    key = (ngx_rbtree_key_t) (uintptr_t) ch;

    node = zone->locals.root;
    sentinel = zone->locals.sentinel;

    while (node != sentinel) {
        if (key == node->key) {
            return (ngx_http_sse_local_t *) node;
        }

        node = (key < node->key) ? node->left : node->right;
    }

    return NULL;
}


void
ngx_http_sse_sweep_handler(ngx_event_t *ev)
{
    time_t                 now;
    ngx_uint_t             i, k, more;
    ngx_queue_t           *q, *next;
    ngx_http_sse_sub_t    *sub;
    ngx_http_sse_zone_t  **zones, *zone;

    if (ngx_exiting) {
        /* the second given by ngx_http_sse_shutdown() is over */
        ngx_http_sse_end_all(1);
        ngx_http_sse_close_all();
        ngx_http_sse_release_slots();
        return;
    }

    now = ngx_time();

    for (q = ngx_queue_head(&ngx_http_sse_streams);
         q != ngx_queue_sentinel(&ngx_http_sse_streams);
         q = next)
    {
        next = ngx_queue_next(q);
        sub = ngx_queue_data(q, ngx_http_sse_sub_t, all);
        ngx_http_sse_sub_tick(sub, now);
    }

    if (ngx_http_sse_main) {
        zones = (ngx_http_sse_zone_t **) ngx_http_sse_main->zones.elts;

        for (i = 0; i < ngx_http_sse_main->zones.nelts; i++) {
            zone = zones[i];

            ngx_http_sse_probe_slots(zone);

            /* expiry in bounded steps, the lock released in between */

            for (k = 0; k < 64; k++) {
                ngx_shmtx_lock(&zone->shpool->mutex);
                more = ngx_http_sse_store_expire(zone);
                ngx_shmtx_unlock(&zone->shpool->mutex);

                if (!more) {
                    break;
                }
            }

            /* a wake-up that got lost on the way is made up for here */
            ngx_http_sse_process_zone(zone);

            /* latencies of writes that completed on write events */
            ngx_http_sse_metrics_flush(zone);
        }
    }

    ngx_http_sse_sweep_arm();
}


ngx_int_t
ngx_http_sse_pull_channel(ngx_http_sse_sub_chan_t *sc)
{
    uint64_t                  seq;
    ngx_int_t                 rc;
    ngx_http_sse_sub_t       *sub = sc->sub;
    ngx_http_sse_event_t     *ev;
    ngx_http_sse_local_t     *local = sc->local;
    ngx_http_sse_channel_t   *ch = local->channel;

    if (ch->epoch != sc->pos.epoch) {
        return NGX_HTTP_SSE_PULL_END;
    }

    if (sc->pos.seq < ch->last_seq) {

        if (ch->nevents == 0 || sc->pos.seq + 1 < ch->first_seq) {
            return NGX_HTTP_SSE_PULL_GAP;
        }

        for (seq = sc->pos.seq + 1; seq <= ch->last_seq; seq++) {
            ev = ngx_http_sse_channel_event(ch, seq);

            rc = ngx_http_sse_sub_append_event(sc, seq, ev->wire, ev->len,
                                               ev->id_len, ev->cum, ev->msec);
            if (rc != NGX_OK) {
                return (rc == NGX_DECLINED) ? NGX_OK : NGX_ERROR;
            }
        }
    }

    /* caught up: live events reach it through the fan-out again */

    sc->behind = 0;
    sub->nbehind--;

    if (--local->nbehind == 0 && local->share) {
        /* every stream here has what the worker fanned out: history past
         * its limit can go now, not at the next fan-out */
        local->floor = (uint64_t) -1;
        ngx_http_sse_channel_consumed(sub->zone, local->share,
                                      local->cursor);
    }

    if (ch->deleted) {
        return NGX_HTTP_SSE_PULL_END;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_sse_scratch_reserve(size_t size)
{
    return ngx_http_sse_grow((void **) &scratch, &scratch_cap,
                             scratch_len + size, 1, 16384);
}


ngx_int_t
ngx_http_sse_copies_reserve(ngx_uint_t n)
{
    return ngx_http_sse_grow((void **) &copies, &copies_cap, ncopies + n,
                             sizeof(ngx_http_sse_copy_t), 256);
}


ngx_int_t
ngx_http_sse_locals_push(ngx_http_sse_local_t *local)
{
    if (ngx_http_sse_grow((void **) &touched, &touched_cap, ntouched + 1,
                          sizeof(ngx_http_sse_local_t *), 64)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    touched[ntouched++] = local;

    return NGX_OK;
}

} // namespace
