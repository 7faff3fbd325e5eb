/*
 * A worker's side of the hub: its wake-up socket, the fan-out of new
 * events to its streams, pulls from history, and the one-second sweep.
 *
 * Every worker binds an abstract unix datagram socket with a name the
 * kernel picks (autobind: unique, nothing to clean up, nothing another
 * process could squat on) and attaches to each zone's store with that
 * name; the shm store wakes it there when channels it has subscribers of
 * changed (ngx_http_sse_store_wake.cpp).
 *
 * A woken worker asks its store for the new events of the channels that
 * changed (collect(): one copy of their bytes into the worker's batch),
 * and appends them to each of its subscribers that has room for them.  A
 * stream without room (a slow socket, a replay still going on) is
 * "behind": it keeps its position and pulls the rest from history as its
 * socket drains (ngx_http_sse_sub_pull(), the store's read()), never
 * holding more than sse_max_pending.  Nothing here takes the zone lock
 * or sees an address in the zone.
 */

#include "ngx_http_sse.h"

#include <sys/socket.h>
#include <sys/un.h>


ngx_queue_t  ngx_http_sse_streams;
ngx_uint_t   ngx_http_sse_nstreams;


namespace {

void ngx_http_sse_ipc_read_handler(ngx_event_t *ev);
void ngx_http_sse_wake_handler(ngx_event_t *ev);
void ngx_http_sse_sweep_handler(ngx_event_t *ev);
void ngx_http_sse_fan_out(ngx_http_sse_zone_t *zone);
void ngx_http_sse_end_local(ngx_http_sse_local_t *local);
void ngx_http_sse_settle(ngx_http_sse_zone_t *zone);
ngx_int_t ngx_http_sse_pull_channel(ngx_http_sse_sub_chan_t *sc);
ngx_int_t ngx_http_sse_pulled_event(void *data, uint64_t seq, u_char *wire,
    size_t len, size_t id_len, uint64_t cum);


ngx_http_sse_main_conf_t  *ngx_http_sse_main;
ngx_event_t                ngx_http_sse_sweep_event;

/* the worker's batch, reused by every fan-out */
ngx_http_sse_batch_t       ngx_http_sse_batch;

} // namespace


ngx_connection_t  *ngx_http_sse_ipc;


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

        if (zone->store->attach(zone, (u_char *) sa.sun_path, len)
            != NGX_OK)
        {
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

/*
 * A stream behind on some of its channels takes their next events from
 * history, as many as its buffer takes (sse_max_pending); the rest waits
 * until its socket drains again.  NGX_HTTP_SSE_PULL_END: a deleted or
 * renewed channel is done with; NGX_HTTP_SSE_PULL_GAP: what it still
 * needed is gone.
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

        zone->store->detach(zone);
    }
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


} // namespace


/* channels changed for this worker: their new events go out */

void
ngx_http_sse_process_zone(ngx_http_sse_zone_t *zone)
{
    if (zone->slot < 0) {
        return;
    }

    ngx_http_sse_batch.scratch_len = 0;
    ngx_http_sse_batch.ncopies = 0;
    ngx_http_sse_batch.ntouched = 0;

    (void) zone->store->collect(zone, &ngx_http_sse_batch);

    ngx_http_sse_fan_out(zone);
}


namespace {

void
ngx_http_sse_fan_out(ngx_http_sse_zone_t *zone)
{
    uint64_t                  floor;
    ngx_int_t                 rc;
    ngx_uint_t                i, j;
    ngx_queue_t              *q, *next;
    ngx_http_sse_sub_t       *sub;
    ngx_http_sse_copy_t      *cp, *copies;
    ngx_http_sse_batch_t     *batch = &ngx_http_sse_batch;
    ngx_http_sse_local_t     *local;
    ngx_http_sse_sub_chan_t  *sc;

    j = 0;
    copies = batch->copies;

    for (i = 0; i < batch->ntouched; i++) {
        local = batch->touched[i];
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
                 cp < copies + batch->ncopies && cp->local == local;
                 cp++)
            {
                rc = ngx_http_sse_sub_append_event(sc, cp->seq,
                                                   batch->scratch
                                                   + cp->offset,
                                                   cp->len, cp->id_len,
                                                   cp->cum);
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

        while (j < batch->ncopies && copies[j].local == local) {
            j++;
        }

        local->floor = floor;

        if (local->ending) {
            ngx_http_sse_end_local(local);
        }
    }

    ngx_http_sse_settle(zone);

    if (zone->delivered) {
        zone->store->count(zone, NGX_HTTP_SSE_COUNT_DELIVERED,
                           zone->delivered);
        zone->delivered = 0;
    }

    batch->ntouched = 0;
    batch->ncopies = 0;
    batch->scratch_len = 0;
}


/*
 * After a fan-out: tells the zone how far every stream of this worker has
 * each channel, so that history past its limit can go.
 */

void
ngx_http_sse_settle(ngx_http_sse_zone_t *zone)
{
    ngx_uint_t             i;
    ngx_http_sse_batch_t  *batch = &ngx_http_sse_batch;

    zone->store->settle(zone, batch->touched, batch->ntouched);

    /* kept while fanned out: a stream of another channel may leave this */

    for (i = 0; i < batch->ntouched; i++) {
        batch->touched[i]->busy = 0;
        ngx_http_sse_local_put(batch->touched[i]);
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

        ngx_http_sse_sub_end(sc->sub, 1);
    }
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

            zone->store->probe(zone);

            /* expiry in bounded steps, the lock released in between */

            for (k = 0; k < 64; k++) {
                more = zone->store->expire(zone);

                if (!more) {
                    break;
                }
            }

            /* a wake-up that got lost on the way is made up for here */
            ngx_http_sse_process_zone(zone);
        }
    }

    ngx_http_sse_sweep_arm();
}


ngx_int_t
ngx_http_sse_pull_channel(ngx_http_sse_sub_chan_t *sc)
{
    ngx_int_t                   rc;
    ngx_http_sse_sub_t         *sub = sc->sub;
    ngx_http_sse_zone_t        *zone = sub->zone;
    ngx_http_sse_local_t       *local = sc->local;
    ngx_http_sse_store_read_t   rd;

    rd.local = local;
    rd.from = sc->pos;
    rd.budget = (size_t) -1;    /* the stream's buffer is what bounds it */
    rd.sink = ngx_http_sse_pulled_event;
    rd.data = sc;

    rc = zone->store->read(zone, &rd);

    if (rc == NGX_ERROR || rc == NGX_HTTP_SSE_PULL_GAP || !rd.caught_up) {
        return rc;
    }

    /* caught up: live events reach it through the fan-out again */

    sc->behind = 0;
    sub->nbehind--;

    if (--local->nbehind == 0) {
        /* every stream here has what the worker fanned out: history past
         * its limit can go now, not at the next fan-out */
        local->floor = (uint64_t) -1;
        zone->store->settle(zone, &local, 1);
    }

    return rc;
}


ngx_int_t
ngx_http_sse_pulled_event(void *data, uint64_t seq, u_char *wire, size_t len,
    size_t id_len, uint64_t cum)
{
    return ngx_http_sse_sub_append_event((ngx_http_sse_sub_chan_t *) data,
                                         seq, wire, len, id_len, cum);
}

} // namespace
