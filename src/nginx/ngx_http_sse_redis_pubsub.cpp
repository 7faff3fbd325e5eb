/*
 * Pub/sub on a zone's second Redis connection: the channels this worker
 * subscribed to (a set that outlives connections), SUBSCRIBE and
 * UNSUBSCRIBE as they change, all of them again after a reconnect.
 * Messages come through ngx_http_sse_redis_dispatch().
 */

#include "ngx_http_sse_redis.h"


namespace {

/* a SUBSCRIBE whose confirmation someone waits for */
typedef struct {
    ngx_http_sse_redis_link_t    *link;
    ngx_http_sse_redis_reply_pt   handler;
    void                         *data;
} ngx_http_sse_redis_sub_wait_t;

void ngx_http_sse_redis_subscribe_reply(ngx_http_sse_redis_t *redis,
    redisReply *reply, void *data);
void ngx_http_sse_redis_subscribed(ngx_http_sse_redis_t *redis,
    redisReply *reply, void *data);
void ngx_http_sse_redis_resubscribed(ngx_http_sse_redis_t *redis,
    redisReply *reply, void *data);
void ngx_http_sse_redis_pubsub_send(ngx_http_sse_redis_link_t *link,
    const char *command, size_t len, ngx_str_t *channel,
    ngx_http_sse_redis_reply_pt handler, void *data);

/* channels per SUBSCRIBE when all of them are subscribed again, and
 * such SUBSCRIBEs awaiting their confirmation at once */
#define NGX_HTTP_SSE_REDIS_RESUBSCRIBE_BATCH     256
#define NGX_HTTP_SSE_REDIS_RESUBSCRIBE_INFLIGHT  16

ngx_int_t ngx_http_sse_redis_resubscribe_next(
    ngx_http_sse_redis_link_t *link);
ngx_rbtree_node_t *ngx_http_sse_redis_channel_after(
    ngx_http_sse_redis_t *redis, ngx_str_t *name, uint32_t hash);
void ngx_http_sse_redis_unsubscribe_flush(ngx_event_t *ev);

} // namespace


void
ngx_http_sse_redis_pubsub_init(ngx_http_sse_redis_t *redis, ngx_log_t *log)
{
    ngx_rbtree_init(&redis->unsubs, &redis->unsubs_sentinel,
                    ngx_str_rbtree_insert_value);

    redis->unsub_event.handler = ngx_http_sse_redis_unsubscribe_flush;
    redis->unsub_event.data = redis;
    redis->unsub_event.log = log;
}


/* the UNSUBSCRIBEs not sent: the connection they were for is gone (a new
 * one subscribes only the set), or the worker exits */

void
ngx_http_sse_redis_unsubs_drop(ngx_http_sse_redis_t *redis)
{
    ngx_rbtree_node_t  *node;

    if (redis->unsub_event.posted) {
        ngx_delete_posted_event(&redis->unsub_event);
    }

    while (redis->unsubs.root != redis->unsubs.sentinel) {
        node = ngx_rbtree_min(redis->unsubs.root, redis->unsubs.sentinel);
        ngx_rbtree_delete(&redis->unsubs, node);
        ngx_free(node);
    }

    redis->nunsubs = 0;
}


/*
 * A stream counts as subscribed once its headers are sent (SPEC.md): the
 * store waits for Redis' confirmation of the SUBSCRIBE before it answers
 * a join, so every message published after that reaches this worker.
 */

ngx_int_t
ngx_http_sse_redis_subscribe(ngx_http_sse_redis_t *redis, ngx_str_t *channel,
    ngx_http_sse_redis_reply_pt handler, void *data)
{
    uint32_t                        hash;
    ngx_str_node_t                 *sn;
    ngx_http_sse_redis_link_t      *link = &redis->pubsub;
    ngx_http_sse_redis_sub_wait_t  *w;

    hash = ngx_crc32_long(channel->data, channel->len);

    if (ngx_str_rbtree_lookup(&redis->channels, channel, hash) != NULL) {
        return NGX_DECLINED;
    }

    sn = ngx_str_rbtree_lookup(&redis->unsubs, channel, hash);

    if (sn) {
        /* left in this turn, its UNSUBSCRIBE not sent: Redis still has it
         * subscribed, confirmed before (a SUBSCRIBE's waiter holds it) */
        ngx_rbtree_delete(&redis->unsubs, &sn->node);
        redis->nunsubs--;

        ngx_rbtree_insert(&redis->channels, &sn->node);
        redis->nchannels++;

        if (handler) {
            handler(redis, NULL, data);
        }

        return NGX_OK;
    }

    sn = (ngx_str_node_t *) ngx_alloc(sizeof(ngx_str_node_t) + channel->len,
                                      &link->log);
    if (sn == NULL) {
        if (handler) {
            handler(redis, NULL, data);
        }

        return NGX_ERROR;
    }

    sn->node.key = hash;
    sn->str.data = (u_char *) (sn + 1);
    sn->str.len = channel->len;
    ngx_memcpy(sn->str.data, channel->data, channel->len);

    ngx_rbtree_insert(&redis->channels, &sn->node);
    redis->nchannels++;

    if (link->phase != NGX_HTTP_SSE_REDIS_PHASE_UP) {
        /* subscribed with every other one once the connection is up */
        if (handler) {
            handler(redis, NULL, data);
        }

        return NGX_OK;
    }

    if (handler == NULL) {
        ngx_http_sse_redis_pubsub_send(link, "SUBSCRIBE", 9, &sn->str,
                                       ngx_http_sse_redis_subscribe_reply,
                                       link);
        return NGX_OK;
    }

    w = (ngx_http_sse_redis_sub_wait_t *)
            ngx_alloc(sizeof(ngx_http_sse_redis_sub_wait_t), &link->log);
    if (w == NULL) {
        ngx_http_sse_redis_pubsub_send(link, "SUBSCRIBE", 9, &sn->str,
                                       ngx_http_sse_redis_subscribe_reply,
                                       link);
        handler(redis, NULL, data);
        return NGX_OK;
    }

    w->link = link;
    w->handler = handler;
    w->data = data;

    ngx_http_sse_redis_pubsub_send(link, "SUBSCRIBE", 9, &sn->str,
                                   ngx_http_sse_redis_subscribed, w);

    return NGX_OK;
}


ngx_int_t
ngx_http_sse_redis_unsubscribe(ngx_http_sse_redis_t *redis,
    ngx_str_t *channel)
{
    ngx_str_node_t             *sn;
    ngx_http_sse_redis_link_t  *link = &redis->pubsub;

    sn = ngx_str_rbtree_lookup(&redis->channels, channel,
                               ngx_crc32_long(channel->data, channel->len));
    if (sn == NULL) {
        return NGX_OK;
    }

    ngx_rbtree_delete(&redis->channels, &sn->node);
    redis->nchannels--;

    if (link->phase == NGX_HTTP_SSE_REDIS_PHASE_UP) {
        /*
         * Sent with the others of this turn, many to a command: one
         * client's streams closing at once (thousands of channels) would
         * overflow the connection's queue, which starts it over.
         */
        ngx_rbtree_insert(&redis->unsubs, &sn->node);
        redis->nunsubs++;

        if (!redis->unsub_event.posted) {
            ngx_post_event(&redis->unsub_event, &ngx_posted_events);
        }

        return NGX_OK;
    }

    ngx_free(sn);

    return NGX_OK;
}


/*
 * Both connections are up and every channel of the set is subscribed
 * again: only now is what was published meanwhile all that is missing
 * (a fill started before the SUBSCRIBEs were confirmed could miss what
 * is published between its read and the confirmation).
 */

void
ngx_http_sse_redis_check_synced(ngx_http_sse_redis_t *redis)
{
    if ((!redis->lost && redis->synced)
        || redis->resubscribing
        || redis->resub_more
        || !ngx_http_sse_redis_is_up(redis))
    {
        return;
    }

    redis->lost = 0;
    redis->synced = 1;

    if (redis->on_reconnected) {
        redis->on_reconnected(redis, redis->data);
    }
}


/*
 * Every channel of the set again, in SUBSCRIBEs of a bounded size, at
 * most NGX_HTTP_SSE_REDIS_RESUBSCRIBE_INFLIGHT of them awaiting their
 * confirmation: each confirmed one sends the next (ten thousands of
 * channels would otherwise fill the connection's queue at once, and the
 * connection would start over, forever).  Where it stands is kept as the
 * last channel sent, not a node: a channel may leave the set meanwhile.
 */

ngx_int_t
ngx_http_sse_redis_resubscribe(ngx_http_sse_redis_link_t *link)
{
    ngx_http_sse_redis_t  *redis = link->redis;

    redis->resubscribing = 0;
    redis->resub_more = 1;
    redis->resub_from.len = 0;

    ngx_http_sse_redis_unsubs_drop(redis);

    return ngx_http_sse_redis_resubscribe_next(link);
}


namespace {

ngx_int_t
ngx_http_sse_redis_resubscribe_next(ngx_http_sse_redis_link_t *link)
{
    int                    argc;
    u_char                *last;
    const char            *argv[NGX_HTTP_SSE_REDIS_RESUBSCRIBE_BATCH + 1];
    size_t                 argvlen[NGX_HTTP_SSE_REDIS_RESUBSCRIBE_BATCH + 1];
    ngx_str_node_t        *sn;
    ngx_rbtree_node_t     *node;
    ngx_http_sse_redis_t  *redis = link->redis;

    if (redis->nchannels == 0) {
        redis->resub_more = 0;
        return NGX_OK;
    }

    node = redis->resub_from.len
           ? ngx_http_sse_redis_channel_after(redis, &redis->resub_from,
                                              redis->resub_hash)
           : ngx_rbtree_min(redis->channels.root, redis->channels.sentinel);

    while (node && redis->resubscribing
                   < NGX_HTTP_SSE_REDIS_RESUBSCRIBE_INFLIGHT)
    {
        argv[0] = "SUBSCRIBE";
        argvlen[0] = 9;
        argc = 1;
        sn = NULL;

        while (node && argc < NGX_HTTP_SSE_REDIS_RESUBSCRIBE_BATCH + 1) {
            sn = (ngx_str_node_t *) node;
            argv[argc] = (const char *) sn->str.data;
            argvlen[argc++] = sn->str.len;

            node = ngx_rbtree_next(&redis->channels, node);
        }

        if (link->npending >= NGX_HTTP_SSE_REDIS_MAX_PENDING
            || ngx_http_sse_redis_link_send(link, argc, argv, argvlen,
                                            argc - 1,
                                            ngx_http_sse_redis_resubscribed,
                                            link)
               != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, &link->log, 0,
                          "redis: cannot subscribe %ui channels again",
                          redis->nchannels);
            return NGX_ERROR;
        }

        redis->resubscribing++;

        /* where the next batch starts */
        if (sn->str.len > redis->resub_cap) {
            last = (u_char *) ngx_alloc(sn->str.len, &link->log);
            if (last == NULL) {
                return NGX_ERROR;
            }

            if (redis->resub_from.data) {
                ngx_free(redis->resub_from.data);
            }

            redis->resub_from.data = last;
            redis->resub_cap = sn->str.len;
        }

        ngx_memcpy(redis->resub_from.data, sn->str.data, sn->str.len);
        redis->resub_from.len = sn->str.len;
        redis->resub_hash = sn->node.key;
    }

    redis->resub_more = (node != NULL);

    return NGX_OK;
}


/* the first channel of the set after (hash, name), in the tree's order */

ngx_rbtree_node_t *
ngx_http_sse_redis_channel_after(ngx_http_sse_redis_t *redis,
    ngx_str_t *name, uint32_t hash)
{
    ngx_int_t           rc;
    ngx_str_node_t     *sn;
    ngx_rbtree_node_t  *node, *sentinel, *best;

    node = redis->channels.root;
    sentinel = redis->channels.sentinel;
    best = NULL;

    while (node != sentinel) {
        sn = (ngx_str_node_t *) node;

        if (hash != node->key) {
            rc = (hash < node->key) ? -1 : 1;

        } else {
            rc = ngx_memn2cmp(name->data, sn->str.data, name->len,
                              sn->str.len);
        }

        if (rc < 0) {
            best = node;
            node = node->left;

        } else {
            node = node->right;
        }
    }

    return best;
}

} // namespace


namespace {

/* the UNSUBSCRIBEs of this turn, NGX_HTTP_SSE_REDIS_RESUBSCRIBE_BATCH
 * channels to a command */

void
ngx_http_sse_redis_unsubscribe_flush(ngx_event_t *ev)
{
    int                         argc;
    ngx_uint_t                  i, n;
    ngx_int_t                   rc;
    const char                 *argv[NGX_HTTP_SSE_REDIS_RESUBSCRIBE_BATCH + 1];
    size_t                      argvlen[NGX_HTTP_SSE_REDIS_RESUBSCRIBE_BATCH + 1];
    ngx_str_node_t             *sn[NGX_HTTP_SSE_REDIS_RESUBSCRIBE_BATCH];
    ngx_rbtree_node_t          *node;
    ngx_http_sse_redis_t       *redis = (ngx_http_sse_redis_t *) ev->data;
    ngx_http_sse_redis_link_t  *link = &redis->pubsub;

    while (redis->nunsubs) {
        if (link->phase != NGX_HTTP_SSE_REDIS_PHASE_UP) {
            /* gone with the connection */
            ngx_http_sse_redis_unsubs_drop(redis);
            return;
        }

        argv[0] = "UNSUBSCRIBE";
        argvlen[0] = 11;
        argc = 1;
        n = 0;

        while (n < NGX_HTTP_SSE_REDIS_RESUBSCRIBE_BATCH
               && redis->unsubs.root != redis->unsubs.sentinel)
        {
            node = ngx_rbtree_min(redis->unsubs.root,
                                  redis->unsubs.sentinel);
            ngx_rbtree_delete(&redis->unsubs, node);
            redis->nunsubs--;

            sn[n] = (ngx_str_node_t *) node;
            argv[argc] = (const char *) sn[n]->str.data;
            argvlen[argc++] = sn[n]->str.len;
            n++;
        }

        rc = NGX_ERROR;

        if (link->npending < NGX_HTTP_SSE_REDIS_MAX_PENDING) {
            rc = ngx_http_sse_redis_link_send(link, argc, argv, argvlen,
                                              argc - 1,
                                       ngx_http_sse_redis_subscribe_reply,
                                              link);
        }

        for (i = 0; i < n; i++) {
            ngx_free(sn[i]);
        }

        if (rc != NGX_OK) {
            ngx_log_error(NGX_LOG_ERR, &link->log, 0,
                          "redis: too many commands pending on the pub/sub "
                          "connection, reconnecting");
            ngx_http_sse_redis_unsubs_drop(redis);
            ngx_http_sse_redis_lost(link);
            return;
        }
    }
}


void
ngx_http_sse_redis_subscribe_reply(ngx_http_sse_redis_t *redis,
    redisReply *reply, void *data)
{
    ngx_http_sse_redis_link_t  *link = (ngx_http_sse_redis_link_t *) data;

    if (reply == NULL || reply->type != REDIS_REPLY_ERROR) {
        return;
    }

    /* a channel not subscribed would miss its wake-ups: start over */
    ngx_http_sse_redis_log_reply(link, "refused SUBSCRIBE with", reply);
    ngx_http_sse_redis_lost(link);
}


void
ngx_http_sse_redis_subscribed(ngx_http_sse_redis_t *redis, redisReply *reply,
    void *data)
{
    ngx_http_sse_redis_sub_wait_t  *w = (ngx_http_sse_redis_sub_wait_t *) data;
    ngx_http_sse_redis_reply_pt     handler;
    void                           *hdata;

    handler = w->handler;
    hdata = w->data;

    ngx_free(w);

    /* an error reply starts the connection over: no confirmation */
    handler(redis, (reply && reply->type != REDIS_REPLY_ERROR) ? reply : NULL,
            hdata);

    ngx_http_sse_redis_subscribe_reply(redis, reply, &redis->pubsub);
}


void
ngx_http_sse_redis_resubscribed(ngx_http_sse_redis_t *redis,
    redisReply *reply, void *data)
{
    ngx_http_sse_redis_link_t  *link = (ngx_http_sse_redis_link_t *) data;

    if (redis->resubscribing) {
        redis->resubscribing--;
    }

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        /* lost, or refused: the connection starts over */
        ngx_http_sse_redis_subscribe_reply(redis, reply, data);
        return;
    }

    if (redis->resub_more && link->phase == NGX_HTTP_SSE_REDIS_PHASE_UP
        && ngx_http_sse_redis_resubscribe_next(link) != NGX_OK)
    {
        ngx_http_sse_redis_lost(link);
        return;
    }

    ngx_http_sse_redis_check_synced(redis);
}


/*
 * One SUBSCRIBE or UNSUBSCRIBE of one channel.  A connection this far
 * behind (or out of memory for the command) is started again: every
 * channel of the set is subscribed anew when it is up.
 */

void
ngx_http_sse_redis_pubsub_send(ngx_http_sse_redis_link_t *link,
    const char *command, size_t len, ngx_str_t *channel,
    ngx_http_sse_redis_reply_pt handler, void *data)
{
    const char  *argv[2];
    size_t       argvlen[2];

    argv[0] = command;
    argvlen[0] = len;
    argv[1] = (const char *) channel->data;
    argvlen[1] = channel->len;

    if (link->npending >= NGX_HTTP_SSE_REDIS_MAX_PENDING
        || ngx_http_sse_redis_link_send(link, 2, argv, argvlen, 1,
                                        handler, data)
           != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, &link->log, 0,
                      "redis: too many commands pending on the pub/sub "
                      "connection, reconnecting");
        ngx_http_sse_redis_lost(link);

        /* not queued: no reply will come */
        handler(link->redis, NULL, data);
    }
}

} // namespace
