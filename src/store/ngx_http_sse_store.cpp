/*
 * The shared zone: channels (an rbtree keyed by crc32 + id, as in
 * limit_req), each with a bounded ring of events stored once as their
 * finished wire bytes, and the table of worker slots.
 *
 * Every function here that touches the zone expects the caller to hold
 * the slab pool's mutex; nginx's master force-unlocks it if a worker dies
 * holding it.  Critical sections stay short: nothing here writes to a
 * socket.
 */

#include "ngx_http_sse.h"

#include <openssl/rand.h>



namespace {

void ngx_http_sse_rbtree_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
void *ngx_http_sse_alloc(ngx_http_sse_zone_t *zone, size_t size);
ngx_uint_t ngx_http_sse_evict_oldest(ngx_http_sse_zone_t *zone);
ngx_uint_t ngx_http_sse_reclaim(ngx_http_sse_zone_t *zone,
    ngx_queue_t *queue);
ngx_uint_t ngx_http_sse_reclaim_expired(ngx_http_sse_zone_t *zone);
ngx_uint_t ngx_http_sse_expire(ngx_http_sse_zone_t *zone);
ngx_uint_t ngx_http_sse_expire_idle(ngx_http_sse_zone_t *zone,
    ngx_queue_t *queue, time_t now);
void ngx_http_sse_drop_oldest(ngx_http_sse_zone_t *zone,
    ngx_http_sse_channel_t *ch);
void ngx_http_sse_drop_all(ngx_http_sse_zone_t *zone,
    ngx_http_sse_channel_t *ch);
void ngx_http_sse_channel_free(ngx_http_sse_zone_t *zone,
    ngx_http_sse_channel_t *ch);
void ngx_http_sse_channel_idle(ngx_http_sse_zone_t *zone,
    ngx_http_sse_channel_t *ch);
ngx_int_t ngx_http_sse_ring_reserve(ngx_http_sse_zone_t *zone,
    ngx_http_sse_channel_t *ch);
void ngx_http_sse_slot_clear(ngx_http_sse_zone_t *zone, ngx_uint_t slot);
void ngx_http_sse_slot_clear_channel(ngx_http_sse_zone_t *zone,
    ngx_http_sse_channel_t *ch, ngx_uint_t slot);
void ngx_http_sse_trim(ngx_http_sse_zone_t *zone, ngx_http_sse_channel_t *ch);
void ngx_http_sse_tomb_drained(ngx_http_sse_zone_t *zone,
    ngx_http_sse_channel_t *ch);
ngx_uint_t ngx_http_sse_needed(ngx_http_sse_channel_t *ch, size_t extra);
void ngx_http_sse_share_free(ngx_http_sse_zone_t *zone,
    ngx_http_sse_chan_slot_t *cs);

} // namespace


ngx_int_t
ngx_http_sse_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_sse_zone_t *ozone = (ngx_http_sse_zone_t *) data;
    ngx_http_sse_zone_t *zone = (ngx_http_sse_zone_t *) shm_zone->data;

    size_t                  len;
    ngx_uint_t              i, n;
    ngx_list_part_t        *part;
    ngx_shm_zone_t         *oshm;
    ngx_http_sse_shctx_t   *sh;

    if (ozone) {
        /*
         * A reload kept the zone: adopt it, with its channels and history.
         * Read through the zone itself, not through ozone: the old
         * configuration may come from another build of the module.
         */

        zone->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
        zone->sh = (ngx_http_sse_shctx_t *) zone->shpool->data;

        if (zone->sh == NULL || zone->sh->magic != NGX_HTTP_SSE_ZONE_MAGIC) {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "sse_zone \"%V\" was created by an incompatible "
                          "version of the module; restart nginx to "
                          "recreate it", &shm_zone->shm.name);
            return NGX_ERROR;
        }

        /* retention belongs to the zone: the new configuration's values
         * apply to every worker, old generation included */

        ngx_shmtx_lock(&zone->shpool->mutex);
        zone->sh->limits = zone->limits;
        ngx_shmtx_unlock(&zone->shpool->mutex);

        return NGX_OK;
    }

    /*
     * A zone of the same name but another size in the running
     * configuration would silently lose every channel's history: refuse
     * the reload instead, the way the size of a zone can't change either
     * in one configuration.
     */

    part = &((ngx_cycle_t *) ngx_cycle)->shared_memory.part;
    oshm = (ngx_shm_zone_t *) part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }
            part = part->next;
            oshm = (ngx_shm_zone_t *) part->elts;
            i = 0;
        }

        if (oshm == NULL || part->nelts == 0) {
            break;
        }

        if (oshm[i].tag != &ngx_http_sse_module
            || oshm[i].shm.name.len != shm_zone->shm.name.len
            || ngx_strncmp(oshm[i].shm.name.data, shm_zone->shm.name.data,
                           shm_zone->shm.name.len) != 0)
        {
            continue;
        }

        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "sse_zone \"%V\" cannot change its size from %uz to "
                      "%uz on reload: its channels and history would be "
                      "lost; restart nginx to resize it, or keep the size",
                      &shm_zone->shm.name, oshm[i].shm.size,
                      shm_zone->shm.size);
        return NGX_ERROR;
    }

    zone->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    sh = (ngx_http_sse_shctx_t *) ngx_slab_calloc(zone->shpool,
                                                  sizeof(ngx_http_sse_shctx_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    zone->sh = sh;
    zone->shpool->data = sh;

    sh->magic = NGX_HTTP_SSE_ZONE_MAGIC;
    sh->limits = zone->limits;

    /* a power of two of buckets, about one per 4 KB of zone */

    for (n = 16; n * 2 <= shm_zone->shm.size / 4096 && n < 1024 * 1024;
         n *= 2)
    {
        /* void */
    }

    sh->channels_by_id = (ngx_rbtree_t *)
        ngx_slab_alloc(zone->shpool, n * sizeof(ngx_rbtree_t));
    if (sh->channels_by_id == NULL) {
        return NGX_ERROR;
    }

    sh->channels_mask = n - 1;

    for (i = 0; i < n; i++) {
        ngx_rbtree_init(&sh->channels_by_id[i], &sh->sentinel,
                        ngx_http_sse_rbtree_insert);
    }

    ngx_queue_init(&sh->events);
    ngx_queue_init(&sh->idle);
    ngx_queue_init(&sh->empty);
    ngx_queue_init(&sh->tombs);
    ngx_http_sse_idem_init(sh);

    for (i = 0; i < NGX_HTTP_SSE_MAX_SLOTS; i++) {
        ngx_queue_init(&sh->slots[i].changed);
        ngx_queue_init(&sh->slots[i].shares);
    }

    /*
     * Epochs only have to differ from every epoch an earlier zone of this
     * name handed out: milliseconds since 1970 shifted left by 20 bits
     * leave room for a million new channels per millisecond of uptime.
     */

    ngx_time_t *tp = ngx_timeofday();
    sh->next_epoch = ((uint64_t) tp->sec * 1000 + tp->msec) << 20;

    /*
     * Nodes on one Redis tell their subscriber counts apart by this id:
     * from OpenSSL's generator, since two nodes may start in the same
     * second with the same pid (containers), which would seed nginx's
     * random() alike.
     */

    u_char  rnd[sizeof(sh->node_id) / 2];

    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "sse zone \"%V\": RAND_bytes() failed",
                      &shm_zone->shm.name);
        return NGX_ERROR;
    }

    ngx_hex_dump(sh->node_id, rnd, sizeof(rnd));

    len = sizeof(" in sse zone \"\"") + shm_zone->shm.name.len;

    zone->shpool->log_ctx = (u_char *) ngx_slab_alloc(zone->shpool, len);
    if (zone->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(zone->shpool->log_ctx, " in sse zone \"%V\"%Z",
                &shm_zone->shm.name);

    /* a full zone is an expected condition, logged by us, rate-limited */
    zone->shpool->log_nomem = 0;

    return NGX_OK;
}


ngx_http_sse_channel_t *
ngx_http_sse_channel_find(ngx_http_sse_zone_t *zone, u_char *id, size_t len)
{
    uint32_t                 hash;
    ngx_int_t                rc;
    ngx_rbtree_t            *tree;
    ngx_rbtree_node_t       *node, *sentinel;
    ngx_http_sse_channel_t  *ch;

    hash = ngx_crc32_short(id, len);

    tree = ngx_http_sse_channel_tree(zone->sh, hash);
    node = tree->root;
    sentinel = tree->sentinel;

    while (node != sentinel) {

        if (hash < node->key) {
            node = node->left;
            continue;
        }

        if (hash > node->key) {
            node = node->right;
            continue;
        }

        ch = (ngx_http_sse_channel_t *) node;

        rc = ngx_memn2cmp(id, ch->id, len, (size_t) ch->id_len);

        if (rc == 0) {
            return ch;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


/*
 * Finds a channel or creates it.  A deleted channel is returned as it is:
 * the caller decides (a subscriber gets 204, a publisher revives it).
 */

ngx_http_sse_channel_t *
ngx_http_sse_channel_get(ngx_http_sse_zone_t *zone, u_char *id, size_t len,
    ngx_int_t *err)
{
    ngx_http_sse_shctx_t    *sh = zone->sh;
    ngx_http_sse_channel_t  *ch;

    ch = ngx_http_sse_channel_find(zone, id, len);
    if (ch) {
        ch->op = sh->op;
        return ch;
    }

    if (sh->limits.max_channels && sh->channels >= sh->limits.max_channels) {
        ngx_http_sse_expire(zone);

        /* a channel nobody ever published to is not worth a refusal */
        if (sh->channels >= sh->limits.max_channels
            && !ngx_http_sse_reclaim(zone, &sh->empty))
        {
            *err = NGX_HTTP_SSE_TOO_MANY;
            return NULL;
        }
    }

    ch = (ngx_http_sse_channel_t *)
             ngx_http_sse_alloc(zone,
                                offsetof(ngx_http_sse_channel_t, id) + len);
    if (ch == NULL) {
        *err = NGX_HTTP_SSE_ZONE_FULL;
        return NULL;
    }

    ngx_memzero(ch, offsetof(ngx_http_sse_channel_t, id));

    ch->node.key = ngx_crc32_short(id, len);
    ch->op = sh->op;
    ch->epoch = sh->next_epoch++;
    ch->first_seq = 1;
    ch->id_len = (u_char) len;
    ngx_memcpy(ch->id, id, len);

    ngx_rbtree_insert(ngx_http_sse_channel_tree(sh, ch->node.key), &ch->node);
    sh->channels++;

    ngx_http_sse_channel_idle(zone, ch);

    return ch;
}


ngx_http_sse_event_t *
ngx_http_sse_channel_event(ngx_http_sse_channel_t *ch, uint64_t seq)
{
    if (ch->nevents == 0 || seq < ch->first_seq || seq > ch->last_seq) {
        return NULL;
    }

    return ch->ring[(ch->ring_head + (seq - ch->first_seq)) % ch->ring_cap];
}


/*
 * The channel a publish goes to: a deleted channel starts a new epoch.
 * Returns NULL (and *err) when a new node cannot be made.
 */

ngx_http_sse_channel_t *
ngx_http_sse_channel_revive(ngx_http_sse_zone_t *zone,
    ngx_http_sse_channel_t *ch, ngx_int_t *err)
{
    ngx_http_sse_shctx_t    *sh = zone->sh;
    ngx_http_sse_channel_t  *fresh;

    if (!ch->deleted) {
        return ch;
    }

    if (ch->subscribers) {
        /*
         * Its subscribers are still getting what was published before the
         * DELETE: that node leaves the tree and stays, a tomb, until they
         * are gone; a new node takes the id.
         */

        ngx_rbtree_delete(ngx_http_sse_channel_tree(sh, ch->node.key),
                          &ch->node);
        ch->unlinked = 1;

        fresh = ngx_http_sse_channel_get(zone, ch->id, ch->id_len, err);

        if (fresh == NULL) {
            /* no room for the new epoch: the DELETE stands as it was */
            ngx_rbtree_insert(ngx_http_sse_channel_tree(sh, ch->node.key),
                              &ch->node);
            ch->unlinked = 0;
        }

        return fresh;
    }

    ngx_http_sse_drop_all(zone, ch);

    ngx_queue_remove(&ch->link);
    ch->in_link = 0;
    ch->deleted = 0;
    ch->epoch = sh->next_epoch++;
    ch->last_seq = 0;
    ch->first_seq = 1;

    ngx_http_sse_channel_idle(zone, ch);

    return ch;
}


ngx_int_t
ngx_http_sse_channel_append(ngx_http_sse_zone_t *zone,
    ngx_http_sse_channel_t *ch, sse::Slice type, sse::Slice data,
    sse::Position *pos)
{
    return ngx_http_sse_channel_append_at(zone, ch, type, data, pos,
                                          ngx_time(), ngx_current_msec);
}


size_t
ngx_http_sse_event_bytes(ngx_http_sse_channel_t *ch, uint64_t seq,
    sse::Slice type, sse::Slice data)
{
    u_char  id[sse::max_position_len];
    size_t  id_len;

    id_len = ngx_http_sse_format_position(id, ch->epoch, seq);

    return offsetof(ngx_http_sse_event_t, wire)
           + sse::encoded_size({id, id_len}, type, data);
}


/*
 * Whether an event of this many bytes (its record included) can never fit:
 * more than all free pages and all stored history together.  Such an
 * event is refused before anybody's history is evicted for it.
 */

namespace {

ngx_uint_t
ngx_http_sse_never_fits(ngx_http_sse_zone_t *zone, size_t bytes)
{
    return bytes > zone->shpool->pfree * ngx_pagesize
                   + zone->sh->stored_bytes;
}

} // namespace


ngx_int_t
ngx_http_sse_channel_append_at(ngx_http_sse_zone_t *zone,
    ngx_http_sse_channel_t *ch, sse::Slice type, sse::Slice data,
    sse::Position *pos, time_t time, ngx_msec_t msec)
{
    size_t                   size, id_len;
    u_char                   id[sse::max_position_len];
    uint64_t                 seq;
    ngx_uint_t               n, history;
    ngx_http_sse_shctx_t    *sh = zone->sh;
    ngx_http_sse_event_t    *ev;

    seq = ch->last_seq + 1;

    id_len = ngx_http_sse_format_position(id, ch->epoch, seq);

    size = sse::encoded_size({id, id_len}, type, data);

    /*
     * An event larger than all free pages and all stored history together
     * can never fit: refuse it before evicting anybody's history for it.
     * Channels that hold no event and no subscriber do not count against
     * it: they go first.
     */

    for (n = 0;
         n < NGX_HTTP_SSE_RECLAIM_MAX
         && ngx_http_sse_never_fits(zone,
                                    offsetof(ngx_http_sse_event_t, wire) + size)
         && (ngx_http_sse_reclaim(zone, &sh->empty)
             || ngx_http_sse_reclaim(zone, &sh->idle));
         n++)
    {
        /* void: at most NGX_HTTP_SSE_RECLAIM_MAX channels per publish */
    }

    if (ngx_http_sse_never_fits(zone,
                                offsetof(ngx_http_sse_event_t, wire) + size))
    {
        (void) ngx_atomic_fetch_add(&sh->refused_full, 1);
        return NGX_HTTP_SSE_ZONE_FULL;
    }

    ev = (ngx_http_sse_event_t *)
             ngx_http_sse_alloc(zone,
                                offsetof(ngx_http_sse_event_t, wire) + size);
    if (ev == NULL) {
        (void) ngx_atomic_fetch_add(&sh->refused_full, 1);
        return NGX_HTTP_SSE_ZONE_FULL;
    }

    /*
     * history bounds what is kept for replay, not what live readers are
     * still to read: an event leaves for history only once every worker
     * with subscribers has read it (a burst larger than history must not
     * cut live streams); ngx_http_sse_channel_consumed() trims the rest.
     * A worker is waited for only while its streams may be that far
     * behind (their sse_max_pending, plus the replay they joined with):
     * one that does not read (stopped, stuck) holds no more than that,
     * and its streams, too far behind, are dropped as too slow.
     */

    history = sh->limits.history ? sh->limits.history : 1;

    while (ch->nevents >= history && !ngx_http_sse_needed(ch, size)) {
        ngx_http_sse_drop_oldest(zone, ch);
    }

    if (ngx_http_sse_ring_reserve(zone, ch) != NGX_OK) {
        ngx_slab_free_locked(zone->shpool, ev);
        (void) ngx_atomic_fetch_add(&sh->refused_full, 1);
        return NGX_HTTP_SSE_ZONE_FULL;
    }

    ev->channel = ch;
    ev->seq = seq;
    ev->time = time;
    ev->msec = msec;
    ev->len = (uint32_t) sse::encode(ev->wire, {id, id_len}, type, data);
    ev->id_len = (uint16_t) sse::id_line_size(id_len);

    ch->total += ev->len;
    ev->cum = ch->total;

    if (ch->nevents == 0) {
        ch->first_seq = seq;
    }

    ch->ring[(ch->ring_head + ch->nevents) % ch->ring_cap] = ev;
    ch->nevents++;
    ch->last_seq = seq;
    ch->last_publish = ev->time;
    ch->last_active = ngx_time();

    ngx_queue_insert_tail(&sh->events, &ev->age);
    sh->stored_events++;
    sh->stored_bytes += offsetof(ngx_http_sse_event_t, wire) + ev->len;

    if (ch->in_link && !ch->deleted) {
        /* keep the idle queue ordered by last activity */
        ngx_queue_remove(&ch->link);
        ngx_queue_insert_tail(&sh->idle, &ch->link);
        ch->empty = 0;
    }

    (void) ngx_atomic_fetch_add(&sh->published, 1);

    pos->epoch = ch->epoch;
    pos->seq = seq;

    return NGX_OK;
}


/*
 * With sse_redis, a resume from further back than the node kept: the
 * event before the oldest it holds goes in front of the ring, within
 * history.  Its byte count runs back from the oldest's (unsigned: only
 * differences of these counts are ever used).  Making room may evict
 * this channel's oldest events: then it no longer fits before them.
 */

ngx_int_t
ngx_http_sse_channel_prepend_at(ngx_http_sse_zone_t *zone,
    ngx_http_sse_channel_t *ch, sse::Slice type, sse::Slice data,
    uint64_t seq, time_t time, ngx_msec_t msec)
{
    size_t                   size, id_len;
    u_char                   id[sse::max_position_len];
    ngx_uint_t               history;
    ngx_http_sse_shctx_t    *sh = zone->sh;
    ngx_http_sse_event_t    *ev;

    history = sh->limits.history ? sh->limits.history : 1;

    if (seq == 0 || seq + 1 != ch->first_seq || ch->nevents >= history) {
        return NGX_DECLINED;
    }

    id_len = ngx_http_sse_format_position(id, ch->epoch, seq);
    size = sse::encoded_size({id, id_len}, type, data);

    if (ngx_http_sse_never_fits(zone,
                                offsetof(ngx_http_sse_event_t, wire) + size))
    {
        return NGX_HTTP_SSE_ZONE_FULL;
    }

    if (ngx_http_sse_ring_reserve(zone, ch) != NGX_OK) {
        return NGX_HTTP_SSE_ZONE_FULL;
    }

    ev = (ngx_http_sse_event_t *)
             ngx_http_sse_alloc(zone,
                                offsetof(ngx_http_sse_event_t, wire) + size);
    if (ev == NULL) {
        return NGX_HTTP_SSE_ZONE_FULL;
    }

    if (seq + 1 != ch->first_seq || ch->nevents >= ch->ring_cap) {
        ngx_slab_free_locked(zone->shpool, ev);
        return NGX_DECLINED;
    }

    ev->channel = ch;
    ev->seq = seq;
    ev->time = time;
    ev->msec = msec;
    ev->len = (uint32_t) sse::encode(ev->wire, {id, id_len}, type, data);
    ev->id_len = (uint16_t) sse::id_line_size(id_len);
    ev->cum = ngx_http_sse_cum_before(ch, ch->first_seq);

    ch->ring_head = (ch->ring_head + ch->ring_cap - 1) % ch->ring_cap;
    ch->ring[ch->ring_head] = ev;
    ch->nevents++;
    ch->first_seq = seq;

    /* the oldest of the zone's events to go first, as the oldest of its
     * channel */
    ngx_queue_insert_head(&sh->events, &ev->age);
    sh->stored_events++;
    sh->stored_bytes += offsetof(ngx_http_sse_event_t, wire) + ev->len;

    return NGX_OK;
}


/*
 * The channel's next seq is seq: what came before is not to be had
 * (Redis no longer keeps it).  Events it held go too, so that its ring
 * stays one run of seqs; streams that still needed them find the gap.
 */

void
ngx_http_sse_channel_skip_to(ngx_http_sse_zone_t *zone,
    ngx_http_sse_channel_t *ch, uint64_t seq)
{
    if (seq <= ch->last_seq + 1) {
        return;
    }

    while (ch->nevents) {
        ngx_http_sse_drop_oldest(zone, ch);
    }

    ch->last_seq = seq - 1;
    ch->first_seq = seq;
}


void
ngx_http_sse_channel_delete(ngx_http_sse_zone_t *zone,
    ngx_http_sse_channel_t *ch)
{
    if (ch->deleted) {
        return;
    }

    if (ch->in_link) {
        ngx_queue_remove(&ch->link);
    }

    ch->deleted = 1;
    ch->empty = 0;
    ch->in_link = 1;
    ch->last_active = ngx_time();
    ngx_queue_insert_tail(&zone->sh->tombs, &ch->link);

    /*
     * Subscribers still get what was published before the DELETE: the
     * events stay until the last worker with subscribers has read them
     * and ended its streams (ngx_http_sse_channel_leave()).
     */

    if (ch->subscribers == 0) {
        ngx_http_sse_drop_all(zone, ch);
    }
}


ngx_http_sse_chan_slot_t *
ngx_http_sse_channel_join(ngx_http_sse_zone_t *zone,
    ngx_http_sse_channel_t *ch, ngx_uint_t slot)
{
    ngx_http_sse_shctx_t      *sh = zone->sh;
    ngx_http_sse_chan_slot_t  *cs;

    for (cs = ch->slots; cs; cs = cs->next) {
        if (cs->slot == slot) {
            break;
        }
    }

    if (cs == NULL) {
        cs = (ngx_http_sse_chan_slot_t *)
                 ngx_http_sse_alloc(zone, sizeof(ngx_http_sse_chan_slot_t));
        if (cs == NULL) {
            return NULL;
        }

        ngx_memzero(cs, sizeof(ngx_http_sse_chan_slot_t));

        cs->channel = ch;
        cs->slot = (uint32_t) slot;
        cs->cursor = ch->last_seq;
        cs->next = ch->slots;
        ch->slots = cs;
        ngx_queue_insert_tail(&sh->slots[slot].shares, &cs->slink);
    }

    cs->subscribers++;
    ch->subscribers++;
    sh->slots[slot].subscribers++;

    if (ch->in_link && !ch->deleted) {
        ngx_queue_remove(&ch->link);
        ch->in_link = 0;
        ch->empty = 0;
    }

    return cs;
}


void
ngx_http_sse_channel_leave(ngx_http_sse_zone_t *zone,
    ngx_http_sse_channel_t *ch, ngx_uint_t slot)
{
    ngx_http_sse_chan_slot_t  *cs, **csp;

    for (csp = &ch->slots; *csp; csp = &(*csp)->next) {
        if ((*csp)->slot == slot) {
            break;
        }
    }

    cs = *csp;

    if (cs == NULL) {
        /* the slot was reaped already */
        return;
    }

    cs->subscribers--;
    ch->subscribers--;

    if (zone->sh->slots[slot].subscribers) {
        zone->sh->slots[slot].subscribers--;
    }

    if (cs->subscribers == 0) {
        *csp = cs->next;
        ngx_http_sse_share_free(zone, cs);
        ngx_http_sse_trim(zone, ch);
    }

    if (ch->subscribers) {
        return;
    }

    if (ch->deleted) {
        ngx_http_sse_drop_all(zone, ch);
        ngx_http_sse_tomb_drained(zone, ch);
        return;
    }

    ch->last_active = ngx_time();
    ngx_http_sse_channel_idle(zone, ch);
}


namespace {

/*
 * A deleted channel re-created meanwhile is out of the tree: nobody can
 * find it any more, so it goes as soon as its subscribers are gone and no
 * worker has it queued.
 */

void
ngx_http_sse_tomb_drained(ngx_http_sse_zone_t *zone,
    ngx_http_sse_channel_t *ch)
{
    if (ch->unlinked && ch->subscribers == 0) {
        ngx_http_sse_channel_free(zone, ch);
    }
}

} // namespace


/* every stream of a worker has the channel up to cursor */

void
ngx_http_sse_channel_consumed(ngx_http_sse_zone_t *zone,
    ngx_http_sse_chan_slot_t *cs, uint64_t cursor)
{
    cs->cursor = cursor;
    ngx_http_sse_trim(zone, cs->channel);
}


/* drops the channel's events past history_ttl: before a replay reads it */

void
ngx_http_sse_channel_expire(ngx_http_sse_zone_t *zone,
    ngx_http_sse_channel_t *ch)
{
    time_t  now;

    now = ngx_time();

    while (ch->nevents
           && ch->ring[ch->ring_head]->time + zone->sh->limits.history_ttl
              <= now)
    {
        ngx_http_sse_drop_oldest(zone, ch);
    }
}


/* the channel's bytes before event seq (seq may be last_seq + 1) */

uint64_t
ngx_http_sse_cum_before(ngx_http_sse_channel_t *ch, uint64_t seq)
{
    ngx_http_sse_event_t  *ev;

    ev = ngx_http_sse_channel_event(ch, seq);

    return ev ? ev->cum - ev->len : ch->total;
}


/*
 * Queues the channel for every worker slot with subscribers of it; the
 * slots whose wake-up is not yet pending are returned in wake[] so the
 * caller can send the wake-ups after unlocking.  A slot is woken once per
 * batch however many channels and events the batch has.
 */

void
ngx_http_sse_notify(ngx_http_sse_zone_t *zone, ngx_http_sse_channel_t *ch,
    ngx_uint_t *wake, ngx_uint_t *nwake)
{
    ngx_uint_t                 i;
    ngx_http_sse_slot_t       *slot;
    ngx_http_sse_chan_slot_t  *cs;

    for (cs = ch->slots; cs; cs = cs->next) {

        slot = &zone->sh->slots[cs->slot];

        /* the queue is the shares themselves: it never overflows */

        if (!cs->queued) {
            cs->queued = 1;
            ngx_queue_insert_tail(&slot->changed, &cs->qlink);
        }

        if (!slot->wake_pending) {
            slot->wake_pending = 1;
            wake[(*nwake)++] = cs->slot;

        } else if ((ngx_int_t) cs->slot == zone->slot) {
            /*
             * Another worker's wake-up to this one is on its way; this
             * worker fans out its own subscribers now all the same, before
             * the publisher's reply.
             */

            for (i = 0; i < *nwake; i++) {
                if (wake[i] == cs->slot) {
                    break;
                }
            }

            if (i == *nwake) {
                wake[(*nwake)++] = cs->slot;
            }
        }
    }
}


/* puts a share back on its slot's queue (a wake-up that could not be
 * handled for want of memory is tried again: by the next one or the sweep) */

void
ngx_http_sse_requeue(ngx_http_sse_zone_t *zone, ngx_http_sse_chan_slot_t *cs)
{
    if (!cs->queued) {
        cs->queued = 1;
        ngx_queue_insert_tail(&zone->sh->slots[cs->slot].changed, &cs->qlink);
    }
}


/* the next channel queued for a slot, taken off its queue; NULL: none */

ngx_http_sse_channel_t *
ngx_http_sse_dequeue(ngx_http_sse_zone_t *zone, ngx_uint_t slot)
{
    ngx_queue_t               *q;
    ngx_http_sse_chan_slot_t  *cs;

    q = &zone->sh->slots[slot].changed;

    if (ngx_queue_empty(q)) {
        return NULL;
    }

    cs = ngx_queue_data(ngx_queue_head(q), ngx_http_sse_chan_slot_t, qlink);

    ngx_queue_remove(&cs->qlink);
    cs->queued = 0;

    return cs->channel;
}


/*
 * Begins a locked operation (see ngx_http_sse.h), then drops expired
 * history (history_ttl), idle channels (channel_ttl) and tombstones of
 * deleted channels (history_ttl after the DELETE): at most
 * NGX_HTTP_SSE_EXPIRE_MAX of each per call, so that a lock held for it is
 * short however much expired at once.  Returns 1 when more may be left:
 * the sweep then calls again, unlocking in between.
 */

ngx_uint_t
ngx_http_sse_store_expire(ngx_http_sse_zone_t *zone)
{
    time_t      now;
    ngx_uint_t  more;

    zone->sh->op++;

    /*
     * Deadlines are whole seconds: once an operation found nothing left
     * to expire, the others of the same second need not look again.  A
     * look reads the oldest event, record and channels of the zone, lines
     * no other operation touches: cache misses, under the lock, at every
     * publish.  (What only the current operation kept, ch->op, goes in
     * the next second instead of the next operation.)
     */

    now = ngx_time();

    if (zone->sh->expired_at == now) {
        return 0;
    }

    more = ngx_http_sse_expire(zone);

    if (!more) {
        zone->sh->expired_at = now;
    }

    return more;
}


namespace {

ngx_uint_t
ngx_http_sse_expire(ngx_http_sse_zone_t *zone)
{
    time_t                   now;
    ngx_uint_t               n, more;
    ngx_queue_t             *q;
    ngx_http_sse_shctx_t    *sh = zone->sh;
    ngx_http_sse_event_t    *ev;
    ngx_http_sse_channel_t  *ch;

    now = ngx_time();
    more = 0;

    for (n = 0; !ngx_queue_empty(&sh->events); n++) {
        q = ngx_queue_head(&sh->events);
        ev = ngx_queue_data(q, ngx_http_sse_event_t, age);

        if (ev->time + sh->limits.history_ttl > now) {
            break;
        }

        if (n == NGX_HTTP_SSE_EXPIRE_MAX) {
            more = 1;
            break;
        }

        ngx_http_sse_drop_oldest(zone, ev->channel);
    }

    more |= ngx_http_sse_idem_expire(zone, now);
    more |= ngx_http_sse_expire_idle(zone, &sh->idle, now);
    more |= ngx_http_sse_expire_idle(zone, &sh->empty, now);

    for (n = 0; !ngx_queue_empty(&sh->tombs); n++) {
        q = ngx_queue_head(&sh->tombs);
        ch = ngx_queue_data(q, ngx_http_sse_channel_t, link);

        if (ch->last_active + sh->limits.history_ttl > now
            || ch->subscribers
            || ch->op == sh->op)
        {
            break;
        }

        if (n == NGX_HTTP_SSE_EXPIRE_MAX) {
            more = 1;
            break;
        }

        ngx_http_sse_channel_free(zone, ch);
    }

    return more;
}


/*
 * Channels of an idle queue without a subscriber or publish for
 * channel_ttl, at most NGX_HTTP_SSE_EXPIRE_MAX; 1: more may be left.
 * (A channel a worker still has queued may go: freeing it takes it off
 * that worker's queue.)
 */

ngx_uint_t
ngx_http_sse_expire_idle(ngx_http_sse_zone_t *zone, ngx_queue_t *queue,
    time_t now)
{
    ngx_uint_t               n;
    ngx_queue_t             *q;
    ngx_http_sse_channel_t  *ch;

    for (n = 0; !ngx_queue_empty(queue); n++) {
        q = ngx_queue_head(queue);
        ch = ngx_queue_data(q, ngx_http_sse_channel_t, link);

        if (ch->last_active + zone->sh->limits.channel_ttl > now) {
            break;
        }

        /* looked up by the current operation (ngx_time() may have moved
         * on since it began): next time */
        if (ch->op == zone->sh->op) {
            break;
        }

        if (n == NGX_HTTP_SSE_EXPIRE_MAX) {
            return 1;
        }

        ngx_http_sse_channel_free(zone, ch);
    }

    return 0;
}

} // namespace


ngx_uint_t
ngx_http_sse_subscribers(ngx_http_sse_zone_t *zone)
{
    ngx_uint_t  i, n;

    n = 0;

    for (i = 0; i < NGX_HTTP_SSE_MAX_SLOTS; i++) {
        if (zone->sh->slots[i].pid) {
            n += zone->sh->slots[i].streams;
        }
    }

    return n;
}


ngx_uint_t
ngx_http_sse_live_slots(ngx_http_sse_zone_t *zone)
{
    ngx_uint_t  i, n;

    n = 0;

    for (i = 0; i < NGX_HTTP_SSE_MAX_SLOTS; i++) {
        if (zone->sh->slots[i].pid) {
            n++;
        }
    }

    return n;
}


/*
 * A worker that died (kill -9, a crash) cannot leave its channels: a
 * wake-up refused by its socket (nobody has the name any more) brings
 * its slot here, and everything it held is given back, so no phantom
 * subscribers stay counted and no wake-ups go to it.  The pid tells that
 * the slot was not taken by another worker meanwhile.
 */

void
ngx_http_sse_reap_slot(ngx_http_sse_zone_t *zone, ngx_uint_t slot,
    ngx_pid_t pid)
{
    if ((ngx_pid_t) zone->sh->slots[slot].pid != pid || pid == ngx_pid) {
        return;
    }

    ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                  "sse zone \"%V\": releasing slot %ui of exited worker %P",
                  &zone->name, slot, pid);

    ngx_http_sse_slot_clear(zone, slot);
}


ngx_int_t
ngx_http_sse_slot_register(ngx_http_sse_zone_t *zone, u_char *addr,
    size_t addr_len)
{
    ngx_uint_t            i;
    ngx_http_sse_slot_t  *s;

    /*
     * Socket names are unique among live sockets: a slot with the name
     * the kernel just gave this worker belongs to a worker that is gone.
     */

    for (i = 0; i < NGX_HTTP_SSE_MAX_SLOTS; i++) {
        s = &zone->sh->slots[i];

        if (s->pid && s->addr_len == addr_len
            && ngx_memcmp(s->addr, addr, addr_len) == 0)
        {
            ngx_http_sse_reap_slot(zone, i, (ngx_pid_t) s->pid);
        }
    }

    for (i = 0; i < NGX_HTTP_SSE_MAX_SLOTS; i++) {
        if (zone->sh->slots[i].pid == 0) {
            ngx_http_sse_slot_clear(zone, i);
            ngx_memcpy(zone->sh->slots[i].addr, addr, addr_len);
            zone->sh->slots[i].addr_len = (uint32_t) addr_len;
            zone->sh->slots[i].pid = ngx_pid;
            return (ngx_int_t) i;
        }
    }

    return -1;
}


void
ngx_http_sse_slot_release(ngx_http_sse_zone_t *zone)
{
    if (zone->slot < 0) {
        return;
    }

    ngx_http_sse_slot_clear(zone, zone->slot);
    zone->slot = -1;
}


/*
 * Whether a rate-limited warning may be logged now: one line a minute at
 * most per kind (*last, in the zone, is shared by the node's workers),
 * however often its condition comes.
 */

ngx_uint_t
ngx_http_sse_log_due(time_t *last)
{
    time_t  now;

    now = ngx_time();

    if (*last + 60 > now) {
        return 0;
    }

    *last = now;

    return 1;
}


void
ngx_http_sse_log_full(ngx_http_sse_zone_t *zone, ngx_log_t *log)
{
    if (!ngx_http_sse_log_due(&zone->sh->nomem_logged)) {
        return;
    }

    ngx_log_error(NGX_LOG_WARN, log, 0,
                  "sse zone \"%V\" is full: publishes are refused with 507 "
                  "until memory frees up (this message is rate-limited)",
                  &zone->name);
}


/*
 * Grows a malloc'ed array to hold need elements, doubling.  For everyone
 * (the store's batch, streams, publishes); here so that the store's files
 * stand alone (tests/contract links them without the rest).
 */

ngx_int_t
ngx_http_sse_grow(void **array, size_t *cap, size_t need, size_t size,
    size_t min)
{
    void    *p;
    size_t   n;

    if (need <= *cap) {
        return NGX_OK;
    }

    n = ngx_max(*cap * 2, need);
    n = ngx_max(n, min);

    p = realloc(*array, n * size);
    if (p == NULL) {
        return NGX_ERROR;
    }

    *array = p;
    *cap = n;

    return NGX_OK;
}


size_t
ngx_http_sse_format_position(u_char *out, uint64_t epoch, uint64_t seq)
{
    sse::Position  pos = { epoch, seq };

    return sse::format_id(out, &pos, 1);
}


namespace {

void
ngx_http_sse_rbtree_insert(ngx_rbtree_node_t *temp, ngx_rbtree_node_t *node,
    ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t       **p;
    ngx_http_sse_channel_t   *ch, *cht;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else { /* node->key == temp->key */

            ch = (ngx_http_sse_channel_t *) node;
            cht = (ngx_http_sse_channel_t *) temp;

            p = (ngx_memn2cmp(ch->id, cht->id, ch->id_len, cht->id_len) < 0)
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


/*
 * Allocates, evicting the zone's oldest history while that makes room:
 * at most NGX_HTTP_SSE_EVICT_MAX + size / 32 evictions, so the work under
 * the lock is bounded by what is asked for, never by the zone's contents
 * (a fragmented zone refuses with 507 rather than emptying itself).
 */

void *
ngx_http_sse_alloc(ngx_http_sse_zone_t *zone, size_t size)
{
    void        *p;
    ngx_uint_t   n;

    n = NGX_HTTP_SSE_EVICT_MAX + size / 32;

    for ( ;; ) {
        p = ngx_slab_alloc_locked(zone->shpool, size);
        if (p) {
            return p;
        }

        if (n-- == 0 || !ngx_http_sse_evict_oldest(zone)) {
            return NULL;
        }
    }
}


ngx_uint_t
ngx_http_sse_evict_oldest(ngx_http_sse_zone_t *zone)
{
    ngx_queue_t             *q;
    ngx_http_sse_shctx_t    *sh = zone->sh;
    ngx_http_sse_event_t    *ev;

    /*
     * Channels nobody ever published to (left by subscribers) go first,
     * then idle channels past their time, then the oldest Idempotency-Key
     * record, then the oldest event; when no event is left, idle channels
     * whose history is all gone: a channel that holds no event and no
     * subscriber never makes a publish fail, but one that had events
     * keeps its epoch as long as events can go instead (a resume from it
     * is then a "gap", not "unknown").
     */

    /* once the empty queue had nothing to give, not again this operation */

    if (zone->empty_dry_op != sh->op) {
        if (ngx_http_sse_reclaim(zone, &sh->empty)) {
            return 1;
        }

        zone->empty_dry_op = sh->op;
    }

    if (ngx_http_sse_reclaim_expired(zone)) {
        return 1;
    }

    /* what a publish answered is worth less than what it published */

    if (ngx_http_sse_idem_evict(zone)) {
        return 1;
    }

    if (ngx_queue_empty(&sh->events)) {
        return ngx_http_sse_reclaim(zone, &sh->idle);
    }

    q = ngx_queue_head(&sh->events);
    ev = ngx_queue_data(q, ngx_http_sse_event_t, age);

    ngx_http_sse_drop_oldest(zone, ev->channel);
    (void) ngx_atomic_fetch_add(&sh->evicted, 1);

    return 1;
}


/*
 * Frees the oldest idle channel past channel_ttl that the current
 * operation did not look up (a caller holds those: expiry, bounded per
 * call, may have left expired ones at the head).  The idle queue is
 * ordered by last activity, so the walk stops at the first one not yet
 * expired, and it looks at no more channels than one operation can hold,
 * plus one.
 */

ngx_uint_t
ngx_http_sse_reclaim_expired(ngx_http_sse_zone_t *zone)
{
    time_t                   now;
    ngx_uint_t               n;
    ngx_queue_t             *q;
    ngx_http_sse_channel_t  *ch;

    now = ngx_time();
    n = 0;

    for (q = ngx_queue_head(&zone->sh->idle);
         q != ngx_queue_sentinel(&zone->sh->idle)
         && n <= 2 * sse::max_channels_per_stream;
         q = ngx_queue_next(q), n++)
    {
        ch = ngx_queue_data(q, ngx_http_sse_channel_t, link);

        if (ch->last_active + zone->sh->limits.channel_ttl > now) {
            return 0;
        }

        if (ch->op == zone->sh->op) {
            continue;
        }

        ngx_http_sse_channel_free(zone, ch);

        return 1;
    }

    return 0;
}


/*
 * Frees the oldest channel of an idle queue that holds no event, that the
 * current operation did not look up (the caller may hold it); freeing it
 * takes it off any worker's wake-up queue.  The work is bounded: at most the 2 x 64 channels one
 * operation can look up (a publish's revived channels included) and one
 * more are looked at.
 */

ngx_uint_t
ngx_http_sse_reclaim(ngx_http_sse_zone_t *zone, ngx_queue_t *queue)
{
    ngx_uint_t               n;
    ngx_queue_t             *q;
    ngx_http_sse_channel_t  *ch;

    n = 0;

    for (q = ngx_queue_head(queue);
         q != ngx_queue_sentinel(queue)
         && n <= 2 * sse::max_channels_per_stream;
         q = ngx_queue_next(q), n++)
    {
        ch = ngx_queue_data(q, ngx_http_sse_channel_t, link);

        if (ch->nevents || ch->op == zone->sh->op) {
            continue;
        }

        ngx_http_sse_channel_free(zone, ch);

        return 1;
    }

    return 0;
}


void
ngx_http_sse_drop_oldest(ngx_http_sse_zone_t *zone,
    ngx_http_sse_channel_t *ch)
{
    ngx_http_sse_event_t  *ev;

    ev = ch->ring[ch->ring_head];

    ch->ring_head = (ch->ring_head + 1) % ch->ring_cap;
    ch->nevents--;
    ch->first_seq++;

    ngx_queue_remove(&ev->age);
    zone->sh->stored_events--;
    zone->sh->stored_bytes -= offsetof(ngx_http_sse_event_t, wire) + ev->len;

    ngx_slab_free_locked(zone->shpool, ev);
}


void
ngx_http_sse_drop_all(ngx_http_sse_zone_t *zone, ngx_http_sse_channel_t *ch)
{
    while (ch->nevents) {
        ngx_http_sse_drop_oldest(zone, ch);
    }

    if (ch->ring) {
        ngx_slab_free_locked(zone->shpool, ch->ring);
        ch->ring = NULL;
        ch->ring_cap = 0;
        ch->ring_head = 0;
    }

    ch->first_seq = ch->last_seq + 1;
}


void
ngx_http_sse_channel_free(ngx_http_sse_zone_t *zone,
    ngx_http_sse_channel_t *ch)
{
    ngx_http_sse_chan_slot_t  *cs, *next;

    ngx_http_sse_drop_all(zone, ch);

    for (cs = ch->slots; cs; cs = next) {
        next = cs->next;
        ngx_http_sse_share_free(zone, cs);
    }

    if (ch->in_link) {
        ngx_queue_remove(&ch->link);
    }

    if (!ch->unlinked) {
        ngx_rbtree_delete(ngx_http_sse_channel_tree(zone->sh, ch->node.key),
                          &ch->node);
    }

    zone->sh->channels--;

    ngx_slab_free_locked(zone->shpool, ch);
}


void
ngx_http_sse_channel_idle(ngx_http_sse_zone_t *zone,
    ngx_http_sse_channel_t *ch)
{
    if (ch->in_link || ch->deleted) {
        return;
    }

    ch->last_active = ngx_time();
    ch->in_link = 1;
    ch->empty = (ch->last_seq == 0);
    ngx_queue_insert_tail(ch->empty ? &zone->sh->empty : &zone->sh->idle,
                          &ch->link);
}


/* makes room in the ring for one more event, growing it up to history */

ngx_int_t
ngx_http_sse_ring_reserve(ngx_http_sse_zone_t *zone,
    ngx_http_sse_channel_t *ch)
{
    uint32_t                 cap, i;
    ngx_uint_t               history;
    ngx_http_sse_event_t   **ring;

    if (ch->nevents < ch->ring_cap) {
        return NGX_OK;
    }

    history = zone->sh->limits.history ? zone->sh->limits.history : 1;

    cap = ch->ring_cap ? ch->ring_cap * 2 : 4;

    if (cap > history && ch->nevents < history) {
        /* past history only while live readers are behind */
        cap = (uint32_t) history;
    }

    if (cap <= ch->nevents) {
        cap = ch->nevents + 1;
    }

    ring = (ngx_http_sse_event_t **)
               ngx_http_sse_alloc(zone, cap * sizeof(ngx_http_sse_event_t *));
    if (ring == NULL) {
        return NGX_ERROR;
    }

    /* ngx_http_sse_alloc() may have evicted events of this very channel */

    for (i = 0; i < ch->nevents; i++) {
        ring[i] = ch->ring[(ch->ring_head + i) % ch->ring_cap];
    }

    if (ch->ring) {
        ngx_slab_free_locked(zone->shpool, ch->ring);
    }

    ch->ring = ring;
    ch->ring_cap = cap;
    ch->ring_head = 0;

    return NGX_OK;
}


/* drops history past the limit that no worker's streams still need */

void
ngx_http_sse_trim(ngx_http_sse_zone_t *zone, ngx_http_sse_channel_t *ch)
{
    ngx_uint_t  history;

    history = zone->sh->limits.history ? zone->sh->limits.history : 1;

    while (ch->nevents > history && !ngx_http_sse_needed(ch, 0)) {
        ngx_http_sse_drop_oldest(zone, ch);
    }
}


/*
 * Whether a worker's streams still need the channel's oldest event: one
 * of them has not got it, and is no further behind (counting extra bytes
 * about to be appended) than its streams may be.
 */

ngx_uint_t
ngx_http_sse_needed(ngx_http_sse_channel_t *ch, size_t extra)
{
    uint64_t                   behind;
    ngx_http_sse_event_t      *ev;
    ngx_http_sse_chan_slot_t  *cs;

    if (ch->nevents == 0) {
        return 0;
    }

    /*
     * The oldest event is read only for a worker that has not got it: a
     * channel nobody reads, or whose readers are all past it (the usual
     * case at every publish once history is full), costs no cache miss
     * on an event stored long ago.
     */

    behind = 0;
    ev = NULL;

    for (cs = ch->slots; cs; cs = cs->next) {

        if (cs->cursor >= ch->first_seq) {
            continue;
        }

        if (ev == NULL) {
            ev = ch->ring[ch->ring_head];
            behind = ch->total + extra - (ev->cum - ev->len);
        }

        if (behind <= cs->allowance) {
            return 1;
        }
    }

    return 0;
}


void
ngx_http_sse_share_free(ngx_http_sse_zone_t *zone,
    ngx_http_sse_chan_slot_t *cs)
{
    if (cs->queued) {
        ngx_queue_remove(&cs->qlink);
    }

    ngx_queue_remove(&cs->slink);
    ngx_slab_free_locked(zone->shpool, cs);
}


/* gives back everything a slot held: for a worker that exited or died */

/* its own list of shares: the work is what the slot held, not the zone */

void
ngx_http_sse_slot_clear(ngx_http_sse_zone_t *zone, ngx_uint_t slot)
{
    ngx_queue_t               *q;
    ngx_http_sse_slot_t       *s = &zone->sh->slots[slot];
    ngx_http_sse_chan_slot_t  *cs;

    while (!ngx_queue_empty(&s->shares)) {
        q = ngx_queue_head(&s->shares);
        cs = ngx_queue_data(q, ngx_http_sse_chan_slot_t, slink);
        ngx_http_sse_slot_clear_channel(zone, cs->channel, slot);
    }

    s->pid = 0;
    s->wake_pending = 0;
    s->subscribers = 0;
    s->streams = 0;
}


void
ngx_http_sse_slot_clear_channel(ngx_http_sse_zone_t *zone,
    ngx_http_sse_channel_t *ch, ngx_uint_t slot)
{
    ngx_http_sse_chan_slot_t  *cs, **csp;

    for (csp = &ch->slots; *csp; csp = &(*csp)->next) {
        if ((*csp)->slot == slot) {
            break;
        }
    }

    cs = *csp;
    if (cs == NULL) {
        return;
    }

    *csp = cs->next;
    ch->subscribers -= cs->subscribers;
    ngx_http_sse_share_free(zone, cs);
    ngx_http_sse_trim(zone, ch);

    if (ch->subscribers == 0) {
        if (ch->deleted) {
            ngx_http_sse_drop_all(zone, ch);
            ngx_http_sse_tomb_drained(zone, ch);

        } else {
            ngx_http_sse_channel_idle(zone, ch);
        }
    }
}

} // namespace
