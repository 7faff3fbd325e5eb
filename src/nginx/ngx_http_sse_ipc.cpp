/*
 * A worker's own machinery: its wake-up socket and the one-second sweep.
 *
 * Every worker binds an abstract unix datagram socket with a name the
 * kernel picks (autobind: unique, nothing to clean up, nothing another
 * process could squat on) and attaches to each zone's store with that
 * name; the shm store wakes it there when channels it has subscribers of
 * changed (ngx_http_sse_store_wake.cpp), and the fan-out takes it from
 * there (ngx_http_sse_fanout.cpp).  The socket is also how a graceful
 * shutdown reaches the worker at once.  The sweep drives the streams'
 * timers, the store's bounded expiry and finding dead workers, and makes
 * up for a lost wake-up.
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


ngx_http_sse_main_conf_t  *ngx_http_sse_main;
ngx_event_t                ngx_http_sse_sweep_event;

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

    /*
     * The datagrams carry nothing: the queues in the zone do.  One is
     * taken, not all until EAGAIN: a publisher sends one per wake-up
     * until this worker takes its queue (wake_pending), so there is
     * almost always just the one, and the read event is level-triggered:
     * any other wakes the next cycle again.  A syscall less per wake-up.
     */

    (void) recv(c->fd, buf, sizeof(buf), 0);

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

            /* latencies of writes that completed on write events */
            ngx_http_sse_metrics_flush(zone);
        }
    }

    ngx_http_sse_sweep_arm();
}


} // namespace
