/*
 * Idempotency-Key records of the shared-memory store (SPEC "Idempotent
 * publishing"): a publish with a key remembers what it answered, for
 * history_ttl; a publish with the same key to the same channels within
 * that time is answered from the record and stores nothing.
 *
 * A record is found by its identity, the key and the channel ids in the
 * request's order (the key covers the whole request): an rbtree keyed by
 * the crc32 of the identity, equal hashes ordered by the identity's bytes,
 * so that keys made to collide cost a lookup no more than a tree's depth.
 * Records also sit on one queue by age: expiry takes from its head, at
 * most NGX_HTTP_SSE_EXPIRE_MAX per call.
 *
 * Memory: records come from the zone's slab and never cost history.
 * They take at most a quarter of the zone (NGX_HTTP_SSE_IDEM_SHARE): past
 * that a new record replaces the oldest ones, so that a flood of keys
 * turns over within its share and the rest of the zone stays history's,
 * unfragmented by records.  A record's allocation frees only older
 * records to make room, never an event or a channel; and history that
 * needs room takes records first (ngx_http_sse_evict_oldest()), before
 * any event.  A publish that succeeded stays published when no record
 * can be made for it (its key is then not remembered: logged,
 * rate-limited, and counted as dropped).
 *
 * Everything here runs under the zone lock but ngx_http_sse_idem_log().
 */

#include "ngx_http_sse.h"


/* the part of the zone records may take, at most: 1 / this */
#define NGX_HTTP_SSE_IDEM_SHARE  4

/* the longest identity: the key's length and bytes, then every channel */
#define NGX_HTTP_SSE_IDEM_IDENT_MAX                                           \
    (2 + NGX_HTTP_SSE_IDEMPOTENCY_KEY_MAX                                     \
     + sse::max_channels_per_stream * (1 + 255))


/* a record keeps both in 16 bits */
static_assert(NGX_HTTP_SSE_IDEM_IDENT_MAX <= UINT16_MAX
              && sse::max_channels_per_stream <= UINT16_MAX,
              "an identity's length and a channel count fit 16 bits");


namespace {

typedef struct {
    u_char                      buf[NGX_HTTP_SSE_IDEM_IDENT_MAX];
    size_t                      len;
    uint32_t                    hash;
} ngx_http_sse_idem_ident_t;


ngx_int_t ngx_http_sse_idem_ident(ngx_http_sse_store_publish_t *op,
    ngx_http_sse_idem_ident_t *ident);
ngx_http_sse_idem_t *ngx_http_sse_idem_find(ngx_http_sse_zone_t *zone,
    ngx_http_sse_idem_ident_t *ident);
void ngx_http_sse_idem_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
void ngx_http_sse_idem_free(ngx_http_sse_zone_t *zone,
    ngx_http_sse_idem_t *rec);


ngx_inline u_char *
ngx_http_sse_idem_bytes(ngx_http_sse_idem_t *rec)
{
    return (u_char *) &rec->chans[rec->nchans];
}


ngx_inline size_t
ngx_http_sse_idem_size(size_t nchans, size_t ident_len)
{
    return offsetof(ngx_http_sse_idem_t, chans)
           + nchans * sizeof(ngx_http_sse_idem_chan_t) + ident_len;
}

} // namespace


void
ngx_http_sse_idem_init(ngx_http_sse_shctx_t *sh)
{
    ngx_rbtree_init(&sh->idem_tree, &sh->idem_sentinel,
                    ngx_http_sse_idem_insert);
    ngx_queue_init(&sh->idem_age);
}


/*
 * A publish that repeats a recorded one: op's out fields become the
 * record's answer, and nothing is stored.
 */

ngx_int_t
ngx_http_sse_idem_replay(ngx_http_sse_zone_t *zone,
    ngx_http_sse_store_publish_t *op)
{
    ngx_uint_t                  i;
    ngx_http_sse_idem_t        *rec;
    ngx_http_sse_idem_ident_t   ident;

    if (ngx_http_sse_idem_ident(op, &ident) != NGX_OK) {
        return NGX_DECLINED;
    }

    rec = ngx_http_sse_idem_find(zone, &ident);

    /* expiry is bounded per call: one may still be here past its time */
    if (rec == NULL
        || rec->time + zone->sh->limits.history_ttl <= ngx_time())
    {
        return NGX_DECLINED;
    }

    for (i = 0; i < op->nchans; i++) {
        op->last[i].epoch = rec->chans[i].epoch;
        op->last[i].seq = rec->chans[i].seq;
        op->published[i] = rec->chans[i].published;
        op->subscribers[i] = rec->chans[i].subscribers;
    }

    op->rc = rec->rc;
    op->repeated = 1;

    (void) ngx_atomic_fetch_add(&zone->sh->idempotent_replays, 1);

    return NGX_OK;
}


/*
 * Room for the record of a keyed publish, taken before the publish stores
 * any event: a publish the zone runs out of room for part way (its events
 * may have evicted every other record) still has its record, so that its
 * retry never stores twice what went in.  Room comes from older records
 * only (at most NGX_HTTP_SSE_EVICT_MAX of them, and one per 32 bytes
 * asked for, as ngx_http_sse_alloc() bounds its evictions).  The record
 * reserved is in neither the tree nor the age queue until kept, so no
 * eviction takes it meanwhile.  NULL: no room (nothing counted yet: the
 * caller counts a drop only if the publish needed its record).
 */

ngx_http_sse_idem_t *
ngx_http_sse_idem_reserve(ngx_http_sse_zone_t *zone,
    ngx_http_sse_store_publish_t *op)
{
    size_t                      size;
    ngx_uint_t                  n;
    ngx_http_sse_idem_t        *rec, *old;
    ngx_http_sse_shctx_t       *sh = zone->sh;
    ngx_http_sse_idem_ident_t   ident;

    if (ngx_http_sse_idem_ident(op, &ident) != NGX_OK) {
        return NULL;
    }

    /* a record past its time with this identity gives way to the new one */

    old = ngx_http_sse_idem_find(zone, &ident);
    if (old) {
        ngx_http_sse_idem_free(zone, old);
    }

    size = ngx_http_sse_idem_size(op->nchans, ident.len);

    n = NGX_HTTP_SSE_EVICT_MAX + size / 32;

    /* within the records' share of the zone: older records make way */

    while (sh->idem_bytes + size
           > zone->shm_zone->shm.size / NGX_HTTP_SSE_IDEM_SHARE)
    {
        if (n-- == 0 || !ngx_http_sse_idem_evict(zone)) {
            return NULL;
        }
    }

    for ( ;; ) {
        rec = (ngx_http_sse_idem_t *) ngx_slab_alloc_locked(zone->shpool,
                                                            size);
        if (rec) {
            break;
        }

        if (n-- == 0 || !ngx_http_sse_idem_evict(zone)) {
            return NULL;
        }
    }

    rec->node.key = ident.hash;
    rec->ident_len = (uint16_t) ident.len;
    rec->nchans = (uint16_t) op->nchans;

    ngx_memcpy(ngx_http_sse_idem_bytes(rec), ident.buf, ident.len);

    sh->idem_bytes += size;

    return rec;
}


/* the answer of a publish (op->rc, and per channel what it stored) kept */

void
ngx_http_sse_idem_keep(ngx_http_sse_zone_t *zone,
    ngx_http_sse_store_publish_t *op, ngx_http_sse_idem_t *rec)
{
    ngx_uint_t             i;
    ngx_http_sse_shctx_t  *sh = zone->sh;

    rec->time = ngx_time();
    rec->rc = (int32_t) op->rc;

    for (i = 0; i < op->nchans; i++) {
        rec->chans[i].epoch = op->last[i].epoch;
        rec->chans[i].seq = op->last[i].seq;
        rec->chans[i].published = (uint32_t) op->published[i];
        rec->chans[i].subscribers = (uint32_t) op->subscribers[i];
    }

    ngx_rbtree_insert(&sh->idem_tree, &rec->node);
    ngx_queue_insert_tail(&sh->idem_age, &rec->age);
    sh->idem_records++;
}


/* a reserved record the publish turned out not to need */

void
ngx_http_sse_idem_unreserve(ngx_http_sse_zone_t *zone,
    ngx_http_sse_idem_t *rec)
{
    zone->sh->idem_bytes -= ngx_http_sse_idem_size(rec->nchans,
                                                   rec->ident_len);
    ngx_slab_free_locked(zone->shpool, rec);
}


ngx_uint_t
ngx_http_sse_idem_expire(ngx_http_sse_zone_t *zone, time_t now)
{
    ngx_uint_t             n;
    ngx_queue_t           *q;
    ngx_http_sse_idem_t   *rec;
    ngx_http_sse_shctx_t  *sh = zone->sh;

    for (n = 0; !ngx_queue_empty(&sh->idem_age); n++) {
        q = ngx_queue_head(&sh->idem_age);
        rec = ngx_queue_data(q, ngx_http_sse_idem_t, age);

        if (rec->time + sh->limits.history_ttl > now) {
            return 0;
        }

        if (n == NGX_HTTP_SSE_EXPIRE_MAX) {
            return 1;
        }

        ngx_http_sse_idem_free(zone, rec);
    }

    return 0;
}


/* room for history or a newer record: the oldest record goes */

ngx_uint_t
ngx_http_sse_idem_evict(ngx_http_sse_zone_t *zone)
{
    ngx_queue_t          *q;
    ngx_http_sse_idem_t  *rec;

    if (ngx_queue_empty(&zone->sh->idem_age)) {
        return 0;
    }

    q = ngx_queue_head(&zone->sh->idem_age);
    rec = ngx_queue_data(q, ngx_http_sse_idem_t, age);

    ngx_http_sse_idem_free(zone, rec);
    (void) ngx_atomic_fetch_add(&zone->sh->idem_dropped, 1);

    return 1;
}


/* unlocked: a publish whose key could not be remembered */

void
ngx_http_sse_idem_log(ngx_http_sse_zone_t *zone, ngx_log_t *log)
{
    if (!ngx_http_sse_log_due(&zone->sh->idem_logged)) {
        return;
    }

    ngx_log_error(NGX_LOG_WARN, log, 0,
                  "sse zone \"%V\" has no room to remember an "
                  "Idempotency-Key: the publish went out, but a retry "
                  "with that key would publish again (this message is "
                  "rate-limited)", &zone->name);
}


namespace {

/*
 * The identity of op's key and channels, and its hash.  NGX_DECLINED: no
 * key, or one longer than a store is given (the caller checks keys).
 */

ngx_int_t
ngx_http_sse_idem_ident(ngx_http_sse_store_publish_t *op,
    ngx_http_sse_idem_ident_t *ident)
{
    u_char      *p;
    size_t       len;
    ngx_uint_t   i;

    len = op->idempotency_key.len;

    if (len == 0 || len > NGX_HTTP_SSE_IDEMPOTENCY_KEY_MAX
        || op->nchans == 0 || op->nchans > sse::max_channels_per_stream)
    {
        return NGX_DECLINED;
    }

    p = ident->buf;
    *p++ = (u_char) (len >> 8);
    *p++ = (u_char) len;
    p = ngx_cpymem(p, op->idempotency_key.data, len);

    for (i = 0; i < op->nchans; i++) {
        if (op->ids[i].len > 255) {
            return NGX_DECLINED;
        }

        *p++ = (u_char) op->ids[i].len;
        p = ngx_cpymem(p, op->ids[i].data, op->ids[i].len);
    }

    ident->len = p - ident->buf;
    ident->hash = ngx_crc32_long(ident->buf, ident->len);

    return NGX_OK;
}


ngx_http_sse_idem_t *
ngx_http_sse_idem_find(ngx_http_sse_zone_t *zone,
    ngx_http_sse_idem_ident_t *ident)
{
    ngx_int_t             rc;
    ngx_rbtree_node_t    *node, *sentinel;
    ngx_http_sse_idem_t  *rec;

    node = zone->sh->idem_tree.root;
    sentinel = zone->sh->idem_tree.sentinel;

    while (node != sentinel) {

        if (ident->hash < node->key) {
            node = node->left;
            continue;
        }

        if (ident->hash > node->key) {
            node = node->right;
            continue;
        }

        rec = (ngx_http_sse_idem_t *) node;

        rc = ngx_memn2cmp(ident->buf, ngx_http_sse_idem_bytes(rec),
                          ident->len, rec->ident_len);

        if (rc == 0) {
            return rec;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


/* by hash, then by identity: the order ngx_http_sse_idem_find() walks */

void
ngx_http_sse_idem_insert(ngx_rbtree_node_t *temp, ngx_rbtree_node_t *node,
    ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t   **p;
    ngx_http_sse_idem_t  *rec, *t;

    rec = (ngx_http_sse_idem_t *) node;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else {
            t = (ngx_http_sse_idem_t *) temp;

            p = (ngx_memn2cmp(ngx_http_sse_idem_bytes(rec),
                              ngx_http_sse_idem_bytes(t),
                              rec->ident_len, t->ident_len)
                 < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


void
ngx_http_sse_idem_free(ngx_http_sse_zone_t *zone, ngx_http_sse_idem_t *rec)
{
    ngx_rbtree_delete(&zone->sh->idem_tree, &rec->node);
    ngx_queue_remove(&rec->age);
    zone->sh->idem_records--;
    zone->sh->idem_bytes -= ngx_http_sse_idem_size(rec->nchans,
                                                   rec->ident_len);

    ngx_slab_free_locked(zone->shpool, rec);
}

} // namespace
