/*
 * Pub/sub on a zone's second Redis connection: the channels this worker
 * subscribed to (a set that outlives connections), SUBSCRIBE and
 * UNSUBSCRIBE as they change, all of them again after a reconnect.
 * Messages come through ngx_http_sse_redis_dispatch().
 */

#include "ngx_http_sse_redis.h"


namespace {

void ngx_http_sse_redis_subscribe_reply(ngx_http_sse_redis_t *redis,
    redisReply *reply, void *data);
void ngx_http_sse_redis_pubsub_send(ngx_http_sse_redis_link_t *link,
    const char *command, size_t len, ngx_str_t *channel);

/* channels per SUBSCRIBE when all of them are subscribed again */
#define NGX_HTTP_SSE_REDIS_RESUBSCRIBE_BATCH  256

} // namespace


ngx_int_t
ngx_http_sse_redis_subscribe(ngx_http_sse_redis_t *redis, ngx_str_t *channel)
{
    uint32_t                    hash;
    ngx_str_node_t             *sn;
    ngx_http_sse_redis_link_t  *link = &redis->pubsub;

    hash = ngx_crc32_long(channel->data, channel->len);

    if (ngx_str_rbtree_lookup(&redis->channels, channel, hash) != NULL) {
        return NGX_OK;
    }

    sn = (ngx_str_node_t *) ngx_alloc(sizeof(ngx_str_node_t) + channel->len,
                                      &link->log);
    if (sn == NULL) {
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
        return NGX_OK;
    }

    ngx_http_sse_redis_pubsub_send(link, "SUBSCRIBE", 9, &sn->str);

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
        ngx_http_sse_redis_pubsub_send(link, "UNSUBSCRIBE", 11, &sn->str);
    }

    ngx_free(sn);

    return NGX_OK;
}


/* every channel of the set, in SUBSCRIBEs of a bounded size */

ngx_int_t
ngx_http_sse_redis_resubscribe(ngx_http_sse_redis_link_t *link)
{
    int                    argc;
    const char            *argv[NGX_HTTP_SSE_REDIS_RESUBSCRIBE_BATCH + 1];
    size_t                 argvlen[NGX_HTTP_SSE_REDIS_RESUBSCRIBE_BATCH + 1];
    ngx_str_node_t        *sn;
    ngx_rbtree_node_t     *node;
    ngx_http_sse_redis_t  *redis = link->redis;

    if (redis->nchannels == 0) {
        return NGX_OK;
    }

    node = ngx_rbtree_min(redis->channels.root, redis->channels.sentinel);
    argc = 0;

    while (node) {
        if (argc == 0) {
            argv[0] = "SUBSCRIBE";
            argvlen[0] = 9;
            argc = 1;
        }

        sn = (ngx_str_node_t *) node;
        argv[argc] = (const char *) sn->str.data;
        argvlen[argc++] = sn->str.len;

        node = ngx_rbtree_next(&redis->channels, node);

        if (argc == NGX_HTTP_SSE_REDIS_RESUBSCRIBE_BATCH + 1 || node == NULL) {
            if (link->npending >= NGX_HTTP_SSE_REDIS_MAX_PENDING
                || ngx_http_sse_redis_link_send(link, argc, argv, argvlen,
                                          argc - 1,
                                          ngx_http_sse_redis_subscribe_reply,
                                          link)
                   != NGX_OK)
            {
                ngx_log_error(NGX_LOG_ERR, &link->log, 0,
                              "redis: cannot subscribe %ui channels again",
                              redis->nchannels);
                return NGX_ERROR;
            }

            argc = 0;
        }
    }

    return NGX_OK;
}


namespace {

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


/*
 * One SUBSCRIBE or UNSUBSCRIBE of one channel.  A connection this far
 * behind (or out of memory for the command) is started again: every
 * channel of the set is subscribed anew when it is up.
 */

void
ngx_http_sse_redis_pubsub_send(ngx_http_sse_redis_link_t *link,
    const char *command, size_t len, ngx_str_t *channel)
{
    const char  *argv[2];
    size_t       argvlen[2];

    argv[0] = command;
    argvlen[0] = len;
    argv[1] = (const char *) channel->data;
    argvlen[1] = channel->len;

    if (link->npending >= NGX_HTTP_SSE_REDIS_MAX_PENDING
        || ngx_http_sse_redis_link_send(link, 2, argv, argvlen, 1,
                                        ngx_http_sse_redis_subscribe_reply,
                                        link)
           != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, &link->log, 0,
                      "redis: too many commands pending on the pub/sub "
                      "connection, reconnecting");
        ngx_http_sse_redis_lost(link);
    }
}

} // namespace
