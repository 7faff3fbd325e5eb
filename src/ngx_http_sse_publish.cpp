/*
 * The publish location: POST/PUT publish, DELETE ends a channel, GET/HEAD
 * describe it.
 *
 * Bodies are read unbuffered, part by part as they arrive: an event
 * stream body publishes every event the moment its blank line arrives, so
 * an application can stream tokens through one long chunked POST; any
 * other body is collected (up to max_message) and becomes one event.
 * Nothing is ever written to a temporary file.
 */

#include "ngx_http_sse.h"
#include "ngx_http_sse_access.h"

#include "sse_event_stream.h"

#include <new>


/* a reply lists at most this many ids per channel (and the last one) */
#define NGX_HTTP_SSE_REPLY_IDS  1000


namespace {

/* events parsed but not yet published: their bytes, back to back */
typedef struct {
    size_t      type_len;
    size_t      data_len;
} ngx_http_sse_pending_t;


typedef struct {
    ngx_http_request_t         *request;
    ngx_http_sse_zone_t        *zone;

    ngx_uint_t                  nchans;
    sse::Slice                  ids[sse::max_channels_per_stream];
    /* the ids for the reply: the first ones, and always the last one */
    ngx_array_t                 positions[sse::max_channels_per_stream];
    sse::Position               last[sse::max_channels_per_stream];
    ngx_uint_t                  published[sse::max_channels_per_stream];
    ngx_uint_t                  subscribers[sse::max_channels_per_stream];

    sse::EventStreamParser     *parser;     /* text/event-stream bodies */

    /* a plain body, or parsed events waiting for the lock */
    u_char                     *buf;
    size_t                      buf_len;
    size_t                      buf_cap;
    ngx_http_sse_pending_t     *pending;
    ngx_uint_t                  npending;
    size_t                      pending_cap;

    sse::Slice                  type;       /* SSE-Event of a plain body */
    size_t                      max_message;

    ngx_uint_t                  status;     /* of a failure, 0: none */
    const char                 *code;
    const char                 *message;
} ngx_http_sse_pub_t;


ngx_int_t ngx_http_sse_publish_start(ngx_http_request_t *r,
    ngx_http_sse_loc_conf_t *slcf, sse::Slice *ids, ngx_uint_t n);
void ngx_http_sse_publish_body(ngx_http_request_t *r);
void ngx_http_sse_publish_read(ngx_http_request_t *r);
ngx_int_t ngx_http_sse_publish_part(ngx_http_sse_pub_t *pub, u_char *p,
    size_t len);
ngx_int_t ngx_http_sse_publish_end(ngx_http_sse_pub_t *pub);
ngx_int_t ngx_http_sse_parsed(ngx_http_sse_pub_t *pub,
    sse::EventStreamParser::Status st);
bool ngx_http_sse_collect(void *ctx, sse::Slice type, sse::Slice data);
bool ngx_http_sse_fits(ngx_http_sse_pub_t *pub, sse::Slice type,
    sse::Slice data);
ngx_int_t ngx_http_sse_publish_pending(ngx_http_sse_pub_t *pub);
ngx_int_t ngx_http_sse_publish_reply(ngx_http_sse_pub_t *pub);
void ngx_http_sse_publish_fail(ngx_http_sse_pub_t *pub, ngx_uint_t status,
    const char *code, const char *message);
ngx_int_t ngx_http_sse_publish_error(ngx_http_request_t *r,
    ngx_http_sse_pub_t *pub);
void ngx_http_sse_pub_cleanup(void *data);
ngx_int_t ngx_http_sse_buf_reserve(ngx_http_sse_pub_t *pub, size_t len);
ngx_int_t ngx_http_sse_delete(ngx_http_request_t *r,
    ngx_http_sse_zone_t *zone, sse::Slice *ids, ngx_uint_t n);
ngx_int_t ngx_http_sse_info(ngx_http_request_t *r, ngx_http_sse_zone_t *zone,
    sse::Slice *ids, ngx_uint_t n);
ngx_uint_t ngx_http_sse_is_event_stream(ngx_http_request_t *r);
u_char *ngx_http_sse_json_channel(u_char *p, sse::Slice id);

} // namespace


ngx_int_t
ngx_http_sse_publish_handler(ngx_http_request_t *r)
{
    ngx_int_t                 rc;
    ngx_uint_t                n;
    sse::Slice                ids[sse::max_channels_per_stream];
    ngx_http_sse_loc_conf_t  *slcf;

    slcf = (ngx_http_sse_loc_conf_t *)
               ngx_http_get_module_loc_conf(r, ngx_http_sse_module);

    /* CORS, the preflight and the token come before everything else */

    rc = ngx_http_sse_access(r, NGX_HTTP_SSE_ROLE_PUBLISH);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (!(r->method & (NGX_HTTP_POST|NGX_HTTP_PUT|NGX_HTTP_DELETE
                       |NGX_HTTP_GET|NGX_HTTP_HEAD)))
    {
        if (ngx_http_discard_request_body(r) != NGX_OK
            || ngx_http_sse_add_header(r, "Allow",
                                       "GET, HEAD, POST, PUT, DELETE")
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_sse_send_error(r, NGX_HTTP_NOT_ALLOWED,
                                       "method_not_allowed",
                                       "a publish location takes GET, HEAD, "
                                       "POST, PUT or DELETE");
    }

    rc = ngx_http_sse_channel_list(r, slcf->channels, ids, &n);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* a body that is not published is read and dropped */

    if (rc == NGX_DECLINED || !(r->method & (NGX_HTTP_POST|NGX_HTTP_PUT))) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (rc == NGX_DECLINED) {
        return ngx_http_sse_bad_channels(r);
    }

    /* a refused publish stores nothing: checked before the body is read */

    rc = ngx_http_sse_access_channels(r, NGX_HTTP_SSE_ROLE_PUBLISH, ids, n);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (r->method & (NGX_HTTP_POST|NGX_HTTP_PUT)) {
        return ngx_http_sse_publish_start(r, slcf, ids, n);
    }

    if (r->method == NGX_HTTP_DELETE) {
        return ngx_http_sse_delete(r, slcf->zone, ids, n);
    }

    return ngx_http_sse_info(r, slcf->zone, ids, n);
}


namespace {

ngx_int_t
ngx_http_sse_publish_start(ngx_http_request_t *r,
    ngx_http_sse_loc_conf_t *slcf, sse::Slice *ids, ngx_uint_t n)
{
    ngx_int_t            rc;
    ngx_str_t           *type;
    ngx_uint_t           i;
    ngx_pool_cleanup_t  *cln;
    ngx_http_sse_pub_t  *pub;

    pub = (ngx_http_sse_pub_t *) ngx_pcalloc(r->pool,
                                             sizeof(ngx_http_sse_pub_t));
    if (pub == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_sse_pub_cleanup;
    cln->data = pub;

    pub->request = r;
    pub->zone = slcf->zone;
    pub->nchans = n;
    pub->max_message = slcf->zone->sh->limits.max_message;

    for (i = 0; i < n; i++) {
        pub->ids[i] = ids[i];

        if (ngx_array_init(&pub->positions[i], r->pool, 4,
                           sizeof(sse::Position))
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (ngx_http_sse_is_event_stream(r)) {
        pub->parser = new (std::nothrow)
                          sse::EventStreamParser(pub->max_message);
        if (pub->parser == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

    } else {
        type = ngx_http_sse_header_in(r, "SSE-Event");

        if (type) {
            if (!sse::utf8_valid(type->data, type->len)) {
                if (ngx_http_discard_request_body(r) != NGX_OK) {
                    return NGX_HTTP_INTERNAL_SERVER_ERROR;
                }

                return ngx_http_sse_send_error(r, NGX_HTTP_BAD_REQUEST,
                                               "bad_utf8",
                                               "the SSE-Event header is not "
                                               "valid UTF-8");
            }

            pub->type.data = type->data;
            pub->type.len = type->len;
        }

        if (r->headers_in.content_length_n > (off_t) pub->max_message) {
            if (ngx_http_discard_request_body(r) != NGX_OK) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            return ngx_http_sse_send_error(r,
                                           NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                           "too_large",
                                           "the event is larger than the "
                                           "zone's max_message");
        }
    }

    ngx_http_set_ctx(r, pub, ngx_http_sse_module);

    r->request_body_no_buffering = 1;

    rc = ngx_http_read_client_request_body(r, ngx_http_sse_publish_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


/* the body's first part is there (or all of it, or none) */

void
ngx_http_sse_publish_body(ngx_http_request_t *r)
{
    if (r->reading_body) {
        r->read_event_handler = ngx_http_sse_publish_read;
    }

    ngx_http_sse_publish_read(r);
}


void
ngx_http_sse_publish_read(ngx_http_request_t *r)
{
    ngx_int_t            rc;
    ngx_buf_t           *b;
    ngx_chain_t         *cl, *ln;
    ngx_http_sse_pub_t  *pub;

    pub = (ngx_http_sse_pub_t *) ngx_http_get_module_ctx(r,
                                                         ngx_http_sse_module);
    if (pub == NULL) {
        /* an error_page redirect took the request elsewhere */
        return;
    }

    for ( ;; ) {

        if (r->request_body) {
            for (cl = r->request_body->bufs; cl; cl = ln) {
                ln = cl->next;
                b = cl->buf;

                if (b->in_file && !ngx_buf_in_memory(b)) {
                    /* read before us into a file (e.g. by mirror) */
                    ngx_http_sse_publish_fail(pub,
                                              NGX_HTTP_INTERNAL_SERVER_ERROR,
                                              "body_in_file",
                                              "the request body was buffered "
                                              "to a file before publishing");
                }

                if (pub->status == 0) {
                    (void) ngx_http_sse_publish_part(pub, b->pos,
                                                     b->last - b->pos);
                }

                b->pos = b->last;
                ngx_free_chain(r->pool, cl);
            }

            r->request_body->bufs = NULL;
        }

        /*
         * Events completed by this part go out now, under one lock; also
         * when the part ended in a bad event: every complete event before
         * it is published, however TCP split the body.
         */

        (void) ngx_http_sse_publish_pending(pub);

        if (pub->status) {
            /*
             * The events before the bad one stay published and the reply
             * lists them; it goes out now and nginx drops the rest of the
             * body.
             */
            r->read_event_handler = ngx_http_block_reading;
            ngx_http_finalize_request(r, ngx_http_sse_publish_error(r, pub));
            return;
        }

        if (!r->reading_body) {
            break;
        }

        rc = ngx_http_read_unbuffered_request_body(r);

        if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
            /*
             * The publisher went away or sent a broken body: the complete
             * events are published already, a partial one is dropped.
             */
            r->read_event_handler = ngx_http_block_reading;
            ngx_http_finalize_request(r, rc);
            return;
        }

        if (rc == NGX_AGAIN
            && (r->request_body == NULL || r->request_body->bufs == NULL))
        {
            return;
        }
    }

    (void) ngx_http_sse_publish_end(pub);

    if (pub->status) {
        ngx_http_finalize_request(r, ngx_http_sse_publish_error(r, pub));
        return;
    }

    ngx_http_finalize_request(r, ngx_http_sse_publish_reply(pub));
}


ngx_int_t
ngx_http_sse_publish_part(ngx_http_sse_pub_t *pub, u_char *p, size_t len)
{
    sse::EventStreamParser::Status  st;

    if (len == 0) {
        return NGX_OK;
    }

    if (pub->parser == NULL) {
        if (pub->buf_len + len > pub->max_message) {
            ngx_http_sse_publish_fail(pub, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                      "too_large",
                                      "the event is larger than the zone's "
                                      "max_message");
            return NGX_ERROR;
        }

        if (ngx_http_sse_buf_reserve(pub, len) != NGX_OK) {
            ngx_http_sse_publish_fail(pub, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                      "no_memory", "out of memory");
            return NGX_ERROR;
        }

        ngx_memcpy(pub->buf + pub->buf_len, p, len);
        pub->buf_len += len;

        return NGX_OK;
    }

    st = pub->parser->feed(p, len, ngx_http_sse_collect, pub);

    return ngx_http_sse_parsed(pub, st);
}


/* what the parser said, as the publish's status */

ngx_int_t
ngx_http_sse_parsed(ngx_http_sse_pub_t *pub,
    sse::EventStreamParser::Status st)
{
    switch (st) {

    case sse::EventStreamParser::Status::ok:
        /* the sink may have failed (a zone error, too many lines) */
        return pub->status ? NGX_ERROR : NGX_OK;

    case sse::EventStreamParser::Status::too_large:
        ngx_http_sse_publish_fail(pub, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                  "too_large",
                                  "an event is larger than the zone's "
                                  "max_message");
        return NGX_ERROR;

    case sse::EventStreamParser::Status::bad_utf8:
        ngx_http_sse_publish_fail(pub, NGX_HTTP_BAD_REQUEST, "bad_utf8",
                                  "an event is not valid UTF-8");
        return NGX_ERROR;

    default:
        ngx_http_sse_publish_fail(pub, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                  "no_memory", "out of memory");
        return NGX_ERROR;
    }
}


/* the body ended cleanly */

ngx_int_t
ngx_http_sse_publish_end(ngx_http_sse_pub_t *pub)
{
    sse::EventStreamParser::Status  st;

    if (pub->parser) {
        st = pub->parser->finish(ngx_http_sse_collect, pub);

        if (ngx_http_sse_parsed(pub, st) != NGX_OK) {
            /* the events before the bad last one are published */
            (void) ngx_http_sse_publish_pending(pub);
            return NGX_ERROR;
        }

        if (pub->status == 0 && pub->parser->events() == 0) {
            ngx_http_sse_publish_fail(pub, NGX_HTTP_BAD_REQUEST, "bad_body",
                                      "the event stream holds no event with "
                                      "a data field");
            return NGX_ERROR;
        }

        return ngx_http_sse_publish_pending(pub);
    }

    /* a plain body: the whole of it is the data of one event */

    if (!sse::utf8_valid(pub->buf, pub->buf_len)) {
        ngx_http_sse_publish_fail(pub, NGX_HTTP_BAD_REQUEST, "bad_utf8",
                                  "the body is not valid UTF-8");
        return NGX_ERROR;
    }

    if (pub->buf_len + pub->type.len > pub->max_message) {
        ngx_http_sse_publish_fail(pub, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                  "too_large",
                                  "the event is larger than the zone's "
                                  "max_message");
        return NGX_ERROR;
    }

    if (!ngx_http_sse_fits(pub, pub->type, { pub->buf, pub->buf_len })) {
        return NGX_ERROR;
    }

    /* the type goes in front of the data, as ngx_http_sse_collect() does */

    if (ngx_http_sse_buf_reserve(pub, pub->type.len) != NGX_OK
        || ngx_http_sse_grow((void **) &pub->pending, &pub->pending_cap, 1,
                             sizeof(ngx_http_sse_pending_t), 1)
           != NGX_OK)
    {
        ngx_http_sse_publish_fail(pub, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                  "no_memory", "out of memory");
        return NGX_ERROR;
    }

    /* (an empty body and no type leave pub->buf NULL: copy nothing) */
    if (pub->buf_len && pub->type.len) {
        ngx_memmove(pub->buf + pub->type.len, pub->buf, pub->buf_len);
    }

    if (pub->type.len) {
        ngx_memcpy(pub->buf, pub->type.data, pub->type.len);
    }

    pub->pending[0].type_len = pub->type.len;
    pub->pending[0].data_len = pub->buf_len;
    pub->buf_len += pub->type.len;
    pub->npending = 1;

    return ngx_http_sse_publish_pending(pub);
}


/* parser sink: keeps a copy of the event until the next publish */

bool
ngx_http_sse_collect(void *ctx, sse::Slice type, sse::Slice data)
{
    ngx_http_sse_pub_t *pub = (ngx_http_sse_pub_t *) ctx;

    size_t  offset;

    offset = pub->buf_len;

    if (!ngx_http_sse_fits(pub, type, data)) {
        return false;
    }

    if (ngx_http_sse_grow((void **) &pub->pending, &pub->pending_cap,
                          pub->npending + 1, sizeof(ngx_http_sse_pending_t),
                          16)
        != NGX_OK)
    {
        goto nomem;
    }

    if (ngx_http_sse_buf_reserve(pub, type.len + data.len) != NGX_OK) {
        goto nomem;
    }

    if (type.len) {
        ngx_memcpy(pub->buf + offset, type.data, type.len);
    }

    if (data.len) {
        ngx_memcpy(pub->buf + offset + type.len, data.data, data.len);
    }

    pub->buf_len = offset + type.len + data.len;

    pub->pending[pub->npending].type_len = type.len;
    pub->pending[pub->npending].data_len = data.len;
    pub->npending++;

    return true;

nomem:

    ngx_http_sse_publish_fail(pub, NGX_HTTP_INTERNAL_SERVER_ERROR,
                              "no_memory", "out of memory");
    return false;
}


/*
 * On the wire every line of data costs "data: " and a line end: data made
 * of nothing but line breaks would take 7 times max_message.  The stored
 * form is held to twice max_message (and some room for the fields).
 */

bool
ngx_http_sse_fits(ngx_http_sse_pub_t *pub, sse::Slice type, sse::Slice data)
{
    sse::Slice  id = { NULL, sse::max_position_len };

    if (sse::encoded_size(id, type, data) <= 2 * pub->max_message + 1024) {
        return true;
    }

    ngx_http_sse_publish_fail(pub, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                              "too_large",
                              "the event has too many lines for the zone's "
                              "max_message");
    return false;
}


/* publishes the collected events to every channel, under one lock */

ngx_int_t
ngx_http_sse_publish_pending(ngx_http_sse_pub_t *pub)
{
    u_char                  *p;
    ngx_int_t                rc, err;
    ngx_uint_t               i, k, nwake;
    ngx_uint_t               wake[NGX_HTTP_SSE_MAX_SLOTS];
    sse::Slice               type, data;
    sse::Position           *pos;
    ngx_http_sse_zone_t     *zone = pub->zone;
    ngx_http_sse_channel_t  *ch;

    if (pub->npending == 0) {
        return NGX_OK;
    }

    nwake = 0;
    rc = NGX_OK;

    ngx_shmtx_lock(&zone->shpool->mutex);

    ngx_http_sse_store_expire(zone);

    for (i = 0; i < pub->nchans && rc == NGX_OK; i++) {

        err = 0;
        ch = ngx_http_sse_channel_get(zone, (u_char *) pub->ids[i].data,
                                      pub->ids[i].len, &err);
        if (ch) {
            ch = ngx_http_sse_channel_revive(zone, ch, &err);
        }

        if (ch == NULL) {
            /* every 507 counts, not only those of a full event store */
            (void) ngx_atomic_fetch_add(&zone->sh->refused_full, 1);
            rc = err;
            break;
        }

        p = pub->buf;

        for (k = 0; k < pub->npending; k++) {
            type.data = p;
            type.len = pub->pending[k].type_len;
            data.data = p + type.len;
            data.len = pub->pending[k].data_len;
            p += type.len + data.len;

            rc = ngx_http_sse_channel_append(zone, ch, type, data,
                                             &pub->last[i]);
            if (rc != NGX_OK) {
                break;
            }

            pub->published[i]++;

            /* a long streaming publish must not grow the request's pool */
            if (pub->positions[i].nelts < NGX_HTTP_SSE_REPLY_IDS) {
                pos = (sse::Position *) ngx_array_push(&pub->positions[i]);
                if (pos) {
                    *pos = pub->last[i];
                }
            }
        }

        pub->subscribers[i] = ngx_max(pub->subscribers[i], ch->subscribers);

        ngx_http_sse_notify(zone, ch, wake, &nwake);
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    ngx_http_sse_wake(zone, wake, nwake);

    pub->npending = 0;
    pub->buf_len = 0;

    if (rc != NGX_OK) {
        /*
         * These events came before any bad one the parser found after
         * them: the failure to store them is the one the publisher hears.
         */
        pub->status = 0;
    }

    switch (rc) {

    case NGX_OK:
        return NGX_OK;

    case NGX_HTTP_SSE_TOO_MANY:
        ngx_http_sse_publish_fail(pub, NGX_HTTP_INSUFFICIENT_STORAGE,
                                  "too_many_channels",
                                  "the zone's max_channels is reached");
        return NGX_ERROR;

    case NGX_HTTP_SSE_ZONE_FULL:
        ngx_http_sse_log_full(zone, pub->request->connection->log);
        ngx_http_sse_publish_fail(pub, NGX_HTTP_INSUFFICIENT_STORAGE,
                                  "zone_full",
                                  "the sse zone has no room for the event, "
                                  "even after evicting the oldest history");
        return NGX_ERROR;

    default:
        ngx_http_sse_publish_fail(pub, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                  "no_memory", "out of memory");
        return NGX_ERROR;
    }
}


/*
 * The reply: what was published on each channel.  A failed publish
 * answers with the same fields after its "error" and "message": the events
 * before the failure are published, and the publisher learns their ids.
 */

ngx_int_t
ngx_http_sse_publish_reply(ngx_http_sse_pub_t *pub)
{
    u_char              *json, *p;
    size_t               len;
    ngx_uint_t           i, k, total, status;
    sse::Position       *pos;
    ngx_http_request_t  *r = pub->request;

    len = 64;
    total = 0;

    if (pub->status) {
        /* code and message are our own literals: nothing to escape */
        len += sizeof("\"error\":\"\",\"message\":\"\",") - 1
               + ngx_strlen(pub->code) + ngx_strlen(pub->message);
    }

    for (i = 0; i < pub->nchans; i++) {
        len += 200 + 6 * pub->ids[i].len
               + (pub->positions[i].nelts + 1) * (sse::max_position_len + 3);
        total += pub->subscribers[i];
    }

    json = (u_char *) ngx_pnalloc(r->pool, len);
    if (json == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = json;
    *p++ = '{';

    if (pub->status) {
        p = ngx_sprintf(p, "\"error\":\"%s\",\"message\":\"%s\",",
                        pub->code, pub->message);
    }

    if (pub->nchans > 1) {
        p = ngx_cpymem(p, "\"channels\":[", 12);
    }

    for (i = 0; i < pub->nchans; i++) {
        pos = (sse::Position *) pub->positions[i].elts;

        if (pub->nchans > 1) {
            if (i) {
                *p++ = ',';
            }

            *p++ = '{';
        }

        p = ngx_cpymem(p, "\"channel\":", 10);
        p = ngx_http_sse_json_channel(p, pub->ids[i]);

        p = ngx_cpymem(p, ",\"id\":", 6);

        if (pub->published[i]) {
            *p++ = '"';
            p += sse::format_id(p, &pub->last[i], 1);
            *p++ = '"';

        } else {
            p = ngx_cpymem(p, "null", 4);
        }

        p = ngx_cpymem(p, ",\"ids\":[", 8);

        for (k = 0; k < pub->positions[i].nelts; k++) {
            if (k) {
                *p++ = ',';
            }
            *p++ = '"';
            p += sse::format_id(p, &pos[k], 1);
            *p++ = '"';
        }

        p = ngx_sprintf(p, "]%s,\"events\":%ui,\"subscribers\":%ui",
                        pub->published[i] > pub->positions[i].nelts
                        ? ",\"ids_truncated\":true" : "",
                        pub->published[i], pub->subscribers[i]);

        if (pub->nchans > 1) {
            *p++ = '}';
        }
    }

    if (pub->nchans > 1) {
        p = ngx_sprintf(p, "],\"subscribers\":%ui", total);
    }

    *p++ = '}';
    *p++ = '\n';

    if (pub->status) {
        status = pub->status;

    } else {
        status = total ? NGX_HTTP_CREATED : NGX_HTTP_ACCEPTED;
    }

    return ngx_http_sse_send_json(r, status, json, p - json);
}


void
ngx_http_sse_publish_fail(ngx_http_sse_pub_t *pub, ngx_uint_t status,
    const char *code, const char *message)
{
    if (pub->status) {
        return;
    }

    /*
     * Events collected before the failure stay pending: they precede the
     * bad one in the body and are published all the same.
     */
    pub->status = status;
    pub->code = code;
    pub->message = message;
}


ngx_int_t
ngx_http_sse_publish_error(ngx_http_request_t *r, ngx_http_sse_pub_t *pub)
{
    if (pub->status == NGX_HTTP_INSUFFICIENT_STORAGE) {
        (void) ngx_http_sse_add_header(r, "Retry-After", "5");
    }

    return ngx_http_sse_publish_reply(pub);
}


void
ngx_http_sse_pub_cleanup(void *data)
{
    ngx_http_sse_pub_t *pub = (ngx_http_sse_pub_t *) data;

    delete pub->parser;
    free(pub->buf);
    free(pub->pending);
}


ngx_int_t
ngx_http_sse_buf_reserve(ngx_http_sse_pub_t *pub, size_t len)
{
    return ngx_http_sse_grow((void **) &pub->buf, &pub->buf_cap,
                             pub->buf_len + len, 1, 1024);
}


ngx_int_t
ngx_http_sse_delete(ngx_http_request_t *r, ngx_http_sse_zone_t *zone,
    sse::Slice *ids, ngx_uint_t n)
{
    u_char                  *json, *p;
    ngx_uint_t               i, found, nwake, subs;
    ngx_uint_t               wake[NGX_HTTP_SSE_MAX_SLOTS];
    ngx_http_sse_channel_t  *ch;

    json = (u_char *) ngx_pnalloc(r->pool, 64 + n * (80 + 6 * 255));
    if (json == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = json;
    found = 0;
    nwake = 0;

    if (n > 1) {
        p = ngx_cpymem(p, "{\"channels\":[", 13);
    }

    ngx_shmtx_lock(&zone->shpool->mutex);

    for (i = 0; i < n; i++) {
        ch = ngx_http_sse_channel_find(zone, (u_char *) ids[i].data,
                                       ids[i].len);
        if (ch == NULL || ch->deleted) {
            continue;
        }

        subs = ch->subscribers;

        ngx_http_sse_channel_delete(zone, ch);
        ngx_http_sse_notify(zone, ch, wake, &nwake);

        if (found++) {
            *p++ = ',';
        }

        p = ngx_cpymem(p, "{\"channel\":", 11);
        p = ngx_http_sse_json_channel(p, ids[i]);
        p = ngx_sprintf(p, ",\"deleted\":true,\"subscribers\":%ui}", subs);
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    ngx_http_sse_wake(zone, wake, nwake);

    if (!found) {
        return ngx_http_sse_send_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                       "no such channel");
    }

    if (n > 1) {
        p = ngx_cpymem(p, "]}", 2);
    }

    *p++ = '\n';

    return ngx_http_sse_send_json(r, NGX_HTTP_OK, json, p - json);
}


ngx_int_t
ngx_http_sse_info(ngx_http_request_t *r, ngx_http_sse_zone_t *zone,
    sse::Slice *ids, ngx_uint_t n)
{
    u_char                  *json, *p;
    time_t                   now;
    ngx_uint_t               i;
    ngx_http_sse_channel_t  *ch;

    json = (u_char *) ngx_pnalloc(r->pool,
                                  64 + n * (200 + 6 * 255
                                            + sse::max_position_len));
    if (json == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = json;
    now = ngx_time();

    if (n > 1) {
        p = ngx_cpymem(p, "{\"channels\":[", 13);
    }

    ngx_shmtx_lock(&zone->shpool->mutex);

    ngx_http_sse_store_expire(zone);

    for (i = 0; i < n; i++) {
        ch = ngx_http_sse_channel_find(zone, (u_char *) ids[i].data,
                                       ids[i].len);
        if (ch == NULL || ch->deleted) {
            ngx_shmtx_unlock(&zone->shpool->mutex);
            return ngx_http_sse_send_error(r, NGX_HTTP_NOT_FOUND,
                                           "not_found", "no such channel");
        }

        if (i) {
            *p++ = ',';
        }

        p = ngx_cpymem(p, "{\"channel\":", 11);
        p = ngx_http_sse_json_channel(p, ids[i]);
        p = ngx_sprintf(p, ",\"subscribers\":%uD,\"events\":%uD,",
                        ch->subscribers, ch->nevents);

        if (ch->last_seq) {
            p = ngx_cpymem(p, "\"last_id\":\"", 11);
            p += ngx_http_sse_format_position(p, ch->epoch, ch->last_seq);
            p = ngx_sprintf(p, "\",\"last_publish_age\":%T}",
                            now - ch->last_publish);

        } else {
            p = ngx_cpymem(p, "\"last_id\":null,\"last_publish_age\":null}",
                           39);
        }
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    if (n > 1) {
        p = ngx_cpymem(p, "]}", 2);
    }

    *p++ = '\n';

    return ngx_http_sse_send_json(r, NGX_HTTP_OK, json, p - json);
}


ngx_uint_t
ngx_http_sse_is_event_stream(ngx_http_request_t *r)
{
    u_char  c;
    size_t  len;

    if (r->headers_in.content_type == NULL) {
        return 0;
    }

    len = sizeof("text/event-stream") - 1;

    if (r->headers_in.content_type->value.len < len
        || ngx_strncasecmp(r->headers_in.content_type->value.data,
                           (u_char *) "text/event-stream", len)
           != 0)
    {
        return 0;
    }

    if (r->headers_in.content_type->value.len == len) {
        return 1;
    }

    c = r->headers_in.content_type->value.data[len];

    return c == ';' || c == ' ' || c == '\t';
}


u_char *
ngx_http_sse_json_channel(u_char *p, sse::Slice id)
{
    *p++ = '"';
    p += sse::json_escape(p, id);
    *p++ = '"';

    return p;
}

} // namespace
