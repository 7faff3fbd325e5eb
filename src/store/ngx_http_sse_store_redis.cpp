/*
 * The Redis store's table of operations.  What the node's shared zone
 * answers (reads, the fan-out's batches, figures, the sweep) goes to the
 * shm store; what Redis decides (ids, history, DELETE, channel info) goes
 * to ngx_http_sse_store_redis_publish.cpp; joining channels, and what
 * Redis tells of them, to ngx_http_sse_store_redis_sync.cpp.
 */

#include "ngx_http_sse_store_redis.h"


namespace {

ngx_int_t ngx_http_sse_rstore_publish(ngx_http_sse_zone_t *zone,
    ngx_http_sse_store_publish_t *op);
ngx_int_t ngx_http_sse_rstore_remove(ngx_http_sse_zone_t *zone,
    ngx_http_sse_store_query_t *op);
ngx_int_t ngx_http_sse_rstore_info(ngx_http_sse_zone_t *zone,
    ngx_http_sse_store_query_t *op);
ngx_int_t ngx_http_sse_rstore_join(ngx_http_sse_zone_t *zone,
    ngx_http_sse_store_join_t *op);
void ngx_http_sse_rstore_cancel(ngx_http_sse_zone_t *zone, void *op);
ngx_int_t ngx_http_sse_rstore_read(ngx_http_sse_zone_t *zone,
    ngx_http_sse_store_read_t *rd);
void ngx_http_sse_rstore_leave(ngx_http_sse_zone_t *zone,
    ngx_http_sse_sub_t *sub);
ngx_int_t ngx_http_sse_rstore_collect(ngx_http_sse_zone_t *zone,
    ngx_http_sse_batch_t *batch);
void ngx_http_sse_rstore_settle(ngx_http_sse_zone_t *zone,
    ngx_http_sse_local_t **locals, ngx_uint_t n);
void ngx_http_sse_rstore_figures(ngx_http_sse_zone_t *zone,
    ngx_http_sse_figures_t *f);
void ngx_http_sse_rstore_count(ngx_http_sse_zone_t *zone,
    ngx_uint_t counter, ngx_uint_t n);
size_t ngx_http_sse_rstore_max_message(ngx_http_sse_zone_t *zone);
ngx_int_t ngx_http_sse_rstore_move(ngx_http_sse_zone_t *zone,
    ngx_http_sse_sub_t *sub, ngx_uint_t index, u_char *id, size_t *id_len);
ngx_int_t ngx_http_sse_rstore_attach(ngx_http_sse_zone_t *zone,
    u_char *addr, size_t addr_len);
void ngx_http_sse_rstore_detach(ngx_http_sse_zone_t *zone);
ngx_uint_t ngx_http_sse_rstore_expire(ngx_http_sse_zone_t *zone);
void ngx_http_sse_rstore_probe(ngx_http_sse_zone_t *zone);

} // namespace


ngx_http_sse_store_t  ngx_http_sse_redis_store = {
    "redis",
    ngx_http_sse_rstore_publish,
    ngx_http_sse_rstore_remove,
    ngx_http_sse_rstore_info,
    ngx_http_sse_rstore_join,
    ngx_http_sse_rstore_cancel,
    ngx_http_sse_rstore_read,
    ngx_http_sse_rstore_leave,
    ngx_http_sse_rstore_collect,
    ngx_http_sse_rstore_settle,
    ngx_http_sse_rstore_figures,
    ngx_http_sse_rstore_count,
    ngx_http_sse_rstore_max_message,
    ngx_http_sse_rstore_move,
    ngx_http_sse_rstore_attach,
    ngx_http_sse_rstore_detach,
    ngx_http_sse_rstore_expire,
    ngx_http_sse_rstore_probe
};


/*
 * This worker's store of a zone with sse_redis: made when the worker's
 * Redis client is (ngx_http_sse_redis_init_process), kept as the
 * client's handler data.
 */

ngx_int_t
ngx_http_sse_rstore_init(ngx_http_sse_redis_t *redis)
{
    ngx_http_sse_rstore_t  *rs;

    /*
     * The worker's cycle pool: it lives as long as the client does; what
     * the store holds besides goes in ngx_http_sse_rstore_exit()
     */

    rs = (ngx_http_sse_rstore_t *) ngx_pcalloc(ngx_cycle->pool,
                                               sizeof(ngx_http_sse_rstore_t));
    if (rs == NULL) {
        return NGX_ERROR;
    }

    rs->zone = redis->zone;
    rs->redis = redis;

    ngx_queue_init(&rs->rpub_pending);

    return ngx_http_sse_rsync_init(rs);
}


/* the worker exits (ngx_http_sse_redis_exit_process) */

void
ngx_http_sse_rstore_exit(ngx_http_sse_redis_t *redis)
{
    ngx_http_sse_rstore_t  *rs = (ngx_http_sse_rstore_t *) redis->data;

    if (rs == NULL) {
        return;
    }

    /* commands in flight get no reply any more: their records go */
    ngx_http_sse_rpub_exit(rs);
    ngx_http_sse_rsync_exit(rs);

    redis->data = NULL;
}


ngx_http_sse_rstore_t *
ngx_http_sse_rstore_get(ngx_http_sse_zone_t *zone)
{
    ngx_http_sse_redis_t  *redis;

    redis = ngx_http_sse_redis_get(zone);

    return redis ? (ngx_http_sse_rstore_t *) redis->data : NULL;
}


namespace {

/* what Redis decides: ngx_http_sse_store_redis_publish.cpp */

ngx_int_t
ngx_http_sse_rstore_publish(ngx_http_sse_zone_t *zone,
    ngx_http_sse_store_publish_t *op)
{
    return ngx_http_sse_rpub_publish(zone, op);
}


ngx_int_t
ngx_http_sse_rstore_remove(ngx_http_sse_zone_t *zone,
    ngx_http_sse_store_query_t *op)
{
    return ngx_http_sse_rpub_remove(zone, op);
}


ngx_int_t
ngx_http_sse_rstore_info(ngx_http_sse_zone_t *zone,
    ngx_http_sse_store_query_t *op)
{
    return ngx_http_sse_rpub_info(zone, op);
}


/*
 * Skeleton: until the Redis read side lands (branch rsync), joining is
 * the shm store's, so a zone with sse_redis still serves its own
 * subscribers.
 */


ngx_int_t
ngx_http_sse_rstore_join(ngx_http_sse_zone_t *zone,
    ngx_http_sse_store_join_t *op)
{
    return ngx_http_sse_rsync_join(zone, op);
}


void
ngx_http_sse_rstore_cancel(ngx_http_sse_zone_t *zone, void *op)
{
    /* a publish, DELETE or info in flight in Redis */
    if (ngx_http_sse_rpub_cancel(ngx_http_sse_rstore_get(zone), op)) {
        return;
    }

    /* a join */
    ngx_http_sse_rsync_cancel(zone, op);
}


/* ---- what the node's zone answers --------------------------------- */

ngx_int_t
ngx_http_sse_rstore_read(ngx_http_sse_zone_t *zone,
    ngx_http_sse_store_read_t *rd)
{
    return ngx_http_sse_shm_store.read(zone, rd);
}


void
ngx_http_sse_rstore_leave(ngx_http_sse_zone_t *zone, ngx_http_sse_sub_t *sub)
{
    ngx_http_sse_rsync_leave(zone, sub);
}


ngx_int_t
ngx_http_sse_rstore_collect(ngx_http_sse_zone_t *zone,
    ngx_http_sse_batch_t *batch)
{
    return ngx_http_sse_shm_store.collect(zone, batch);
}


void
ngx_http_sse_rstore_settle(ngx_http_sse_zone_t *zone,
    ngx_http_sse_local_t **locals, ngx_uint_t n)
{
    ngx_http_sse_shm_store.settle(zone, locals, n);
}


void
ngx_http_sse_rstore_figures(ngx_http_sse_zone_t *zone,
    ngx_http_sse_figures_t *f)
{
    ngx_http_sse_shm_store.figures(zone, f);
}


void
ngx_http_sse_rstore_count(ngx_http_sse_zone_t *zone, ngx_uint_t counter,
    ngx_uint_t n)
{
    ngx_http_sse_shm_store.count(zone, counter, n);
}


size_t
ngx_http_sse_rstore_max_message(ngx_http_sse_zone_t *zone)
{
    return ngx_http_sse_shm_store.max_message(zone);
}


/*
 * the channel's id stays, and so do this worker's pub/sub subscription
 * and its count of the channel's streams: only the local node changes
 */

ngx_int_t
ngx_http_sse_rstore_move(ngx_http_sse_zone_t *zone, ngx_http_sse_sub_t *sub,
    ngx_uint_t index, u_char *id, size_t *id_len)
{
    return ngx_http_sse_shm_store.move(zone, sub, index, id, id_len);
}


ngx_int_t
ngx_http_sse_rstore_attach(ngx_http_sse_zone_t *zone, u_char *addr,
    size_t addr_len)
{
    return ngx_http_sse_shm_store.attach(zone, addr, addr_len);
}


void
ngx_http_sse_rstore_detach(ngx_http_sse_zone_t *zone)
{
    ngx_http_sse_shm_store.detach(zone);
}


ngx_uint_t
ngx_http_sse_rstore_expire(ngx_http_sse_zone_t *zone)
{
    return ngx_http_sse_shm_store.expire(zone);
}


void
ngx_http_sse_rstore_probe(ngx_http_sse_zone_t *zone)
{
    ngx_http_sse_shm_store.probe(zone);
}

} // namespace
