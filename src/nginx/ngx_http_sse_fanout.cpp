/*
 * The fan-out: a worker's streams get the new events of the channels that
 * changed for it, and streams behind pull from history.
 *
 * The store collects the new events of every changed channel into the
 * worker's batch (one copy of their bytes per worker per wake-up); each
 * event is then appended to every stream of the channel whose next event
 * it is and that has room for it (sse_max_pending).  A stream without
 * room, or still replaying, is behind: it keeps its position and pulls
 * the rest from history as its socket drains (ngx_http_sse_sub_pull(),
 * the store's read()), never holding more than sse_max_pending.  A last
 * settle() tells the store how far this worker's streams have each
 * channel.  Nothing here takes the zone lock or sees an address in it.
 */

#include "ngx_http_sse.h"


namespace {

void ngx_http_sse_fan_out(ngx_http_sse_zone_t *zone);
void ngx_http_sse_write_round(ngx_http_sse_sub_t *sub);
void ngx_http_sse_end_local(ngx_http_sse_local_t *local);
void ngx_http_sse_renew_local(ngx_http_sse_local_t *local);
void ngx_http_sse_settle(ngx_http_sse_zone_t *zone);
ngx_int_t ngx_http_sse_pull_channel(ngx_http_sse_sub_chan_t *sc);
ngx_int_t ngx_http_sse_pulled_event(void *data, uint64_t seq, u_char *wire,
    size_t len, size_t id_len, uint64_t cum, ngx_msec_t published);
ngx_http_sse_share_t *ngx_http_sse_share(ngx_http_sse_copy_t *cp,
    ngx_uint_t j);
void ngx_http_sse_unshare(ngx_uint_t from, ngx_uint_t to);


/* the worker's batch, reused by every fan-out */
ngx_http_sse_batch_t  ngx_http_sse_batch;

/* counts fan-out rounds: a stream writes once per round (sub->fanned) */
ngx_uint_t            ngx_http_sse_round;

/*
 * The batch's large events as their streams share them, by their index
 * in batch->copies: a block is made when the first stream references the
 * event, and the fan-out's reference to it released once every stream of
 * the channel has had the event.
 */
ngx_http_sse_share_t  *ngx_http_sse_shares;
size_t                 ngx_http_sse_shares_cap;

} // namespace


/* channels changed for this worker: their new events go out */

void
ngx_http_sse_process_zone(ngx_http_sse_zone_t *zone)
{
    if (zone->slot < 0) {
        return;
    }

    ngx_http_sse_batch.scratch_len = 0;
    ngx_http_sse_batch.ncopies = 0;
    ngx_http_sse_batch.ntouched = 0;

    (void) zone->store->collect(zone, &ngx_http_sse_batch);

    ngx_http_sse_fan_out(zone);
}


namespace {

void
ngx_http_sse_fan_out(ngx_http_sse_zone_t *zone)
{
    uint64_t                  floor;
    ngx_int_t                 rc;
    ngx_uint_t                i, j, first;
    ngx_queue_t              *q, *next;
    ngx_http_sse_sub_t       *sub;
    ngx_http_sse_copy_t      *cp, *copies;
    ngx_http_sse_share_t     *share;
    ngx_http_sse_batch_t     *batch = &ngx_http_sse_batch;
    ngx_http_sse_local_t     *local;
    ngx_http_sse_sub_chan_t  *sc;

    /*
     * Two passes.  First every new event is appended to every stream
     * whose next event it is; then every stream writes once, however many
     * of its channels changed in this round: a stream on three channels
     * that each got an event makes one write (one chunk) of three events,
     * not three.
     */

    ngx_http_sse_round++;

    j = 0;
    copies = batch->copies;

    if (batch->ncopies > ngx_http_sse_shares_cap
        && ngx_http_sse_grow((void **) &ngx_http_sse_shares,
                             &ngx_http_sse_shares_cap, batch->ncopies,
                             sizeof(ngx_http_sse_share_t), 64)
           != NGX_OK)
    {
        /* no memory for the table: this round copies every event */
        ngx_http_sse_shares_cap = 0;
    }

    if (ngx_http_sse_shares_cap) {
        ngx_memzero(ngx_http_sse_shares,
                    batch->ncopies * sizeof(ngx_http_sse_share_t));
    }

    for (i = 0; i < batch->ntouched; i++) {
        local = batch->touched[i];

        if (local->ending == NGX_HTTP_SSE_LOCAL_RENEWED) {
            /* no event of it is in the batch: its streams move on */
            ngx_http_sse_renew_local(local);
            continue;
        }

        floor = local->cursor;

        for (q = ngx_queue_head(&local->subs);
             q != ngx_queue_sentinel(&local->subs);
             q = next)
        {
            next = ngx_queue_next(q);
            sc = ngx_queue_data(q, ngx_http_sse_sub_chan_t, link);
            sub = sc->sub;

            if (sub->done) {
                continue;
            }

            for (cp = copies + j;
                 cp < copies + batch->ncopies && cp->local == local;
                 cp++)
            {
                share = (local->nsubs > 1) ? ngx_http_sse_share(cp, cp - copies)
                                           : NULL;

                rc = ngx_http_sse_sub_append_event(sc, cp->seq,
                                                   batch->scratch + cp->offset,
                                                   cp->len, cp->id_len,
                                                   cp->cum, cp->published,
                                                   share);
                if (rc == NGX_ERROR) {
                    /* no memory for its buffer (the zone is not locked) */
                    ngx_http_sse_sub_drop(sub);
                    break;
                }

                if (rc != NGX_OK) {
                    break;
                }
            }

            if (sub->done) {
                continue;
            }

            if (sc->state == NGX_HTTP_SSE_SC_BEHIND && sc->pos.seq < floor) {
                floor = sc->pos.seq;
            }
        }

        first = j;

        while (j < batch->ncopies && copies[j].local == local) {
            j++;
        }

        /* the streams that took a block hold it now */
        ngx_http_sse_unshare(first, j);

        local->floor = floor;
    }

    for (i = 0; i < batch->ntouched; i++) {
        local = batch->touched[i];

        for (q = ngx_queue_head(&local->subs);
             q != ngx_queue_sentinel(&local->subs);
             q = next)
        {
            next = ngx_queue_next(q);
            sc = ngx_queue_data(q, ngx_http_sse_sub_chan_t, link);
            sub = sc->sub;

            if (sub->done || sub->fanned == ngx_http_sse_round) {
                continue;
            }

            sub->fanned = ngx_http_sse_round;

            /* it may be freed: only other streams are looked at after */
            ngx_http_sse_write_round(sub);
        }

        if (local->ending) {
            ngx_http_sse_end_local(local);
        }
    }

    ngx_http_sse_settle(zone);

    if (zone->delivered) {
        zone->store->count(zone, NGX_HTTP_SSE_COUNT_DELIVERED,
                           zone->delivered);
        zone->delivered = 0;
    }

    ngx_http_sse_metrics_flush(zone);

    batch->ntouched = 0;
    batch->ncopies = 0;
    batch->scratch_len = 0;
}


/*
 * A stream's one write of a fan-out round.  It writes what it has and
 * pulls more while its socket takes it; what it still lacks then, on a
 * channel of this round, is how far behind it is.
 */

void
ngx_http_sse_write_round(ngx_http_sse_sub_t *sub)
{
    ngx_uint_t                i;
    ngx_http_sse_sub_chan_t  *sc;

    if (ngx_http_sse_sub_send(sub) != NGX_OK) {
        /* NGX_DONE: it may be gone */
        return;
    }

    for (i = 0; i < sub->nchans; i++) {
        sc = &sub->chans[i];

        if (sc->state == NGX_HTTP_SSE_SC_BEHIND
            && sc->local->busy
            && ngx_http_sse_sub_too_far(sub, sc, sc->local->total))
        {
            return;
        }
    }
}


/*
 * After a fan-out: tells the zone how far every stream of this worker has
 * each channel, so that history past its limit can go.
 */

void
ngx_http_sse_settle(ngx_http_sse_zone_t *zone)
{
    ngx_uint_t             i;
    ngx_http_sse_batch_t  *batch = &ngx_http_sse_batch;

    zone->store->settle(zone, batch->touched, batch->ntouched);

    /* kept while fanned out: a stream of another channel may leave this */

    for (i = 0; i < batch->ntouched; i++) {
        batch->touched[i]->busy = 0;
        ngx_http_sse_local_put(batch->touched[i]);
    }
}


void
ngx_http_sse_end_local(ngx_http_sse_local_t *local)
{
    ngx_uint_t                ending;
    ngx_queue_t              *q, *next;
    ngx_http_sse_sub_chan_t  *sc;

    /* local->busy is set: it stays while its streams leave */

    ending = local->ending;
    local->ending = 0;

    for (q = ngx_queue_head(&local->subs);
         q != ngx_queue_sentinel(&local->subs);
         q = next)
    {
        next = ngx_queue_next(q);
        sc = ngx_queue_data(q, ngx_http_sse_sub_chan_t, link);

        if (ending == NGX_HTTP_SSE_LOCAL_DELETED
            && sc->state == NGX_HTTP_SSE_SC_BEHIND)
        {
            /* it ends when its pulls reach the end of the channel */
            continue;
        }

        ngx_http_sse_sub_reason(sc->sub, NGX_HTTP_SSE_CLOSE_DELETED);
        ngx_http_sse_sub_end(sc->sub, 1);
    }
}


/*
 * The channel went on under a newer epoch (with sse_redis: Redis
 * restarted empty, was flushed, evicted it, was restored or failed over):
 * each stream stays open, is told a reset "gap" (as a join with an id of
 * the old epoch would be) and goes on with the new epoch's events from
 * the first the zone holds; what it had not got of the old epoch is void.
 * A stream whose reset does not fit in its buffer (sse_max_pending) is
 * dropped as too slow: the client comes back with its last id and gets
 * the same reset from the join.  One store call per stream, no more.
 */

void
ngx_http_sse_renew_local(ngx_http_sse_local_t *local)
{
    u_char                    id[sse::max_channel_id_len];
    size_t                    id_len;
    ngx_int_t                 rc;
    sse::Slice                chan;
    ngx_queue_t              *q, *next;
    ngx_http_sse_sub_t       *sub;
    ngx_http_sse_zone_t      *zone = local->zone;
    ngx_http_sse_sub_chan_t  *sc;

    /* local->busy is set: it stays while its streams leave it */

    local->ending = 0;

    for (q = ngx_queue_head(&local->subs);
         q != ngx_queue_sentinel(&local->subs);
         q = next)
    {
        next = ngx_queue_next(q);
        sc = ngx_queue_data(q, ngx_http_sse_sub_chan_t, link);
        sub = sc->sub;

        if (sub->done || sub->dropping) {
            continue;
        }

        rc = zone->store->move(zone, sub, sc->index, id, &id_len);

        if (rc != NGX_OK) {
            /* deleted meanwhile, or no room for it: it ends, and the
             * client resumes from its last id */
            ngx_http_sse_sub_reason(sub, (rc == NGX_DECLINED)
                                         ? NGX_HTTP_SSE_CLOSE_DELETED
                                         : NGX_HTTP_SSE_CLOSE_ERROR);
            ngx_http_sse_sub_end(sub, 1);
            continue;
        }

        chan.data = id;
        chan.len = id_len;

        rc = ngx_http_sse_sub_append_reset(sub, chan, "gap");

        if (rc == NGX_DECLINED) {
            zone->store->count(zone, NGX_HTTP_SSE_COUNT_DROPPED_SLOW, 1);
            ngx_log_error(NGX_LOG_INFO, sub->connection->log, 0,
                          "sse: client is too slow, no room for the reset "
                          "of a channel that went on under a new epoch");
            ngx_http_sse_sub_reason(sub, NGX_HTTP_SSE_CLOSE_SLOW);
            ngx_http_sse_sub_drop(sub);
            continue;
        }

        if (rc != NGX_OK) {
            ngx_http_sse_sub_drop(sub);
            continue;
        }

        /*
         * It writes the reset, then pulls the new epoch, from its write
         * handler: once, even if more of its channels move this round,
         * and it is no longer on this channel's list the writes of the
         * round go through.
         */
        ngx_post_event(sub->connection->write, &ngx_posted_events);
    }
}


/*
 * A large event of the batch as the streams of a channel with several
 * streams here share it; NULL: it is copied (small, or no memory).
 *
 * Its block (one copy per worker, out of the batch: the batch is reused
 * by the next wake-up) is made by the first stream that references it
 * (ngx_http_sse_refs_add()), not here: every stream may decline the
 * event (behind: it pulls from history; a detached TLS stream copies),
 * and then no block is made.  The first taker makes it, not the second:
 * it cannot know whether another follows without a second walk over the
 * channel's streams, and the block costs it one copy, as much as a copy
 * into its own buffer; waiting for a second taker would cost two copies
 * (the first taker's own, then the block) in the usual case, where the
 * channel's streams all take the event.
 */

ngx_http_sse_share_t *
ngx_http_sse_share(ngx_http_sse_copy_t *cp, ngx_uint_t j)
{
    ngx_http_sse_share_t  *share;

    /* what a stream would reference: a multi-channel stream, the body */
    if (cp->len - cp->id_len < NGX_HTTP_SSE_BLOCK_MIN
        || ngx_http_sse_shares_cap == 0)
    {
        return NULL;
    }

    share = &ngx_http_sse_shares[j];
    share->wire = ngx_http_sse_batch.scratch + cp->offset;
    share->len = cp->len;

    return share;
}


void
ngx_http_sse_unshare(ngx_uint_t from, ngx_uint_t to)
{
    ngx_uint_t  j;

    if (ngx_http_sse_shares_cap == 0) {
        return;
    }

    for (j = from; j < to; j++) {
        if (ngx_http_sse_shares[j].block) {
            ngx_http_sse_block_release(ngx_http_sse_shares[j].block);
            ngx_http_sse_shares[j].block = NULL;
        }
    }
}


ngx_int_t
ngx_http_sse_pull_channel(ngx_http_sse_sub_chan_t *sc)
{
    ngx_int_t                   rc;
    ngx_http_sse_sub_t         *sub = sc->sub;
    ngx_http_sse_zone_t        *zone = sub->zone;
    ngx_http_sse_local_t       *local = sc->local;
    ngx_http_sse_store_read_t   rd;

    rd.local = local;
    rd.from = sc->pos;
    rd.budget = (size_t) -1;    /* the stream's buffer is what bounds it */
    rd.sink = ngx_http_sse_pulled_event;
    rd.data = sc;

    rc = zone->store->read(zone, &rd);

    if (rc == NGX_ERROR || rc == NGX_HTTP_SSE_PULL_GAP || !rd.caught_up) {
        return rc;
    }

    /* caught up: live events reach it through the fan-out again */

    sc->state = NGX_HTTP_SSE_SC_LIVE;
    sub->nbehind--;

    if (--local->nbehind == 0) {
        /* every stream here has what the worker fanned out: history past
         * its limit can go now, not at the next fan-out */
        local->floor = NGX_HTTP_SSE_NONE_BEHIND;
        zone->store->settle(zone, &local, 1);
    }

    return rc;
}


ngx_int_t
ngx_http_sse_pulled_event(void *data, uint64_t seq, u_char *wire, size_t len,
    size_t id_len, uint64_t cum, ngx_msec_t published)
{
    /* history is the store's: a pulled event is copied */
    return ngx_http_sse_sub_append_event((ngx_http_sse_sub_chan_t *) data,
                                         seq, wire, len, id_len, cum,
                                         published, NULL);
}

} // namespace


/*
 * A stream behind on some of its channels takes their next events from
 * history, as many as its buffer takes (sse_max_pending); the rest waits
 * until its socket drains again.  NGX_HTTP_SSE_PULL_END: a deleted or
 * renewed channel is done with; NGX_HTTP_SSE_PULL_GAP: what it still
 * needed is gone.
 */

ngx_int_t
ngx_http_sse_sub_pull(ngx_http_sse_sub_t *sub)
{
    ngx_int_t   rc;
    ngx_uint_t  i;

    for (i = 0; i < sub->nchans; i++) {
        if (sub->chans[i].state != NGX_HTTP_SSE_SC_BEHIND) {
            continue;
        }

        rc = ngx_http_sse_pull_channel(&sub->chans[i]);

        if (rc != NGX_OK) {
            return rc;
        }

        if (sub->chans[i].state == NGX_HTTP_SSE_SC_BEHIND) {
            /* its buffer is full */
            break;
        }
    }

    return NGX_OK;
}
