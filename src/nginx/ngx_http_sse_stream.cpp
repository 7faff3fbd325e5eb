/*
 * The life of a subscriber stream: appending events, writing them out,
 * heartbeats, lifetime and stalls, and the end.
 *
 * A stream starts on its request and writes through the filter chain, so
 * chunked coding, HTTP/2 and TLS all work, every write with flush set.
 * Once its headers and first bytes are out, an HTTP/1.x stream lets its
 * request go ("detached"): the request's pool, header buffers and filter
 * contexts are freed, and only the connection and this small record stay;
 * events are then written straight to the socket, as chunks on an HTTP/1.1
 * chunked response, as they are on a close-delimited one (HTTP/1.0, what
 * a default nginx proxy in front sends; chunked_transfer_encoding off),
 * whose end is the connection's close.  That keeps an idle subscriber near
 * one kilobyte of worker memory; its access-log line is still written
 * when it ends (ngx_http_sse_log.cpp).  HTTP/2 and HTTP/3 streams, streams
 * limit_conn counts (its count lives in the request's pool) and anything
 * unusual (pipelined requests, a body still being read) stay on the
 * request.
 *
 * Both ways use two buffers per stream: one being sent, one filling up
 * with what arrives meanwhile.  Nothing is allocated per event, and the
 * buffers are given back when a stream has been quiet for a while.
 */

#include "ngx_http_sse.h"


/* room for a chunk header: up to 16 hex digits and CRLF */
#define NGX_HTTP_SSE_CHUNK_HDR  18

static_assert(NGX_HTTP_SSE_CHUNK_HDR < 32, "it fits sub->hdr (5 bits)");

/* a sent buffer up to this size is kept for the next write */
#define NGX_HTTP_SSE_KEEP_BUFFER  65536

/*
 * The buffer cache: sizes 512, 1 KB, 2 KB and 4 KB, at most 64 KB of
 * each (128 buffers of 512 bytes ... 16 of 4 KB): 256 KB per worker at
 * most.
 */
#define NGX_HTTP_SSE_BUFFER_MIN     512
#define NGX_HTTP_SSE_BUFFER_SIZES   4
#define NGX_HTTP_SSE_CACHED_BYTES   65536


namespace {

ngx_uint_t ngx_http_sse_fits(ngx_http_sse_sub_t *sub, size_t len);
size_t ngx_http_sse_unsent(ngx_http_sse_sub_t *sub);
size_t ngx_http_sse_copied(ngx_http_sse_sub_t *sub);
ngx_uint_t ngx_http_sse_out_sent(ngx_http_sse_sub_t *sub);
ngx_int_t ngx_http_sse_append_shared(ngx_http_sse_sub_t *sub,
    ngx_http_sse_share_t *share, u_char *p, size_t len);
ngx_int_t ngx_http_sse_append(ngx_http_sse_sub_t *sub, u_char *p,
    size_t len);
ngx_int_t ngx_http_sse_append_id_line(ngx_http_sse_sub_t *sub);
void ngx_http_sse_flush_request(ngx_http_sse_sub_t *sub);
void ngx_http_sse_flush_detached(ngx_http_sse_sub_t *sub);
void ngx_http_sse_send_detached(ngx_http_sse_sub_t *sub);
void ngx_http_sse_write_handler(ngx_http_request_t *r);
void ngx_http_sse_release_request(ngx_http_sse_sub_t *sub);
ngx_uint_t ngx_http_sse_can_release(ngx_http_sse_sub_t *sub);
void ngx_http_sse_detached_read(ngx_event_t *rev);
void ngx_http_sse_detached_write(ngx_event_t *wev);
void ngx_http_sse_close(ngx_http_sse_sub_t *sub);
void ngx_http_sse_cleanup(void *data);
void ngx_http_sse_free(ngx_http_sse_sub_t *sub);
ngx_int_t ngx_http_sse_reserve(ngx_http_sse_sub_t *sub, size_t len);
void ngx_http_sse_sent(ngx_http_sse_sub_t *sub);
void ngx_http_sse_release_buffers(ngx_http_sse_sub_t *sub);
void ngx_http_sse_progress(ngx_http_sse_sub_t *sub);
void ngx_http_sse_swap_events(ngx_http_sse_sub_t *sub);
void ngx_http_sse_handed_over(ngx_http_sse_sub_t *sub);

const u_char  ngx_http_sse_last_chunk[] = "0\r\n\r\n";


/*
 * A quiet stream gives its buffers back (idle streams hold none), and a
 * stream that gets an event every few seconds, more than the two seconds
 * after which it counts as quiet, would then malloc and free a buffer per
 * event.  Small buffers go to this per-worker cache instead, one list per
 * size, each bounded: the next stream that needs one takes it from there.
 * A cached buffer's first bytes link it to the next one.
 */

typedef struct ngx_http_sse_cached_s  ngx_http_sse_cached_t;

struct ngx_http_sse_cached_s {
    ngx_http_sse_cached_t      *next;
};

ngx_http_sse_cached_t  *ngx_http_sse_cached[NGX_HTTP_SSE_BUFFER_SIZES];
ngx_uint_t              ngx_http_sse_ncached[NGX_HTTP_SSE_BUFFER_SIZES];


/* the cache's list for buffers of that capacity, or -1 */

ngx_int_t
ngx_http_sse_buffer_size(size_t cap)
{
    ngx_int_t  i;
    size_t     size;

    for (i = 0, size = NGX_HTTP_SSE_BUFFER_MIN;
         i < NGX_HTTP_SSE_BUFFER_SIZES;
         i++, size *= 2)
    {
        if (cap == size) {
            return i;
        }
    }

    return -1;
}


u_char *
ngx_http_sse_buffer_alloc(size_t cap)
{
    ngx_int_t               i;
    ngx_http_sse_cached_t  *b;

    i = ngx_http_sse_buffer_size(cap);

    if (i >= 0 && ngx_http_sse_cached[i]) {
        b = ngx_http_sse_cached[i];
        ngx_http_sse_cached[i] = b->next;
        ngx_http_sse_ncached[i]--;
        return (u_char *) b;
    }

    return (u_char *) ngx_alloc(cap, ngx_cycle->log);
}


void
ngx_http_sse_buffer_free(u_char *p, size_t cap)
{
    ngx_int_t               i;
    ngx_http_sse_cached_t  *b;

    if (p == NULL) {
        return;
    }

    i = ngx_http_sse_buffer_size(cap);

    if (i < 0 || (ngx_http_sse_ncached[i] + 1) * cap
                 > NGX_HTTP_SSE_CACHED_BYTES)
    {
        ngx_free(p);
        return;
    }

    b = (ngx_http_sse_cached_t *) p;
    b->next = ngx_http_sse_cached[i];
    ngx_http_sse_cached[i] = b;
    ngx_http_sse_ncached[i]++;
}


void
ngx_http_sse_release_out(ngx_http_sse_sub_t *sub)
{
    ngx_http_sse_buffer_free(sub->out, sub->out_cap);
    sub->out = NULL;
    sub->out_cap = 0;
    ngx_http_sse_refs_free(&sub->out_refs);

    if (sub->out_buf) {
        sub->out_buf->start = NULL;
        sub->out_buf->pos = NULL;
        sub->out_buf->last = NULL;
        sub->out_buf->end = NULL;
    }
}


/*
 * The sent buffer becomes the one that fills up next, if the stream has
 * none (it is then the stream's only buffer); otherwise it goes.  A
 * stream catching up on history so keeps one buffer through its pulls,
 * with no malloc and free per pull.
 */

void
ngx_http_sse_reuse_out(ngx_http_sse_sub_t *sub)
{
    ngx_http_sse_refs_t  *refs;

    if (sub->pend != NULL) {
        ngx_http_sse_release_out(sub);
        return;
    }

    /* both reference nothing: the sent one's were released when sent */

    sub->pend = sub->out;
    sub->pend_cap = sub->out_cap;
    sub->out = NULL;
    sub->out_cap = 0;
    refs = sub->pend_refs;
    sub->pend_refs = sub->out_refs;
    sub->out_refs = refs;

    if (sub->out_buf) {
        sub->out_buf->start = NULL;
        sub->out_buf->pos = NULL;
        sub->out_buf->last = NULL;
        sub->out_buf->end = NULL;
    }
}

} // namespace


ngx_http_sse_sub_t *
ngx_http_sse_sub_create(ngx_http_request_t *r, ngx_uint_t nchans)
{
    ngx_uint_t                 ids;
    ngx_http_sse_sub_t        *sub;
    ngx_pool_cleanup_t        *cln;
    ngx_http_core_loc_conf_t  *clcf;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    /* not on the request's pool: the stream may outlive the request */

    ids = ngx_http_sse_log_ids(r);

    sub = (ngx_http_sse_sub_t *)
              ngx_calloc(sizeof(ngx_http_sse_sub_t)
                         + nchans * (sizeof(ngx_http_sse_sub_chan_t)
                                     + (ids ? 2 * sizeof(sse::Position) : 0)),
                         r->connection->log);
    if (sub == NULL) {
        return NULL;
    }

    sub->out_buf = (ngx_buf_t *) ngx_calloc_buf(r->pool);
    if (sub->out_buf == NULL) {
        ngx_free(sub);
        return NULL;
    }

    cln->handler = ngx_http_sse_cleanup;
    cln->data = sub;

    clcf = (ngx_http_core_loc_conf_t *)
               ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    sub->request = r;
    sub->connection = r->connection;
    sub->cleanup = cln;
    sub->nchans = nchans;
    sub->chans = (ngx_http_sse_sub_chan_t *) (sub + 1);
    sub->ids = ids;
    sub->last_write = ngx_current_msec;
    sub->started = ngx_current_msec;
    sub->send_timeout = (uint32_t) ngx_min(clcf->send_timeout,
                                           NGX_MAX_UINT32_VALUE);

    sub->out_buf->memory = 1;
    sub->out_buf->flush = 1;
    sub->out_cl.buf = sub->out_buf;
    sub->out_cl.next = NULL;

    return sub;
}


/* the headers are sent and the replay is queued: the stream goes live */

ngx_int_t
ngx_http_sse_sub_start(ngx_http_sse_sub_t *sub)
{
    ngx_http_request_t        *r = sub->request;
    ngx_http_core_loc_conf_t  *clcf;

    /*
     * nginx sets TCP_NODELAY only on keepalive, TLS and HTTP/2
     * connections; without it, two events published close together
     * would wait for the client's delayed ACK.
     */

    clcf = (ngx_http_core_loc_conf_t *)
               ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (clcf->tcp_nodelay) {
        (void) ngx_tcp_nodelay(r->connection);
    }

    ngx_queue_insert_tail(&ngx_http_sse_streams, &sub->all);
    ngx_http_sse_nstreams++;
    ngx_http_sse_sweep_arm();

    ngx_http_set_ctx(r, sub, ngx_http_sse_module);

    r->main->count++;
    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_sse_write_handler;

    ngx_http_sse_flush_request(sub);

    if (ngx_exiting) {
        /* a worker on its way out: the client resumes on a new one */
        ngx_http_sse_sub_reason(sub, NGX_HTTP_SSE_CLOSE_SHUTDOWN);
        ngx_http_sse_sub_end(sub, 1);
        return NGX_DONE;
    }

    /*
     * The request can only be let go after the content phase has
     * returned: the write event does it, later in this event cycle.
     */

    if (!sub->dropping) {
        ngx_post_event(r->connection->write, &ngx_posted_events);
    }

    return NGX_DONE;
}


/*
 * Appends one event to a stream, unless the stream has it already.  An
 * event that is not the next one of the channel for this stream, or that
 * does not fit in its buffer (sse_max_pending), is not appended: the
 * stream is then behind on that channel and pulls from history as its
 * socket drains (NGX_DECLINED).  On a multi-channel stream the id line is
 * the stream's own: the positions of all its channels.
 */

ngx_int_t
ngx_http_sse_sub_append_event(ngx_http_sse_sub_chan_t *sc, uint64_t seq,
    u_char *wire, size_t len, size_t id_len, uint64_t cum,
    ngx_msec_t published, ngx_http_sse_share_t *share)
{
    size_t               need;
    ngx_int_t            rc;
    ngx_http_sse_sub_t  *sub = sc->sub;

    if (sub->done || seq <= sc->pos.seq) {
        return NGX_OK;
    }

    /* the limit applies to the whole event, its own id line included */
    need = (sub->nchans == 1) ? len : sse::max_id_len + len - id_len;

    if (seq != sc->pos.seq + 1 || !ngx_http_sse_fits(sub, need)) {
        if (sc->state == NGX_HTTP_SSE_SC_LIVE) {
            sc->state = NGX_HTTP_SSE_SC_BEHIND;
            sub->nbehind++;
            sc->local->nbehind++;
        }

        return NGX_DECLINED;
    }

    sc->pos.seq = seq;
    sc->pos_cum = cum;

    /*
     * A large event the fan-out shares (share: wire is share->wire) is
     * referenced, not copied; the id line of a stream of several channels
     * is the stream's own, copied in front of it.
     */

    if (sub->nchans == 1) {
        rc = ngx_http_sse_append_shared(sub, share, wire, len);

    } else {
        rc = ngx_http_sse_append_id_line(sub);

        if (rc == NGX_OK) {
            rc = ngx_http_sse_append_shared(sub, share, wire + id_len,
                                            len - id_len);
        }
    }

    if (rc != NGX_OK) {
        /*
         * The caller drops the stream: a pull calls this with the zone
         * locked, and dropping takes the lock (nginx's is not re-entrant).
         */
        ngx_log_error(NGX_LOG_ERR, sub->connection->log, 0,
                      "sse: no memory for a stream's buffer");
        return NGX_ERROR;
    }

    sub->zone->delivered++;
    ngx_http_sse_metrics_event(sub, published);
    sub->pend_events++;

    return NGX_OK;
}


/*
 * A stream behind on a channel whose unsent bytes and the channel's bytes
 * after its position add up to more than it may be behind is dropped as
 * too slow (the client resumes from history): returns 1 then.
 */

ngx_uint_t
ngx_http_sse_sub_too_far(ngx_http_sse_sub_t *sub, ngx_http_sse_sub_chan_t *sc,
    uint64_t total)
{
    size_t  unsent;

    if (sub->limit == 0) {
        return 0;
    }

    unsent = ngx_http_sse_unsent(sub);

    if (unsent + (total - sc->pos_cum) <= sub->limit) {
        return 0;
    }

    sub->zone->store->count(sub->zone, NGX_HTTP_SSE_COUNT_DROPPED_SLOW, 1);
    ngx_log_error(NGX_LOG_INFO, sub->connection->log, 0,
                  "sse: client is too slow, %uz bytes unsent and %uL more "
                  "behind", unsent, total - sc->pos_cum);
    ngx_http_sse_sub_reason(sub, NGX_HTTP_SSE_CLOSE_SLOW);
    ngx_http_sse_sub_drop(sub);

    return 1;
}


/*
 * Writes what a stream has, and while its socket takes everything and the
 * stream is behind, pulls more from history.  A few rounds at most per
 * call: then the rest waits for the next event cycle, so one fast reader
 * of a long replay does not hold up the worker.  NGX_DONE: the stream
 * may have ended and been freed.
 */

ngx_int_t
ngx_http_sse_sub_send(ngx_http_sse_sub_t *sub)
{
    ngx_int_t             rc;
    ngx_uint_t            i;
    ngx_http_sse_zone_t  *zone = sub->zone;

    for (i = 0; /* void */; i++) {

        if (sub->done || sub->dropping) {
            ngx_http_sse_sub_flush(sub);
            return NGX_DONE;
        }

        ngx_http_sse_sub_flush(sub);

        if (sub->done || sub->dropping) {
            return NGX_DONE;
        }

        /*
         * A replay is pulled only once everything before it is sent: the
         * stream holds one buffer of at most sse_max_pending, however
         * much it has to replay.
         */

        if (sub->nbehind == 0 || sub->pend_len || sub->out_busy) {
            return NGX_OK;
        }

        if (sub->out) {
            /* while it catches up, one buffer is enough: it fills up next */
            ngx_http_sse_reuse_out(sub);
        }

        if (i == 4) {
            ngx_post_event(sub->connection->write, &ngx_posted_next_events);
            return NGX_OK;
        }

        rc = ngx_http_sse_sub_pull(sub);

        if (zone->delivered) {
            zone->store->count(zone, NGX_HTTP_SSE_COUNT_DELIVERED,
                               zone->delivered);
            zone->delivered = 0;
        }

        if (rc != NGX_OK) {
            ngx_http_sse_sub_pulled(sub, rc);
            return NGX_DONE;
        }

        if (sub->pend_len == 0) {
            /* nothing more to pull now, or no room until the socket drains */
            return NGX_OK;
        }
    }
}


/* what a pull found, acted on after unlocking */

void
ngx_http_sse_sub_pulled(ngx_http_sse_sub_t *sub, ngx_int_t rc)
{
    switch (rc) {

    case NGX_HTTP_SSE_PULL_END:
        ngx_http_sse_sub_reason(sub, NGX_HTTP_SSE_CLOSE_DELETED);
        ngx_http_sse_sub_end(sub, 1);
        break;

    case NGX_HTTP_SSE_PULL_GAP:
        /* evicted, or past what a worker is waited for: too slow */
        sub->zone->store->count(sub->zone, NGX_HTTP_SSE_COUNT_DROPPED_SLOW,
                                1);
        ngx_log_error(NGX_LOG_INFO, sub->connection->log, 0,
                      "sse: client is too slow, events it still needed "
                      "left history");
        ngx_http_sse_sub_reason(sub, NGX_HTTP_SSE_CLOSE_SLOW);
        ngx_http_sse_sub_drop(sub);
        break;

    case NGX_ERROR:
        /* no memory for its buffer: dropped now that the zone is unlocked */
        ngx_http_sse_sub_drop(sub);
        break;

    default: /* NGX_OK */
        break;
    }
}


/* NGX_DECLINED: the stream is too far behind (sse_max_pending) */

ngx_int_t
ngx_http_sse_sub_append_raw(ngx_http_sse_sub_t *sub, u_char *p, size_t len)
{
    if (!ngx_http_sse_fits(sub, len)) {
        return NGX_DECLINED;
    }

    return ngx_http_sse_append(sub, p, len);
}


/*
 * An event of the stream's own (a reset): its id line (the stream's
 * positions), then body; the whole of it or nothing (NGX_DECLINED: it
 * does not fit, sse_max_pending).
 */

ngx_int_t
ngx_http_sse_sub_append_own(ngx_http_sse_sub_t *sub, u_char *body,
    size_t len)
{
    ngx_int_t  rc;

    if (!ngx_http_sse_fits(sub, sse::max_id_len + 5 + len)) {
        return NGX_DECLINED;
    }

    rc = ngx_http_sse_append_id_line(sub);

    if (rc == NGX_OK) {
        rc = ngx_http_sse_append(sub, body, len);
    }

    if (rc == NGX_OK) {
        sub->pend_events++;
    }

    return rc;
}


void
ngx_http_sse_sub_flush(ngx_http_sse_sub_t *sub)
{
    if (sub->dropping) {
        return;
    }

    if (sub->detached) {
        ngx_http_sse_flush_detached(sub);

    } else if (!sub->done) {
        ngx_http_sse_flush_request(sub);
    }
}


/* leaves the channels: from now on no event reaches this stream */

void
ngx_http_sse_sub_leave(ngx_http_sse_sub_t *sub)
{
    ngx_uint_t                i, joined;
    ngx_http_sse_zone_t      *zone = sub->zone;
    ngx_http_sse_local_t     *local;
    ngx_http_sse_sub_chan_t  *sc;

    joined = sub->counted;

    for (i = 0; i < sub->nchans; i++) {
        if (sub->chans[i].state != NGX_HTTP_SSE_SC_OUT) {
            joined = 1;
        }
    }

    if (!joined) {
        return;
    }

    zone->store->leave(zone, sub);

    for (i = 0; i < sub->nchans; i++) {
        sc = &sub->chans[i];
        local = sc->local;

        if (sc->state == NGX_HTTP_SSE_SC_OUT) {
            continue;
        }

        if (sc->state == NGX_HTTP_SSE_SC_BEHIND) {
            sub->nbehind--;
            local->nbehind--;
        }

        ngx_queue_remove(&sc->link);
        sc->local = NULL;
        sc->state = NGX_HTTP_SSE_SC_OUT;
        local->nsubs--;
        ngx_http_sse_local_put(local);
    }
}


/*
 * Ends a stream: what is queued goes out, then the end of the response;
 * the client reconnects and resumes from its last id.  May free the
 * stream at once.
 */

void
ngx_http_sse_sub_end(ngx_http_sse_sub_t *sub, ngx_uint_t graceful)
{
    ngx_int_t            rc;
    ngx_buf_t           *b;
    ngx_chain_t         *cl;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    if (sub->done || sub->dropping) {
        return;
    }

    if (!graceful) {
        ngx_http_sse_sub_drop(sub);
        return;
    }

    ngx_http_sse_sub_leave(sub);
    sub->done = 1;

    if (sub->detached) {
        sub->ending = 1;
        ngx_http_sse_flush_detached(sub);
        return;
    }

    /*
     * On the request, nginx's own writer sends the rest, within
     * send_timeout, and finalizes the request.
     */

    r = sub->request;
    rc = NGX_OK;

    /* what is handed to nginx's writer now counts as sent */
    ngx_http_sse_handed_over(sub);

    if (sub->pend_len) {
        b = (ngx_buf_t *) ngx_calloc_buf(r->pool);
        cl = ngx_alloc_chain_link(r->pool);

        if (b == NULL || cl == NULL) {
            rc = NGX_ERROR;

        } else {
            /*
             * sub->pend, and the blocks it references, live until the
             * request's pool is destroyed (ngx_http_sse_free() from its
             * cleanup): nothing is appended to it any more
             */
            b->memory = 1;
            b->flush = 1;
            b->start = sub->pend;
            b->pos = sub->pend;
            b->last = sub->pend + ngx_http_sse_copied(sub);
            b->end = b->last;
            cl->buf = b;
            cl->next = NULL;

            if (sub->pend_refs && sub->pend_refs->nrefs) {
                cl = ngx_http_sse_refs_chain(sub->pend_refs, b->pos, b->pos,
                                             b->last);
            }

            sub->pend_len = 0;
            ngx_http_sse_metrics_handed(sub);

            rc = ngx_http_output_filter(r, cl);
        }
    }

    if (rc != NGX_ERROR) {
        rc = ngx_http_send_special(r, NGX_HTTP_LAST);
    }

    /* not inside an HTTP event handler: run what finalizing posted */
    c = r->connection;
    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/*
 * Closes a stream at once.  Deferred to the connection's write event, so
 * that the stream is never freed under its caller (a fan-out walking its
 * subscribers, say).
 */

void
ngx_http_sse_sub_drop(ngx_http_sse_sub_t *sub)
{
    ngx_connection_t  *c = sub->connection;

    if (sub->dropping) {
        return;
    }

    ngx_http_sse_sub_leave(sub);
    ngx_http_sse_sub_reason(sub, NGX_HTTP_SSE_CLOSE_ERROR);

    sub->done = 1;
    sub->dropping = 1;
    c->error = 1;

    ngx_post_event(c->write, &ngx_posted_events);
}


/* once a second from the worker's sweep: heartbeats, lifetime, stalls */

void
ngx_http_sse_sub_tick(ngx_http_sse_sub_t *sub, time_t now)
{
    if (sub->dropping || (sub->done && !sub->detached)) {
        /* nginx's writer owns an ended request */
        return;
    }

    if (!sub->done && sub->deadline && now >= sub->deadline) {
        ngx_http_sse_sub_reason(sub, sub->token_deadline
                                     ? NGX_HTTP_SSE_CLOSE_TOKEN
                                     : NGX_HTTP_SSE_CLOSE_LIFETIME);
        ngx_http_sse_sub_end(sub, 1);
        return;
    }

    /*
     * In milliseconds: the sweep's one-second tick makes the drop up to a
     * second late, never early (a whole-second stamp could end a stream
     * blocked for send_timeout minus one second).
     */

    if (sub->blocked_since) {
        /* signed: a stamp made non-zero may be a millisecond ahead */
        if ((ngx_msec_int_t) (ngx_current_msec - sub->blocked_since)
            >= (ngx_msec_int_t) sub->send_timeout)
        {
            ngx_log_error(NGX_LOG_INFO, sub->connection->log, NGX_ETIMEDOUT,
                          "sse: client timed out");

            if (!sub->done) {
                sub->zone->store->count(sub->zone,
                                        NGX_HTTP_SSE_COUNT_DROPPED_SLOW, 1);
            }

            ngx_http_sse_sub_reason(sub, NGX_HTTP_SSE_CLOSE_TIMEOUT);
            ngx_http_sse_sub_drop(sub);
        }

        return;
    }

    if (sub->done) {
        return;
    }

    if (sub->heartbeat
        && (ngx_msec_int_t) (ngx_current_msec - sub->last_write)
           >= (ngx_msec_int_t) sub->heartbeat)
    {
        if (ngx_http_sse_sub_append_raw(sub, (u_char *) ":\n\n", 3)
            != NGX_OK)
        {
            ngx_http_sse_sub_drop(sub);
            return;
        }

        ngx_http_sse_sub_flush(sub);
        return;
    }

    if (ngx_current_msec - sub->last_write >= 2000) {
        ngx_http_sse_release_buffers(sub);
    }
}


/* the worker shuts down or reloads: every stream ends now */

void
ngx_http_sse_end_all(ngx_uint_t graceful)
{
    ngx_queue_t         *q, *next;
    ngx_http_sse_sub_t  *sub;

    for (q = ngx_queue_head(&ngx_http_sse_streams);
         q != ngx_queue_sentinel(&ngx_http_sse_streams);
         q = next)
    {
        next = ngx_queue_next(q);
        sub = ngx_queue_data(q, ngx_http_sse_sub_t, all);

        ngx_http_sse_sub_reason(sub, NGX_HTTP_SSE_CLOSE_SHUTDOWN);
        ngx_http_sse_sub_end(sub, graceful);
    }
}


/*
 * An exiting worker gave its streams a moment to send their last bytes:
 * whatever is still blocked now is closed, so that the worker exits.  A
 * stream on its request (HTTP/1.0, HTTP/2, a pipelined request behind it)
 * waits in nginx's writer, within send_timeout: it is terminated the way
 * nginx ends idle connections at shutdown, c->close and its event
 * handler; for HTTP/2 that closes the stream (RST_STREAM), and the
 * connection, GOAWAY sent, ends when its streams have.
 */

void
ngx_http_sse_close_all(void)
{
    ngx_queue_t         *q, *next;
    ngx_connection_t    *c;
    ngx_http_sse_sub_t  *sub;

    for (q = ngx_queue_head(&ngx_http_sse_streams);
         q != ngx_queue_sentinel(&ngx_http_sse_streams);
         q = next)
    {
        next = ngx_queue_next(q);
        sub = ngx_queue_data(q, ngx_http_sse_sub_t, all);

        ngx_http_sse_sub_reason(sub, NGX_HTTP_SSE_CLOSE_SHUTDOWN);

        if (sub->detached) {
            ngx_http_sse_close(sub);
            continue;
        }

        c = sub->request->connection;
        c->close = 1;
        ngx_post_event(c->write, &ngx_posted_events);

#if (NGX_HTTP_V2)
        if (sub->request->stream) {
            /*
             * Without this the connection would linger after its last
             * stream, up to lingering_timeout, for a client that neither
             * reads nor closes.
             */
            sub->request->stream->connection->connection->error = 1;
        }
#endif
    }
}


namespace {

/*
 * sse_max_pending bounds how far a stream falls behind, not the size of
 * an event: a stream with nothing unsent takes any event.
 */

ngx_uint_t
ngx_http_sse_fits(ngx_http_sse_sub_t *sub, size_t len)
{
    size_t  unsent;

    unsent = ngx_http_sse_unsent(sub);

    return sub->max_pending == 0 || unsent == 0
           || unsent + len <= sub->max_pending;
}


size_t
ngx_http_sse_unsent(ngx_http_sse_sub_t *sub)
{
    size_t  unsent;

    unsent = sub->pend_len;

    if (!sub->out_busy) {
        return unsent;
    }

    if (sub->out_refs && sub->out_refs->nrefs) {
        /* its chain: on a detached stream, what send_chain() left */
        return unsent + ngx_http_sse_refs_unsent(sub->out_refs);
    }

    unsent += sub->detached ? (size_t) (sub->out_last - sub->out_pos)
                            : (size_t) ngx_buf_size(sub->out_buf);

    return unsent;
}


/* of the bytes pending, those in the buffer (the rest are referenced) */

size_t
ngx_http_sse_copied(ngx_http_sse_sub_t *sub)
{
    return sub->pend_len - (sub->pend_refs ? sub->pend_refs->bytes : 0);
}


/* the buffer handed to the filter chain is sent */

ngx_uint_t
ngx_http_sse_out_sent(ngx_http_sse_sub_t *sub)
{
    if (sub->out_refs && sub->out_refs->nrefs) {
        return ngx_http_sse_refs_unsent(sub->out_refs) == 0;
    }

    return ngx_buf_size(sub->out_buf) == 0;
}


ngx_int_t
ngx_http_sse_append(ngx_http_sse_sub_t *sub, u_char *p, size_t len)
{
    if (ngx_http_sse_reserve(sub, len) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_memcpy(sub->pend + sub->hdr + ngx_http_sse_copied(sub), p, len);
    sub->pend_len += len;

    return NGX_OK;
}


/*
 * Bytes of a shared event are referenced, if they are large enough to be
 * worth it; otherwise (or when the buffer references as many blocks as it
 * may) copied.  A detached TLS stream copies: its writes encrypt one
 * buffer at a time, so a chain would only make more, smaller records.
 */

ngx_int_t
ngx_http_sse_append_shared(ngx_http_sse_sub_t *sub,
    ngx_http_sse_share_t *share, u_char *p, size_t len)
{
    if (share == NULL
        || len < NGX_HTTP_SSE_BLOCK_MIN
        || (sub->detached && sub->connection->ssl))
    {
        return ngx_http_sse_append(sub, p, len);
    }

    /* the buffer, for the copied bytes around it (a chunk's framing) */
    if (ngx_http_sse_reserve(sub, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_sse_refs_add(&sub->pend_refs, share, p, len,
                              ngx_http_sse_copied(sub))
        != NGX_OK)
    {
        return ngx_http_sse_append(sub, p, len);
    }

    sub->pend_len += len;

    return NGX_OK;
}


ngx_int_t
ngx_http_sse_append_id_line(ngx_http_sse_sub_t *sub)
{
    u_char         line[sse::max_id_len + 8];
    size_t         len;
    ngx_uint_t     i;
    sse::Position  pos[sse::max_channels_per_stream];

    for (i = 0; i < sub->nchans; i++) {
        pos[i] = sub->chans[i].pos;
    }

    len = sse::format_id(line + 4, pos, sub->nchans);

    ngx_memcpy(line, "id: ", 4);
    line[4 + len] = '\n';

    return ngx_http_sse_append(sub, line, 4 + len + 1);
}


void
ngx_http_sse_flush_request(ngx_http_sse_sub_t *sub)
{
    u_char               *p;
    size_t                cap, copied;
    ngx_int_t             rc;
    ngx_chain_t          *out;
    ngx_http_request_t   *r = sub->request;
    ngx_http_sse_refs_t  *refs;

    /*
     * TLS may have taken the last bytes of a buffer into its own and not
     * written them yet (the socket was full): the buffer counts as sent,
     * but those bytes go out only when nginx's writer runs again.  This
     * write event runs it, not the next event published (with heartbeats
     * off, perhaps never).
     */

    if (sub->out_busy || (r->connection->buffered & NGX_LOWLEVEL_BUFFERED)) {
        rc = ngx_http_output_filter(r, NULL);

        if (rc == NGX_ERROR) {
            ngx_http_sse_sub_drop(sub);
            return;
        }

        if (sub->out_busy) {
            if (ngx_http_sse_out_sent(sub)) {
                ngx_http_sse_sent(sub);

            } else {
                ngx_http_sse_progress(sub);
            }
        }
    }

    if (!sub->out_busy && sub->pend_len) {

        /* the filled buffer goes out, the sent one fills up next */

        copied = ngx_http_sse_copied(sub);

        p = sub->out;
        cap = sub->out_cap;
        sub->out = sub->pend;
        sub->out_cap = sub->pend_cap;
        sub->pend = p;
        sub->pend_cap = cap;
        refs = sub->out_refs;
        sub->out_refs = sub->pend_refs;
        sub->pend_refs = refs;

        sub->out_buf->start = sub->out;
        sub->out_buf->pos = sub->out;
        sub->out_buf->last = sub->out + copied;
        sub->out_buf->end = sub->out + sub->out_cap;
        out = &sub->out_cl;

        if (sub->out_refs && sub->out_refs->nrefs) {
            /* its own bytes and the blocks it references, in order */
            out = ngx_http_sse_refs_chain(sub->out_refs, sub->out, sub->out,
                                          sub->out + copied);
            sub->out_buf->pos = sub->out_buf->last;
        }

        sub->pend_len = 0;
        ngx_http_sse_metrics_swap(sub);
        ngx_http_sse_swap_events(sub);

        sub->out_busy = 1;
        sub->last_write = ngx_current_msec;

        rc = ngx_http_output_filter(r, out);

        if (rc == NGX_ERROR) {
            ngx_http_sse_sub_drop(sub);
            return;
        }

        if (ngx_http_sse_out_sent(sub)) {
            ngx_http_sse_sent(sub);

        } else {
            ngx_http_sse_progress(sub);
        }
    }

    if (sub->out_busy || sub->pend_len
        || (r->connection->buffered & NGX_LOWLEVEL_BUFFERED))
    {
        if (sub->blocked_since == 0) {
            sub->blocked_since = ngx_current_msec | 1;
        }

        if (ngx_handle_write_event(r->connection->write, 0) != NGX_OK) {
            ngx_http_sse_sub_drop(sub);
        }

        return;
    }

    sub->blocked_since = 0;

    if (sub->nbehind == 0) {
        /* a replay allowance is over once the stream caught up */
        sub->limit = sub->max_pending;
    }
}


void
ngx_http_sse_flush_detached(ngx_http_sse_sub_t *sub)
{
    u_char               *p, *start, *end;
    u_char                head[NGX_HTTP_SSE_CHUNK_HDR + 2];
    size_t                cap, len, copied;
    ngx_http_sse_refs_t  *refs;

    if (sub->out_busy) {
        ngx_http_sse_send_detached(sub);

        if (sub->dropping || sub->out_busy) {
            goto blocked;
        }
    }

    if (sub->pend_len) {

        /* the filled buffer becomes one chunk: header, data, CRLF */

        copied = ngx_http_sse_copied(sub);

        p = sub->out;
        cap = sub->out_cap;
        sub->out = sub->pend;
        sub->out_cap = sub->pend_cap;
        sub->pend = p;
        sub->pend_cap = cap;
        refs = sub->out_refs;
        sub->out_refs = sub->pend_refs;
        sub->pend_refs = refs;

        start = sub->out + sub->hdr;
        end = start + copied;

        if (sub->chunked) {
            len = ngx_sprintf(head, "%xz\r\n", sub->pend_len) - head;

            start -= len;
            ngx_memcpy(start, head, len);

            *end++ = CR;
            *end++ = LF;
        }

        sub->out_pos = start;
        sub->out_last = end;

        if (sub->out_refs && sub->out_refs->nrefs) {
            /* its own bytes and the blocks it references, in order */
            sub->out_chain = ngx_http_sse_refs_chain(sub->out_refs, start,
                                                     sub->out + sub->hdr,
                                                     end);
            sub->out_pos = NULL;
            sub->out_last = NULL;
        }

        sub->pend_len = 0;
        ngx_http_sse_metrics_swap(sub);
        ngx_http_sse_swap_events(sub);
        sub->out_busy = 1;
        sub->last_write = ngx_current_msec;

        ngx_http_sse_send_detached(sub);

        if (sub->dropping || sub->out_busy) {
            goto blocked;
        }
    }

    sub->blocked_since = 0;

    if (sub->nbehind == 0) {
        sub->limit = sub->max_pending;
    }

    if (!sub->ending) {
        return;
    }

    if (sub->chunked && sub->out_last != ngx_http_sse_last_chunk + 5) {
        /*
         * the end of the response: the client will resume; without
         * chunks, closing the connection is the end
         */
        sub->out_pos = (u_char *) ngx_http_sse_last_chunk;
        sub->out_last = (u_char *) ngx_http_sse_last_chunk + 5;
        sub->out_busy = 1;

        ngx_http_sse_send_detached(sub);

        if (sub->dropping || sub->out_busy) {
            goto blocked;
        }
    }

    ngx_http_sse_close(sub);
    return;

blocked:

    if (sub->dropping) {
        return;
    }

    if (sub->blocked_since == 0) {
        sub->blocked_since = ngx_current_msec | 1;
    }

    if (ngx_handle_write_event(sub->connection->write, 0) != NGX_OK) {
        ngx_http_sse_sub_drop(sub);
    }
}


void
ngx_http_sse_send_detached(ngx_http_sse_sub_t *sub)
{
    ssize_t            n;
    ngx_err_t          err;
    ngx_chain_t       *cl;
    ngx_connection_t  *c = sub->connection;

    if (sub->out_chain) {
        /* writev(): the blocks are sent from where they are */
        cl = c->send_chain(c, sub->out_chain, 0);

        if (cl == NGX_CHAIN_ERROR) {
            err = ngx_socket_errno;

            if (err == NGX_ECONNRESET || err == NGX_EPIPE) {
                ngx_http_sse_sub_reason(sub, NGX_HTTP_SSE_CLOSE_CLIENT);
            }

            ngx_http_sse_sub_drop(sub);
            return;
        }

        sub->out_chain = cl;

        if (cl) {
            ngx_http_sse_progress(sub);
            return;
        }

        ngx_http_sse_sent(sub);
        return;
    }

    while (sub->out_pos < sub->out_last) {
        n = c->send(c, sub->out_pos, sub->out_last - sub->out_pos);

        if (n == NGX_AGAIN) {
            ngx_http_sse_progress(sub);
            return;
        }

        if (n == NGX_ERROR || n == 0) {
            /* errno as send() left it: a client that went away resets */
            err = ngx_socket_errno;

            if (err == NGX_ECONNRESET || err == NGX_EPIPE) {
                ngx_http_sse_sub_reason(sub, NGX_HTTP_SSE_CLOSE_CLIENT);
            }

            ngx_http_sse_sub_drop(sub);
            return;
        }

        /* c->send() counts c->sent ($bytes_sent) */
        sub->out_pos += n;
    }

    ngx_http_sse_sent(sub);
}


void
ngx_http_sse_write_handler(ngx_http_request_t *r)
{
    ngx_http_sse_sub_t  *sub;

    sub = (ngx_http_sse_sub_t *) ngx_http_get_module_ctx(r,
                                                         ngx_http_sse_module);
    if (sub == NULL) {
        return;
    }

    if (sub->dropping) {
        sub->dropping = 0;
        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }

    if (ngx_http_sse_sub_send(sub) == NGX_DONE) {
        return;
    }

    if (ngx_http_sse_can_release(sub)) {
        ngx_http_sse_release_request(sub);
    }
}


/*
 * A chunked or a close-delimited HTTP/1.x response with nothing in flight.
 * nginx asks for a lingering close whenever a body was announced; once
 * the whole body was read and discarded (content_length_n is then 0),
 * nothing more can come that it would wait for.  A stream that
 * limit_conn counted keeps its request: limit_conn gives its count back
 * from a cleanup of the request's pool, which must live as long as the
 * stream does.
 */

ngx_uint_t
ngx_http_sse_can_release(ngx_http_sse_sub_t *sub)
{
    ngx_http_request_t  *r = sub->request;

    return r == r->main
           && r->main->count == 1
#if (NGX_HTTP_V2)
           && r->stream == NULL
#endif
           && (r->http_version == NGX_HTTP_VERSION_11
               || r->http_version == NGX_HTTP_VERSION_10)
           && (r->chunked
               || (!r->keepalive && r->headers_out.content_length_n == -1))
           && !r->header_only
           && !r->buffered
           && !r->postponed
           && !r->reading_body
           && !r->discard_body
           && (!r->lingering_close || r->headers_in.content_length_n == 0)
           && !r->blocked
           && r->main->limit_conn_status == 0
           && r->out == NULL
           && r->header_in->pos == r->header_in->last
           && !r->connection->buffered
           && !r->connection->error
           && !sub->done
           && !sub->dropping
           && !sub->out_busy
           && sub->pend_len == 0;
}


/*
 * The stream keeps the connection and lets its request go, freeing what
 * an idle connection does not need, as nginx does for keepalive.
 */

void
ngx_http_sse_release_request(ngx_http_sse_sub_t *sub)
{
    ngx_buf_t              *b;
    ngx_chain_t            *cl, *ln;
    ngx_connection_t       *c;
    ngx_http_request_t     *r = sub->request;
    ngx_http_connection_t  *hc;

    c = r->connection;
    hc = r->http_connection;

    /* the request's pool goes now; the stream stays */
    sub->cleanup->handler = NULL;
    sub->cleanup = NULL;
    sub->out_buf = NULL;
    sub->request = NULL;
    sub->detached = 1;
    sub->chunked = r->chunked;

    ngx_http_sse_release_buffers(sub);
    sub->hdr = sub->chunked ? NGX_HTTP_SSE_CHUNK_HDR : 0;

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    /* its access-log line is written when the stream ends */
    ngx_http_sse_log_detach(sub, r);

    r->keepalive = 0;
    ngx_http_free_request(r, 0);

    c->data = sub;
    ngx_http_sse_log_detached(sub);

    b = c->buffer;

    if (b && ngx_pfree(c->pool, b->start) == NGX_OK) {
        c->buffer = NULL;
    }

    /* large header buffers, free or used by the request */

    for (cl = hc->free; cl; cl = ln) {
        ln = cl->next;
        ngx_pfree(c->pool, cl->buf->start);
        ngx_free_chain(c->pool, cl);
    }

    for (cl = hc->busy; cl; cl = ln) {
        ln = cl->next;
        ngx_pfree(c->pool, cl->buf->start);
        ngx_free_chain(c->pool, cl);
    }

    hc->free = NULL;
    hc->busy = NULL;
    hc->nbusy = 0;

#if (NGX_HTTP_SSL)
    if (c->ssl) {
        ngx_ssl_free_buffer(c);
    }
#endif

    c->log->action = (char *) "streaming events";
    c->read->handler = ngx_http_sse_detached_read;
    c->write->handler = ngx_http_sse_detached_write;

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_http_sse_close(sub);
        return;
    }

    if (c->read->ready) {
        /* whatever arrived meanwhile, an end of file included */
        ngx_post_event(c->read, &ngx_posted_events);
    }
}


/* a detached stream's client sends nothing: watch for it going away */

void
ngx_http_sse_detached_read(ngx_event_t *rev)
{
    u_char               buf[256];
    ssize_t              n;
    ngx_uint_t           i;
    ngx_connection_t    *c = (ngx_connection_t *) rev->data;
    ngx_http_sse_sub_t  *sub = (ngx_http_sse_sub_t *) c->data;

    for (i = 0; i < 16; i++) {
        n = c->recv(c, buf, sizeof(buf));

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == 0 || n == NGX_ERROR) {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "sse: client closed the stream");
            ngx_http_sse_sub_reason(sub, NGX_HTTP_SSE_CLOSE_CLIENT);
            ngx_http_sse_close(sub);
            return;
        }

        /* bytes from a client that only listens are ignored */
    }

    if (rev->ready) {
        /* more to read: next cycle, so a chatty client cannot hog the worker */
        ngx_post_event(rev, &ngx_posted_next_events);
        return;
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_http_sse_close(sub);
    }
}


void
ngx_http_sse_detached_write(ngx_event_t *wev)
{
    ngx_connection_t    *c = (ngx_connection_t *) wev->data;
    ngx_http_sse_sub_t  *sub = (ngx_http_sse_sub_t *) c->data;

    if (sub->dropping) {
        ngx_http_sse_close(sub);
        return;
    }

    ngx_http_sse_sub_send(sub);
}


/* frees a detached stream and closes its connection */

void
ngx_http_sse_close(ngx_http_sse_sub_t *sub)
{
    ngx_connection_t  *c = sub->connection;

    ngx_http_sse_log_end(sub);
    ngx_http_sse_free(sub);

    c->data = NULL;
    ngx_http_close_connection(c);
}


void
ngx_http_sse_cleanup(void *data)
{
    ngx_http_sse_free((ngx_http_sse_sub_t *) data);
}


void
ngx_http_sse_free(ngx_http_sse_sub_t *sub)
{
    ngx_http_sse_sub_leave(sub);

    /* its duration, while sub->all still tells whether it started */
    ngx_http_sse_metrics_stream_end(sub);

    if (sub->all.next) {
        ngx_queue_remove(&sub->all);
        ngx_http_sse_nstreams--;
    }

    if (sub->zone->delivered) {
        sub->zone->store->count(sub->zone, NGX_HTTP_SSE_COUNT_DELIVERED,
                                sub->zone->delivered);
        sub->zone->delivered = 0;
    }

    ngx_http_sse_buffer_free(sub->pend, sub->pend_cap);
    ngx_http_sse_buffer_free(sub->out, sub->out_cap);

    /* whatever nginx held of them went with the request or connection */
    ngx_http_sse_refs_free(&sub->pend_refs);
    ngx_http_sse_refs_free(&sub->out_refs);

    ngx_free(sub->log);
    ngx_free(sub);
}


ngx_int_t
ngx_http_sse_reserve(ngx_http_sse_sub_t *sub, size_t len)
{
    u_char  *p;
    size_t   need, cap, most;

    /* the chunk header in front, the chunk's CRLF behind */
    need = sub->hdr + ngx_http_sse_copied(sub) + len + 2;

    if (need <= sub->pend_cap) {
        return NGX_OK;
    }

    /* doubling, but never past what sse_max_pending lets it hold */

    cap = ngx_max(sub->pend_cap * 2, NGX_HTTP_SSE_BUFFER_MIN);
    most = sub->hdr + sub->max_pending + 2;

    if (sub->max_pending && cap > most) {
        cap = most;
    }

    cap = ngx_max(cap, need);

    if (sub->pend == NULL) {
        /* a first buffer: from the cache, where its size is one there */
        p = ngx_http_sse_buffer_alloc(cap);

    } else if (ngx_http_sse_buffer_size(sub->pend_cap) >= 0) {
        /* a cached size stays cached: the one it grew from is kept */
        p = ngx_http_sse_buffer_alloc(cap);

        if (p) {
            ngx_memcpy(p, sub->pend, sub->hdr + ngx_http_sse_copied(sub));
            ngx_http_sse_buffer_free(sub->pend, sub->pend_cap);
        }

    } else {
        p = (u_char *) realloc(sub->pend, cap);
    }

    if (p == NULL) {
        return NGX_ERROR;
    }

    sub->pend = p;
    sub->pend_cap = cap;

    return NGX_OK;
}


/*
 * The buffer being sent is sent.  A large one is given back at once: a
 * stream then holds one buffer of at most sse_max_pending, not two.
 */

void
ngx_http_sse_sent(ngx_http_sse_sub_t *sub)
{
    ngx_http_sse_metrics_sent(sub, -1);

    sub->out_busy = 0;
    sub->out_chain = NULL;

    /* the bytes are out: the blocks may go, as far as this stream goes */
    ngx_http_sse_refs_clear(sub->out_refs);

    if (sub->out_events) {
        sub->events_sent += sub->out_events;
        sub->out_events = 0;

        if (sub->ids) {
            ngx_memcpy(ngx_http_sse_sent_ids(sub), ngx_http_sse_out_ids(sub),
                       sub->nchans * sizeof(sse::Position));
        }
    }

    if (sub->out_cap > NGX_HTTP_SSE_KEEP_BUFFER) {
        /* kept only as the stream's one buffer */
        ngx_http_sse_reuse_out(sub);
    }
}


/* a quiet stream keeps no buffers: idle memory stays small */

void
ngx_http_sse_release_buffers(ngx_http_sse_sub_t *sub)
{
    if (!sub->out_busy && sub->out) {
        ngx_http_sse_release_out(sub);
    }

    if (sub->pend_len == 0 && sub->pend) {
        ngx_http_sse_buffer_free(sub->pend, sub->pend_cap);
        sub->pend = NULL;
        sub->pend_cap = 0;
    }

    if (sub->pend_len == 0) {
        ngx_http_sse_refs_free(&sub->pend_refs);
    }

    ngx_http_sse_metrics_idle(sub);
}


/*
 * Part of the buffer being sent was handed on: the latency of the events
 * it ends is observed (ngx_http_sse_metrics.cpp).  On a detached stream
 * the chunk header comes before the data, and the last chunk is not in
 * the buffer at all.
 */

void
ngx_http_sse_progress(ngx_http_sse_sub_t *sub)
{
    u_char  *data;
    size_t   len;

    if (sub->timing == NULL || sub->out == NULL) {
        return;
    }

    if (sub->out_refs && sub->out_refs->nrefs) {
        /* a detached stream's chain begins with the chunk header */
        len = ngx_http_sse_refs_sent(sub->out_refs);

        if (len > sub->out_refs->head) {
            ngx_http_sse_metrics_sent(sub, len - sub->out_refs->head);
        }

        return;
    }

    if (!sub->detached) {
        ngx_http_sse_metrics_sent(sub,
                                  sub->out_buf->pos - sub->out_buf->start);
        return;
    }

    data = sub->out + sub->hdr;

    if ((uintptr_t) sub->out_pos > (uintptr_t) data
        && (uintptr_t) sub->out_pos <= (uintptr_t) (sub->out + sub->out_cap))
    {
        ngx_http_sse_metrics_sent(sub, sub->out_pos - data);
    }
}


/*
 * The filled buffer became the one being sent: its events, and the id of
 * the last of them (every channel's position now), go with it, to be
 * counted as sent when all of it is ($sse_events_sent, $sse_last_event_id).
 */

void
ngx_http_sse_swap_events(ngx_http_sse_sub_t *sub)
{
    ngx_uint_t      i;
    sse::Position  *ids;

    sub->out_events = sub->pend_events;
    sub->pend_events = 0;

    if (sub->out_events == 0 || !sub->ids) {
        return;
    }

    ids = ngx_http_sse_out_ids(sub);

    for (i = 0; i < sub->nchans; i++) {
        ids[i] = sub->chans[i].pos;
    }
}


/* a stream on its request ends: what nginx's writer has or gets is sent */

void
ngx_http_sse_handed_over(ngx_http_sse_sub_t *sub)
{
    ngx_uint_t      i;
    sse::Position  *ids;

    if (sub->out_events + sub->pend_events == 0) {
        return;
    }

    sub->events_sent += sub->out_events + sub->pend_events;
    sub->out_events = 0;
    sub->pend_events = 0;

    if (!sub->ids) {
        return;
    }

    ids = ngx_http_sse_sent_ids(sub);

    for (i = 0; i < sub->nchans; i++) {
        ids[i] = sub->chans[i].pos;
    }
}

} // namespace
