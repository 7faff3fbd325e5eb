/*
 * The Redis store: a zone with sse_redis shares its channels with every
 * node on the same Redis and prefix (SPEC.md, "Several nginx nodes").
 *
 *   ngx_http_sse_store_redis.cpp          the operations table; what the
 *                                         node's shared zone answers
 *   ngx_http_sse_store_redis_publish.cpp  publish, DELETE, channel info:
 *                                         one script each, in Redis
 *   ngx_http_sse_store_redis_sync.cpp     join, pub/sub messages into the
 *                                         node's zone, filling gaps
 *
 * Redis is the authority for ids, history, DELETE and channel info.  The
 * node's shared zone is its local copy: fan-out, replay and the sweep
 * work on it as on one node.  Events reach it only through pub/sub
 * messages (and fills from the Redis stream), for the channels this
 * node's workers have subscribers of; the publish path writes nothing
 * locally.
 *
 * Keys (P: the prefix, "sse:<zone>:" by default; {id}: the channel id):
 *   P c:{id}   hash: e epoch, s last seq, t last publish (unix seconds)
 *   P h:{id}   stream: entries "<seq>-0", fields t type, d data, m ms
 *   P x:{id}   tomb of a deleted channel (its epoch), for history_ttl
 *   P s:{id}   hash: node id -> the node's subscribers of the channel;
 *              lives 15 s unless a node with streams of it renews it
 *   P n:{node} the node is alive (expires unless refreshed)
 *   P i:{hash} an Idempotency-Key's recorded answer, for history_ttl
 *   P m:{id}   the pub/sub channel of the channel's messages
 *
 * Messages on P m:{id}:
 *   "E <epoch> <first seq> <n> <ms>\n", then n times
 *       "<type length> <data length>\n" <type> <data>
 *   "D <epoch>\n"   the channel was deleted
 */

#ifndef NGX_HTTP_SSE_STORE_REDIS_H
#define NGX_HTTP_SSE_STORE_REDIS_H

#include "ngx_http_sse.h"
#include "ngx_http_sse_redis.h"


#define NGX_HTTP_SSE_NODE_ID_LEN  16    /* hex */


/* a zone's Redis store in this worker */
typedef struct {
    ngx_http_sse_zone_t        *zone;
    ngx_http_sse_redis_t       *redis;

    /* ---- ngx_http_sse_store_redis_publish.cpp ---- */

    ngx_queue_t                 rpub_pending;   /* commands in flight */
    uint32_t                    error_crc;  /* the last error logged */
    time_t                      error_logged;

    /* ---- ngx_http_sse_store_redis_sync.cpp ---- */
    ngx_rbtree_t                chans;      /* channels with streams here */
    ngx_rbtree_node_t           chans_sentinel;
    ngx_queue_t                 chans_all;
    ngx_queue_t                 joins;      /* awaiting Redis */
    ngx_queue_t                 fill_queue; /* channels awaiting a fill */
    ngx_queue_t                 room_queue; /* ... awaiting room in the zone */
    ngx_uint_t                  nfills;     /* fills awaiting Redis */
    ngx_queue_t                 sub_queue;  /* awaiting their SUBSCRIBE */
    ngx_uint_t                  nsubscribing; /* SUBSCRIBEs awaiting Redis */
    unsigned                    sub_draining:1;
    ngx_event_t                 tick;       /* counts, liveness: 1 s */
    ngx_uint_t                  lingered;   /* ticks waited at shutdown */
    ngx_msec_t                  counts_ttl; /* of P s:{id} keys */
    ngx_http_sse_insert_event_t *events;    /* a message's, parsed */
    size_t                      events_cap;
    ngx_uint_t                  malformed;
    time_t                      complained;

} ngx_http_sse_rstore_t;


/* ngx_http_sse_store_redis.cpp */
ngx_http_sse_rstore_t *ngx_http_sse_rstore_get(ngx_http_sse_zone_t *zone);
ngx_int_t ngx_http_sse_rstore_init(ngx_http_sse_redis_t *redis);
void ngx_http_sse_rstore_exit(ngx_http_sse_redis_t *redis);

/* ngx_http_sse_store_redis_publish.cpp */
ngx_int_t ngx_http_sse_rpub_publish(ngx_http_sse_zone_t *zone,
    ngx_http_sse_store_publish_t *op);
ngx_int_t ngx_http_sse_rpub_remove(ngx_http_sse_zone_t *zone,
    ngx_http_sse_store_query_t *op);
ngx_int_t ngx_http_sse_rpub_info(ngx_http_sse_zone_t *zone,
    ngx_http_sse_store_query_t *op);
ngx_uint_t ngx_http_sse_rpub_cancel(ngx_http_sse_rstore_t *rs, void *op);
void ngx_http_sse_rpub_exit(void *data);

/* ngx_http_sse_store_shm.cpp: what the node holds of a channel */
ngx_int_t ngx_http_sse_shm_position(ngx_http_sse_zone_t *zone, sse::Slice id,
    sse::Position *pos);

/* ngx_http_sse_store_redis_sync.cpp */
ngx_int_t ngx_http_sse_rsync_init(ngx_http_sse_rstore_t *rs);
void ngx_http_sse_rsync_exit(ngx_http_sse_rstore_t *rs);
ngx_int_t ngx_http_sse_rsync_join(ngx_http_sse_zone_t *zone,
    ngx_http_sse_store_join_t *op);
void ngx_http_sse_rsync_cancel(ngx_http_sse_zone_t *zone, void *op);
void ngx_http_sse_rsync_leave(ngx_http_sse_zone_t *zone,
    ngx_http_sse_sub_t *sub);

#endif /* NGX_HTTP_SSE_STORE_REDIS_H */
