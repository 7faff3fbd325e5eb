/*
 * The subscribe location: checks the request, joins the channels, plans
 * the replay from the Last-Event-ID, and starts the stream (whose life
 * is in ngx_http_sse_stream.cpp).
 */

#include "ngx_http_sse.h"
#include "ngx_http_sse_access.h"


namespace {

/*
 * A stream joining its channels: the store's answer (now or later), then
 * the headers and the stream, or a refusal.  In the request's pool, which
 * a stream on its request (HTTP/2) keeps: sized for its channels.
 */
typedef struct {
    ngx_http_request_t         *request;
    ngx_http_sse_sub_t         *sub;
    ngx_http_sse_loc_conf_t    *slcf;
    ngx_int_t                   rc;
    unsigned                    in_flight:1;
    unsigned                    waiting:1;
    ngx_http_sse_store_join_t   op;
    sse::Position              *positions;  /* n of each */
    sse::Slice                 *ids;
    const char                **reset;
} ngx_http_sse_join_t;


ngx_int_t ngx_http_sse_last_event_id(ngx_http_request_t *r,
    ngx_http_sse_loc_conf_t *slcf, ngx_str_t *id);
ngx_int_t ngx_http_sse_head_reply(ngx_http_sse_query_t *q);
ngx_int_t ngx_http_sse_send_stream_header(ngx_http_request_t *r);
ngx_int_t ngx_http_sse_send_ended_stream(ngx_http_request_t *r);
void ngx_http_sse_joined(void *data);
ngx_int_t ngx_http_sse_start_stream(ngx_http_sse_join_t *j);
void ngx_http_sse_join_cleanup(void *data);

} // namespace


ngx_int_t
ngx_http_sse_subscribe_handler(ngx_http_request_t *r)
{
    u_char                   *p;
    ngx_int_t                 rc, have_id;
    ngx_str_t                 last_id;
    ngx_uint_t                i, n;
    sse::Slice                ids[sse::max_channels_per_stream];
    sse::Position             pos[sse::max_channels_per_stream];
    ngx_pool_cleanup_t       *cln;
    ngx_http_sse_sub_t       *sub;
    ngx_http_sse_zone_t      *zone;
    ngx_http_sse_join_t      *j;
    ngx_http_sse_loc_conf_t  *slcf;
    u_char                    retry[64];
    time_t                    expires;

    /* CORS, the preflight and the token come before everything else */

    rc = ngx_http_sse_access(r, NGX_HTTP_SSE_ROLE_SUBSCRIBE);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD|NGX_HTTP_POST))) {
        if (ngx_http_discard_request_body(r) != NGX_OK
            || ngx_http_sse_add_header(r, "Allow", "GET, HEAD, POST")
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_sse_send_error(r, NGX_HTTP_NOT_ALLOWED,
                                       "method_not_allowed",
                                       "a subscribe location takes GET, "
                                       "HEAD or POST");
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    slcf = (ngx_http_sse_loc_conf_t *)
               ngx_http_get_module_loc_conf(r, ngx_http_sse_module);
    zone = slcf->zone;

    switch (ngx_http_sse_channel_list(r, slcf->channels, ids, &n)) {
    case NGX_OK:
        break;
    case NGX_DECLINED:
        return ngx_http_sse_bad_channels(r);
    default:
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_sse_access_channels(r, NGX_HTTP_SSE_ROLE_SUBSCRIBE, ids, n);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (r->method == NGX_HTTP_HEAD) {
        return ngx_http_sse_query(r, zone, ids, n, 0,
                                  ngx_http_sse_head_reply);
    }

    if (zone->slot < 0) {
        if (ngx_exiting) {
            /*
             * An old worker after a reload has given its slot back; a
             * connection that still reaches it gets a stream that ends at
             * once, on which an EventSource reconnects (to a new worker),
             * rather than an error, on which it would give up for good.
             */
            return ngx_http_sse_send_ended_stream(r);
        }

        ngx_http_sse_add_header(r, "Retry-After", "5");
        return ngx_http_sse_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                       "shutting_down",
                                       "this worker takes no subscribers");
    }

    j = (ngx_http_sse_join_t *) ngx_pcalloc(r->pool,
                                    sizeof(ngx_http_sse_join_t)
                                    + n * (sizeof(sse::Position)
                                           + sizeof(sse::Slice)
                                           + sizeof(const char *)));
    if (j == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    j->positions = (sse::Position *) (j + 1);
    j->ids = (sse::Slice *) (j->positions + n);
    j->reset = (const char **) (j->ids + n);

    /* Last-Event-ID: one position per channel of this stream */

    have_id = 0;

    if (ngx_http_sse_last_event_id(r, slcf, &last_id) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (last_id.len) {
        have_id = (sse::parse_id(last_id.data, last_id.len, pos,
                                 sse::max_channels_per_stream)
                   == (int) n) ? 1 : -1;

        if (have_id == 1) {
            for (i = 0; i < n; i++) {
                j->positions[i] = pos[i];
            }
        }
    }

    sub = ngx_http_sse_sub_create(r, n);
    if (sub == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    sub->zone = zone;
    sub->max_pending = slcf->max_pending;
    sub->reset_event = &slcf->reset_event;
    sub->heartbeat = slcf->heartbeat;
    sub->deadline = slcf->lifetime ? ngx_time() + slcf->lifetime : 0;

    /* a stream ends when its token does; the client comes back with a
     * fresh one and resumes from its Last-Event-ID */

    expires = ngx_http_sse_access_expires(r);

    if (expires && (sub->deadline == 0 || expires < sub->deadline)) {
        sub->deadline = expires;
        sub->token_deadline = 1;
    }

    if (ngx_http_sse_log_start(sub, r, ids, n) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* what leaves at once: the retry field and a first comment */

    if (slcf->retry) {
        p = ngx_sprintf(retry, "retry: %M\n\n", slcf->retry);
        if (ngx_http_sse_sub_append_raw(sub, retry, p - retry) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (ngx_http_sse_sub_append_raw(sub, (u_char *) ":ok\n\n", 5) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /*
     * The store finds or creates the channels, joins them, and sets the
     * stream's position in each (ngx_http_sse_store.h); the stream then
     * starts in ngx_http_sse_joined(), now or when the store answers.
     */

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_sse_join_cleanup;
    cln->data = j;

    for (i = 0; i < n; i++) {
        j->ids[i] = ids[i];
    }

    j->request = r;
    j->sub = sub;
    j->slcf = slcf;

    j->op.sub = sub;
    j->op.ids = j->ids;
    j->op.nchans = n;
    j->op.positions = j->positions;
    j->op.have_id = have_id;
    j->op.reset = j->reset;
    j->op.replay = slcf->replay;
    j->op.handler = ngx_http_sse_joined;
    j->op.data = j;

    j->in_flight = 1;

    rc = zone->store->join(zone, &j->op);

    if (j->in_flight) {
        j->waiting = 1;
        r->main->count++;
        return NGX_DONE;
    }

    return (rc == NGX_ERROR) ? NGX_HTTP_INTERNAL_SERVER_ERROR : j->rc;
}


namespace {

ngx_int_t
ngx_http_sse_last_event_id(ngx_http_request_t *r,
    ngx_http_sse_loc_conf_t *slcf, ngx_str_t *id)
{
    ngx_str_t  *value;

    ngx_str_null(id);

    if (slcf->last_event_id) {
        return ngx_http_complex_value(r, slcf->last_event_id, id);
    }

    value = ngx_http_sse_header_in(r, "Last-Event-ID", NULL);

    if (value) {
        *id = *value;
        return NGX_OK;
    }

    if (ngx_http_arg(r, (u_char *) "last_event_id", 13, id) == NGX_OK) {
        /* arguments arrive escaped: ids use no characters that need it,
         * except '.' and '-' which are never escaped by browsers */
        return NGX_OK;
    }

    ngx_str_null(id);

    return NGX_OK;
}


/* the store's answer to a join: now or later */

void
ngx_http_sse_joined(void *data)
{
    ngx_http_sse_join_t *j = (ngx_http_sse_join_t *) data;

    ngx_connection_t    *c;
    ngx_http_request_t  *r = j->request;

    j->in_flight = 0;
    j->rc = ngx_http_sse_start_stream(j);

    if (!j->waiting) {
        return;
    }

    j->waiting = 0;
    c = r->connection;

    ngx_http_finalize_request(r, j->rc);
    ngx_http_run_posted_requests(c);
}


ngx_int_t
ngx_http_sse_start_stream(ngx_http_sse_join_t *j)
{
    ngx_int_t                 rc;
    ngx_uint_t                i;
    ngx_http_request_t       *r = j->request;
    ngx_http_sse_sub_t       *sub = j->sub;
    ngx_http_sse_zone_t      *zone = sub->zone;

    switch (j->op.rc) {

    case NGX_OK:
        break;

    case NGX_HTTP_SSE_DELETED:
        ngx_http_sse_sub_leave(sub);

        /* 204 tells an EventSource to stop reconnecting */
        return ngx_http_sse_send_no_content(r);

    case NGX_HTTP_SSE_TOO_MANY:
        ngx_http_sse_sub_leave(sub);

        ngx_http_sse_add_header(r, "Retry-After", "5");
        return ngx_http_sse_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                       "too_many_channels",
                                       "the zone's max_channels is "
                                       "reached");

    case NGX_HTTP_SSE_TOO_MANY_SUBSCRIBERS:
        ngx_http_sse_sub_leave(sub);

        ngx_http_sse_add_header(r, "Retry-After", "5");
        return ngx_http_sse_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                       "too_many_subscribers",
                                       "the zone's max_subscribers is "
                                       "reached");

    default: /* NGX_HTTP_SSE_ZONE_FULL, NGX_ERROR */
        goto failed;
    }

    /* resets first, then each channel's history, then live events */

    for (i = 0; i < j->op.nchans; i++) {
        if (j->op.reset[i]) {
            if (ngx_http_sse_sub_append_reset(sub, j->ids[i],
                                              j->op.reset[i])
                != NGX_OK)
            {
                goto failed;
            }
        }
    }

    /*
     * The first part of the replay goes with the headers.  A channel
     * deleted, or a gap opened, since the join is found again by the
     * pulls of the started stream, which end or drop it as usual.
     */

    if (sub->nbehind && ngx_http_sse_sub_pull(sub) == NGX_ERROR) {
        goto failed;
    }

    if (zone->delivered) {
        zone->store->count(zone, NGX_HTTP_SSE_COUNT_DELIVERED,
                           zone->delivered);
        zone->delivered = 0;
    }

    rc = ngx_http_sse_send_stream_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK) {
        ngx_http_sse_sub_leave(sub);
        return rc;
    }

    return ngx_http_sse_sub_start(sub);

failed:

    ngx_http_sse_sub_leave(sub);

    ngx_http_sse_add_header(r, "Retry-After", "5");
    ngx_http_sse_log_full(zone, r->connection->log);

    return ngx_http_sse_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "zone_full",
                                   "the sse zone is out of memory");
}


void
ngx_http_sse_join_cleanup(void *data)
{
    ngx_http_sse_join_t *j = (ngx_http_sse_join_t *) data;

    if (j->in_flight) {
        /* the request is gone before the store answered */
        j->sub->zone->store->cancel(j->sub->zone, &j->op);
        j->in_flight = 0;
    }
}


/* HEAD: the headers of a stream, without subscribing */

ngx_int_t
ngx_http_sse_head_reply(ngx_http_sse_query_t *q)
{
    ngx_uint_t           i, deleted;
    ngx_http_request_t  *r = q->request;

    deleted = 0;

    for (i = 0; i < q->op.nchans; i++) {
        if (q->op.channels[i].state == NGX_HTTP_SSE_CHANNEL_DELETED) {
            deleted = 1;
        }
    }

    if (deleted) {
        r->headers_out.status = NGX_HTTP_NO_CONTENT;
        r->headers_out.content_length_n = 0;
        r->header_only = 1;
        return ngx_http_send_header(r);
    }

    r->header_only = 1;

    return ngx_http_sse_send_stream_header(r);
}


/* the headers of a stream and its first comment, and its end */

ngx_int_t
ngx_http_sse_send_ended_stream(ngx_http_request_t *r)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    rc = ngx_http_sse_send_stream_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = (ngx_buf_t *) ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->memory = 1;
    b->pos = (u_char *) ":ok\n\n";
    b->last = b->pos + 5;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


ngx_int_t
ngx_http_sse_send_stream_header(ngx_http_request_t *r)
{
    r->headers_out.status = NGX_HTTP_OK;

    ngx_str_set(&r->headers_out.content_type,
                "text/event-stream; charset=utf-8");
    r->headers_out.content_type_len = sizeof("text/event-stream") - 1;
    r->headers_out.content_type_lowcase = NULL;

    ngx_http_clear_content_length(r);
    ngx_http_clear_accept_ranges(r);
    ngx_http_clear_last_modified(r);

    if (ngx_http_sse_add_header(r, "Cache-Control", "no-cache") != NGX_OK
        || ngx_http_sse_add_header(r, "X-Accel-Buffering", "no") != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* an event stream is never compressed or cached by nginx */
    r->gzip_tested = 1;
    r->gzip_ok = 0;
    r->allow_ranges = 0;

    return ngx_http_send_header(r);
}


} // namespace


/*
 * A reset (sse_reset_event) tells the client that its position in a
 * channel was void ("unknown") or that events after it are gone ("gap"):
 * at a join, or when the channel goes on under a new epoch while the
 * stream is open (the fan-out).  Its id line is the stream's positions
 * after it.  NGX_DECLINED: it does not fit (sse_max_pending).
 */

ngx_int_t
ngx_http_sse_sub_append_reset(ngx_http_sse_sub_t *sub, sse::Slice chan,
    const char *reason)
{
    u_char   buf[512 + 2 * sse::max_channel_id_len * 6];
    u_char  *p, *last;

    if (sub->reset_event == NULL || sub->reset_event->len == 0) {
        return NGX_OK;
    }

    /* the event name is at most 64 bytes (checked in the configuration) */
    last = buf + sizeof(buf);
    p = ngx_snprintf(buf, last - buf,
                     "event: %V\ndata: {\"reason\":\"%s\",\"channel\":\"",
                     sub->reset_event, reason);
    p += sse::json_escape(p, chan);
    p = ngx_cpymem(p, "\"}\n\n", 4);

    return ngx_http_sse_sub_append_own(sub, buf, p - buf);
}
