/*
 * The subscribe location: checks the request, joins the channels, plans
 * the replay from the Last-Event-ID, and starts the stream (whose life
 * is in ngx_http_sse_stream.cpp).
 */

#include "ngx_http_sse.h"
#include "ngx_http_sse_access.h"


namespace {

/* a reset needs: seq of the event before the first to send, and why */
typedef struct {
    uint64_t     from;       /* first seq to replay */
    const char  *reset;      /* NULL, "gap" or "unknown" */
} ngx_http_sse_start_t;


ngx_int_t ngx_http_sse_last_event_id(ngx_http_request_t *r,
    ngx_http_sse_loc_conf_t *slcf, ngx_str_t *id);
ngx_int_t ngx_http_sse_head(ngx_http_request_t *r,
    ngx_http_sse_zone_t *zone, sse::Slice *ids, ngx_uint_t n);
ngx_int_t ngx_http_sse_send_stream_header(ngx_http_request_t *r);
ngx_int_t ngx_http_sse_send_ended_stream(ngx_http_request_t *r);
void ngx_http_sse_plan(ngx_http_sse_loc_conf_t *slcf,
    ngx_http_sse_channel_t *ch, sse::Position *id, ngx_int_t have_id,
    ngx_http_sse_start_t *start);
ngx_int_t ngx_http_sse_append_reset(ngx_http_sse_sub_t *sub,
    ngx_http_sse_loc_conf_t *slcf, ngx_http_sse_channel_t *ch,
    const char *reason);

} // namespace


ngx_int_t
ngx_http_sse_subscribe_handler(ngx_http_request_t *r)
{
    u_char                   *p;
    ngx_int_t                 rc, have_id, err;
    ngx_str_t                 last_id;
    ngx_uint_t                i, n, subscribers;
    sse::Slice                ids[sse::max_channels_per_stream];
    sse::Position             pos[sse::max_channels_per_stream];
    ngx_http_sse_sub_t       *sub;
    ngx_http_sse_zone_t      *zone;
    ngx_http_sse_local_t     *local;
    ngx_http_sse_start_t      start[sse::max_channels_per_stream];
    ngx_http_sse_channel_t   *chans[sse::max_channels_per_stream];
    ngx_http_sse_loc_conf_t  *slcf;
    ngx_http_sse_sub_chan_t  *sc;
    ngx_http_sse_chan_slot_t *cs[sse::max_channels_per_stream];
    uint64_t                  replay, lag;
    uint64_t                  behind[sse::max_channels_per_stream];
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
        return ngx_http_sse_head(r, zone, ids, n);
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

    /* Last-Event-ID: one position per channel of this stream */

    have_id = 0;

    if (ngx_http_sse_last_event_id(r, slcf, &last_id) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (last_id.len) {
        have_id = (sse::parse_id(last_id.data, last_id.len, pos,
                                 sse::max_channels_per_stream)
                   == (int) n) ? 1 : -1;
    }

    sub = ngx_http_sse_sub_create(r, n);
    if (sub == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    sub->zone = zone;
    sub->max_pending = slcf->max_pending;
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
     * Under one lock: find or create the channels, join them, and set the
     * stream's position in each.  What it is to replay it pulls from
     * history, at most sse_max_pending at a time, here and then as its
     * socket drains; live events reach it through the fan-out once it has
     * caught up.  A seq is never both (the stream's position filters).
     */

    ngx_shmtx_lock(&zone->shpool->mutex);

    ngx_http_sse_store_expire(zone);

    for (i = 0; i < n; i++) {
        err = 0;
        chans[i] = ngx_http_sse_channel_get(zone, (u_char *) ids[i].data,
                                            ids[i].len, &err);
        if (chans[i] == NULL) {
            ngx_shmtx_unlock(&zone->shpool->mutex);

            ngx_http_sse_add_header(r, "Retry-After", "5");

            if (err == NGX_HTTP_SSE_TOO_MANY) {
                return ngx_http_sse_send_error(r,
                                               NGX_HTTP_SERVICE_UNAVAILABLE,
                                               "too_many_channels",
                                               "the zone's max_channels is "
                                               "reached");
            }

            ngx_http_sse_log_full(zone, r->connection->log);
            return ngx_http_sse_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                           "zone_full",
                                           "the sse zone is out of memory");
        }

        if (chans[i]->deleted) {
            ngx_shmtx_unlock(&zone->shpool->mutex);

            /* 204 tells an EventSource to stop reconnecting */
            return ngx_http_sse_send_no_content(r);
        }
    }

    if (zone->sh->limits.max_subscribers) {
        subscribers = ngx_http_sse_subscribers(zone);

        if (subscribers >= zone->sh->limits.max_subscribers) {
            ngx_shmtx_unlock(&zone->shpool->mutex);

            ngx_http_sse_add_header(r, "Retry-After", "5");
            return ngx_http_sse_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                           "too_many_subscribers",
                                           "the zone's max_subscribers is "
                                           "reached");
        }
    }

    replay = 0;

    for (i = 0; i < n; i++) {
        sc = &sub->chans[i];
        sc->sub = sub;
        sc->index = i;

        cs[i] = ngx_http_sse_channel_join(zone, chans[i], zone->slot);
        if (cs[i] == NULL) {
            goto failed;
        }

        local = ngx_http_sse_local_get(zone, chans[i]);
        if (local == NULL) {
            ngx_http_sse_channel_leave(zone, chans[i], zone->slot);
            goto failed;
        }

        local->share = cs[i];
        sc->local = local;
        ngx_queue_insert_tail(&local->subs, &sc->link);
        local->nsubs++;

        /* history_ttl: expired events are not replayed, however lazy the
         * zone-wide expiry is */
        ngx_http_sse_channel_expire(zone, chans[i]);

        ngx_http_sse_plan(slcf, chans[i], &pos[i], have_id, &start[i]);

        sc->pos.epoch = chans[i]->epoch;
        sc->pos.seq = start[i].from - 1;
        sc->pos_cum = ngx_http_sse_cum_before(chans[i], start[i].from);
        behind[i] = chans[i]->total - sc->pos_cum;

        if (sc->pos.seq < chans[i]->last_seq) {
            sc->behind = 1;
            sub->nbehind++;
            local->nbehind++;
            replay += behind[i];

            /* history stays for it while it replays */
            cs[i]->cursor = ngx_min(cs[i]->cursor, sc->pos.seq);
            local->floor = ngx_min(local->floor, sc->pos.seq);
        }
    }

    /*
     * How far the stream may fall behind before it is dropped as too slow:
     * sse_max_pending, plus the replay it starts with.  Its buffer holds
     * sse_max_pending at most all the same.
     */

    sub->limit = sub->max_pending ? sub->max_pending + replay : 0;

    /* history is kept for this worker as far as its streams may lag */

    for (i = 0; i < n; i++) {
        lag = sub->max_pending ? sub->max_pending + behind[i] : (uint64_t) -1;
        cs[i]->allowance = ngx_max(cs[i]->allowance, lag);
    }

    zone->sh->slots[zone->slot].streams++;
    sub->counted = 1;

    /* resets first, then each channel's history, then live events */

    for (i = 0; i < n; i++) {
        if (start[i].reset && slcf->reset_event.len) {
            if (ngx_http_sse_append_reset(sub, slcf, chans[i],
                                          start[i].reset)
                != NGX_OK)
            {
                goto failed;
            }
        }
    }

    /* the first part of the replay goes with the headers */

    if (sub->nbehind && ngx_http_sse_sub_pull(sub) != NGX_OK) {
        goto failed;
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    if (zone->delivered) {
        (void) ngx_atomic_fetch_add(&zone->sh->delivered, zone->delivered);
        zone->delivered = 0;
    }

    rc = ngx_http_sse_send_stream_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK) {
        ngx_http_sse_sub_leave(sub);
        return rc;
    }

    return ngx_http_sse_sub_start(sub);

failed:

    ngx_shmtx_unlock(&zone->shpool->mutex);

    ngx_http_sse_sub_leave(sub);

    ngx_http_sse_add_header(r, "Retry-After", "5");
    ngx_http_sse_log_full(zone, r->connection->log);

    return ngx_http_sse_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "zone_full",
                                   "the sse zone is out of memory");
}


namespace {

ngx_int_t
ngx_http_sse_last_event_id(ngx_http_request_t *r,
    ngx_http_sse_loc_conf_t *slcf, ngx_str_t *id)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    ngx_str_null(id);

    if (slcf->last_event_id) {
        return ngx_http_complex_value(r, slcf->last_event_id, id);
    }

    part = &r->headers_in.headers.part;
    h = (ngx_table_elt_t *) part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = (ngx_table_elt_t *) part->elts;
            i = 0;
        }

        if (h[i].key.len == sizeof("Last-Event-ID") - 1
            && ngx_strncasecmp(h[i].key.data, (u_char *) "Last-Event-ID",
                               sizeof("Last-Event-ID") - 1) == 0)
        {
            *id = h[i].value;
            return NGX_OK;
        }
    }

    if (ngx_http_arg(r, (u_char *) "last_event_id", 13, id) == NGX_OK) {
        /* arguments arrive escaped: ids use no characters that need it,
         * except '.' and '-' which are never escaped by browsers */
        return NGX_OK;
    }

    ngx_str_null(id);

    return NGX_OK;
}


/* HEAD: the headers of a stream, without subscribing */

ngx_int_t
ngx_http_sse_head(ngx_http_request_t *r, ngx_http_sse_zone_t *zone,
    sse::Slice *ids, ngx_uint_t n)
{
    ngx_uint_t               i, deleted;
    ngx_http_sse_channel_t  *ch;

    deleted = 0;

    ngx_shmtx_lock(&zone->shpool->mutex);

    for (i = 0; i < n; i++) {
        ch = ngx_http_sse_channel_find(zone, (u_char *) ids[i].data,
                                       ids[i].len);
        if (ch && ch->deleted) {
            deleted = 1;
        }
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

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


/* expects the zone locked: where this stream starts in one channel */

void
ngx_http_sse_plan(ngx_http_sse_loc_conf_t *slcf, ngx_http_sse_channel_t *ch,
    sse::Position *id, ngx_int_t have_id, ngx_http_sse_start_t *start)
{
    uint64_t  oldest;

    /* the first seq still in history (last_seq + 1 if none is stored) */
    oldest = ch->nevents ? ch->first_seq : ch->last_seq + 1;

    start->reset = NULL;

    if (have_id == 0) {
        if (slcf->replay == NGX_HTTP_SSE_REPLAY_ALL) {
            start->from = oldest;

        } else if ((uint64_t) slcf->replay >= ch->last_seq) {
            start->from = ngx_max(oldest, 1);

        } else {
            start->from = ngx_max(oldest, ch->last_seq - slcf->replay + 1);
        }

        return;
    }

    if (have_id < 0 || id->epoch != ch->epoch || id->seq > ch->last_seq) {
        start->reset = "unknown";
        start->from = oldest;
        return;
    }

    if (id->seq + 1 < oldest) {
        start->reset = "gap";
        start->from = oldest;
        return;
    }

    start->from = id->seq + 1;
}


ngx_int_t
ngx_http_sse_append_reset(ngx_http_sse_sub_t *sub,
    ngx_http_sse_loc_conf_t *slcf, ngx_http_sse_channel_t *ch,
    const char *reason)
{
    u_char      buf[512 + 2 * sse::max_channel_id_len * 6];
    u_char     *p, *last;
    sse::Slice  chan;

    if (ngx_http_sse_sub_append_id_line(sub) != NGX_OK) {
        return NGX_ERROR;
    }

    chan.data = ch->id;
    chan.len = ch->id_len;

    /* the event name is at most 64 bytes (checked in the configuration) */
    last = buf + sizeof(buf);
    p = ngx_snprintf(buf, last - buf,
                     "event: %V\ndata: {\"reason\":\"%s\",\"channel\":\"",
                     &slcf->reset_event, reason);
    p += sse::json_escape(p, chan);
    p = ngx_cpymem(p, "\"}\n\n", 4);

    return ngx_http_sse_sub_append_raw(sub, buf, p - buf);
}


} // namespace
