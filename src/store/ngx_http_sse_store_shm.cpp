/*
 * The shared-memory store's operations (ngx_http_sse_store.h): every
 * critical section of the module's zone is here, and every operation
 * completes at once.  The zone's internals (channels, history rings,
 * eviction, worker slots) are in ngx_http_sse_store.cpp; the wake-ups
 * that tell other workers a channel changed, in
 * ngx_http_sse_store_wake.cpp.
 *
 * Each critical section copies values out or bytes through a sink and
 * keeps nothing of the zone in the caller's hands: the caller's only
 * handle, ngx_http_sse_local_t, is this store's per-worker record.
 */

#include "ngx_http_sse.h"


namespace {

ngx_int_t ngx_http_sse_shm_publish(ngx_http_sse_zone_t *zone,
    ngx_http_sse_store_publish_t *op);
ngx_int_t ngx_http_sse_shm_remove(ngx_http_sse_zone_t *zone,
    ngx_http_sse_store_query_t *op);
ngx_int_t ngx_http_sse_shm_info(ngx_http_sse_zone_t *zone,
    ngx_http_sse_store_query_t *op);
ngx_int_t ngx_http_sse_shm_join(ngx_http_sse_zone_t *zone,
    ngx_http_sse_store_join_t *op);
ngx_int_t ngx_http_sse_shm_join_locked(ngx_http_sse_zone_t *zone,
    ngx_http_sse_store_join_t *op);
void ngx_http_sse_shm_cancel(ngx_http_sse_zone_t *zone, void *op);
ngx_int_t ngx_http_sse_shm_read(ngx_http_sse_zone_t *zone,
    ngx_http_sse_store_read_t *rd);
void ngx_http_sse_shm_leave(ngx_http_sse_zone_t *zone,
    ngx_http_sse_sub_t *sub);
ngx_int_t ngx_http_sse_shm_move(ngx_http_sse_zone_t *zone,
    ngx_http_sse_sub_t *sub, ngx_uint_t index, u_char *id, size_t *id_len);
ngx_int_t ngx_http_sse_shm_collect(ngx_http_sse_zone_t *zone,
    ngx_http_sse_batch_t *batch);
ngx_int_t ngx_http_sse_shm_gather(ngx_http_sse_local_t *local,
    ngx_http_sse_batch_t *batch);
void ngx_http_sse_shm_adopt(ngx_http_sse_local_t *local);
ngx_int_t ngx_http_sse_insert_older(ngx_http_sse_zone_t *zone,
    ngx_http_sse_channel_t *ch, ngx_http_sse_insert_t *in);
void ngx_http_sse_insert_time(ngx_http_sse_insert_event_t *ev, time_t *sec,
    ngx_msec_t *msec);
ngx_http_sse_channel_t *ngx_http_sse_insert_channel(
    ngx_http_sse_zone_t *zone, ngx_http_sse_insert_t *in,
    ngx_uint_t *wake, ngx_uint_t *nwake, ngx_int_t *rc);
ngx_int_t ngx_http_sse_insert_events(ngx_http_sse_zone_t *zone,
    ngx_http_sse_channel_t *ch, ngx_http_sse_insert_t *in);
void ngx_http_sse_shm_settle(ngx_http_sse_zone_t *zone,
    ngx_http_sse_local_t **locals, ngx_uint_t n);
void ngx_http_sse_shm_figures(ngx_http_sse_zone_t *zone,
    ngx_http_sse_figures_t *f);
void ngx_http_sse_shm_count(ngx_http_sse_zone_t *zone, ngx_uint_t counter,
    ngx_uint_t n);
size_t ngx_http_sse_shm_max_message(ngx_http_sse_zone_t *zone);
ngx_int_t ngx_http_sse_shm_attach(ngx_http_sse_zone_t *zone, u_char *addr,
    size_t addr_len);
void ngx_http_sse_shm_detach(ngx_http_sse_zone_t *zone);
ngx_uint_t ngx_http_sse_shm_expire(ngx_http_sse_zone_t *zone);
void ngx_http_sse_shm_probe(ngx_http_sse_zone_t *zone);
void ngx_http_sse_plan(ngx_http_sse_channel_t *ch, ngx_int_t replay,
    sse::Position *id, ngx_int_t have_id, uint64_t *from,
    const char **reset);
ngx_http_sse_local_t *ngx_http_sse_local_get(ngx_http_sse_zone_t *zone,
    ngx_http_sse_channel_t *ch);
ngx_http_sse_local_t *ngx_http_sse_local_find(ngx_http_sse_zone_t *zone,
    ngx_http_sse_channel_t *ch);

} // namespace


ngx_http_sse_store_t  ngx_http_sse_shm_store = {
    "shm",
    ngx_http_sse_shm_publish,
    ngx_http_sse_shm_remove,
    ngx_http_sse_shm_info,
    ngx_http_sse_shm_join,
    ngx_http_sse_shm_cancel,
    ngx_http_sse_shm_read,
    ngx_http_sse_shm_leave,
    ngx_http_sse_shm_collect,
    ngx_http_sse_shm_settle,
    ngx_http_sse_shm_figures,
    ngx_http_sse_shm_count,
    ngx_http_sse_shm_max_message,
    ngx_http_sse_shm_move,
    ngx_http_sse_shm_attach,
    ngx_http_sse_shm_detach,
    ngx_http_sse_shm_expire,
    ngx_http_sse_shm_probe
};


/*
 * The position the node's zone holds of a channel (its epoch and last
 * seq), for the Redis store: a publish tells Redis, which then sees a
 * channel whose position went back.  NGX_DECLINED: none (no such
 * channel, nothing in it, or deleted).
 */

ngx_int_t
ngx_http_sse_shm_position(ngx_http_sse_zone_t *zone, sse::Slice id,
    sse::Position *pos)
{
    ngx_int_t                rc;
    ngx_http_sse_channel_t  *ch;

    rc = NGX_DECLINED;

    ngx_shmtx_lock(&zone->shpool->mutex);

    ch = ngx_http_sse_channel_find(zone, (u_char *) id.data, id.len);

    if (ch && !ch->deleted && ch->last_seq) {
        pos->epoch = ch->epoch;
        pos->seq = ch->last_seq;
        rc = NGX_OK;
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    return rc;
}


void
ngx_http_sse_local_put(ngx_http_sse_local_t *local)
{
    if (local->nsubs || local->busy) {
        return;
    }

    ngx_rbtree_delete(&local->zone->locals, &local->node);
    local->zone->nlocals--;
    ngx_free(local);
}


/*
 * With sse_redis: what the cluster published reaches the node's zone
 * here, under the lock, at the positions Redis gave (ngx_http_sse.h).
 * Every worker of the node subscribed to the channel gets the same
 * message: what the zone holds already is skipped.  The shm store's own
 * wake-ups then fan the events out on every worker.
 */

ngx_int_t
ngx_http_sse_shm_insert(ngx_http_sse_zone_t *zone, ngx_http_sse_insert_t *in)
{
    ngx_int_t                rc;
    ngx_uint_t               nwake;
    ngx_uint_t               wake[NGX_HTTP_SSE_MAX_SLOTS];
    ngx_http_sse_channel_t  *ch;

    nwake = 0;
    in->inserted = 0;
    in->local_epoch = 0;
    in->local_last = 0;

    ngx_shmtx_lock(&zone->shpool->mutex);

    ngx_http_sse_store_expire(zone);

    rc = NGX_OK;
    ch = ngx_http_sse_insert_channel(zone, in, wake, &nwake, &rc);

    if (ch) {
        rc = ngx_http_sse_insert_events(zone, ch, in);

        in->local_epoch = ch->epoch;
        in->local_last = ch->last_seq;

        if (in->inserted || in->kind != NGX_HTTP_SSE_INSERT_MESSAGE) {
            ngx_http_sse_notify(zone, ch, wake, &nwake);
        }
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    ngx_http_sse_wake(zone, wake, nwake);

    /* one line a minute at most, shared with refused publishes */
    if (rc == NGX_HTTP_SSE_ZONE_FULL
        && ngx_http_sse_log_due(&zone->sh->nomem_logged))
    {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "sse zone \"%V\" is full: events from redis are "
                      "not stored until memory frees up, then filled in "
                      "from redis (this message is rate-limited)",
                      &zone->name);
    }

    return rc;
}


ngx_int_t
ngx_http_sse_shm_position(ngx_http_sse_zone_t *zone, sse::Slice id,
    sse::Position *pos, uint64_t *first, ngx_uint_t *subscribers)
{
    ngx_int_t                rc;
    ngx_http_sse_channel_t  *ch;

    rc = NGX_DECLINED;
    pos->epoch = 0;
    pos->seq = 0;
    *subscribers = 0;

    ngx_shmtx_lock(&zone->shpool->mutex);

    ch = ngx_http_sse_channel_find(zone, (u_char *) id.data, id.len);

    if (ch) {
        *subscribers = ch->subscribers;

        if (ch->remote && !ch->deleted) {
            pos->epoch = ch->epoch;
            pos->seq = ch->last_seq;
            rc = NGX_OK;

            if (first) {
                *first = ch->nevents ? ch->first_seq : ch->last_seq + 1;
            }
        }
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    return rc;
}


namespace {

/*
 * Expects the zone locked: the channel the insert goes to, at the
 * message's epoch.  NULL (and *rc): nothing to insert.
 *
 * A channel that never learnt the cluster's epoch (made by a join while
 * Redis was away, or before its first publish) takes it; one at an older
 * epoch is renewed as a publish after a DELETE renews it on one node
 * (its streams end after what they have; the id goes to a new node); a
 * message of an older epoch than the channel's is stale.
 */

ngx_http_sse_channel_t *
ngx_http_sse_insert_channel(ngx_http_sse_zone_t *zone,
    ngx_http_sse_insert_t *in, ngx_uint_t *wake, ngx_uint_t *nwake,
    ngx_int_t *rc)
{
    ngx_int_t                err;
    ngx_uint_t               renew;
    ngx_http_sse_channel_t  *ch, *fresh;

    if (in->kind == NGX_HTTP_SSE_INSERT_DELETE) {
        ch = ngx_http_sse_channel_find(zone, (u_char *) in->id.data,
                                       in->id.len);

        if (ch == NULL || ch->deleted
            || (ch->remote && in->epoch < ch->epoch))
        {
            *rc = NGX_DECLINED;
            return NULL;
        }

        ch->op = zone->sh->op;

        ngx_http_sse_channel_delete(zone, ch);
        ngx_http_sse_notify(zone, ch, wake, nwake);

        *rc = NGX_OK;
        return NULL;
    }

    err = 0;
    ch = ngx_http_sse_channel_get(zone, (u_char *) in->id.data, in->id.len,
                                  &err);
    if (ch == NULL) {
        *rc = err;
        return NULL;
    }

    if (ch->remote && in->epoch < ch->epoch) {
        *rc = NGX_DECLINED;
        return NULL;
    }

    if (in->kind == NGX_HTTP_SSE_INSERT_OLDER
        && (!ch->remote || ch->deleted || in->epoch != ch->epoch))
    {
        /* older events of the epoch the zone holds, or none */
        *rc = NGX_DECLINED;
        return NULL;
    }

    if (ch->remote && in->epoch == ch->epoch) {
        if (ch->deleted) {
            /* what Redis says of an epoch deleted here is stale */
            *rc = NGX_DECLINED;
            return NULL;
        }

        return ch;
    }

    if (ch->remote || ch->deleted || ch->last_seq || ch->nevents) {
        /*
         * A new epoch.  After a DELETE (a "D" message, or one on this
         * node) the old epoch's streams end after what they got, as on
         * one node.  Otherwise Redis went on under a newer epoch (it
         * restarted empty, was flushed, evicted the channel, was restored
         * from a snapshot or failed over): the old node becomes a tomb
         * marked renewed, and its streams move to the new epoch with a
         * reset (the fan-out, ngx_http_sse_shm_move()).  A channel of the
         * node's own epoch that holds events was published to here, not
         * through Redis: it is renewed as well.
         */

        renew = !ch->deleted;

        if (renew && ch->subscribers && in->kind == NGX_HTTP_SSE_INSERT_MESSAGE
            && in->nevents && in->events[0].seq > 1)
        {
            /*
             * Heard of past its first event (its first messages were lost
             * to this node): the streams that move to it would start
             * there.  A fill reads the new epoch from the first event
             * Redis keeps (the node's epoch is not Redis'), and renews.
             */
            *rc = NGX_HTTP_SSE_NEED_FILL;
            return NULL;
        }

        if (renew) {
            ngx_http_sse_channel_delete(zone, ch);
            ngx_http_sse_notify(zone, ch, wake, nwake);
        }

        fresh = ngx_http_sse_channel_revive(zone, ch, &err);
        if (fresh == NULL) {
            *rc = err;
            return NULL;
        }

        if (renew && fresh != ch) {
            ch->renewed = 1;
        }

        ch = fresh;
        ch->remote = 1;
        ch->adopted_from = 0;
        ch->base = 0;
        ch->epoch = in->epoch;

        return ch;
    }

    /*
     * The node's own epoch: the channel has held no event (the publish
     * path writes nothing here), so streams on it have nothing of it;
     * they are moved to the cluster's epoch when their worker next looks
     * (ngx_http_sse_shm_adopt()).  A message with a hole before it waits
     * for a fill when streams are there.
     */

    if (in->kind == NGX_HTTP_SSE_INSERT_MESSAGE && ch->subscribers
        && in->nevents && in->events[0].seq > 1)
    {
        *rc = NGX_HTTP_SSE_NEED_FILL;
        return NULL;
    }

    ch->adopted_from = ch->epoch;
    ch->epoch = in->epoch;
    ch->remote = 1;

    if (in->kind == NGX_HTTP_SSE_INSERT_STATE) {
        ngx_http_sse_channel_skip_to(zone, ch, in->last + 1);

    } else if (in->nevents) {
        ngx_http_sse_channel_skip_to(zone, ch, in->events[0].seq);
    }

    ch->base = ch->last_seq;

    return ch;
}


/* expects the zone locked: the events the channel does not hold yet */

ngx_int_t
ngx_http_sse_insert_events(ngx_http_sse_zone_t *zone,
    ngx_http_sse_channel_t *ch, ngx_http_sse_insert_t *in)
{
    time_t                        sec;
    ngx_int_t                     rc;
    ngx_uint_t                    i;
    ngx_msec_t                    msec;
    sse::Position                 pos;
    ngx_http_sse_insert_event_t  *ev;

    if (in->kind == NGX_HTTP_SSE_INSERT_OLDER) {
        return ngx_http_sse_insert_older(zone, ch, in);
    }

    if (in->kind == NGX_HTTP_SSE_INSERT_STATE) {
        if (in->last <= ch->last_seq) {
            return NGX_OK;
        }

        /* the read script found nothing the node lacks in the Redis
         * stream: Redis keeps no more (streams that miss it get a gap) */
        ngx_http_sse_channel_skip_to(zone, ch, in->last + 1);
        return NGX_OK;
    }

    for (i = 0; i < in->nevents; i++) {
        ev = &in->events[i];

        if (ev->seq <= ch->last_seq) {
            /* another worker of the node inserted it already */
            continue;
        }

        if (ev->seq > ch->last_seq + 1) {
            if (in->kind == NGX_HTTP_SSE_INSERT_MESSAGE
                && (ch->nevents || ch->subscribers))
            {
                return NGX_HTTP_SSE_NEED_FILL;
            }

            /* Redis keeps no more than this (or no reader waits here) */
            ngx_http_sse_channel_skip_to(zone, ch, ev->seq);
        }

        ngx_http_sse_insert_time(ev, &sec, &msec);

        rc = ngx_http_sse_channel_append_at(zone, ch, ev->type, ev->data,
                                            &pos, sec, msec);

        if (rc == NGX_HTTP_SSE_ZONE_FULL
            && ngx_http_sse_event_bytes(ch, ev->seq, ev->type, ev->data)
               > zone->shm_zone->shm.size)
        {
            /*
             * Larger than this node's whole zone (another node's zone and
             * max_message allowed it): it can never be stored here.  The
             * channel goes on past it instead of waiting for it for good;
             * its streams find the gap when they pull (a live one ends
             * as one too slow for history does, its client resumes with
             * a reset "gap").
             */

            if (ngx_http_sse_log_due(&zone->sh->huge_logged)) {
                ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                              "sse zone \"%V\" is smaller than an event "
                              "from redis (%uz bytes of data): skipped, "
                              "its streams get a gap (this message is "
                              "rate-limited)", &zone->name, ev->data.len);
            }

            ngx_http_sse_channel_skip_to(zone, ch, ev->seq + 1);
            in->inserted++;     /* its streams learn of the gap */
            continue;
        }

        if (rc != NGX_OK) {
            /* filled in once there is room (ngx_http_sse_await_room()) */
            return rc;
        }

        in->inserted++;
    }

    return NGX_OK;
}


/*
 * Expects the zone locked: events a resume needs from before the oldest
 * the zone holds, put in front of them, the newest first, as long as
 * history has room and they follow on.
 */

ngx_int_t
ngx_http_sse_insert_older(ngx_http_sse_zone_t *zone,
    ngx_http_sse_channel_t *ch, ngx_http_sse_insert_t *in)
{
    time_t                        sec;
    ngx_int_t                     rc;
    ngx_uint_t                    i;
    ngx_msec_t                    msec;
    ngx_http_sse_insert_event_t  *ev;

    for (i = in->nevents; i > 0; i--) {
        ev = &in->events[i - 1];

        if (ev->seq >= ch->first_seq) {
            /* held already */
            continue;
        }

        ngx_http_sse_insert_time(ev, &sec, &msec);

        rc = ngx_http_sse_channel_prepend_at(zone, ch, ev->type, ev->data,
                                             ev->seq, sec, msec);
        if (rc != NGX_OK) {
            /* history is full, or a seq is missing: the rest would not
             * follow on */
            return (rc == NGX_DECLINED) ? NGX_OK : rc;
        }

        in->inserted++;
    }

    return NGX_OK;
}


/* an event's publish time: unix seconds, and on this worker's clock of
 * milliseconds for the publish-to-flush histogram */

void
ngx_http_sse_insert_time(ngx_http_sse_insert_event_t *ev, time_t *sec,
    ngx_msec_t *msec)
{
    uint64_t     now_ms, age;
    ngx_time_t  *tp;

    tp = ngx_timeofday();
    now_ms = (uint64_t) tp->sec * 1000 + tp->msec;

    *sec = (time_t) (ev->ms / 1000);
    age = (ev->ms && ev->ms < now_ms) ? now_ms - ev->ms : 0;

    if (ev->ms == 0 || *sec > tp->sec) {
        *sec = tp->sec;
    }

    *msec = ngx_current_msec - (ngx_msec_t) ngx_min(age, 3600000);
}


/*
 * This worker's streams joined the channel empty under the node's own
 * epoch; it has learnt the cluster's since: they go on from the seq it
 * learnt it at, having missed nothing.
 */

void
ngx_http_sse_shm_adopt(ngx_http_sse_local_t *local)
{
    ngx_queue_t              *q;
    ngx_http_sse_channel_t   *ch = local->channel;
    ngx_http_sse_sub_chan_t  *sc;

    for (q = ngx_queue_head(&local->subs);
         q != ngx_queue_sentinel(&local->subs);
         q = ngx_queue_next(q))
    {
        sc = ngx_queue_data(q, ngx_http_sse_sub_chan_t, link);

        if (sc->pos.epoch == local->epoch && sc->pos.seq == 0) {
            sc->pos.epoch = ch->epoch;
            sc->pos.seq = ch->base;
            sc->pos_cum = 0;
        }
    }

    local->epoch = ch->epoch;
    local->cursor = ch->base;
    local->total = 0;

    if (local->share) {
        local->share->cursor = ngx_max(local->share->cursor, ch->base);
    }
}

} // namespace


namespace {

/*
 * The events of one body read, on every channel, under one lock: the
 * channels in order; a channel that cannot be had (max_channels, a full
 * zone) stops the batch there, and so does an event that cannot be
 * stored, so what was stored is a prefix the caller can name exactly.
 *
 * With an Idempotency-Key, the lookup of an earlier answer, the publish
 * and the record of its answer are one critical section: of concurrent
 * publishes with one key, exactly one stores its events.  Every channel
 * is had before any event is stored, so that max_channels or a full zone
 * refuses the request whole.
 */

ngx_int_t
ngx_http_sse_shm_publish(ngx_http_sse_zone_t *zone,
    ngx_http_sse_store_publish_t *op)
{
    u_char                  *p;
    ngx_int_t                rc, err;
    ngx_uint_t               i, k, nwake, unrecorded;
    ngx_uint_t               wake[NGX_HTTP_SSE_MAX_SLOTS];
    sse::Slice               type, data;
    ngx_http_sse_idem_t     *rec;
    ngx_http_sse_channel_t  *ch;

    rc = NGX_OK;
    nwake = 0;
    unrecorded = 0;
    rec = NULL;
    op->repeated = 0;
    op->recorded = 0;

    for (i = 0; i < op->nchans; i++) {
        op->published[i] = 0;
        op->subscribers[i] = 0;
        op->last[i].epoch = 0;
        op->last[i].seq = 0;
    }

    ngx_shmtx_lock(&zone->shpool->mutex);

    ngx_http_sse_store_expire(zone);

    if (op->idempotency_key.len) {

        if (ngx_http_sse_idem_replay(zone, op) == NGX_OK) {
            ngx_shmtx_unlock(&zone->shpool->mutex);

            /* op->rc: the first publish's answer, a refusal included */
            op->recorded = 1;
            op->handler(op->data);

            return NGX_OK;
        }

        /* before any event: what they evict never takes the record */
        rec = ngx_http_sse_idem_reserve(zone, op);

        for (i = 0; i < op->nchans; i++) {
            err = 0;
            ch = ngx_http_sse_channel_get(zone, (u_char *) op->ids[i].data,
                                          op->ids[i].len, &err);
            if (ch) {
                ch = ngx_http_sse_channel_revive(zone, ch, &err);
            }

            if (ch == NULL) {
                (void) ngx_atomic_fetch_add(&zone->sh->refused_full, 1);
                rc = err;
                break;
            }
        }
    }

    for (i = 0; i < op->nchans && rc == NGX_OK; i++) {

        err = 0;
        ch = ngx_http_sse_channel_get(zone, (u_char *) op->ids[i].data,
                                      op->ids[i].len, &err);
        if (ch) {
            ch = ngx_http_sse_channel_revive(zone, ch, &err);
        }

        if (ch == NULL) {
            /* every 507 counts, not only those of a full event store */
            (void) ngx_atomic_fetch_add(&zone->sh->refused_full, 1);
            rc = err;
            break;
        }

        p = op->buf;

        for (k = 0; k < op->nevents; k++) {
            type.data = p;
            type.len = op->events[k].type_len;
            data.data = p + type.len;
            data.len = op->events[k].data_len;
            p += type.len + data.len;

            rc = ngx_http_sse_channel_append(zone, ch, type, data,
                                             &op->last[i]);
            if (rc != NGX_OK) {
                break;
            }

            op->published[i]++;
        }

        op->subscribers[i] = ch->subscribers;

        ngx_http_sse_notify(zone, ch, wake, &nwake);
    }

    /*
     * A publish refused before it stored anything is not remembered: its
     * retry publishes.  One refused after it stored a part (the zone ran
     * out of room for a later event) is, with what it stored: its retry
     * gets the same refusal and the same ids and stores nothing (SPEC: it
     * answers as the first did), so a publisher retrying with the key
     * never duplicates what went in; the reply says what did not.
     */

    op->rc = rc;

    if (op->idempotency_key.len
        && (rc == NGX_OK || ngx_http_sse_published_any(op)))
    {
        if (rec) {
            ngx_http_sse_idem_keep(zone, op, rec);
            op->recorded = 1;
            rec = NULL;

        } else {
            (void) ngx_atomic_fetch_add(&zone->sh->idem_dropped, 1);
            unrecorded = 1;
        }
    }

    if (rec) {
        ngx_http_sse_idem_unreserve(zone, rec);
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    ngx_http_sse_wake(zone, wake, nwake);

    if (unrecorded) {
        ngx_http_sse_idem_log(zone, ngx_cycle->log);
    }

    op->handler(op->data);

    return NGX_OK;
}


ngx_int_t
ngx_http_sse_shm_remove(ngx_http_sse_zone_t *zone,
    ngx_http_sse_store_query_t *op)
{
    ngx_uint_t                    i, nwake;
    ngx_uint_t                    wake[NGX_HTTP_SSE_MAX_SLOTS];
    ngx_http_sse_channel_t       *ch;
    ngx_http_sse_channel_info_t  *info;

    nwake = 0;

    ngx_shmtx_lock(&zone->shpool->mutex);

    for (i = 0; i < op->nchans; i++) {
        info = &op->channels[i];
        ngx_memzero(info, sizeof(ngx_http_sse_channel_info_t));

        ch = ngx_http_sse_channel_find(zone, (u_char *) op->ids[i].data,
                                       op->ids[i].len);
        if (ch == NULL) {
            continue;
        }

        if (ch->deleted) {
            info->state = NGX_HTTP_SSE_CHANNEL_DELETED;
            continue;
        }

        info->state = NGX_HTTP_SSE_CHANNEL_LIVE;
        info->subscribers = ch->subscribers;

        ngx_http_sse_channel_delete(zone, ch);
        ngx_http_sse_notify(zone, ch, wake, &nwake);
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    ngx_http_sse_wake(zone, wake, nwake);

    op->rc = NGX_OK;
    op->handler(op->data);

    return NGX_OK;
}


ngx_int_t
ngx_http_sse_shm_info(ngx_http_sse_zone_t *zone,
    ngx_http_sse_store_query_t *op)
{
    ngx_uint_t                    i;
    ngx_http_sse_channel_t       *ch;
    ngx_http_sse_channel_info_t  *info;

    ngx_shmtx_lock(&zone->shpool->mutex);

    ngx_http_sse_store_expire(zone);

    for (i = 0; i < op->nchans; i++) {
        info = &op->channels[i];
        ngx_memzero(info, sizeof(ngx_http_sse_channel_info_t));

        ch = ngx_http_sse_channel_find(zone, (u_char *) op->ids[i].data,
                                       op->ids[i].len);
        if (ch == NULL) {
            continue;
        }

        info->state = ch->deleted ? NGX_HTTP_SSE_CHANNEL_DELETED
                                  : NGX_HTTP_SSE_CHANNEL_LIVE;
        info->subscribers = ch->subscribers;
        info->events = ch->nevents;
        info->last.epoch = ch->epoch;
        info->last.seq = ch->last_seq;
        info->last_publish = ch->last_publish;
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    op->rc = NGX_OK;
    op->handler(op->data);

    return NGX_OK;
}


/*
 * Under one lock: find or create the channels, join them, and set the
 * stream's position in each from its plan.  What it is to replay it
 * pulls from history (read()), at most sse_max_pending at a time, as
 * its socket drains; live events reach it through the fan-out once it
 * has caught up.  A seq is never both (the stream's position filters).
 */

ngx_int_t
ngx_http_sse_shm_join(ngx_http_sse_zone_t *zone,
    ngx_http_sse_store_join_t *op)
{
    ngx_shmtx_lock(&zone->shpool->mutex);

    op->rc = ngx_http_sse_shm_join_locked(zone, op);

    ngx_shmtx_unlock(&zone->shpool->mutex);

    op->handler(op->data);

    return NGX_OK;
}


ngx_int_t
ngx_http_sse_shm_join_locked(ngx_http_sse_zone_t *zone,
    ngx_http_sse_store_join_t *op)
{
    uint64_t                   from, replay, lag;
    uint64_t                   behind[sse::max_channels_per_stream];
    ngx_int_t                  err;
    ngx_uint_t                 i, n;
    ngx_http_sse_sub_t        *sub = op->sub;
    ngx_http_sse_local_t      *local;
    ngx_http_sse_channel_t    *chans[sse::max_channels_per_stream];
    ngx_http_sse_sub_chan_t   *sc;
    ngx_http_sse_chan_slot_t  *cs[sse::max_channels_per_stream];

    n = op->nchans;

    ngx_http_sse_store_expire(zone);

    for (i = 0; i < n; i++) {
        op->reset[i] = NULL;

        err = 0;
        chans[i] = ngx_http_sse_channel_get(zone, (u_char *) op->ids[i].data,
                                            op->ids[i].len, &err);
        if (chans[i] == NULL) {
            return (err == NGX_HTTP_SSE_TOO_MANY) ? NGX_HTTP_SSE_TOO_MANY
                                                  : NGX_HTTP_SSE_ZONE_FULL;
        }

        if (chans[i]->deleted) {
            return NGX_HTTP_SSE_DELETED;
        }
    }

    if (zone->sh->limits.max_subscribers
        && ngx_http_sse_subscribers(zone) >= zone->sh->limits.max_subscribers)
    {
        return NGX_HTTP_SSE_TOO_MANY_SUBSCRIBERS;
    }

    replay = 0;

    for (i = 0; i < n; i++) {
        sc = &sub->chans[i];
        sc->sub = sub;
        sc->index = i;

        cs[i] = ngx_http_sse_channel_join(zone, chans[i], zone->slot);
        if (cs[i] == NULL) {
            return NGX_HTTP_SSE_ZONE_FULL;
        }

        local = ngx_http_sse_local_get(zone, chans[i]);
        if (local == NULL) {
            ngx_http_sse_channel_leave(zone, chans[i], zone->slot);
            return NGX_HTTP_SSE_ZONE_FULL;
        }

        local->share = cs[i];
        sc->local = local;
        sc->state = NGX_HTTP_SSE_SC_LIVE;
        ngx_queue_insert_tail(&local->subs, &sc->link);
        local->nsubs++;

        /* history_ttl: expired events are not replayed, however lazy the
         * zone-wide expiry is */
        ngx_http_sse_channel_expire(zone, chans[i]);

        ngx_http_sse_plan(chans[i], op->replay,
                          op->positions ? &op->positions[i] : NULL,
                          op->have_id, &from, &op->reset[i]);

        sc->pos.epoch = chans[i]->epoch;
        sc->pos.seq = from - 1;
        sc->pos_cum = ngx_http_sse_cum_before(chans[i], from);
        behind[i] = chans[i]->total - sc->pos_cum;

        if (sc->pos.seq < chans[i]->last_seq) {
            sc->state = NGX_HTTP_SSE_SC_BEHIND;
            sub->nbehind++;
            local->nbehind++;
            replay += behind[i];

            /* history stays for it while it replays */
            cs[i]->cursor = ngx_min(cs[i]->cursor, sc->pos.seq);
            local->floor = ngx_min(local->floor, sc->pos.seq);
        }
    }

    /*
     * How far the stream may fall behind before it is dropped as too slow:
     * sse_max_pending, plus the replay it starts with.  Its buffer holds
     * sse_max_pending at most all the same.
     */

    sub->limit = sub->max_pending ? sub->max_pending + replay : 0;

    /* history is kept for this worker as far as its streams may lag */

    for (i = 0; i < n; i++) {
        lag = sub->max_pending ? sub->max_pending + behind[i] : (uint64_t) -1;
        cs[i]->allowance = ngx_max(cs[i]->allowance, lag);
    }

    zone->sh->slots[zone->slot].streams++;
    sub->counted = 1;

    return NGX_OK;
}


void
ngx_http_sse_shm_cancel(ngx_http_sse_zone_t *zone, void *op)
{
    /* every operation of this store has completed before it returned */
}


/*
 * A stream behind on a channel takes its next events from history, as
 * many as the sink takes (its sse_max_pending) within the budget; the
 * rest waits until its socket drains again.
 */

ngx_int_t
ngx_http_sse_shm_read(ngx_http_sse_zone_t *zone,
    ngx_http_sse_store_read_t *rd)
{
    uint64_t                 seq;
    ngx_int_t                rc;
    ngx_http_sse_event_t    *ev;
    ngx_http_sse_channel_t  *ch = rd->local->channel;

    rd->caught_up = 0;
    rd->bytes = 0;

    ngx_shmtx_lock(&zone->shpool->mutex);

    if (ch->epoch != rd->from.epoch) {
        rc = NGX_HTTP_SSE_PULL_END;
        goto done;
    }

    if (ch->renewed) {
        /* the rest of the old epoch is void: the fan-out moves the reader
         * to the new one (its wake-up is queued) */
        rc = NGX_OK;
        goto done;
    }

    if (rd->from.seq < ch->last_seq) {

        if (ch->nevents == 0 || rd->from.seq + 1 < ch->first_seq) {
            rc = NGX_HTTP_SSE_PULL_GAP;
            goto done;
        }

        for (seq = rd->from.seq + 1; seq <= ch->last_seq; seq++) {
            ev = ngx_http_sse_channel_event(ch, seq);

            if (rd->bytes && rd->bytes + ev->len > rd->budget) {
                rc = NGX_OK;
                goto done;
            }

            rc = rd->sink(rd->data, seq, ev->wire, ev->len, ev->id_len,
                          ev->cum, ev->msec);
            if (rc != NGX_OK) {
                rc = (rc == NGX_DECLINED) ? NGX_OK : NGX_ERROR;
                goto done;
            }

            rd->bytes += ev->len;
        }
    }

    rd->caught_up = 1;
    rc = ch->deleted ? NGX_HTTP_SSE_PULL_END : NGX_OK;

done:

    ngx_shmtx_unlock(&zone->shpool->mutex);

    return rc;
}


/* the stream leaves its channels: from now on no event reaches it */

void
ngx_http_sse_shm_leave(ngx_http_sse_zone_t *zone, ngx_http_sse_sub_t *sub)
{
    ngx_uint_t                i;
    ngx_http_sse_sub_chan_t  *sc;

    ngx_shmtx_lock(&zone->shpool->mutex);

    if (sub->counted) {
        if (zone->sh->slots[zone->slot].streams) {
            zone->sh->slots[zone->slot].streams--;
        }

        sub->counted = 0;
    }

    for (i = 0; i < sub->nchans; i++) {
        sc = &sub->chans[i];

        if (sc->state != NGX_HTTP_SSE_SC_OUT) {
            ngx_http_sse_channel_leave(zone, sc->local->channel, zone->slot);
        }
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);
}


/*
 * A stream's channel went on under a newer epoch (RENEWED): it leaves the
 * old node for the channel's current one, where it starts at the oldest
 * event the zone holds, as a join with an id of an older epoch does
 * (ngx_http_sse_plan(): reset "gap").  Its other channels stay as they
 * are.  Under one lock per stream: the fan-out appends the reset between
 * two streams, without the lock.
 */

ngx_int_t
ngx_http_sse_shm_move(ngx_http_sse_zone_t *zone, ngx_http_sse_sub_t *sub,
    ngx_uint_t index, u_char *id, size_t *id_len)
{
    uint64_t                   from, behind, lag;
    ngx_int_t                  err;
    const char                *reset;
    sse::Position              old;
    ngx_http_sse_local_t      *local, *prev;
    ngx_http_sse_channel_t    *ch, *och;
    ngx_http_sse_sub_chan_t   *sc = &sub->chans[index];
    ngx_http_sse_chan_slot_t  *cs;

    prev = sc->local;
    och = prev->channel;

    ngx_shmtx_lock(&zone->shpool->mutex);

    /* an operation of its own: what it finds is not reclaimed by its
     * allocations (ngx_http_sse_store_expire()) */
    zone->sh->op++;

    *id_len = och->id_len;
    ngx_memcpy(id, och->id, och->id_len);

    ch = ngx_http_sse_channel_find(zone, och->id, och->id_len);

    if (ch == NULL || ch == och || ch->deleted) {
        /* deleted (or evicted) since: nothing to go on to */
        err = NGX_DECLINED;
        goto failed;
    }

    ch->op = zone->sh->op;

    cs = ngx_http_sse_channel_join(zone, ch, zone->slot);
    if (cs == NULL) {
        err = NGX_HTTP_SSE_ZONE_FULL;
        goto failed;
    }

    local = ngx_http_sse_local_get(zone, ch);
    if (local == NULL) {
        ngx_http_sse_channel_leave(zone, ch, zone->slot);
        err = NGX_HTTP_SSE_ZONE_FULL;
        goto failed;
    }

    local->share = cs;

    /* the old node's events stay only while streams still read them */
    ngx_http_sse_channel_leave(zone, och, zone->slot);

    ngx_queue_remove(&sc->link);
    prev->nsubs--;

    if (sc->state == NGX_HTTP_SSE_SC_BEHIND) {
        sub->nbehind--;
        prev->nbehind--;
    }

    sc->local = local;
    sc->state = NGX_HTTP_SSE_SC_LIVE;
    ngx_queue_insert_tail(&local->subs, &sc->link);
    local->nsubs++;

    ngx_http_sse_channel_expire(zone, ch);

    old = sc->pos;
    ngx_http_sse_plan(ch, 0, &old, 1, &from, &reset);

    sc->pos.epoch = ch->epoch;
    sc->pos.seq = from - 1;
    sc->pos_cum = ngx_http_sse_cum_before(ch, from);

    behind = ch->total - sc->pos_cum;

    if (sc->pos.seq < ch->last_seq) {
        sc->state = NGX_HTTP_SSE_SC_BEHIND;
        sub->nbehind++;
        local->nbehind++;

        /* history stays for it while it catches up, as for a join */
        cs->cursor = ngx_min(cs->cursor, sc->pos.seq);
        local->floor = ngx_min(local->floor, sc->pos.seq);
    }

    /* how far it may lag there, as for a join: sse_max_pending plus what
     * it starts behind */

    lag = sub->max_pending ? sub->max_pending + behind : (uint64_t) -1;
    cs->allowance = ngx_max(cs->allowance, lag);

    if (sub->max_pending) {
        sub->limit = ngx_max(sub->limit, (size_t) lag);
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    return NGX_OK;

failed:

    ngx_shmtx_unlock(&zone->shpool->mutex);

    return err;
}


/*
 * A worker takes its queue of changed channels and copies the events its
 * streams have not seen into its batch: the queue holds each changed
 * channel once, so the cost is what changed.
 */

ngx_int_t
ngx_http_sse_shm_collect(ngx_http_sse_zone_t *zone,
    ngx_http_sse_batch_t *batch)
{
    ngx_uint_t               n;
    ngx_http_sse_local_t    *local;
    ngx_http_sse_channel_t  *ch;

    ngx_shmtx_lock(&zone->shpool->mutex);

    zone->sh->slots[zone->slot].wake_pending = 0;

    for (n = 0; /* void */; n++) {
        ch = ngx_http_sse_dequeue(zone, zone->slot);
        if (ch == NULL) {
            break;
        }

        local = ngx_http_sse_local_find(zone, ch);
        if (local == NULL) {
            /* its last subscriber here left meanwhile */
            continue;
        }

        if (ngx_http_sse_shm_gather(local, batch) != NGX_OK) {
            /*
             * Out of memory: its streams are not behind yet, so nothing
             * else would bring them these events; the channel goes back
             * on the queue for the next wake-up or the sweep, and this
             * round ends (taking it again now would fail again).
             */
            if (local->share) {
                ngx_http_sse_requeue(zone, local->share);
            }

            break;
        }
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    if (n) {
        (void) ngx_atomic_fetch_add(&zone->sh->wakeups, 1);
        (void) ngx_atomic_fetch_add(&zone->sh->woken, n);
    }

    return NGX_OK;
}


/* expects the zone locked: one changed channel's new events */

ngx_int_t
ngx_http_sse_shm_gather(ngx_http_sse_local_t *local,
    ngx_http_sse_batch_t *batch)
{
    size_t                   size;
    uint64_t                 seq;
    ngx_http_sse_copy_t     *cp;
    ngx_http_sse_event_t    *ev;
    ngx_http_sse_channel_t  *ch = local->channel;

    if (local->busy) {
        return NGX_OK;
    }

    if (ngx_http_sse_grow((void **) &batch->touched, &batch->touched_cap,
                          batch->ntouched + 1,
                          sizeof(ngx_http_sse_local_t *), 64)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    batch->touched[batch->ntouched++] = local;
    local->busy = 1;

    if (ch->epoch != local->epoch && ch->adopted_from == local->epoch
        && local->cursor == 0 && local->total == 0)
    {
        /* the channel learnt its epoch from Redis after these streams
         * joined it empty: they go on from where it learnt it */
        ngx_http_sse_shm_adopt(local);
    }

    if (ch->renewed) {
        /* a newer epoch from Redis: the streams move there, the old
         * epoch's events they did not have yet are void */
        local->ending = NGX_HTTP_SSE_LOCAL_RENEWED;
        return NGX_OK;
    }

    if (ch->epoch != local->epoch) {
        /* the node went on under another epoch with no stream on it
         * (it was revived in place): these streams are over */
        local->ending = NGX_HTTP_SSE_LOCAL_DELETED;
        return NGX_OK;
    }

    if (local->cursor < ch->last_seq && ch->nevents) {

        /*
         * What was evicted before this worker read it is not copied: its
         * streams that still miss it find the gap when they pull.
         */

        seq = ngx_max(local->cursor + 1, ch->first_seq);
        size = (size_t) (ch->total - ngx_http_sse_cum_before(ch, seq));

        if (ngx_http_sse_grow((void **) &batch->copies, &batch->copies_cap,
                              batch->ncopies + (ch->last_seq - seq + 1),
                              sizeof(ngx_http_sse_copy_t), 256)
            != NGX_OK
            || ngx_http_sse_grow((void **) &batch->scratch,
                                 &batch->scratch_cap,
                                 batch->scratch_len + size, 1, 16384)
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        for ( /* void */ ; seq <= ch->last_seq; seq++) {
            ev = ngx_http_sse_channel_event(ch, seq);

            cp = &batch->copies[batch->ncopies++];
            cp->local = local;
            cp->seq = seq;
            cp->cum = ev->cum;
            cp->offset = batch->scratch_len;
            cp->len = ev->len;
            cp->id_len = ev->id_len;
            cp->published = ev->msec;

            ngx_memcpy(batch->scratch + batch->scratch_len, ev->wire,
                       ev->len);
            batch->scratch_len += ev->len;
        }
    }

    local->cursor = ch->last_seq;
    local->total = ch->total;

    if (ch->deleted) {
        /* the streams end after what was published before the DELETE */
        local->ending = NGX_HTTP_SSE_LOCAL_DELETED;
    }

    return NGX_OK;
}


/*
 * After a fan-out, or a stream caught up: tells the zone how far every
 * stream of this worker has each channel, so that history past its limit
 * can go.
 */

void
ngx_http_sse_shm_settle(ngx_http_sse_zone_t *zone,
    ngx_http_sse_local_t **locals, ngx_uint_t n)
{
    ngx_uint_t             i;
    ngx_http_sse_local_t  *local;

    ngx_shmtx_lock(&zone->shpool->mutex);

    for (i = 0; i < n; i++) {
        local = locals[i];

        if (local->nsubs && local->share) {
            ngx_http_sse_channel_consumed(zone, local->share,
                                          ngx_min(local->cursor,
                                                  local->floor));
        }
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);
}


void
ngx_http_sse_shm_figures(ngx_http_sse_zone_t *zone,
    ngx_http_sse_figures_t *f)
{
    ngx_http_sse_shctx_t  *sh = zone->sh;

    /* workers killed meanwhile are found by their refused wake-ups */
    ngx_http_sse_shm_probe(zone);

    ngx_shmtx_lock(&zone->shpool->mutex);

    (void) ngx_http_sse_store_expire(zone);

    f->size = zone->shm_zone->shm.size;
    f->used = f->size - zone->shpool->pfree * ngx_pagesize;
    f->channels = sh->channels;
    f->subscribers = ngx_http_sse_subscribers(zone);
    f->stored_events = sh->stored_events;
    f->workers = ngx_http_sse_live_slots(zone);
    f->idempotency_records = sh->idem_records;

    ngx_shmtx_unlock(&zone->shpool->mutex);

    f->published = sh->published;
    f->delivered = sh->delivered;
    f->evicted = sh->evicted;
    f->dropped_slow = sh->dropped_slow;
    f->refused_full = sh->refused_full;
    f->wakeups = sh->wakeups;
    f->woken = sh->woken;
    f->idempotent_replays = sh->idempotent_replays;
    f->idempotency_dropped = sh->idem_dropped;
}


void
ngx_http_sse_shm_count(ngx_http_sse_zone_t *zone, ngx_uint_t counter,
    ngx_uint_t n)
{
    switch (counter) {

    case NGX_HTTP_SSE_COUNT_DELIVERED:
        (void) ngx_atomic_fetch_add(&zone->sh->delivered, n);
        break;

    default: /* NGX_HTTP_SSE_COUNT_DROPPED_SLOW */
        (void) ngx_atomic_fetch_add(&zone->sh->dropped_slow, n);
        break;
    }
}


/* of the newest configuration: a reload may change it under old workers */

size_t
ngx_http_sse_shm_max_message(ngx_http_sse_zone_t *zone)
{
    return zone->sh->limits.max_message;
}


/* this worker takes a slot of the zone: NGX_ERROR if all are taken */

ngx_int_t
ngx_http_sse_shm_attach(ngx_http_sse_zone_t *zone, u_char *addr,
    size_t addr_len)
{
    ngx_shmtx_lock(&zone->shpool->mutex);
    zone->slot = ngx_http_sse_slot_register(zone, addr, addr_len);
    ngx_shmtx_unlock(&zone->shpool->mutex);

    if (zone->slot < 0) {
        /* slots of workers that were killed go to refused wake-ups */
        ngx_http_sse_shm_probe(zone);

        ngx_shmtx_lock(&zone->shpool->mutex);
        zone->slot = ngx_http_sse_slot_register(zone, addr, addr_len);
        ngx_shmtx_unlock(&zone->shpool->mutex);
    }

    return (zone->slot < 0) ? NGX_ERROR : NGX_OK;
}


void
ngx_http_sse_shm_detach(ngx_http_sse_zone_t *zone)
{
    if (zone->slot < 0 || zone->sh == NULL) {
        return;
    }

    ngx_shmtx_lock(&zone->shpool->mutex);
    ngx_http_sse_slot_release(zone);
    ngx_shmtx_unlock(&zone->shpool->mutex);
}


/* one bounded step of expiry; non-zero: there is more to expire */

ngx_uint_t
ngx_http_sse_shm_expire(ngx_http_sse_zone_t *zone)
{
    ngx_uint_t  more;

    ngx_shmtx_lock(&zone->shpool->mutex);
    more = ngx_http_sse_store_expire(zone);
    ngx_shmtx_unlock(&zone->shpool->mutex);

    return more;
}


void
ngx_http_sse_shm_probe(ngx_http_sse_zone_t *zone)
{
    ngx_http_sse_probe_slots(zone);
}


/* expects the zone locked: where a stream starts in one channel */

void
ngx_http_sse_plan(ngx_http_sse_channel_t *ch, ngx_int_t replay,
    sse::Position *id, ngx_int_t have_id, uint64_t *from, const char **reset)
{
    uint64_t  oldest;

    /* the first seq still in history (last_seq + 1 if none is stored) */
    oldest = ch->nevents ? ch->first_seq : ch->last_seq + 1;

    *reset = NULL;

    if (have_id == 0) {
        if (replay == NGX_HTTP_SSE_REPLAY_ALL) {
            *from = oldest;

        } else if ((uint64_t) replay >= ch->last_seq) {
            *from = ngx_max(oldest, 1);

        } else {
            *from = ngx_max(oldest, ch->last_seq - replay + 1);
        }

        return;
    }

    if (have_id > 0 && ch->remote && id->epoch < ch->epoch) {
        /*
         * With sse_redis, epochs of a channel grow: an older one is its
         * epoch before Redis renewed it (restarted, restored, deleted
         * and published to again), what its streams there met was the
         * end of that epoch: SPEC.md, a stream that meets a new epoch
         * gets reason "gap", then the new epoch's events.
         */
        *reset = "gap";
        *from = oldest;
        return;
    }

    if (have_id < 0 || id->epoch != ch->epoch || id->seq > ch->last_seq) {
        *reset = "unknown";
        *from = oldest;
        return;
    }

    if (id->seq + 1 < oldest) {
        *reset = "gap";
        *from = oldest;
        return;
    }

    *from = id->seq + 1;
}


/* expects the zone locked: this worker's record of a channel it joins */

ngx_http_sse_local_t *
ngx_http_sse_local_get(ngx_http_sse_zone_t *zone, ngx_http_sse_channel_t *ch)
{
    ngx_http_sse_local_t  *local;

    local = ngx_http_sse_local_find(zone, ch);
    if (local) {
        return local;
    }

    local = (ngx_http_sse_local_t *) ngx_alloc(sizeof(ngx_http_sse_local_t),
                                               ngx_cycle->log);
    if (local == NULL) {
        return NULL;
    }

    ngx_memzero(local, sizeof(ngx_http_sse_local_t));

    local->node.key = (ngx_rbtree_key_t) (uintptr_t) ch;
    local->zone = zone;
    local->channel = ch;
    local->epoch = ch->epoch;
    local->cursor = ch->last_seq;
    local->total = ch->total;
    local->floor = NGX_HTTP_SSE_NONE_BEHIND;
    ngx_queue_init(&local->subs);

    ngx_rbtree_insert(&zone->locals, &local->node);
    zone->nlocals++;

    return local;
}


ngx_http_sse_local_t *
ngx_http_sse_local_find(ngx_http_sse_zone_t *zone, ngx_http_sse_channel_t *ch)
{
    ngx_rbtree_key_t    key;
    ngx_rbtree_node_t  *node, *sentinel;

    key = (ngx_rbtree_key_t) (uintptr_t) ch;

    node = zone->locals.root;
    sentinel = zone->locals.sentinel;

    while (node != sentinel) {
        if (key == node->key) {
            return (ngx_http_sse_local_t *) node;
        }

        node = (key < node->key) ? node->left : node->right;
    }

    return NULL;
}

} // namespace
