/*
 * ngx_http_sse_module: declarations shared by the module's files.
 *
 *   ngx_http_sse_module.cpp     directives, configuration, process hooks
 *   ngx_http_sse_store.h        the store interface (its contract)
 *   ngx_http_sse_store_shm.cpp  the shm store's operations (the zone lock)
 *   ngx_http_sse_store.cpp      the shared zone: channels, history, slots
 *   ngx_http_sse_store_wake.cpp wake-ups between workers (the shm store)
 *   ngx_http_sse_store_idem.cpp Idempotency-Key records (the shm store)
 *   ngx_http_sse_ipc.cpp        a worker's wake-up socket, the sweep
 *   ngx_http_sse_fanout.cpp     fan-out to a worker's streams, pulls
 *   ngx_http_sse_block.cpp      large events shared by a worker's streams
 *   ngx_http_sse_subscribe.cpp  subscriber streams
 *   ngx_http_sse_publish.cpp    the publish location
 *   ngx_http_sse_status.cpp     sse_status
 *   ngx_http_sse_metrics.cpp    latency and duration histograms
 *   ngx_http_sse_status_page.cpp  sse_status?format=html
 *   ngx_http_sse_redis*.cpp     sse_redis: the Redis client of a zone
 *   ngx_http_sse_log.cpp        a stream's access-log line, $sse_* variables
 */

#ifndef NGX_HTTP_SSE_H
#define NGX_HTTP_SSE_H

#include "ngx_sse_nginx.h"
#include "sse_wire.h"
#include "ngx_http_sse_store.h"


/*
 * Worker slots: every worker process (of every nginx generation alive at
 * once, old ones during a reload included) registers in one slot of each
 * zone.  A channel keeps a list of the slots that have subscribers of it.
 */
#define NGX_HTTP_SSE_MAX_SLOTS      128

/*
 * Bounds of the work done under the zone lock per call: expired events,
 * idle channels and tombs each (ngx_http_sse_store_expire()), and the
 * events evicted to make room for one allocation (plus one per 32 bytes
 * asked for: room for a large event takes many small ones).
 */
#define NGX_HTTP_SSE_EXPIRE_MAX     64
#define NGX_HTTP_SSE_EVICT_MAX      256

#define NGX_HTTP_SSE_ZONE_MAGIC     0x53534539  /* "SSE9": layout version */

/* every directive's default (SPEC.md), in one place */
#define NGX_HTTP_SSE_DEFAULT_ZONE          "sse"
#define NGX_HTTP_SSE_DEFAULT_SIZE          (32 * 1024 * 1024)
#define NGX_HTTP_SSE_DEFAULT_HISTORY       100
#define NGX_HTTP_SSE_DEFAULT_HISTORY_TTL   3600        /* seconds */
#define NGX_HTTP_SSE_DEFAULT_CHANNEL_TTL   3600        /* seconds */
#define NGX_HTTP_SSE_DEFAULT_MAX_CHANNELS  0           /* unlimited */
#define NGX_HTTP_SSE_DEFAULT_MAX_SUBS      0           /* unlimited */
#define NGX_HTTP_SSE_DEFAULT_MAX_MESSAGE   (1024 * 1024)
#define NGX_HTTP_SSE_DEFAULT_HEARTBEAT     15000       /* ms */
#define NGX_HTTP_SSE_DEFAULT_RETRY         0           /* ms, 0: none */
#define NGX_HTTP_SSE_DEFAULT_REPLAY        0
#define NGX_HTTP_SSE_DEFAULT_RESET_EVENT   "reset"
#define NGX_HTTP_SSE_DEFAULT_MAX_PENDING   (256 * 1024)
#define NGX_HTTP_SSE_DEFAULT_LIFETIME      0           /* s, 0: none */

/* channels freed at most by one publish's check that its event can fit */
#define NGX_HTTP_SSE_RECLAIM_MAX    256


typedef struct ngx_http_sse_channel_s  ngx_http_sse_channel_t;
typedef struct ngx_http_sse_timing_s   ngx_http_sse_timing_t;
typedef struct ngx_http_sse_log_s      ngx_http_sse_log_t;


/* ---- shared memory -------------------------------------------------- */

typedef struct {
    ngx_queue_t                 age;        /* sh->events, oldest first */
    ngx_http_sse_channel_t     *channel;
    uint64_t                    seq;
    uint64_t                    cum;        /* channel bytes through this */
    time_t                      time;
    ngx_msec_t                  msec;       /* ngx_current_msec: publish
                                               to flush latency */
    uint32_t                    len;        /* bytes in wire */
    uint16_t                    id_len;     /* its leading "id: ...\n" */
    u_char                      wire[1];
} ngx_http_sse_event_t;


typedef struct ngx_http_sse_chan_slot_s  ngx_http_sse_chan_slot_t;

/*
 * A worker slot's share of a channel.  It is also what the slot's wake-up
 * queue holds: a publisher queues the shares of the channels it changed,
 * once each (queued), so a worker takes exactly what changed for it.
 */
struct ngx_http_sse_chan_slot_s {
    ngx_http_sse_chan_slot_t   *next;       /* ch->slots */
    ngx_http_sse_channel_t     *channel;
    ngx_queue_t                 qlink;      /* slot->changed, if queued */
    ngx_queue_t                 slink;      /* slot->shares */
    uint32_t                    slot;
    uint32_t                    subscribers;
    uint64_t                    cursor;     /* every stream there has it */
    uint64_t                    allowance;  /* bytes its streams may lag */
    unsigned                    queued:1;
};


struct ngx_http_sse_channel_s {
    ngx_rbtree_node_t           node;       /* key: crc32 of the id */
    ngx_queue_t                 link;       /* sh->idle, sh->empty or
                                               sh->tombs */
    uint64_t                    op;         /* the store operation that
                                               last looked it up */

    uint64_t                    epoch;
    uint64_t                    last_seq;   /* newest event, 0: none yet */
    uint64_t                    first_seq;  /* oldest stored event */
    uint64_t                    total;      /* bytes ever appended */

    ngx_http_sse_event_t      **ring;
    uint32_t                    ring_cap;
    uint32_t                    ring_head;
    uint32_t                    nevents;

    uint32_t                    subscribers;
    ngx_http_sse_chan_slot_t   *slots;

    time_t                      last_publish;   /* 0: never */
    time_t                      last_active;    /* for channel_ttl */

    /* with sse_redis: the node's own epoch the channel had before it
     * learnt the cluster's, and the seq it learnt it at (its streams
     * that joined before are moved there, ngx_http_sse_shm_insert()) */
    uint64_t                    adopted_from;
    uint64_t                    base;

    unsigned                    deleted:1;
    unsigned                    in_link:1;
    unsigned                    unlinked:1;     /* a tomb out of the tree */
    unsigned                    empty:1;        /* in sh->empty */
    unsigned                    remote:1;       /* epoch is the cluster's */
    unsigned                    renewed:1;      /* a tomb: the channel went
                                                   on under a newer epoch
                                                   (Redis), not a DELETE:
                                                   its streams move there */

    u_char                      id_len;
    u_char                      id[1];
};


typedef struct {
    ngx_atomic_t                pid;        /* 0: free */
    ngx_atomic_t                wake_pending;
    u_char                      addr[16];   /* its wake-up socket's name */
    uint32_t                    addr_len;
    ngx_uint_t                  subscribers;    /* channel joins */
    ngx_uint_t                  streams;
    ngx_queue_t                 changed;    /* shares queued for a wake-up */
    ngx_queue_t                 shares;     /* every share of this slot */
} ngx_http_sse_slot_t;


/*
 * The Redis link of a zone (sse_redis), as every worker reports it: the
 * state of each worker's connections, in the slot the worker holds, and
 * counters for sse_status (ngx_http_sse_redis*.cpp writes them).
 */
#define NGX_HTTP_SSE_REDIS_CONNECTING  1    /* not up yet, not failed yet */
#define NGX_HTTP_SSE_REDIS_UP          2
#define NGX_HTTP_SSE_REDIS_DOWN        3    /* lost or failed: retrying */

typedef struct {
    ngx_atomic_t                pid;        /* the worker that wrote state */
    ngx_atomic_t                state;      /* NGX_HTTP_SSE_REDIS_* */
} ngx_http_sse_redis_worker_t;

typedef struct {
    ngx_atomic_t                reconnects;
    ngx_atomic_t                publishes_refused;
    ngx_atomic_t                errors;     /* refusals a retry does not
                                               mend (500) */
    ngx_atomic_t                last_reply;     /* ngx_current_msec; 0:
                                                   never */
    ngx_http_sse_redis_worker_t workers[NGX_HTTP_SSE_MAX_SLOTS];
} ngx_http_sse_redis_shm_t;


/*
 * What a publish with an Idempotency-Key answered, kept for history_ttl
 * (ngx_http_sse_store_idem.cpp): its outcome (NGX_OK, or the refusal of
 * a publish that stored a part before the zone ran out of room) and per
 * channel the id of its last event, how many it published and the
 * subscribers it had.  After the channel
 * results comes what the record is found by, its identity: the key's
 * length (two bytes) and bytes, then each channel id as a length byte
 * and its bytes, in the request's order; a hit compares all of it, not
 * only the hash.
 */
typedef struct {
    uint64_t                    epoch;
    uint64_t                    seq;
    uint32_t                    published;
    uint32_t                    subscribers;
} ngx_http_sse_idem_chan_t;

typedef struct {
    ngx_rbtree_node_t           node;       /* key: crc32 of key, ids */
    ngx_queue_t                 age;        /* sh->idem_age, oldest first */
    time_t                      time;       /* recorded */
    uint16_t                    ident_len;
    uint16_t                    nchans;
    int32_t                     rc;         /* the store's answer */
    ngx_http_sse_idem_chan_t    chans[1];
} ngx_http_sse_idem_t;


typedef struct {
    ngx_uint_t                  history;
    time_t                      history_ttl;
    time_t                      channel_ttl;
    ngx_uint_t                  max_channels;       /* 0: unlimited */
    ngx_uint_t                  max_subscribers;    /* 0: unlimited */
    size_t                      max_message;
} ngx_http_sse_limits_t;


/*
 * A histogram: counts per bucket (not cumulative; the last counted bucket
 * is +Inf) and the sum of what was observed, in milliseconds.  The
 * buckets' bounds are in ngx_http_sse_metrics.cpp.
 */
#define NGX_HTTP_SSE_BUCKETS_MAX    16

typedef struct {
    ngx_atomic_t                counts[NGX_HTTP_SSE_BUCKETS_MAX];
    ngx_atomic_t                sum_ms;
} ngx_http_sse_histogram_t;

/* a worker's observations not yet added to the zone's histogram */
typedef struct {
    ngx_uint_t                  counts[NGX_HTTP_SSE_BUCKETS_MAX];
    ngx_uint_t                  sum_ms;
    ngx_uint_t                  n;
} ngx_http_sse_tally_t;


typedef struct {
    uint32_t                    magic;
    ngx_http_sse_limits_t       limits;     /* of the newest configuration */

    /*
     * Channels by id: a table of trees indexed by the low bits of the
     * id's crc32, one tree per 4 KB of zone.  A lookup under the lock
     * reads a bucket and a tree of a few nodes, not one tree of every
     * channel (a cache miss per level); names that all fall in one bucket
     * (crc32 collisions are easy to make) still get a tree's log n.
     */
    ngx_rbtree_t               *channels_by_id;
    ngx_uint_t                  channels_mask;
    ngx_rbtree_node_t           sentinel;
    ngx_queue_t                 events;     /* every stored event, by age */
    ngx_queue_t                 idle;       /* channels w/o subscribers */
    ngx_queue_t                 empty;      /* ... never published to */
    ngx_queue_t                 tombs;      /* deleted channels */

    /* Idempotency-Key records: by key and channels, and by age */
    ngx_rbtree_t                idem_tree;
    ngx_rbtree_node_t           idem_sentinel;
    ngx_queue_t                 idem_age;

    uint64_t                    next_epoch;
    uint64_t                    op;         /* counts store operations */

    /* gauges, under the lock */
    ngx_uint_t                  channels;
    ngx_uint_t                  stored_events;
    size_t                      stored_bytes;
    ngx_uint_t                  idem_records;
    size_t                      idem_bytes;

    /* counters */
    ngx_atomic_t                published;
    ngx_atomic_t                delivered;
    ngx_atomic_t                evicted;
    ngx_atomic_t                dropped_slow;
    ngx_atomic_t                refused_full;
    ngx_atomic_t                wakeups;    /* queues taken by workers */
    ngx_atomic_t                woken;      /* channels in those queues */
    ngx_atomic_t                idempotent_replays;
    ngx_atomic_t                idem_dropped;   /* records let go early,
                                                   or not made: no room */

    ngx_http_sse_histogram_t    latency;    /* publish to flush, per event
                                               and stream */
    ngx_http_sse_histogram_t    duration;   /* of ended streams */

    time_t                      nomem_logged;
    time_t                      idem_logged;
    time_t                      huge_logged;    /* an event from redis
                                                   larger than the zone */

    /* the second a store operation last found nothing left to expire */
    time_t                      expired_at;

    ngx_http_sse_redis_shm_t    redis;      /* with sse_redis only */

    /* this node among those sharing a Redis: random hex, made with the
     * zone (its workers, and the next configuration's, share it) */
    u_char                      node_id[16];

    ngx_http_sse_slot_t         slots[NGX_HTTP_SSE_MAX_SLOTS];
} ngx_http_sse_shctx_t;


/* ---- per process ---------------------------------------------------- */

struct ngx_http_sse_zone_s {
    ngx_str_t                   name;
    ngx_http_sse_store_t       *store;      /* every caller goes through */
    ngx_shm_zone_t             *shm_zone;
    ngx_slab_pool_t            *shpool;
    ngx_http_sse_shctx_t       *sh;
    ngx_http_sse_limits_t       limits;

    /* this worker */
    ngx_int_t                   slot;       /* -1: none */
    ngx_rbtree_t                locals;     /* ngx_http_sse_local_t */
    ngx_rbtree_node_t           locals_sentinel;
    ngx_uint_t                  nlocals;
    ngx_uint_t                  delivered;  /* not yet added to sh */
    ngx_http_sse_tally_t        latency;    /* ditto */
    ngx_http_sse_tally_t        duration;
    uint64_t                    empty_dry_op;   /* sh->op when sh->empty
                                                   last had nothing to give */
};


/*
 * One channel as seen by one worker: the worker's subscribers of it.  The
 * store's handle (ngx_http_sse_store.h): channel and share are addresses
 * in the zone, for the store's files only; the store sets epoch, cursor
 * and total when it collects the channel's events, and ending; the
 * worker ("worker" below) keeps the rest.
 */
struct ngx_http_sse_local_s {
    ngx_rbtree_node_t           node;       /* key: the shm channel */
    ngx_http_sse_zone_t        *zone;
    ngx_http_sse_channel_t     *channel;
    ngx_http_sse_chan_slot_t   *share;      /* this worker's, in the zone */
    uint64_t                    epoch;
    uint64_t                    cursor;     /* last seq fanned out here */
    uint64_t                    total;      /* channel bytes through it */
    uint64_t                    floor;      /* worker: lowest position of a
                                               stream behind, or
                                               NGX_HTTP_SSE_NONE_BEHIND */
    ngx_queue_t                 subs;       /* worker: its sub_chan_t */
    uint32_t                    nsubs;      /* worker */
    uint32_t                    nbehind;    /* worker: of them, pulling */
    unsigned                    busy:1;     /* in a batch: keep */
    unsigned                    ending:2;   /* its streams end: why
                                               (NGX_HTTP_SSE_LOCAL_*) */
};


#define NGX_HTTP_SSE_NONE_BEHIND  ((uint64_t) -1)


/*
 * A stream's state in one of its channels:
 *   OUT     not joined (yet, or any more): local is NULL, no event comes;
 *   LIVE    joined and at the fan-out's pace: the fan-out appends each new
 *           event that is its next one;
 *   BEHIND  joined, and short of events the fan-out has passed (a replay,
 *           a full buffer): it pulls them from history as its socket
 *           drains, and is LIVE again once a pull reaches the end.
 * Counted in sub->nbehind and local->nbehind while BEHIND.
 */
typedef enum {
    NGX_HTTP_SSE_SC_OUT = 0,
    NGX_HTTP_SSE_SC_LIVE,
    NGX_HTTP_SSE_SC_BEHIND
} ngx_http_sse_sc_state_e;


typedef struct {
    ngx_queue_t                 link;       /* local->subs */
    ngx_http_sse_local_t       *local;
    ngx_http_sse_sub_t         *sub;
    sse::Position               pos;        /* last event appended */
    uint64_t                    pos_cum;    /* channel bytes through it */
    uint32_t                    index;      /* in sub->chans */
    unsigned                    state:2;    /* ngx_http_sse_sc_state_e */
} ngx_http_sse_sub_chan_t;


/*
 * A large event's wire bytes, once per worker, shared by the streams it
 * is fanned out to (ngx_http_sse_block.cpp): each stream's output points
 * into it instead of holding a copy.  Worker memory, never the zone: the
 * zone's lock is not held while sockets write, and history eviction
 * cannot free what a socket still sends.  Freed with its last reference.
 * Events of at least NGX_HTTP_SSE_BLOCK_MIN bytes (body, for a stream of
 * several channels) are shared; below it a copy is cheaper than another
 * buffer in the write (bench/block-threshold.cpp: even at 4 KB, 9-14%
 * less sender CPU per delivery at 8 KB, ~20% at 16 KB).
 */
#define NGX_HTTP_SSE_BLOCK_MIN   8192

/* blocks one stream buffer references; past it, events are copied */
#define NGX_HTTP_SSE_REFS_MAX    8

typedef struct {
    ngx_uint_t                  refs;
    size_t                      len;
    /* the event's wire bytes follow */
} ngx_http_sse_block_t;

#define ngx_http_sse_block_data(b)  ((u_char *) ((b) + 1))


/*
 * A large event of the fan-out's batch, as its streams see it: its wire
 * bytes in the batch, and its block, made by the first stream that
 * references it (NULL until then: if every stream declines the event,
 * none is made).
 */
typedef struct {
    u_char                     *wire;
    size_t                      len;
    ngx_http_sse_block_t       *block;
} ngx_http_sse_share_t;


/*
 * The blocks one of a stream's two buffers references, and where: the
 * buffer holds the copied bytes, and each block's bytes go in between,
 * at "at" (an offset in the buffer's copied data).  bufs and chain are
 * the buffer's output as nginx sends it (the filter chain, or
 * c->send_chain() on a detached stream): they live as long as the
 * references, so that whatever nginx keeps of them (HTTP/2 frames point
 * to the caller's buffers until sent) stays valid.  Allocated when a
 * stream first takes a block, given back with its buffers.
 */
typedef struct {
    ngx_http_sse_block_t       *block;
    u_char                     *pos;        /* the bytes, in the block */
    size_t                      len;
    size_t                      at;
} ngx_http_sse_ref_t;

typedef struct {
    ngx_uint_t                  nrefs;
    size_t                      bytes;      /* referenced, in all */
    size_t                      head;       /* the chain's bytes before the
                                               data: a chunk header */
    size_t                      size;       /* the chain's bytes, in all */
    ngx_http_sse_ref_t          refs[NGX_HTTP_SSE_REFS_MAX];
    ngx_buf_t                   bufs[2 * NGX_HTTP_SSE_REFS_MAX + 1];
    ngx_chain_t                 chain[2 * NGX_HTTP_SSE_REFS_MAX + 1];
} ngx_http_sse_refs_t;


/*
 * A subscriber stream.  It starts on its request, writing through the
 * filter chain; an HTTP/1.1 chunked stream then lets the request go
 * ("detached"): only the connection and this record stay, and events
 * are written as chunks straight to the socket.
 */
struct ngx_http_sse_sub_s {
    ngx_http_request_t         *request;    /* NULL once detached */
    ngx_connection_t           *connection;
    ngx_http_sse_zone_t        *zone;
    ngx_queue_t                 all;        /* every stream of the worker */
    ngx_pool_cleanup_t         *cleanup;    /* on the request's pool */

    ngx_http_sse_sub_chan_t    *chans;
    uint32_t                    nchans;
    uint32_t                    nbehind;    /* channels pulled lazily */

    /* bytes not yet handed on; the first hdr bytes are room for a chunk
     * header, and two more are kept at the end for its CRLF */
    u_char                     *pend;
    size_t                      pend_len;
    size_t                      pend_cap;

    /* bytes handed on, not yet sent */
    u_char                     *out;
    size_t                      out_cap;
    ngx_buf_t                  *out_buf;    /* request: in the filter chain */
    ngx_chain_t                 out_cl;
    u_char                     *out_pos;    /* detached: the unsent part */
    u_char                     *out_last;
    ngx_chain_t                *out_chain;  /* detached, with blocks: the
                                               unsent part */

    /* the shared blocks each buffer references, or NULL */
    ngx_http_sse_refs_t        *pend_refs;
    ngx_http_sse_refs_t        *out_refs;

    size_t                      max_pending;    /* bytes buffered */
    ngx_str_t                  *reset_event;    /* sse_reset_event; empty:
                                                   none */
    size_t                      limit;      /* bytes behind: + replay */
    ngx_msec_t                  heartbeat;  /* 0: off */
    time_t                      deadline;   /* sse_lifetime, 0: none */
    ngx_msec_t                  last_write; /* ngx_current_msec */
    ngx_msec_t                  blocked_since;  /* ngx_current_msec
                                                   (made non-zero);
                                                   0: not blocked */
    ngx_msec_t                  started;    /* ngx_current_msec */
    ngx_http_sse_timing_t      *timing;     /* what its buffers hold,
                                               for the latency histogram */
    ngx_uint_t                  fanned;     /* the fan-out round it last
                                               wrote in */

    /*
     * For its access-log line (ngx_http_sse_log.cpp).  If ids is set,
     * after chans[] come two positions per channel: the stream's id after
     * the last event of the buffer being sent, and the id last sent
     * ($sse_last_event_id).
     */
    ngx_http_sse_log_t         *log;
    ngx_uint_t                  events_sent;
    uint32_t                    out_events;     /* in the buffer being sent */
    uint32_t                    pend_events;    /* in the one filling up */

    uint32_t                    send_timeout;   /* ms, at most 49 days */

    /* the chunk header's room in each buffer: 0 or NGX_HTTP_SSE_CHUNK_HDR */
    unsigned                    hdr:5;
    unsigned                    out_busy:1;
    unsigned                    done:1;         /* left its channels */
    unsigned                    dropping:1;     /* close on write event */
    unsigned                    detached:1;
    unsigned                    chunked:1;      /* detached: chunk framing */
    unsigned                    ending:1;       /* detached: last chunk */
    unsigned                    counted:1;      /* in its slot's streams */
    unsigned                    token_deadline:1;   /* deadline: its token */
    unsigned                    ended:1;        /* its log line is written */
    unsigned                    close_reason:4; /* NGX_HTTP_SSE_CLOSE_* */
    unsigned                    ids:1;          /* keeps its ids: above */
};

#define ngx_http_sse_out_ids(sub)                                             \
    ((sse::Position *) ((sub)->chans + (sub)->nchans))
#define ngx_http_sse_sent_ids(sub)                                            \
    (ngx_http_sse_out_ids(sub) + (sub)->nchans)


/* why a stream ended ($sse_close_reason); the first one set stays */
#define NGX_HTTP_SSE_CLOSE_NONE      0
#define NGX_HTTP_SSE_CLOSE_CLIENT    1
#define NGX_HTTP_SSE_CLOSE_SLOW      2
#define NGX_HTTP_SSE_CLOSE_TIMEOUT   3
#define NGX_HTTP_SSE_CLOSE_LIFETIME  4
#define NGX_HTTP_SSE_CLOSE_TOKEN     5
#define NGX_HTTP_SSE_CLOSE_DELETED   6
#define NGX_HTTP_SSE_CLOSE_SHUTDOWN  7
#define NGX_HTTP_SSE_CLOSE_ERROR     8


/* ---- configuration -------------------------------------------------- */

typedef struct {
    ngx_array_t                 zones;      /* ngx_http_sse_zone_t * */
} ngx_http_sse_main_conf_t;


typedef struct {
    ngx_uint_t                  role;       /* NGX_HTTP_SSE_ROLE_* */
    ngx_http_complex_value_t   *channels;
    ngx_str_t                   zone_name;
    ngx_http_sse_zone_t        *zone;

    ngx_msec_t                  heartbeat;
    ngx_msec_t                  retry;
    ngx_int_t                   replay;     /* 0: none, n, or REPLAY_ALL */
    ngx_http_complex_value_t   *last_event_id;
    ngx_str_t                   reset_event;
    size_t                      max_pending;
    time_t                      lifetime;
} ngx_http_sse_loc_conf_t;

#define NGX_HTTP_SSE_ROLE_NONE       0
#define NGX_HTTP_SSE_ROLE_SUBSCRIBE  1
#define NGX_HTTP_SSE_ROLE_PUBLISH    2
#define NGX_HTTP_SSE_ROLE_STATUS     3

#define NGX_HTTP_SSE_REPLAY_ALL      NGX_MAX_INT_T_VALUE


extern ngx_module_t  ngx_http_sse_module;


/* ---- the shm store's zone (ngx_http_sse_store.cpp) ----------------- */

ngx_int_t ngx_http_sse_init_zone(ngx_shm_zone_t *shm_zone, void *data);

/* the tree of channels whose ids have this crc32 (node.key) */
static ngx_inline ngx_rbtree_t *
ngx_http_sse_channel_tree(ngx_http_sse_shctx_t *sh, ngx_rbtree_key_t key)
{
    return &sh->channels_by_id[key & sh->channels_mask];
}


/*
 * For the shm store's files only.  All of these expect the zone locked.
 * A locked operation that looks channels up begins with
 * ngx_http_sse_store_expire(): the channels ngx_http_sse_channel_get()
 * returns are then never reclaimed to make room for allocations of the
 * same operation.
 */
ngx_http_sse_channel_t *ngx_http_sse_channel_find(ngx_http_sse_zone_t *zone,
    u_char *id, size_t len);
ngx_http_sse_channel_t *ngx_http_sse_channel_get(ngx_http_sse_zone_t *zone,
    u_char *id, size_t len, ngx_int_t *err);
ngx_http_sse_channel_t *ngx_http_sse_channel_revive(
    ngx_http_sse_zone_t *zone, ngx_http_sse_channel_t *ch, ngx_int_t *err);
ngx_http_sse_event_t *ngx_http_sse_channel_event(ngx_http_sse_channel_t *ch,
    uint64_t seq);
ngx_int_t ngx_http_sse_channel_append(ngx_http_sse_zone_t *zone,
    ngx_http_sse_channel_t *ch, sse::Slice type, sse::Slice data,
    sse::Position *pos);
/* the same, for an event published elsewhere at time (unix s) and msec
 * (this worker's clock) */
ngx_int_t ngx_http_sse_channel_append_at(ngx_http_sse_zone_t *zone,
    ngx_http_sse_channel_t *ch, sse::Slice type, sse::Slice data,
    sse::Position *pos, time_t time, ngx_msec_t msec);
/* the bytes the channel's event seq would take in the zone */
size_t ngx_http_sse_event_bytes(ngx_http_sse_channel_t *ch, uint64_t seq,
    sse::Slice type, sse::Slice data);
/* the event before the oldest the channel holds (NGX_DECLINED: it does
 * not fit in history, or the channel changed meanwhile) */
ngx_int_t ngx_http_sse_channel_prepend_at(ngx_http_sse_zone_t *zone,
    ngx_http_sse_channel_t *ch, sse::Slice type, sse::Slice data,
    uint64_t seq, time_t time, ngx_msec_t msec);
/* the channel's seqs jump: it holds none before seq */
void ngx_http_sse_channel_skip_to(ngx_http_sse_zone_t *zone,
    ngx_http_sse_channel_t *ch, uint64_t seq);
void ngx_http_sse_channel_delete(ngx_http_sse_zone_t *zone,
    ngx_http_sse_channel_t *ch);
ngx_http_sse_chan_slot_t *ngx_http_sse_channel_join(
    ngx_http_sse_zone_t *zone, ngx_http_sse_channel_t *ch, ngx_uint_t slot);
void ngx_http_sse_channel_leave(ngx_http_sse_zone_t *zone,
    ngx_http_sse_channel_t *ch, ngx_uint_t slot);
void ngx_http_sse_channel_consumed(ngx_http_sse_zone_t *zone,
    ngx_http_sse_chan_slot_t *cs, uint64_t cursor);
void ngx_http_sse_channel_expire(ngx_http_sse_zone_t *zone,
    ngx_http_sse_channel_t *ch);
uint64_t ngx_http_sse_cum_before(ngx_http_sse_channel_t *ch, uint64_t seq);
ngx_uint_t ngx_http_sse_store_expire(ngx_http_sse_zone_t *zone);
ngx_uint_t ngx_http_sse_subscribers(ngx_http_sse_zone_t *zone);
ngx_uint_t ngx_http_sse_live_slots(ngx_http_sse_zone_t *zone);
void ngx_http_sse_reap_slot(ngx_http_sse_zone_t *zone, ngx_uint_t slot,
    ngx_pid_t pid);
ngx_int_t ngx_http_sse_slot_register(ngx_http_sse_zone_t *zone,
    u_char *addr, size_t addr_len);
void ngx_http_sse_slot_release(ngx_http_sse_zone_t *zone);

/* marks the channel changed for every worker that has subscribers */
void ngx_http_sse_notify(ngx_http_sse_zone_t *zone,
    ngx_http_sse_channel_t *ch, ngx_uint_t *wake, ngx_uint_t *nwake);
/* takes a slot's queue of changed channels, one at a time */
void ngx_http_sse_requeue(ngx_http_sse_zone_t *zone,
    ngx_http_sse_chan_slot_t *cs);
ngx_http_sse_channel_t *ngx_http_sse_dequeue(ngx_http_sse_zone_t *zone,
    ngx_uint_t slot);

/*
 * Idempotency-Key records (ngx_http_sse_store_idem.cpp), locked too.
 * replay(): the answer of an earlier publish with op's key and channels
 * (NGX_OK, op's out fields set) or NGX_DECLINED; reserve(): room for
 * op's record before it stores anything (NULL: no room, the caller counts
 * the drop and logs it, unlocked, with ngx_http_sse_idem_log()); keep():
 * op's answer into that record; unreserve(): gives it back; expire(): at most
 * NGX_HTTP_SSE_EXPIRE_MAX records past history_ttl (1: more may be
 * left); evict(): frees the oldest record to make room (0: none).
 */
void ngx_http_sse_idem_init(ngx_http_sse_shctx_t *sh);
ngx_int_t ngx_http_sse_idem_replay(ngx_http_sse_zone_t *zone,
    ngx_http_sse_store_publish_t *op);
ngx_http_sse_idem_t *ngx_http_sse_idem_reserve(ngx_http_sse_zone_t *zone,
    ngx_http_sse_store_publish_t *op);
void ngx_http_sse_idem_keep(ngx_http_sse_zone_t *zone,
    ngx_http_sse_store_publish_t *op, ngx_http_sse_idem_t *rec);
void ngx_http_sse_idem_unreserve(ngx_http_sse_zone_t *zone,
    ngx_http_sse_idem_t *rec);
ngx_uint_t ngx_http_sse_idem_expire(ngx_http_sse_zone_t *zone, time_t now);
ngx_uint_t ngx_http_sse_idem_evict(ngx_http_sse_zone_t *zone);
void ngx_http_sse_idem_log(ngx_http_sse_zone_t *zone, ngx_log_t *log);

/* unlocked (ngx_http_sse_store_wake.cpp): the wake-ups notify() chose,
 * and finding the slots of workers that died */
void ngx_http_sse_wake(ngx_http_sse_zone_t *zone, ngx_uint_t *wake,
    ngx_uint_t nwake);
void ngx_http_sse_probe_slots(ngx_http_sse_zone_t *zone);

/* unlocked, for anyone: a refusal for want of room, logged rate-limited */
void ngx_http_sse_log_full(ngx_http_sse_zone_t *zone, ngx_log_t *log);
ngx_uint_t ngx_http_sse_log_due(time_t *last);
size_t ngx_http_sse_format_position(u_char *out, uint64_t epoch,
    uint64_t seq);

/* the worker lets go of its record of a channel nobody here reads */
void ngx_http_sse_local_put(ngx_http_sse_local_t *local);


/*
 * With sse_redis (ngx_http_sse_store_shm.cpp): events the cluster
 * published, put into the node's zone at their positions.
 *
 *   MESSAGE  a pub/sub message: events at first_seq.. (a hole before
 *            them on a channel that holds events or readers: NEED_FILL)
 *   FILL     what the Redis stream holds from first_seq on: a jump past
 *            local last is what Redis no longer keeps (streams that miss
 *            it get a gap, never a silent hole)
 *   STATE    no events: the channel is at (epoch, last) in Redis
 *   DELETE   the channel was deleted at epoch
 *   OLDER    events just before the oldest the zone holds (a resume
 *            from further back than this node kept): put in front of
 *            them, as far as history allows
 *
 * Returns NGX_OK, NGX_DECLINED (nothing to do: an older epoch, no such
 * channel to delete), NGX_HTTP_SSE_NEED_FILL, NGX_HTTP_SSE_ZONE_FULL or
 * NGX_HTTP_SSE_TOO_MANY; out: the channel's epoch and last seq after it.
 */

#define NGX_HTTP_SSE_NEED_FILL      -17

#define NGX_HTTP_SSE_INSERT_MESSAGE  0
#define NGX_HTTP_SSE_INSERT_FILL     1
#define NGX_HTTP_SSE_INSERT_STATE    2
#define NGX_HTTP_SSE_INSERT_DELETE   3
#define NGX_HTTP_SSE_INSERT_OLDER    4

typedef struct {
    sse::Slice                  type;
    sse::Slice                  data;
    uint64_t                    seq;
    uint64_t                    ms;         /* published, unix ms */
} ngx_http_sse_insert_event_t;

typedef struct {
    /* in */
    ngx_uint_t                  kind;       /* NGX_HTTP_SSE_INSERT_* */
    sse::Slice                  id;
    uint64_t                    epoch;
    uint64_t                    last;       /* STATE: Redis's last seq */
    ngx_http_sse_insert_event_t *events;    /* ascending seqs */
    ngx_uint_t                  nevents;

    /* out */
    uint64_t                    local_epoch;
    uint64_t                    local_last;
    ngx_uint_t                  inserted;
} ngx_http_sse_insert_t;

ngx_int_t ngx_http_sse_shm_insert(ngx_http_sse_zone_t *zone,
    ngx_http_sse_insert_t *in);

/* the node's position in a channel (and the oldest seq it holds, if
 * first is not NULL): NGX_DECLINED if it has none, or only its own epoch
 * (never learnt the cluster's) */
ngx_int_t ngx_http_sse_shm_position(ngx_http_sse_zone_t *zone,
    sse::Slice id, sse::Position *pos, uint64_t *first,
    ngx_uint_t *subscribers);


/* ---- worker: wake-up socket, sweep (ipc), fan-out and pulls -------- */

ngx_int_t ngx_http_sse_ipc_init(ngx_cycle_t *cycle);
void ngx_http_sse_ipc_exit(ngx_cycle_t *cycle);
/* the store's news: channels changed for this worker, fan them out */
void ngx_http_sse_process_zone(ngx_http_sse_zone_t *zone);
void ngx_http_sse_sweep_arm(void);
void ngx_http_sse_shutdown(void);
void ngx_http_sse_release_slots(void);

extern ngx_connection_t  *ngx_http_sse_ipc;     /* the wake-up socket */
extern ngx_queue_t        ngx_http_sse_streams;
extern ngx_uint_t         ngx_http_sse_nstreams;


/* ---- streams -------------------------------------------------------- */

ngx_int_t ngx_http_sse_subscribe_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_sse_publish_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_sse_status_handler(ngx_http_request_t *r);

ngx_http_sse_sub_t *ngx_http_sse_sub_create(ngx_http_request_t *r,
    ngx_uint_t nchans);
ngx_int_t ngx_http_sse_sub_start(ngx_http_sse_sub_t *sub);
ngx_int_t ngx_http_sse_sub_append_event(ngx_http_sse_sub_chan_t *sc,
    uint64_t seq, u_char *wire, size_t len, size_t id_len, uint64_t cum,
    ngx_msec_t published, ngx_http_sse_share_t *share);
ngx_int_t ngx_http_sse_sub_pull(ngx_http_sse_sub_t *sub);
void ngx_http_sse_sub_pulled(ngx_http_sse_sub_t *sub, ngx_int_t rc);
ngx_int_t ngx_http_sse_sub_send(ngx_http_sse_sub_t *sub);
ngx_uint_t ngx_http_sse_sub_too_far(ngx_http_sse_sub_t *sub,
    ngx_http_sse_sub_chan_t *sc, uint64_t total);
ngx_int_t ngx_http_sse_sub_append_raw(ngx_http_sse_sub_t *sub, u_char *p,
    size_t len);
ngx_int_t ngx_http_sse_sub_append_own(ngx_http_sse_sub_t *sub, u_char *body,
    size_t len);
ngx_int_t ngx_http_sse_sub_append_reset(ngx_http_sse_sub_t *sub,
    sse::Slice chan, const char *reason);
void ngx_http_sse_sub_flush(ngx_http_sse_sub_t *sub);
void ngx_http_sse_sub_leave(ngx_http_sse_sub_t *sub);
void ngx_http_sse_sub_end(ngx_http_sse_sub_t *sub, ngx_uint_t graceful);
void ngx_http_sse_sub_drop(ngx_http_sse_sub_t *sub);
void ngx_http_sse_sub_tick(ngx_http_sse_sub_t *sub, time_t now);
void ngx_http_sse_end_all(ngx_uint_t graceful);
void ngx_http_sse_close_all(void);

static ngx_inline void
ngx_http_sse_sub_reason(ngx_http_sse_sub_t *sub, ngx_uint_t reason)
{
    if (sub->close_reason == NGX_HTTP_SSE_CLOSE_NONE) {
        sub->close_reason = reason;
    }
}


/* ---- shared blocks of large events (ngx_http_sse_block.cpp) --------- */

void ngx_http_sse_block_release(ngx_http_sse_block_t *block);
ngx_int_t ngx_http_sse_refs_add(ngx_http_sse_refs_t **refs,
    ngx_http_sse_share_t *share, u_char *pos, size_t len, size_t at);
void ngx_http_sse_refs_clear(ngx_http_sse_refs_t *refs);
void ngx_http_sse_refs_free(ngx_http_sse_refs_t **refs);
ngx_chain_t *ngx_http_sse_refs_chain(ngx_http_sse_refs_t *refs,
    u_char *start, u_char *data, u_char *end);
size_t ngx_http_sse_refs_sent(ngx_http_sse_refs_t *refs);
size_t ngx_http_sse_refs_unsent(ngx_http_sse_refs_t *refs);


/* ---- access log and $sse_* variables (ngx_http_sse_log.cpp) --------- */

ngx_int_t ngx_http_sse_log_add_variables(ngx_conf_t *cf);
ngx_uint_t ngx_http_sse_log_ids(ngx_http_request_t *r);
ngx_int_t ngx_http_sse_log_start(ngx_http_sse_sub_t *sub,
    ngx_http_request_t *r, sse::Slice *ids, ngx_uint_t n);
void ngx_http_sse_log_detach(ngx_http_sse_sub_t *sub, ngx_http_request_t *r);
void ngx_http_sse_log_detached(ngx_http_sse_sub_t *sub);
void ngx_http_sse_log_end(ngx_http_sse_sub_t *sub);


/* ---- metrics (ngx_http_sse_metrics.cpp) ----------------------------- */

/*
 * A stream's buffers remember where each live event ends and when it was
 * published; an event is observed when its last byte is handed to the
 * socket (or to the filter chain of a request that owns the stream).
 */
void ngx_http_sse_metrics_event(ngx_http_sse_sub_t *sub,
    ngx_msec_t published);
void ngx_http_sse_metrics_swap(ngx_http_sse_sub_t *sub);
void ngx_http_sse_metrics_sent(ngx_http_sse_sub_t *sub, ssize_t sent);
void ngx_http_sse_metrics_handed(ngx_http_sse_sub_t *sub);
void ngx_http_sse_metrics_idle(ngx_http_sse_sub_t *sub);
void ngx_http_sse_metrics_stream_end(ngx_http_sse_sub_t *sub);
/* adds a worker's observations to the zone: a few atomic adds */
void ngx_http_sse_metrics_flush(ngx_http_sse_zone_t *zone);

/* sse_status output: Prometheus text, JSON, and their size */
size_t ngx_http_sse_metrics_size(ngx_http_sse_zone_t *zone);
u_char *ngx_http_sse_metrics_prometheus(u_char *p,
    ngx_http_sse_zone_t **zones, ngx_uint_t n);
u_char *ngx_http_sse_metrics_json(u_char *p, ngx_http_sse_zone_t *zone);
ngx_int_t ngx_http_sse_status_page(ngx_http_request_t *r);


/* ---- shared helpers ------------------------------------------------- */

/* the token verification figures for sse_status: signatures checked,
 * shared hits, worker hits, refused (ngx_http_sse_auth_shared.cpp) */
ngx_int_t ngx_http_sse_tokens_figures(ngx_cycle_t *cycle,
    ngx_uint_t *figures);

/* a client-supplied value escaped for a log line (sse::log_escape) */
typedef struct {
    ngx_str_t                   str;
    u_char                      buf[sse::max_log_value];
} ngx_http_sse_log_value_t;

ngx_str_t *ngx_http_sse_log_value(ngx_http_sse_log_value_t *shown, u_char *p,
    size_t len);

ngx_int_t ngx_http_sse_send_json(ngx_http_request_t *r, ngx_uint_t status,
    u_char *json, size_t len);
ngx_int_t ngx_http_sse_send_memory(ngx_http_request_t *r, u_char *p,
    size_t len);
ngx_int_t ngx_http_sse_add_variables(ngx_conf_t *cf,
    ngx_http_variable_t *vars);
ngx_int_t ngx_http_sse_send_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *message);
ngx_int_t ngx_http_sse_channel_list(ngx_http_request_t *r,
    ngx_http_complex_value_t *cv, sse::Slice *out, ngx_uint_t *n);
ngx_int_t ngx_http_sse_bad_channels(ngx_http_request_t *r);
ngx_int_t ngx_http_sse_add_header(ngx_http_request_t *r, const char *key,
    const char *value);
ngx_int_t ngx_http_sse_add_header_str(ngx_http_request_t *r, const char *key,
    ngx_str_t *value);
ngx_str_t *ngx_http_sse_header_in(ngx_http_request_t *r, const char *name,
    ngx_uint_t *n);
ngx_int_t ngx_http_sse_send_no_content(ngx_http_request_t *r);
ngx_int_t ngx_http_sse_grow(void **array, size_t *cap, size_t need,
    size_t size, size_t min);

/*
 * A request that asks the store about channels (DELETE, GET, HEAD): one
 * store operation, then the reply.  Answered at once, it returns the
 * reply's code as a handler would; answered later, the request is kept
 * (r->main->count) and finalized when the answer comes.
 */
typedef struct ngx_http_sse_query_s  ngx_http_sse_query_t;
typedef ngx_int_t (*ngx_http_sse_query_reply_pt)(ngx_http_sse_query_t *q);

struct ngx_http_sse_query_s {
    ngx_http_request_t         *request;
    ngx_http_sse_zone_t        *zone;
    ngx_http_sse_query_reply_pt reply;
    ngx_int_t                   rc;
    unsigned                    in_flight:1;
    unsigned                    waiting:1;
    ngx_http_sse_store_query_t  op;
    sse::Slice                  ids[sse::max_channels_per_stream];
};

ngx_int_t ngx_http_sse_query(ngx_http_request_t *r, ngx_http_sse_zone_t *zone,
    sse::Slice *ids, ngx_uint_t n, ngx_uint_t remove,
    ngx_http_sse_query_reply_pt reply);

#endif /* NGX_HTTP_SSE_H */
