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
typedef ngx_http_sse_store_event_t  ngx_http_sse_pending_t;


typedef struct {
    ngx_http_request_t         *request;
    ngx_http_sse_zone_t        *zone;

    /*
     * nchans of each, right after the record: sized for the request's
     * channels, not for 64 (~5.8 KB more per publish, past the request
     * pool's block: a malloc and a memset of it per publish)
     */
    ngx_uint_t                  nchans;
    sse::Slice                 *ids;
    /* the ids for the reply: the first ones, and always the last one */
    ngx_array_t                *positions;
    sse::Position              *last;
    ngx_uint_t                 *published;
    ngx_uint_t                 *subscribers;

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

    /*
     * At most one publish in flight per request, and reading paused
     * meanwhile: the store's answer may come later (a remote store); the
     * body parts that arrive wait in the socket.
     */
    ngx_http_sse_store_publish_t  op;
    unsigned                    in_flight:1;
    unsigned                    waiting:1;  /* for op: resume after it */
    unsigned                    ended:1;    /* the body is all read */
    unsigned                    replayed:1; /* answered from an earlier
                                               publish with its key */
    unsigned                    kept:1;     /* a refusal its key keeps:
                                               retrying it cannot help */
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
void ngx_http_sse_published(void *data);
void ngx_http_sse_publish_finish(ngx_http_request_t *r,
    ngx_http_sse_pub_t *pub);
ngx_int_t ngx_http_sse_publish_reply(ngx_http_sse_pub_t *pub);
void ngx_http_sse_publish_fail(ngx_http_sse_pub_t *pub, ngx_uint_t status,
    const char *code, const char *message);
ngx_int_t ngx_http_sse_publish_error(ngx_http_request_t *r,
    ngx_http_sse_pub_t *pub);
void ngx_http_sse_pub_cleanup(void *data);
ngx_int_t ngx_http_sse_idempotency_key(ngx_http_request_t *r,
    ngx_str_t *key, const char **why);
ngx_uint_t ngx_http_sse_idempotency_held(ngx_http_sse_pub_t *pub);
bool ngx_http_sse_idempotency_fits(ngx_http_sse_pub_t *pub, size_t len);
ngx_int_t ngx_http_sse_buf_reserve(ngx_http_sse_pub_t *pub, size_t len);
void ngx_http_sse_queried(void *data);
void ngx_http_sse_query_cleanup(void *data);
ngx_int_t ngx_http_sse_delete_reply(ngx_http_sse_query_t *q);
ngx_int_t ngx_http_sse_info_reply(ngx_http_sse_query_t *q);
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
        return ngx_http_sse_query(r, slcf->zone, ids, n, 1,
                                  ngx_http_sse_delete_reply);
    }

    return ngx_http_sse_query(r, slcf->zone, ids, n, 0,
                              ngx_http_sse_info_reply);
}


namespace {

ngx_int_t
ngx_http_sse_publish_start(ngx_http_request_t *r,
    ngx_http_sse_loc_conf_t *slcf, sse::Slice *ids, ngx_uint_t n)
{
    ngx_int_t            rc;
    ngx_str_t           *type;
    ngx_uint_t           i;
    const char          *why;
    ngx_pool_cleanup_t  *cln;
    ngx_http_sse_pub_t  *pub;

    pub = (ngx_http_sse_pub_t *)
              ngx_pcalloc(r->pool,
                          sizeof(ngx_http_sse_pub_t)
                          + n * (sizeof(sse::Slice) + sizeof(ngx_array_t)
                                 + 2 * sizeof(sse::Position)
                                 + 4 * sizeof(ngx_uint_t)));
    if (pub == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    pub->ids = (sse::Slice *) (pub + 1);
    pub->positions = (ngx_array_t *) (pub->ids + n);
    pub->last = (sse::Position *) (pub->positions + n);
    pub->op.last = pub->last + n;
    pub->published = (ngx_uint_t *) (pub->op.last + n);
    pub->subscribers = pub->published + n;
    pub->op.published = pub->subscribers + n;
    pub->op.subscribers = pub->op.published + n;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_sse_pub_cleanup;
    cln->data = pub;

    pub->request = r;
    pub->zone = slcf->zone;
    pub->nchans = n;
    pub->max_message = slcf->zone->store->max_message(slcf->zone);

    for (i = 0; i < n; i++) {
        pub->ids[i] = ids[i];

        if (ngx_array_init(&pub->positions[i], r->pool, 4,
                           sizeof(sse::Position))
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (ngx_http_sse_idempotency_key(r, &pub->op.idempotency_key, &why)
        != NGX_OK)
    {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_sse_send_error(r, NGX_HTTP_BAD_REQUEST,
                                       "bad_idempotency_key", why);
    }

    if (ngx_http_sse_is_event_stream(r)) {
        pub->parser = new (std::nothrow)
                          sse::EventStreamParser(pub->max_message);
        if (pub->parser == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

    } else {
        type = ngx_http_sse_header_in(r, "SSE-Event", NULL);

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

    if (pub->in_flight) {
        /* reading waits for the store's answer (ngx_http_sse_published) */
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
         * Events completed by this part go out now, in one store
         * operation; also when the part ended in a bad event: every
         * complete event before it is published, however TCP split the
         * body.
         */

        if (ngx_http_sse_publish_pending(pub) == NGX_AGAIN) {
            return;
        }

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

    pub->ended = 1;

    if (ngx_http_sse_publish_end(pub) == NGX_AGAIN) {
        return;
    }

    ngx_http_sse_publish_finish(r, pub);
}


void
ngx_http_sse_publish_finish(ngx_http_request_t *r, ngx_http_sse_pub_t *pub)
{
    /* a refusal is replayed too: one that stored a part (a full zone) */

    if (pub->replayed
        && ngx_http_sse_add_header(r, "Idempotent-Replayed", "true")
           != NGX_OK)
    {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

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
            return ngx_http_sse_publish_pending(pub);
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

    if (!ngx_http_sse_fits(pub, type, data)
        || !ngx_http_sse_idempotency_fits(pub, type.len + data.len))
    {
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


/*
 * Publishes the collected events to every channel, in one store
 * operation.  NGX_AGAIN: the store answers later; reading is paused until
 * then, and ngx_http_sse_published() resumes it.
 */

ngx_int_t
ngx_http_sse_publish_pending(ngx_http_sse_pub_t *pub)
{
    ngx_http_sse_zone_t  *zone = pub->zone;

    if (pub->npending == 0 || ngx_http_sse_idempotency_held(pub)) {
        return pub->status ? NGX_ERROR : NGX_OK;
    }

    pub->op.ids = pub->ids;
    pub->op.nchans = pub->nchans;
    pub->op.buf = pub->buf;
    pub->op.events = pub->pending;
    pub->op.nevents = pub->npending;
    pub->op.handler = ngx_http_sse_published;
    pub->op.data = pub;

    pub->in_flight = 1;
    pub->waiting = 0;

    (void) zone->store->publish(zone, &pub->op);

    if (pub->in_flight) {
        pub->waiting = 1;
        return NGX_AGAIN;
    }

    return pub->status ? NGX_ERROR : NGX_OK;
}


/* the store's answer to a publish: now or later */

void
ngx_http_sse_published(void *data)
{
    ngx_http_sse_pub_t *pub = (ngx_http_sse_pub_t *) data;

    uint64_t             seq;
    ngx_uint_t           i;
    sse::Position       *pos;
    ngx_connection_t    *c;
    ngx_http_request_t  *r = pub->request;
    ngx_http_sse_zone_t *zone = pub->zone;

    pub->in_flight = 0;
    pub->replayed = pub->op.repeated;

    for (i = 0; i < pub->nchans; i++) {
        pub->subscribers[i] = ngx_max(pub->subscribers[i],
                                      pub->op.subscribers[i]);

        if (pub->op.published[i] == 0) {
            continue;
        }

        pub->published[i] += pub->op.published[i];
        pub->last[i] = pub->op.last[i];

        /* a long streaming publish must not grow the request's pool */

        for (seq = pub->op.last[i].seq - pub->op.published[i] + 1;
             seq <= pub->op.last[i].seq
             && pub->positions[i].nelts < NGX_HTTP_SSE_REPLY_IDS;
             seq++)
        {
            pos = (sse::Position *) ngx_array_push(&pub->positions[i]);
            if (pos == NULL) {
                break;
            }

            pos->epoch = pub->op.last[i].epoch;
            pos->seq = seq;
        }
    }

    pub->npending = 0;
    pub->buf_len = 0;

    if (pub->op.rc != NGX_OK) {
        /*
         * These events came before any bad one the parser found after
         * them: the failure to store them is the one the publisher hears.
         */
        pub->status = 0;
    }

    switch (pub->op.rc) {

    case NGX_OK:
        break;

    case NGX_HTTP_SSE_TOO_MANY:
        ngx_http_sse_publish_fail(pub, NGX_HTTP_INSUFFICIENT_STORAGE,
                                  "too_many_channels",
                                  "the zone's max_channels is reached");
        break;

    case NGX_HTTP_SSE_UNAVAILABLE:
        ngx_http_sse_publish_fail(pub, NGX_HTTP_SERVICE_UNAVAILABLE,
                                  "store_unavailable",
                                  "Redis is not reachable, did not answer "
                                  "in time, or is busy: retry (with the "
                                  "same Idempotency-Key)");
        break;

    case NGX_HTTP_SSE_WRONG_TYPE:
        ngx_http_sse_publish_fail(pub, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                  "store_wrong_type",
                                  "a key of the channel in Redis is of "
                                  "another type than the module keeps "
                                  "there (see the error log): nothing was "
                                  "published, and a retry will not help");
        break;

    case NGX_HTTP_SSE_STORE_ERROR:
        ngx_http_sse_publish_fail(pub, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                  "store_error",
                                  "Redis refused the publish script (see "
                                  "the error log): nothing was published, "
                                  "and a retry will not help");
        break;

    case NGX_HTTP_SSE_ZONE_FULL:
        if (zone->store != &ngx_http_sse_shm_store) {
            /* Redis' maxmemory: its script refused before any write */
            ngx_http_sse_publish_fail(pub, NGX_HTTP_INSUFFICIENT_STORAGE,
                                      "store_full",
                                      "Redis is out of memory (maxmemory): "
                                      "nothing was published");
            break;
        }

        if (pub->op.recorded && ngx_http_sse_published_any(&pub->op)) {
            /* the store kept this answer for the key: say what it means */
            pub->kept = 1;

            if (!pub->op.repeated) {
                ngx_http_sse_log_full(zone, r->connection->log);
            }

            ngx_http_sse_publish_fail(pub, NGX_HTTP_INSUFFICIENT_STORAGE,
                                      "zone_full",
                                      "the sse zone ran out of room part "
                                      "way: the events listed here were "
                                      "published, the rest were not; this "
                                      "Idempotency-Key keeps this answer, "
                                      "so publish the rest under a new key");
            break;
        }

        ngx_http_sse_log_full(zone, r->connection->log);
        ngx_http_sse_publish_fail(pub, NGX_HTTP_INSUFFICIENT_STORAGE,
                                  "zone_full",
                                  "the sse zone has no room for the event, "
                                  "even after evicting the oldest history");
        break;

    default:
        ngx_http_sse_publish_fail(pub, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                  "no_memory", "out of memory");
        break;
    }

    if (!pub->waiting) {
        /* answered at once: the caller goes on */
        return;
    }

    /* answered later: reading resumes, or the reply goes out */

    pub->waiting = 0;
    c = r->connection;

    if (pub->ended) {
        ngx_http_sse_publish_finish(r, pub);

    } else {
        ngx_http_sse_publish_read(r);
    }

    ngx_http_run_posted_requests(c);
}


/*
 * The reply: what was published on each channel.  A failed publish
 * answers with the same fields after its "error" and "message": the events
 * before the failure are published, and the publisher learns their ids.
 */

ngx_int_t
ngx_http_sse_publish_reply(ngx_http_sse_pub_t *pub)
{
    u_char              *json, *p, *last;
    size_t               len, last_len;
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

        last = p;
        last_len = 0;

        if (pub->published[i]) {
            *p++ = '"';
            p += sse::format_id(p, &pub->last[i], 1);
            *p++ = '"';
            last_len = (size_t) (p - last);

        } else {
            p = ngx_cpymem(p, "null", 4);
        }

        p = ngx_cpymem(p, ",\"ids\":[", 8);

        for (k = 0; k < pub->positions[i].nelts; k++) {
            if (k) {
                *p++ = ',';
            }

            /* the last id is written once already (one event: the only) */

            if (last_len && pos[k].seq == pub->last[i].seq
                && pos[k].epoch == pub->last[i].epoch)
            {
                p = ngx_cpymem(p, last, last_len);
                continue;
            }

            *p++ = '"';
            p += sse::format_id(p, &pos[k], 1);
            *p++ = '"';
        }

        *p++ = ']';

        if (pub->published[i] > pub->positions[i].nelts) {
            p = ngx_cpymem(p, ",\"ids_truncated\":true",
                           sizeof(",\"ids_truncated\":true") - 1);
        }

        p = ngx_cpymem(p, ",\"events\":", sizeof(",\"events\":") - 1);
        p += sse::format_u64(p, pub->published[i]);
        p = ngx_cpymem(p, ",\"subscribers\":",
                       sizeof(",\"subscribers\":") - 1);
        p += sse::format_u64(p, pub->subscribers[i]);

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
    /* no Retry-After where the key answers a retry with this again */

    if (pub->status == NGX_HTTP_INSUFFICIENT_STORAGE && !pub->kept) {
        (void) ngx_http_sse_add_header(r, "Retry-After", "5");
    }

    if (pub->status == NGX_HTTP_SERVICE_UNAVAILABLE) {
        (void) ngx_http_sse_add_header(r, "Retry-After", "1");
    }

    return ngx_http_sse_publish_reply(pub);
}


void
ngx_http_sse_pub_cleanup(void *data)
{
    ngx_http_sse_pub_t *pub = (ngx_http_sse_pub_t *) data;

    if (pub->in_flight) {
        /* the request is gone before the store answered */
        pub->zone->store->cancel(pub->zone, &pub->op);
        pub->in_flight = 0;
    }

    delete pub->parser;
    free(pub->buf);
    free(pub->pending);
}


/*
 * Idempotency-Key (SPEC "Idempotent publishing"): 1 to 255 bytes of
 * printable ASCII, space included (0x20-0x7E; nginx has already trimmed
 * the spaces around the value), given once.  NGX_OK with key empty: the
 * request has none.  NGX_DECLINED: a bad one, why says what is wrong.
 */

ngx_int_t
ngx_http_sse_idempotency_key(ngx_http_request_t *r, ngx_str_t *key,
    const char **why)
{
    u_char      *p, *last;
    ngx_str_t   *value;
    ngx_uint_t   n;

    value = ngx_http_sse_header_in(r, "Idempotency-Key", &n);

    /* two keys would leave the request's identity to a guess */
    if (n > 1) {
        *why = "the request has more than one Idempotency-Key header";
        return NGX_DECLINED;
    }

    if (value == NULL) {
        ngx_str_null(key);
        return NGX_OK;
    }

    if (value->len == 0
        || value->len > NGX_HTTP_SSE_IDEMPOTENCY_KEY_MAX)
    {
        *why = "the Idempotency-Key header must have 1 to 255 bytes";
        return NGX_DECLINED;
    }

    last = value->data + value->len;

    for (p = value->data; p < last; p++) {
        if (*p < 0x20 || *p > 0x7e) {
            *why = "the Idempotency-Key header must be printable ASCII";
            return NGX_DECLINED;
        }
    }

    *key = *value;

    return NGX_OK;
}


/*
 * A request with a key is one publish: its events are held until the body
 * has ended cleanly, and a failure on the way (a bad event, a body cut
 * short) publishes none of them.  1: not to be published now.
 */

ngx_uint_t
ngx_http_sse_idempotency_held(ngx_http_sse_pub_t *pub)
{
    if (pub->op.idempotency_key.len == 0) {
        return 0;
    }

    if (pub->status) {
        pub->npending = 0;
        pub->buf_len = 0;
        return 1;
    }

    return !pub->ended;
}


/*
 * What a request with a key may make a worker hold until its body ends,
 * and publish under one lock: max_message bytes of events in all, and
 * as many events as a reply lists ids for.
 */

bool
ngx_http_sse_idempotency_fits(ngx_http_sse_pub_t *pub, size_t len)
{
    if (pub->op.idempotency_key.len == 0
        || (pub->buf_len + len <= pub->max_message
            && pub->npending < NGX_HTTP_SSE_REPLY_IDS))
    {
        return true;
    }

    ngx_http_sse_publish_fail(pub, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                              "too_large",
                              "with an Idempotency-Key the whole body is "
                              "one publish: at most 1000 events and the "
                              "zone's max_message bytes");
    return false;
}


ngx_int_t
ngx_http_sse_buf_reserve(ngx_http_sse_pub_t *pub, size_t len)
{
    return ngx_http_sse_grow((void **) &pub->buf, &pub->buf_cap,
                             pub->buf_len + len, 1, 1024);
}


/*
 * DELETE, GET, HEAD: one store operation, then the reply.  Answered at
 * once, the handler returns the reply's code as any handler would;
 * answered later, the request is kept (r->main->count) and finalized when
 * the answer comes.
 */

} // namespace


ngx_int_t
ngx_http_sse_query(ngx_http_request_t *r, ngx_http_sse_zone_t *zone,
    sse::Slice *ids, ngx_uint_t n, ngx_uint_t remove,
    ngx_http_sse_query_reply_pt reply)
{
    ngx_int_t              rc;
    ngx_uint_t             i;
    ngx_pool_cleanup_t    *cln;
    ngx_http_sse_query_t  *q;

    q = (ngx_http_sse_query_t *) ngx_pcalloc(r->pool,
                                             sizeof(ngx_http_sse_query_t));
    if (q == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_sse_query_cleanup;
    cln->data = q;

    for (i = 0; i < n; i++) {
        q->ids[i] = ids[i];
    }

    q->request = r;
    q->zone = zone;
    q->reply = reply;
    q->op.ids = q->ids;
    q->op.nchans = n;
    q->op.handler = ngx_http_sse_queried;
    q->op.data = q;
    q->in_flight = 1;

    if (remove) {
        rc = zone->store->remove(zone, &q->op);

    } else {
        rc = zone->store->info(zone, &q->op);
    }

    if (q->in_flight) {
        q->waiting = 1;
        r->main->count++;
        return NGX_DONE;
    }

    return (rc == NGX_ERROR) ? NGX_HTTP_INTERNAL_SERVER_ERROR : q->rc;
}


namespace {


void
ngx_http_sse_queried(void *data)
{
    ngx_http_sse_query_t *q = (ngx_http_sse_query_t *) data;

    ngx_connection_t    *c;
    ngx_http_request_t  *r = q->request;

    q->in_flight = 0;

    if (q->op.rc == NGX_HTTP_SSE_ZONE_FULL) {
        q->rc = ngx_http_sse_send_error(r, NGX_HTTP_INSUFFICIENT_STORAGE,
                                        "store_full",
                                        "Redis is out of memory (maxmemory): "
                                        "nothing was deleted");

    } else if (q->op.rc == NGX_HTTP_SSE_WRONG_TYPE) {
        q->rc = ngx_http_sse_send_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                        "store_wrong_type",
                                        "a key of the channel in Redis is of "
                                        "another type than the module keeps "
                                        "there (see the error log): a retry "
                                        "will not help");

    } else if (q->op.rc == NGX_HTTP_SSE_STORE_ERROR) {
        q->rc = ngx_http_sse_send_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                        "store_error",
                                        "Redis refused the script (see the "
                                        "error log): a retry will not help");

    } else if (q->op.rc != NGX_OK) {
        /* Redis not reachable, not answering in time, or busy */
        (void) ngx_http_sse_add_header(r, "Retry-After", "1");

        q->rc = ngx_http_sse_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "store_unavailable",
                                        "the channel store did not answer");

    } else {
        q->rc = q->reply(q);
    }

    if (!q->waiting) {
        return;
    }

    q->waiting = 0;
    c = r->connection;

    ngx_http_finalize_request(r, q->rc);
    ngx_http_run_posted_requests(c);
}


void
ngx_http_sse_query_cleanup(void *data)
{
    ngx_http_sse_query_t *q = (ngx_http_sse_query_t *) data;

    if (q->in_flight) {
        q->zone->store->cancel(q->zone, &q->op);
        q->in_flight = 0;
    }
}


ngx_int_t
ngx_http_sse_delete_reply(ngx_http_sse_query_t *q)
{
    u_char                       *json, *p;
    ngx_uint_t                    i, n, found;
    ngx_http_request_t           *r = q->request;
    ngx_http_sse_channel_info_t  *info;

    n = q->op.nchans;

    json = (u_char *) ngx_pnalloc(r->pool, 64 + n * (80 + 6 * 255));
    if (json == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = json;
    found = 0;

    if (n > 1) {
        p = ngx_cpymem(p, "{\"channels\":[", 13);
    }

    for (i = 0; i < n; i++) {
        info = &q->op.channels[i];

        /* LIVE: deleted by this request; a tomb was deleted before */
        if (info->state != NGX_HTTP_SSE_CHANNEL_LIVE) {
            continue;
        }

        if (found++) {
            *p++ = ',';
        }

        p = ngx_cpymem(p, "{\"channel\":", 11);
        p = ngx_http_sse_json_channel(p, q->ids[i]);
        p = ngx_sprintf(p, ",\"deleted\":true,\"subscribers\":%ui}",
                        info->subscribers);
    }

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
ngx_http_sse_info_reply(ngx_http_sse_query_t *q)
{
    u_char                       *json, *p;
    time_t                        now;
    ngx_uint_t                    i, n;
    ngx_http_request_t           *r = q->request;
    ngx_http_sse_channel_info_t  *info;

    n = q->op.nchans;

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

    for (i = 0; i < n; i++) {
        info = &q->op.channels[i];

        if (info->state != NGX_HTTP_SSE_CHANNEL_LIVE) {
            return ngx_http_sse_send_error(r, NGX_HTTP_NOT_FOUND,
                                           "not_found", "no such channel");
        }

        if (i) {
            *p++ = ',';
        }

        p = ngx_cpymem(p, "{\"channel\":", 11);
        p = ngx_http_sse_json_channel(p, q->ids[i]);
        p = ngx_sprintf(p, ",\"subscribers\":%ui,\"events\":%ui,",
                        info->subscribers, info->events);

        if (info->last.seq) {
            p = ngx_cpymem(p, "\"last_id\":\"", 11);
            p += ngx_http_sse_format_position(p, info->last.epoch,
                                              info->last.seq);
            p = ngx_sprintf(p, "\",\"last_publish_age\":%T}",
                            now - info->last_publish);

        } else {
            p = ngx_cpymem(p, "\"last_id\":null,\"last_publish_age\":null}",
                           39);
        }
    }

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
