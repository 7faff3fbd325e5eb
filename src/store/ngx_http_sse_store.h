/*
 * The store: what the publish, subscribe, status and fan-out code asks of
 * the place where channels and their history live.
 *
 * One table of operations per kind of store (ngx_http_sse_store_t); a zone
 * points to the one it uses (zone->store).  The shared-memory store
 * (ngx_http_sse_shm_store, ngx_http_sse_store_shm.cpp) answers every
 * operation at once; a remote store (Redis) answers later, from its own
 * event loop.  Callers are written for both.
 *
 * The contract, for every store:
 *
 *   Ownership.  The operation records (ngx_http_sse_store_*_t) belong to
 *   the caller, and so do the buffers their inputs point to; they must
 *   stay valid until the completion has run or the operation was
 *   cancelled.  A store writes only the record's "out" fields.
 *   Nothing a store hands out points into its storage: results are
 *   values (positions, counts, times), and events reach the caller as
 *   wire bytes that are only valid during the sink call that receives
 *   them (or in the batch, until the next collect).  The only handle a
 *   caller keeps is ngx_http_sse_local_t, the store's per-worker record
 *   of a channel this worker has subscribers of; its fields are the
 *   store's, except those marked "worker" in ngx_http_sse.h.
 *   The zone lock, and every shared-memory address, stay in the store's
 *   files (src/store/ngx_http_sse_store*.cpp).
 *
 *   Completions.  publish, remove, info and join take a completion
 *   (op->handler, op->data).  A store calls it exactly once, unless the
 *   operation is cancelled first: either before the operation returns
 *   (inline; the operation then returns NGX_OK) or later, from the event
 *   loop (the operation returns NGX_AGAIN).  A caller must not act on
 *   the result before the completion ran, and must cancel an operation
 *   whose caller goes away (a request finalized, a client gone) before
 *   its completion: after cancel() returns, the store never touches the
 *   record again.  A completion may start the next operation.
 *
 *   Errors, in op->rc once the completion runs: NGX_OK;
 *   NGX_HTTP_SSE_ZONE_FULL (no room even after evicting: 507 / 503);
 *   NGX_HTTP_SSE_TOO_MANY (max_channels, or max_subscribers on join);
 *   NGX_HTTP_SSE_DELETED (join: a channel is deleted: 204);
 *   NGX_ERROR (out of memory, the store unreachable).  A multi-channel
 *   publish that fails stores nothing on the channels after the one that
 *   failed; what it stored before is in the per-channel results, so the
 *   publisher learns exactly which events have ids.
 *
 *   Reads.  read() and collect() run their sinks synchronously (the shm
 *   store under its lock): a sink must not call the store, write to a
 *   socket or block.  They never hand out more than asked: read() stops
 *   before an event that would exceed the budget, unless it is the first
 *   one (one event larger than the budget is read alone), and the sink
 *   may stop it earlier (NGX_DECLINED).
 */

#ifndef NGX_HTTP_SSE_STORE_H
#define NGX_HTTP_SSE_STORE_H

#include "ngx_sse_nginx.h"
#include "sse_wire.h"


#define NGX_HTTP_SSE_ZONE_FULL      -10
#define NGX_HTTP_SSE_TOO_MANY       -11

/* what a read found: the channel is over (deleted, or published to again
 * after a DELETE) once the reader has its events, or they are gone */
#define NGX_HTTP_SSE_PULL_END       -12
#define NGX_HTTP_SSE_PULL_GAP       -13

/* join: a channel is deleted (its tomb answers 204); max_subscribers */
#define NGX_HTTP_SSE_DELETED        -14
#define NGX_HTTP_SSE_TOO_MANY_SUBSCRIBERS  -15

/* a remote store is not reachable, or did not answer in time: 503 with
 * Retry-After (the operation may or may not have been applied) */
#define NGX_HTTP_SSE_UNAVAILABLE    -16

/* a remote store refused the operation for a reason a retry does not
 * mend, having applied nothing: a key of another type where the store
 * keeps its own (WRONG_TYPE), or a corrupt record, a script error, a
 * command its access rules forbid (STORE_ERROR); 500, no Retry-After */
#define NGX_HTTP_SSE_WRONG_TYPE     -17
#define NGX_HTTP_SSE_STORE_ERROR    -18

/* the longest Idempotency-Key a store is given */
#define NGX_HTTP_SSE_IDEMPOTENCY_KEY_MAX  255


typedef struct ngx_http_sse_zone_s     ngx_http_sse_zone_t;
typedef struct ngx_http_sse_local_s    ngx_http_sse_local_t;
typedef struct ngx_http_sse_sub_s      ngx_http_sse_sub_t;
typedef struct ngx_http_sse_store_s    ngx_http_sse_store_t;

typedef void (*ngx_http_sse_store_handler_pt)(void *data);


/* ---- publish ---------------------------------------------------------- */

/* one event of a batch: its type, then its data, back to back in buf */
typedef struct {
    size_t                      type_len;
    size_t                      data_len;
} ngx_http_sse_store_event_t;


typedef struct {
    /* in */
    sse::Slice                 *ids;
    ngx_uint_t                  nchans;
    u_char                     *buf;
    ngx_http_sse_store_event_t *events;
    ngx_uint_t                  nevents;

    /* Idempotency-Key (empty: none; at most
     * NGX_HTTP_SSE_IDEMPOTENCY_KEY_MAX bytes): a publish with a key a
     * successful publish to the same channels had within history_ttl
     * stores nothing and answers as that one did (out: repeated, and
     * published, last, subscribers as that one's, and rc: a publish
     * refused after it stored a part is remembered with its refusal); a
     * publish refused before it stored anything is not remembered */
    ngx_str_t                   idempotency_key;

    ngx_http_sse_store_handler_pt  handler;
    void                       *data;

    ngx_uint_t                  repeated;
    ngx_uint_t                  recorded;   /* out: the key keeps the answer */

    /*
     * out, per channel: the events stored by this operation (their seqs
     * follow each other: the first is last.seq - published + 1), the id
     * of the last one, and the channel's subscribers at that moment.
     * nchans of each, in the caller's memory: sized for the request's
     * channels, not for 64 (~2 KB a publish would zero for nothing).
     */
    ngx_int_t                   rc;
    ngx_uint_t                 *published;
    sse::Position              *last;
    ngx_uint_t                 *subscribers;
} ngx_http_sse_store_publish_t;


/* whether a publish stored any event (on a refusal: a part) */

static ngx_inline ngx_uint_t
ngx_http_sse_published_any(ngx_http_sse_store_publish_t *op)
{
    ngx_uint_t  i;

    for (i = 0; i < op->nchans; i++) {
        if (op->published[i]) {
            return 1;
        }
    }

    return 0;
}


/* ---- delete and info ---------------------------------------------------- */

typedef struct {
    /* out: NGX_HTTP_SSE_CHANNEL_* */
    ngx_uint_t                  state;
    ngx_uint_t                  subscribers;
    ngx_uint_t                  events;     /* in history */
    sse::Position               last;       /* seq 0: nothing published */
    time_t                      last_publish;
} ngx_http_sse_channel_info_t;

#define NGX_HTTP_SSE_CHANNEL_NONE     0
#define NGX_HTTP_SSE_CHANNEL_LIVE     1
#define NGX_HTTP_SSE_CHANNEL_DELETED  2


/*
 * remove(): every channel named is deleted (its streams end after what
 * was published before; a subscribe gets 204 for history_ttl); out: the
 * state each had (LIVE: deleted now) and its subscribers.
 * info(): the state and figures of each channel, deleting nothing.
 */
typedef struct {
    /* in */
    sse::Slice                 *ids;
    ngx_uint_t                  nchans;

    ngx_http_sse_store_handler_pt  handler;
    void                       *data;

    /* out */
    ngx_int_t                   rc;
    ngx_http_sse_channel_info_t channels[sse::max_channels_per_stream];
} ngx_http_sse_store_query_t;


/* ---- join --------------------------------------------------------------- */

/*
 * A stream joins its channels at positions: the store links each of
 * sub->chans to its channel (sc->local), sets the stream's position in it
 * (sc->pos, sc->pos_cum) from the plan, marks it behind where it has
 * history to replay, and keeps that history for this worker.  Out, per
 * channel: the reset to tell the client, if any.  On failure the stream
 * has joined nothing the caller must not leave (leave() is always safe).
 */
typedef struct {
    /* in */
    ngx_http_sse_sub_t         *sub;
    sse::Slice                 *ids;
    ngx_uint_t                  nchans;
    sse::Position              *positions;  /* the client's, or NULL */
    ngx_int_t                   have_id;    /* 1: positions; -1: an id
                                               that does not parse */
    ngx_int_t                   replay;     /* sse_replay without an id */

    ngx_http_sse_store_handler_pt  handler;
    void                       *data;

    /* out: rc, and in reset (nchans entries, the caller's) the reset to
     * tell per channel: NULL, "gap" or "unknown" */
    ngx_int_t                   rc;
    const char                **reset;
} ngx_http_sse_store_join_t;


/* ---- reads -------------------------------------------------------------- */

/*
 * NGX_OK: go on; NGX_DECLINED: no room, stop here; NGX_ERROR: stop.
 * published: when the event was stored (ngx_current_msec), for the
 * publish-to-flush histogram.
 */
typedef ngx_int_t (*ngx_http_sse_event_sink_pt)(void *data, uint64_t seq,
    u_char *wire, size_t len, size_t id_len, uint64_t cum,
    ngx_msec_t published);


/*
 * A channel's events after a position, within a budget of wire bytes.
 * rc: NGX_OK (out.caught_up: the reader has every event there is);
 * NGX_HTTP_SSE_PULL_END (the channel is over for this reader: deleted and
 * read to its end, or renewed under another epoch);  a channel RENEWED
 * (see the batch) hands over nothing more of its old epoch: NGX_OK, not
 * caught up, until the fan-out moves the reader (move());
 * NGX_HTTP_SSE_PULL_GAP (events after the position are gone);
 * NGX_ERROR (the sink failed).
 */
typedef struct {
    ngx_http_sse_local_t       *local;
    sse::Position               from;       /* the last event it has */
    size_t                      budget;

    ngx_http_sse_event_sink_pt  sink;
    void                       *data;

    /* out */
    ngx_uint_t                  caught_up;
    size_t                      bytes;      /* wire bytes handed over */
} ngx_http_sse_store_read_t;


/*
 * The fan-out's batch: the new events of every channel that changed for
 * this worker since it last looked, their wire bytes back to back in
 * scratch.  The batch is the worker's, reused from one collect to the
 * next (no allocation per event).  A channel's local record is marked
 * busy while in a batch (it stays, even if its streams leave), and
 * "ending" when its streams are done with it: DELETED, they end after
 * these events (a DELETE); RENEWED, the channel went on under a newer
 * epoch (with sse_redis: Redis restarted empty, was flushed, evicted it,
 * was restored from a snapshot or failed over): each stream moves to the
 * new epoch with a reset (move()), and the old epoch's events it did not
 * have yet are void.
 */
typedef struct {
    ngx_http_sse_local_t       *local;
    uint64_t                    seq;
    uint64_t                    cum;
    size_t                      offset;     /* in scratch */
    size_t                      len;
    size_t                      id_len;
    ngx_msec_t                  published;  /* when it was stored */
} ngx_http_sse_copy_t;


typedef struct {
    u_char                     *scratch;
    size_t                      scratch_len;
    size_t                      scratch_cap;

    ngx_http_sse_copy_t        *copies;     /* grouped by channel */
    ngx_uint_t                  ncopies;
    size_t                      copies_cap;

    ngx_http_sse_local_t      **touched;    /* the channels, in order */
    ngx_uint_t                  ntouched;
    size_t                      touched_cap;
} ngx_http_sse_batch_t;

#define NGX_HTTP_SSE_LOCAL_DELETED  1
#define NGX_HTTP_SSE_LOCAL_RENEWED  2

static_assert(NGX_HTTP_SSE_LOCAL_RENEWED < 4, "it fits local->ending (2 bits)");


/* ---- figures ------------------------------------------------------------ */

typedef struct {
    size_t                      size;
    size_t                      used;
    ngx_uint_t                  channels;
    ngx_uint_t                  subscribers;
    ngx_uint_t                  stored_events;
    ngx_uint_t                  workers;
    ngx_uint_t                  published;
    ngx_uint_t                  delivered;
    ngx_uint_t                  evicted;
    ngx_uint_t                  dropped_slow;
    ngx_uint_t                  refused_full;
    ngx_uint_t                  wakeups;
    ngx_uint_t                  woken;
    ngx_uint_t                  idempotency_records;
    ngx_uint_t                  idempotent_replays;
    ngx_uint_t                  idempotency_dropped;
} ngx_http_sse_figures_t;


/* counters a worker adds to the zone's (NGX_HTTP_SSE_COUNT_*) */
#define NGX_HTTP_SSE_COUNT_DELIVERED     0
#define NGX_HTTP_SSE_COUNT_DROPPED_SLOW  1


/* ---- the operations ----------------------------------------------------- */

struct ngx_http_sse_store_s {
    const char                 *name;

    /* with a completion (see the contract above) */
    ngx_int_t (*publish)(ngx_http_sse_zone_t *zone,
        ngx_http_sse_store_publish_t *op);
    ngx_int_t (*remove)(ngx_http_sse_zone_t *zone,
        ngx_http_sse_store_query_t *op);
    ngx_int_t (*info)(ngx_http_sse_zone_t *zone,
        ngx_http_sse_store_query_t *op);
    ngx_int_t (*join)(ngx_http_sse_zone_t *zone,
        ngx_http_sse_store_join_t *op);
    void (*cancel)(ngx_http_sse_zone_t *zone, void *op);

    /* answered at once */
    ngx_int_t (*read)(ngx_http_sse_zone_t *zone,
        ngx_http_sse_store_read_t *rd);
    void (*leave)(ngx_http_sse_zone_t *zone, ngx_http_sse_sub_t *sub);
    ngx_int_t (*collect)(ngx_http_sse_zone_t *zone,
        ngx_http_sse_batch_t *batch);
    void (*settle)(ngx_http_sse_zone_t *zone, ngx_http_sse_local_t **locals,
        ngx_uint_t n);
    void (*figures)(ngx_http_sse_zone_t *zone, ngx_http_sse_figures_t *f);
    void (*count)(ngx_http_sse_zone_t *zone, ngx_uint_t counter,
        ngx_uint_t n);
    size_t (*max_message)(ngx_http_sse_zone_t *zone);

    /*
     * A stream's channel was RENEWED (see the batch): sc leaves its local
     * record for the channel's new epoch, at the oldest event of it the
     * store holds (BEHIND: it pulls them; LIVE if there is none yet); its
     * other channels stay as they are.  Out: the channel's id (id has
     * room for sse::max_channel_id_len bytes), for the reset the caller
     * tells.  NGX_OK; NGX_DECLINED: the channel has no new epoch to go
     * to (deleted meanwhile: the stream ends); NGX_HTTP_SSE_ZONE_FULL:
     * no room for the new join.  Neither moves it.
     */
    ngx_int_t (*move)(ngx_http_sse_zone_t *zone, ngx_http_sse_sub_t *sub,
        ngx_uint_t index, u_char *id, size_t *id_len);

    /*
     * this worker: attach to the zone (its wake-up address; NGX_ERROR:
     * no room for another worker), detach, one bounded step of expiry
     * (non-zero: more to do), finding workers that died
     */
    ngx_int_t (*attach)(ngx_http_sse_zone_t *zone, u_char *addr,
        size_t addr_len);
    void (*detach)(ngx_http_sse_zone_t *zone);
    ngx_uint_t (*expire)(ngx_http_sse_zone_t *zone);
    void (*probe)(ngx_http_sse_zone_t *zone);
};


extern ngx_http_sse_store_t  ngx_http_sse_shm_store;

/* a zone with sse_redis (ngx_http_sse_store_redis*.cpp) */
extern ngx_http_sse_store_t  ngx_http_sse_redis_store;


#endif /* NGX_HTTP_SSE_STORE_H */
