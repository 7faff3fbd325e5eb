/*
 * The Redis store's read side: what Redis tells of channels reaches the
 * node's zone (docs/redis.md, "The read side").
 *
 *   join      SUBSCRIBE P m:{id} (once per channel and worker) and wait
 *             for Redis' confirmation, then one read script: per channel
 *             its tomb, epoch, last seq and the stream entries the node
 *             lacks; those go into the zone, then the shm store's join
 *             makes the plan.  Without Redis the node's zone answers.
 *   messages  "E ..." events go into the zone at their positions; a hole
 *             is filled from the Redis stream first; "D" deletes.
 *   fills     the read script from the node's last seq on, in rounds of
 *             at most history entries, until the node has every seq a
 *             message announced meanwhile; one at a time per channel.
 *   reconnect every channel this worker has streams of is filled at once
 *             (and a position that went back in Redis gets a new epoch).
 *   leave     UNSUBSCRIBE when the worker's last stream of it leaves.
 *   counts    P s:{id} node -> the node's subscribers of the channel,
 *             P n:{node}: the node is alive; every second.  Each count key
 *             lives a few refresh periods: the nodes that have streams
 *             of the channel rewrite it, prune the fields of dead nodes
 *             and renew its lifetime every few seconds, so that a node
 *             killed with -9 leaves no count behind for good.
 */

#include "ngx_http_sse_store_redis.h"


namespace {

#define NGX_HTTP_SSE_RCHAN_NONE         0
#define NGX_HTTP_SSE_RCHAN_SUBSCRIBING  1
#define NGX_HTTP_SSE_RCHAN_SUBSCRIBED   2

/* the worker's record of a channel it has streams of (or had, until its
 * subscriber count is written) */
typedef struct {
    ngx_str_node_t              sn;         /* the channel id */
    ngx_queue_t                 all;        /* rs->chans_all */
    ngx_http_sse_rstore_t      *rs;

    ngx_uint_t                  refs;       /* streams, joins, a fill */
    ngx_uint_t                  state;      /* NGX_HTTP_SSE_RCHAN_* */
    ngx_queue_t                 waiters;    /* joins awaiting SUBSCRIBE */

    /* the highest position messages announced while a fill ran */
    uint64_t                    want_epoch;
    uint64_t                    want_seq;

    /* where the node was when the fill in flight began */
    uint64_t                    fill_epoch;
    uint64_t                    fill_seq;

    ngx_uint_t                  count_sent; /* NGX_HTTP_SSE_RCHAN_UNSENT */
    time_t                      refreshed;  /* count key last written */

    ngx_queue_t                 fill_link;  /* rs->fill_queue */
    ngx_queue_t                 room_link;  /* rs->room_queue */
    ngx_queue_t                 sub_link;   /* rs->sub_queue */

    unsigned                    fill_queued:1;
    unsigned                    room_queued:1;
    unsigned                    sub_queued:1;
    unsigned                    filling:1;
    unsigned                    fill_again:1;
    unsigned                    bump:1;     /* check the epoch */
    unsigned                    dirty:1;    /* count to write */
} ngx_http_sse_rchan_t;

#define NGX_HTTP_SSE_RCHAN_UNSENT  ((ngx_uint_t) -1)


typedef struct ngx_http_sse_rjoin_s  ngx_http_sse_rjoin_t;

typedef struct {
    ngx_queue_t                 link;       /* rc->waiters */
    ngx_http_sse_rjoin_t       *join;
    ngx_uint_t                  queued;
} ngx_http_sse_rwait_t;

struct ngx_http_sse_rjoin_s {
    ngx_queue_t                 link;       /* rs->joins */
    ngx_http_sse_rstore_t      *rs;
    ngx_http_sse_store_join_t  *op;         /* NULL: cancelled */
    ngx_uint_t                  awaiting;
    ngx_uint_t                  nchans;
    unsigned                    reading:1;
    unsigned                    inline_done:1;
    unsigned                    starting:1;
    ngx_http_sse_rchan_t       *chans[sse::max_channels_per_stream];
    u_char                      holds[sse::max_channels_per_stream];

    /* the caller's completion while the shm store's join runs */
    ngx_http_sse_store_join_t  *joining;
    ngx_http_sse_store_handler_pt  handler;
    void                       *data;
    ngx_http_sse_rwait_t        waits[sse::max_channels_per_stream];
};


/* a pub/sub message that parsed: its events are still in the payload */
typedef struct {
    uint64_t                    epoch;
    uint64_t                    first;
    uint64_t                    n;
    uint64_t                    ms;
    u_char                     *events;
    unsigned                    deleted:1;
} ngx_http_sse_rmsg_t;

/* events of a message put into the zone per lock */
#define NGX_HTTP_SSE_INSERT_ROUND  256


/* a read script's request: the commands' strings, kept until it is sent */
typedef struct {
    const char                **argv;
    size_t                     *argvlen;
    u_char                     *buf;
    int                         argc;
} ngx_http_sse_rargs_t;


void ngx_http_sse_rsync_message(ngx_http_sse_redis_t *redis,
    ngx_str_t *channel, ngx_str_t *payload, void *data);
void ngx_http_sse_rsync_reconnected(ngx_http_sse_redis_t *redis, void *data);
void ngx_http_sse_rsync_tick(ngx_event_t *ev);
void ngx_http_sse_rsync_counts(ngx_http_sse_rstore_t *rs);
ngx_int_t ngx_http_sse_rsync_write_counts(ngx_http_sse_rstore_t *rs,
    ngx_http_sse_rchan_t **chans, ngx_uint_t *subs, ngx_uint_t n);
ngx_uint_t ngx_http_sse_rsync_node_count(ngx_http_sse_rstore_t *rs,
    ngx_http_sse_rchan_t *rc);
void ngx_http_sse_rsync_ignore(ngx_http_sse_redis_t *redis,
    redisReply *reply, void *data);

ngx_http_sse_rchan_t *ngx_http_sse_rchan_get(ngx_http_sse_rstore_t *rs,
    sse::Slice id);
ngx_http_sse_rchan_t *ngx_http_sse_rchan_find(ngx_http_sse_rstore_t *rs,
    u_char *id, size_t len);
void ngx_http_sse_rchan_release(ngx_http_sse_rchan_t *rc);
void ngx_http_sse_rchan_free(ngx_http_sse_rchan_t *rc);
void ngx_http_sse_rchan_subscribe(ngx_http_sse_rchan_t *rc);
void ngx_http_sse_rchan_subscribe_send(ngx_http_sse_rchan_t *rc);
void ngx_http_sse_rchan_subscribe_next(ngx_http_sse_rstore_t *rs);
void ngx_http_sse_rchan_subscribed(ngx_http_sse_redis_t *redis,
    redisReply *reply, void *data);

void ngx_http_sse_rjoin_step(ngx_http_sse_rjoin_t *rj);
void ngx_http_sse_rjoin_read_reply(ngx_http_sse_redis_t *redis,
    redisReply *reply, void *data);
void ngx_http_sse_rjoin_finish(ngx_http_sse_rjoin_t *rj, ngx_int_t rc);
void ngx_http_sse_rjoin_free(ngx_http_sse_rjoin_t *rj);
void ngx_http_sse_rjoin_unhold(ngx_http_sse_rjoin_t *rj);
void ngx_http_sse_rjoin_joined(void *data);

void ngx_http_sse_fill(ngx_http_sse_rchan_t *rc);
void ngx_http_sse_await_room(ngx_http_sse_rchan_t *rc);
void ngx_http_sse_retry_room(ngx_http_sse_rstore_t *rs);
void ngx_http_sse_fill_reply(ngx_http_sse_redis_t *redis, redisReply *reply,
    void *data);

ngx_int_t ngx_http_sse_read_args(ngx_http_sse_rstore_t *rs,
    ngx_http_sse_rchan_t **chans, sse::Position *client, ngx_uint_t n,
    ngx_uint_t bump, ngx_http_sse_rargs_t *a);
ngx_int_t ngx_http_sse_read_apply(ngx_http_sse_rstore_t *rs,
    ngx_http_sse_rchan_t *rc, redisReply *r, ngx_uint_t *more);
ngx_int_t ngx_http_sse_parse_u64(u_char **pp, u_char *end, uint64_t max,
    uint64_t *v);
ngx_int_t ngx_http_sse_parse_message(ngx_str_t *payload,
    ngx_http_sse_rmsg_t *msg);
u_char *ngx_http_sse_message_events(u_char *p, uint64_t first, uint64_t ms,
    ngx_uint_t n, ngx_http_sse_insert_event_t *events);
void ngx_http_sse_rsync_complain(ngx_http_sse_rstore_t *rs,
    const char *what);
ngx_uint_t ngx_http_sse_history(ngx_http_sse_rstore_t *rs);


/*
 * The read script.  KEYS: per channel P c:, P h:, P x:.  ARGV: history
 * (entries per channel at most), "1" to check the epoch, then per
 * channel the client's position, the node's (epoch "" when none) and the
 * oldest seq the node holds.  Per channel: {"x", tomb epoch} deleted;
 * {"n"} unknown to Redis; {"e", epoch, last seq, k, then per entry: entry
 * id, type, data, ms}: first k entries the client needs from before what
 * the node holds, then those after the node's last seq.
 * Checking the epoch: when the node holds a later position than Redis (a
 * higher epoch: Redis went back to before a DELETE and publish, or a
 * restart empty; or the same epoch and a higher seq), the channel gets a
 * new epoch above both, as a publish through this node would give it;
 * otherwise the node would ignore every message of the older epoch that
 * other nodes publish.
 * Numbers go out with %.0f: Lua's tostring() writes 1e+15.
 */

const char  ngx_http_sse_read_script[] =
    "local hist = tonumber(ARGV[1]) "
    "local bump = ARGV[2] == '1' "
    "local function num(x) return string.format('%.0f', x) end "
    "local function take(r, h, a, b) "
    "  local ents = redis.call('XRANGE', h, num(a) .. '-0', b, "
    "    'COUNT', hist) "
    "  for _, en in ipairs(ents) do "
    "    local t, d, m = '', '', '0' "
    "    local f = en[2] "
    "    for k = 1, #f - 1, 2 do "
    "      if f[k] == 't' then t = f[k+1] "
    "      elseif f[k] == 'd' then d = f[k+1] "
    "      elseif f[k] == 'm' then m = f[k+1] end "
    "    end "
    "    r[#r+1] = en[1] r[#r+1] = t r[#r+1] = d r[#r+1] = m "
    "  end "
    "  return #ents "
    "end "
    "local out = {} "
    "for i = 0, #KEYS / 3 - 1 do "
    "  local c, h, x = KEYS[3*i+1], KEYS[3*i+2], KEYS[3*i+3] "
    "  local ce, cs = ARGV[5*i+3], tonumber(ARGV[5*i+4]) or 0 "
    "  local le, ll = ARGV[5*i+5], tonumber(ARGV[5*i+6]) or 0 "
    "  local lf = tonumber(ARGV[5*i+7]) or 0 "
    "  local tomb = redis.call('GET', x) "
    "  if tomb then "
    "    out[i+1] = {'x', tomb} "
    "  else "
    "    local st = redis.call('HMGET', c, 'e', 's') "
    "    local e, s = st[1], tonumber(st[2] or '0') or 0 "
    "    if not e then "
    "      out[i+1] = {'n'} "
    "    else "
    "      local ln, en = tonumber(le), tonumber(e) "
    "      if bump and ln and en "
    "         and (ln > en or (ln == en and ll > s)) then "
    "        local t = redis.call('TIME') "
    "        local ne = t[1] .. string.format('%06d', tonumber(t[2])) "
    "        if tonumber(ne) <= math.max(ln, en) then "
    "          ne = num(math.max(ln, en) + 1) "
    "        end "
    "        redis.call('HSET', c, 'e', ne, 's', 0) "
    "        redis.call('DEL', h) "
    "        e = ne "
    "        s = 0 "
    "      end "
    "      local r = {'e', e, num(s), '0'} "
    "      local low = s - hist + 1 "
    "      if low < 1 then low = 1 end "
    "      if ce == e and le == e and cs + 1 < lf then "
    "        local a = cs + 1 "
    "        if a < low then a = low end "
    "        if a < lf then "
    "          r[4] = num(take(r, h, a, num(lf - 1) .. '-0')) "
    "        end "
    "      end "
    "      local from = low "
    "      if ce == e and cs + 1 > from then from = cs + 1 end "
    "      if le == e and ll + 1 > from then from = ll + 1 end "
    "      if from <= s then take(r, h, from, '+') end "
    "      out[i+1] = r "
    "    end "
    "  end "
    "end "
    "return out";


/*
 * The counts script.  KEYS: P s:{id} per channel.  ARGV: the prefix, the
 * node id, the keys' lifetime (ms), then per key the node's count ('0':
 * none).  Each key gets the node's count, loses the fields of nodes whose
 * P n:{node} is gone (killed, or cut off for more than 3 s), and lives
 * the lifetime from now on: as long as some live node has streams of the
 * channel, it is renewed; after the last one, it goes with the fields of
 * the dead.  A key of another type is left alone (a publish names it).
 */

const char  ngx_http_sse_counts_script[] =
    "local prefix, node, ttl = ARGV[1], ARGV[2], ARGV[3] "
    "for i = 1, #KEYS do "
    "  local k, c = KEYS[i], ARGV[3 + i] "
    "  local t = redis.call('TYPE', k)['ok'] "
    "  if t == 'hash' or t == 'none' then "
    "    if c == '0' then redis.call('HDEL', k, node) "
    "    else redis.call('HSET', k, node, c) end "
    "    local f = redis.call('HGETALL', k) "
    "    for j = 1, #f - 1, 2 do "
    "      if f[j] ~= node "
    "         and redis.call('EXISTS', prefix .. 'n:' .. f[j]) == 0 then "
    "        redis.call('HDEL', k, f[j]) "
    "      end "
    "    end "
    "    redis.call('PEXPIRE', k, ttl) "
    "  end "
    "end "
    "return 0";


/* fills awaiting Redis at once per worker (a reconnect fills every
 * channel: thousands of commands would overflow the connection's queue),
 * and subscriber counts written per tick (one script) */
#define NGX_HTTP_SSE_FILLS_INFLIGHT  64
#define NGX_HTTP_SSE_COUNTS_PER_TICK 1024

/*
 * A count key of a channel this worker has streams of is rewritten every
 * 5 seconds (with more than 5120 such channels, as often as 1024 a
 * second allow), and lives three such periods: a dead node's counts are
 * pruned within 3 s (its liveness key) + a period by a live node that
 * has streams of the channel, or go with the key three periods after the
 * last live node's last write.
 */
#define NGX_HTTP_SSE_COUNTS_REFRESH  5
#define NGX_HTTP_SSE_COUNTS_LIVES    3

/* SUBSCRIBEs awaiting Redis at once per worker: joins of thousands of
 * new channels in one turn of the event loop (one client's streams)
 * would overflow the pub/sub connection's queue, which starts it over */
#define NGX_HTTP_SSE_SUBSCRIBES_INFLIGHT  256

/* epochs, seqs and times Redis sends are below 2^53 (Lua's numbers) */
#define NGX_HTTP_SSE_MAX_NUMBER  ((uint64_t) 1 << 53)

} // namespace


/* this worker's Redis store of a zone starts listening */

ngx_int_t
ngx_http_sse_rsync_init(ngx_http_sse_rstore_t *rs)
{
    ngx_rbtree_init(&rs->chans, &rs->chans_sentinel,
                    ngx_str_rbtree_insert_value);
    ngx_queue_init(&rs->chans_all);
    ngx_queue_init(&rs->joins);
    ngx_queue_init(&rs->fill_queue);
    ngx_queue_init(&rs->room_queue);
    ngx_queue_init(&rs->sub_queue);

    rs->tick.handler = ngx_http_sse_rsync_tick;
    rs->tick.data = rs;
    rs->tick.log = ngx_cycle->log;
    rs->tick.cancelable = 1;

    rs->counts_ttl = NGX_HTTP_SSE_COUNTS_LIVES * NGX_HTTP_SSE_COUNTS_REFRESH
                     * 1000;

    ngx_add_timer(&rs->tick, 1000);

    ngx_http_sse_redis_set_handlers(rs->redis, ngx_http_sse_rsync_message,
                                    ngx_http_sse_rsync_reconnected, rs);

    return NGX_OK;
}


/* the worker exits: what this side of the store holds is given back */

void
ngx_http_sse_rsync_exit(ngx_http_sse_rstore_t *rs)
{
    ngx_queue_t           *q;
    ngx_http_sse_rjoin_t  *rj;
    ngx_http_sse_rchan_t  *rc;

    if (rs->tick.timer_set) {
        ngx_del_timer(&rs->tick);
    }

    while (!ngx_queue_empty(&rs->joins)) {
        q = ngx_queue_head(&rs->joins);
        rj = ngx_queue_data(q, ngx_http_sse_rjoin_t, link);
        ngx_http_sse_rjoin_free(rj);
    }

    while (!ngx_queue_empty(&rs->chans_all)) {
        q = ngx_queue_head(&rs->chans_all);
        rc = ngx_queue_data(q, ngx_http_sse_rchan_t, all);
        ngx_http_sse_rchan_free(rc);
    }

    if (rs->events) {
        ngx_free(rs->events);
        rs->events = NULL;
    }
}


/*
 * A stream joins its channels.  Each is subscribed first (the stream
 * counts as subscribed once its headers are sent), then one script reads
 * what the node lacks; the shm store's join then plans from the zone.
 */

ngx_int_t
ngx_http_sse_rsync_join(ngx_http_sse_zone_t *zone,
    ngx_http_sse_store_join_t *op)
{
    ngx_uint_t              i;
    sse::Slice              id;
    ngx_http_sse_rjoin_t   *rj;
    ngx_http_sse_rchan_t   *rc;
    ngx_http_sse_rstore_t  *rs;

    rs = ngx_http_sse_rstore_get(zone);

    if (rs == NULL || op->nchans > sse::max_channels_per_stream) {
        return ngx_http_sse_shm_store.join(zone, op);
    }

    rj = (ngx_http_sse_rjoin_t *) ngx_calloc(sizeof(ngx_http_sse_rjoin_t),
                                             ngx_cycle->log);
    if (rj == NULL) {
        op->rc = NGX_ERROR;
        op->handler(op->data);
        return NGX_OK;
    }

    rj->rs = rs;
    rj->op = op;
    rj->starting = 1;
    rj->awaiting = 1;       /* until every SUBSCRIBE is sent */

    ngx_queue_insert_tail(&rs->joins, &rj->link);

    for (i = 0; i < op->nchans; i++) {
        id.data = op->ids[i].data;
        id.len = op->ids[i].len;

        rc = ngx_http_sse_rchan_get(rs, id);
        if (rc == NULL) {
            rj->awaiting--;
            ngx_http_sse_rjoin_finish(rj, NGX_ERROR);
            ngx_http_sse_rjoin_free(rj);
            return NGX_OK;
        }

        rj->chans[rj->nchans++] = rc;
        rj->waits[i].join = rj;

        if (rc->state == NGX_HTTP_SSE_RCHAN_SUBSCRIBED) {
            continue;
        }

        rj->awaiting++;
        rj->waits[i].queued = 1;
        ngx_queue_insert_tail(&rc->waiters, &rj->waits[i].link);

        if (rc->state == NGX_HTTP_SSE_RCHAN_NONE) {
            rc->state = NGX_HTTP_SSE_RCHAN_SUBSCRIBING;
            ngx_http_sse_rchan_subscribe(rc);
        }
    }

    if (--rj->awaiting == 0) {
        ngx_http_sse_rjoin_step(rj);
    }

    rj->starting = 0;

    if (rj->inline_done && !rj->reading) {
        ngx_http_sse_rjoin_free(rj);
        return NGX_OK;
    }

    return NGX_AGAIN;
}


void
ngx_http_sse_rsync_cancel(ngx_http_sse_zone_t *zone, void *op)
{
    ngx_uint_t              i;
    ngx_queue_t            *q;
    ngx_http_sse_rjoin_t   *rj;
    ngx_http_sse_rstore_t  *rs;

    rs = ngx_http_sse_rstore_get(zone);
    if (rs == NULL) {
        return;
    }

    for (q = ngx_queue_head(&rs->joins);
         q != ngx_queue_sentinel(&rs->joins);
         q = ngx_queue_next(q))
    {
        rj = ngx_queue_data(q, ngx_http_sse_rjoin_t, link);

        if ((void *) rj->op != op) {
            continue;
        }

        rj->op = NULL;

        ngx_http_sse_rjoin_unhold(rj);

        for (i = 0; i < rj->nchans; i++) {
            if (rj->waits[i].queued) {
                ngx_queue_remove(&rj->waits[i].link);
                rj->waits[i].queued = 0;
            }

            ngx_http_sse_rchan_release(rj->chans[i]);
        }

        rj->nchans = 0;

        if (!rj->reading) {
            ngx_http_sse_rjoin_free(rj);
        }

        /* else its reply frees it */
        return;
    }
}


/* a stream leaves: the worker's last one of a channel unsubscribes */

void
ngx_http_sse_rsync_leave(ngx_http_sse_zone_t *zone, ngx_http_sse_sub_t *sub)
{
    ngx_uint_t               i, n, subs;
    ngx_http_sse_rchan_t    *rc;
    ngx_http_sse_rchan_t    *chans[sse::max_channels_per_stream];
    ngx_http_sse_rstore_t   *rs;
    ngx_http_sse_channel_t  *ch;

    rs = ngx_http_sse_rstore_get(zone);

    n = 0;

    if (rs && sub->counted) {
        /* the channels' ids, while the stream still holds them */
        for (i = 0; i < sub->nchans && n < sse::max_channels_per_stream; i++)
        {
            if (sub->chans[i].state == NGX_HTTP_SSE_SC_OUT
                || sub->chans[i].local == NULL)
            {
                continue;
            }

            ch = sub->chans[i].local->channel;

            rc = ngx_http_sse_rchan_find(rs, ch->id, ch->id_len);
            if (rc) {
                chans[n++] = rc;
            }
        }
    }

    ngx_http_sse_shm_store.leave(zone, sub);
    for (i = 0; i < n; i++) {
        chans[i]->dirty = 1;
        ngx_http_sse_rchan_release(chans[i]);

        /*
         * A worker shutting down (a reload) ticks no more, and its
         * streams end now: the counts go at once, or the node's count
         * of the channel would stay in Redis for good (the next workers
         * write only the channels their own streams change).
         */
        if ((ngx_exiting || ngx_quit)
            && ngx_http_sse_redis_is_up(rs->redis))
        {
            subs = ngx_http_sse_rsync_node_count(rs, chans[i]);

            if (subs == chans[i]->count_sent
                || ngx_http_sse_rsync_write_counts(rs, &chans[i], &subs, 1)
                   == NGX_OK)
            {
                chans[i]->dirty = 0;
            }
        }
    }

    if (n && (ngx_exiting || ngx_quit) && rs->tick.cancelable) {
        /*
         * ... and the worker waits for them to be written and answered,
         * a second at most: without a timer that holds it, it would exit
         * before its posted write event sends them.
         */
        if (rs->tick.timer_set) {
            ngx_del_timer(&rs->tick);
        }

        rs->tick.cancelable = 0;
        rs->lingered = 0;
        ngx_add_timer(&rs->tick, 100);
    }
}


namespace {

/* ---- channels ---------------------------------------------------------- */

ngx_http_sse_rchan_t *
ngx_http_sse_rchan_find(ngx_http_sse_rstore_t *rs, u_char *id, size_t len)
{
    ngx_str_t  s;

    s.data = id;
    s.len = len;

    return (ngx_http_sse_rchan_t *)
               ngx_str_rbtree_lookup(&rs->chans, &s,
                                     ngx_crc32_long(id, len));
}


ngx_http_sse_rchan_t *
ngx_http_sse_rchan_get(ngx_http_sse_rstore_t *rs, sse::Slice id)
{
    ngx_http_sse_rchan_t  *rc;

    rc = ngx_http_sse_rchan_find(rs, (u_char *) id.data, id.len);

    if (rc == NULL) {
        rc = (ngx_http_sse_rchan_t *)
                 ngx_calloc(sizeof(ngx_http_sse_rchan_t) + id.len,
                            ngx_cycle->log);
        if (rc == NULL) {
            return NULL;
        }

        rc->rs = rs;
        rc->sn.str.data = (u_char *) (rc + 1);
        rc->sn.str.len = id.len;
        ngx_memcpy(rc->sn.str.data, id.data, id.len);
        rc->sn.node.key = ngx_crc32_long(rc->sn.str.data, id.len);
        rc->count_sent = NGX_HTTP_SSE_RCHAN_UNSENT;
        ngx_queue_init(&rc->waiters);

        ngx_rbtree_insert(&rs->chans, &rc->sn.node);
        ngx_queue_insert_tail(&rs->chans_all, &rc->all);
    }

    rc->refs++;
    rc->dirty = 1;

    return rc;
}


/*
 * One holder less.  The last one unsubscribes; the record stays until
 * the tick has written the node's count of the channel.
 */

void
ngx_http_sse_rchan_release(ngx_http_sse_rchan_t *rc)
{
    u_char     *p;
    ngx_str_t   name;
    ngx_str_t  *prefix = &rc->rs->redis->conf->prefix;

    if (rc->refs == 0 || --rc->refs) {
        return;
    }

    if (rc->state == NGX_HTTP_SSE_RCHAN_NONE) {
        return;
    }

    /* joins waiting for it hold a ref: none is left */
    rc->state = NGX_HTTP_SSE_RCHAN_NONE;

    name.len = prefix->len + 2 + rc->sn.str.len;
    name.data = (u_char *) ngx_alloc(name.len, ngx_cycle->log);
    if (name.data == NULL) {
        /* it stays subscribed: messages for it are ignored */
        return;
    }

    p = ngx_cpymem(name.data, prefix->data, prefix->len);
    p = ngx_cpymem(p, "m:", 2);
    ngx_memcpy(p, rc->sn.str.data, rc->sn.str.len);

    (void) ngx_http_sse_redis_unsubscribe(rc->rs->redis, &name);

    ngx_free(name.data);
}


void
ngx_http_sse_rchan_free(ngx_http_sse_rchan_t *rc)
{
    ngx_rbtree_delete(&rc->rs->chans, &rc->sn.node);
    ngx_queue_remove(&rc->all);
    ngx_free(rc);
}


/*
 * A channel's SUBSCRIBE, now or in its turn: at most
 * NGX_HTTP_SSE_SUBSCRIBES_INFLIGHT of them await Redis, each answered
 * one sends the next.  The SUBSCRIBE holds the channel (a reference)
 * until it is answered: the record outlives a join that let go meanwhile.
 */

void
ngx_http_sse_rchan_subscribe(ngx_http_sse_rchan_t *rc)
{
    ngx_http_sse_rstore_t  *rs = rc->rs;

    rc->refs++;

    if (rs->nsubscribing >= NGX_HTTP_SSE_SUBSCRIBES_INFLIGHT
        || !ngx_queue_empty(&rs->sub_queue))
    {
        rc->sub_queued = 1;
        ngx_queue_insert_tail(&rs->sub_queue, &rc->sub_link);
        return;
    }

    ngx_http_sse_rchan_subscribe_send(rc);
}


void
ngx_http_sse_rchan_subscribe_send(ngx_http_sse_rchan_t *rc)
{
    u_char                 *p;
    ngx_str_t               name;
    ngx_http_sse_rstore_t  *rs = rc->rs;
    ngx_str_t              *prefix = &rs->redis->conf->prefix;

    rs->nsubscribing++;

    name.len = prefix->len + 2 + rc->sn.str.len;
    name.data = (u_char *) ngx_alloc(name.len, ngx_cycle->log);

    if (name.data == NULL) {
        ngx_http_sse_rchan_subscribed(rs->redis, NULL, rc);
        return;
    }

    p = ngx_cpymem(name.data, prefix->data, prefix->len);
    p = ngx_cpymem(p, "m:", 2);
    ngx_memcpy(p, rc->sn.str.data, rc->sn.str.len);

    if (ngx_http_sse_redis_subscribe(rs->redis, &name,
                                     ngx_http_sse_rchan_subscribed, rc)
        == NGX_DECLINED)
    {
        /* in the set already (a leave's UNSUBSCRIBE is not through yet:
         * it was never taken out) */
        ngx_http_sse_rchan_subscribed(rs->redis, NULL, rc);
    }

    ngx_free(name.data);
}


/* the channels waiting for their turn, as far as the bound allows; a
 * SUBSCRIBE answered at once (Redis is not up) does not recurse here */

void
ngx_http_sse_rchan_subscribe_next(ngx_http_sse_rstore_t *rs)
{
    ngx_queue_t           *q;
    ngx_http_sse_rchan_t  *rc;

    if (rs->sub_draining) {
        return;
    }

    rs->sub_draining = 1;

    while (rs->nsubscribing < NGX_HTTP_SSE_SUBSCRIBES_INFLIGHT
           && !ngx_queue_empty(&rs->sub_queue))
    {
        q = ngx_queue_head(&rs->sub_queue);
        ngx_queue_remove(q);

        rc = ngx_queue_data(q, ngx_http_sse_rchan_t, sub_link);
        rc->sub_queued = 0;

        if (rc->refs == 1) {
            /* its joins let go meanwhile: nothing to subscribe */
            ngx_http_sse_rchan_release(rc);
            continue;
        }

        ngx_http_sse_rchan_subscribe_send(rc);
    }

    rs->sub_draining = 0;
}


/* Redis confirmed the SUBSCRIBE (or cannot now): the joins waiting go on */

void
ngx_http_sse_rchan_subscribed(ngx_http_sse_redis_t *redis, redisReply *reply,
    void *data)
{
    ngx_queue_t            *q;
    ngx_http_sse_rjoin_t   *rj;
    ngx_http_sse_rwait_t   *w;
    ngx_http_sse_rchan_t   *rc = (ngx_http_sse_rchan_t *) data;
    ngx_http_sse_rstore_t  *rs = rc->rs;

    rs->nsubscribing--;

    if (rc->state == NGX_HTTP_SSE_RCHAN_SUBSCRIBING) {
        /* without a confirmation it is in the set all the same: the
         * reconnect subscribes it again and fills it */
        rc->state = NGX_HTTP_SSE_RCHAN_SUBSCRIBED;
    }

    while (!ngx_queue_empty(&rc->waiters)) {
        q = ngx_queue_head(&rc->waiters);
        ngx_queue_remove(q);

        w = ngx_queue_data(q, ngx_http_sse_rwait_t, link);
        w->queued = 0;
        rj = w->join;

        if (--rj->awaiting == 0) {
            ngx_http_sse_rjoin_step(rj);
        }
    }

    /* the SUBSCRIBE's hold */
    ngx_http_sse_rchan_release(rc);

    ngx_http_sse_rchan_subscribe_next(rs);
}


/* ---- joins --------------------------------------------------------------- */

/* every channel is subscribed: read what the node lacks */

void
ngx_http_sse_rjoin_step(ngx_http_sse_rjoin_t *rj)
{
    ngx_uint_t                  i;
    sse::Position               client[sse::max_channels_per_stream];
    ngx_http_sse_rargs_t        a;
    ngx_http_sse_store_join_t  *op = rj->op;
    ngx_http_sse_rstore_t      *rs = rj->rs;

    if (!ngx_http_sse_redis_is_up(rs->redis)) {
        /* the node's zone answers; the reconnect fills the rest */
        ngx_http_sse_rjoin_finish(rj, NGX_OK);
        return;
    }

    for (i = 0; i < rj->nchans; i++) {
        if (op->positions && op->have_id > 0) {
            client[i] = op->positions[i];

        } else {
            client[i].epoch = 0;
            client[i].seq = 0;
        }
    }

    if (ngx_http_sse_read_args(rs, rj->chans, client, rj->nchans, 0, &a)
        != NGX_OK)
    {
        ngx_http_sse_rjoin_finish(rj, NGX_OK);
        return;
    }

    /*
     * While the read is on its way, messages of its channels wait as
     * they do for a fill: inserted first, a later seq would leave the
     * read's older events no place in the zone.
     */

    for (i = 0; i < rj->nchans; i++) {
        if (!rj->chans[i]->filling) {
            rj->chans[i]->filling = 1;
            rj->holds[i] = 1;
        }
    }

    rj->reading = 1;

    /* refused (the connection went down, too many pending): the reply
     * handler runs at once with no reply, and the zone answers */
    (void) ngx_http_sse_redis_command(rs->redis, a.argc, a.argv, a.argvlen,
                                      ngx_http_sse_rjoin_read_reply, rj);

    ngx_free(a.argv);
}


void
ngx_http_sse_rjoin_read_reply(ngx_http_sse_redis_t *redis, redisReply *reply,
    void *data)
{
    ngx_uint_t              i, more;
    ngx_int_t               rc;
    ngx_http_sse_rjoin_t   *rj = (ngx_http_sse_rjoin_t *) data;
    ngx_http_sse_rstore_t  *rs = rj->rs;

    rj->reading = 0;

    if (rj->op == NULL) {
        /* cancelled meanwhile: the channels were let go then */
        ngx_http_sse_rjoin_free(rj);
        return;
    }

    for (i = 0; i < rj->nchans; i++) {
        if (rj->holds[i]) {
            rj->chans[i]->filling = 0;
        }
    }

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != rj->nchans)
    {
        if (reply) {
            ngx_http_sse_redis_log_reply(&redis->commands,
                                         "answered the join's read with",
                                         reply);
        }

        /* no answer in time: what the node holds is replayed */
        ngx_http_sse_rjoin_finish(rj, NGX_OK);
        return;
    }

    for (i = 0; i < rj->nchans; i++) {
        more = 0;
        rc = ngx_http_sse_read_apply(rs, rj->chans[i], reply->element[i],
                                     &more);

        if (rc == NGX_HTTP_SSE_DELETED) {
            ngx_http_sse_rjoin_finish(rj, NGX_HTTP_SSE_DELETED);
            return;
        }

        if (rc == NGX_HTTP_SSE_ZONE_FULL) {
            /* the stream waits for what the zone had no room for */
            ngx_http_sse_await_room(rj->chans[i]);

        } else if (more || (rj->holds[i] && rj->chans[i]->fill_again)) {
            rj->chans[i]->fill_again = 0;
            ngx_http_sse_fill(rj->chans[i]);
        }

        rj->holds[i] = 0;
    }

    ngx_http_sse_rjoin_finish(rj, NGX_OK);
}


/*
 * The join's answer: the shm store's join on what the zone now holds
 * (rc NGX_OK), or rc.  A join that fails holds none of its channels.
 */

void
ngx_http_sse_rjoin_finish(ngx_http_sse_rjoin_t *rj, ngx_int_t rc)
{
    ngx_uint_t                  i;
    ngx_http_sse_store_join_t  *op = rj->op;
    ngx_http_sse_rstore_t      *rs = rj->rs;

    rj->inline_done = 1;

    ngx_http_sse_rjoin_unhold(rj);

    if (op == NULL) {
        return;
    }

    rj->op = NULL;

    if (rc == NGX_OK) {
        /*
         * The shm store's join completes op: its handler may end the
         * request, op with it, so the result is taken on the way
         * (ngx_http_sse_rjoin_joined()), never read from op after.
         */

        rj->handler = op->handler;
        rj->data = op->data;
        rj->joining = op;

        op->handler = ngx_http_sse_rjoin_joined;
        op->data = rj;

        (void) ngx_http_sse_shm_store.join(rs->zone, op);

        if (!rj->starting) {
            ngx_http_sse_rjoin_free(rj);
        }

        return;
    }

    for (i = 0; i < rj->nchans; i++) {
        ngx_http_sse_rchan_release(rj->chans[i]);
    }

    rj->nchans = 0;

    if (!rj->starting) {
        ngx_http_sse_rjoin_free(rj);
    }

    op->rc = rc;
    op->handler(op->data);
}


/* the shm store's answer to the join, on its way to the caller's */

void
ngx_http_sse_rjoin_joined(void *data)
{
    ngx_uint_t                  i;
    ngx_http_sse_rjoin_t       *rj = (ngx_http_sse_rjoin_t *) data;
    ngx_http_sse_store_join_t  *op = rj->joining;

    op->handler = rj->handler;
    op->data = rj->data;
    rj->joining = NULL;

    if (op->rc != NGX_OK) {
        /* the stream joined none of them */
        for (i = 0; i < rj->nchans; i++) {
            ngx_http_sse_rchan_release(rj->chans[i]);
        }
    }

    rj->nchans = 0;

    op->handler(op->data);
}


/* the read is over (or given up): held channels take messages again,
 * after a fill of what came meanwhile */

void
ngx_http_sse_rjoin_unhold(ngx_http_sse_rjoin_t *rj)
{
    ngx_uint_t             i;
    ngx_http_sse_rchan_t  *rc;

    for (i = 0; i < rj->nchans; i++) {
        if (!rj->holds[i]) {
            continue;
        }

        rc = rj->chans[i];
        rj->holds[i] = 0;
        rc->filling = 0;

        if (rc->fill_again) {
            rc->fill_again = 0;
            ngx_http_sse_fill(rc);
        }
    }
}


void
ngx_http_sse_rjoin_free(ngx_http_sse_rjoin_t *rj)
{
    if (rj->link.next) {
        ngx_queue_remove(&rj->link);
        rj->link.next = NULL;
    }

    ngx_free(rj);
}


/* ---- fills --------------------------------------------------------------- */

/*
 * The node lacks seqs of a channel: the read script from the node's last
 * seq on.  One at a time per channel: what messages announce meanwhile
 * is remembered, and the fill goes on until the node has it.
 */

void
ngx_http_sse_fill(ngx_http_sse_rchan_t *rc)
{
    ngx_uint_t              subs;
    sse::Slice              id;
    sse::Position           client, pos;
    ngx_http_sse_rargs_t    a;
    ngx_http_sse_rchan_t   *chans[1];
    ngx_http_sse_rstore_t  *rs = rc->rs;

    if (rc->filling) {
        rc->fill_again = 1;
        return;
    }

    if (!ngx_http_sse_redis_is_up(rs->redis)) {
        /* the reconnect fills every channel */
        return;
    }

    if (rs->nfills >= NGX_HTTP_SSE_FILLS_INFLIGHT) {
        /* its turn comes when one of those is answered */
        if (!rc->fill_queued) {
            rc->fill_queued = 1;
            rc->refs++;
            ngx_queue_insert_tail(&rs->fill_queue, &rc->fill_link);
        }

        return;
    }

    chans[0] = rc;
    client.epoch = 0;
    client.seq = 0;

    if (ngx_http_sse_read_args(rs, chans, &client, 1, rc->bump, &a)
        != NGX_OK)
    {
        return;
    }

    id.data = rc->sn.str.data;
    id.len = rc->sn.str.len;

    if (ngx_http_sse_shm_position(rs->zone, id, &pos, NULL, &subs) != NGX_OK) {
        pos.epoch = 0;
        pos.seq = 0;
    }

    rc->fill_epoch = pos.epoch;
    rc->fill_seq = pos.seq;
    rs->nfills++;
    rc->filling = 1;
    rc->fill_again = 0;
    rc->bump = 0;
    rc->refs++;

    (void) ngx_http_sse_redis_command(rs->redis, a.argc, a.argv, a.argvlen,
                                      ngx_http_sse_fill_reply, rc);

    ngx_free(a.argv);
}


/*
 * The node's zone had no room for what Redis holds of a channel (channels
 * that subscribers hold fill it, nothing is left to evict): the channel
 * waits on rs->room_queue, and the tick fills it again each second while
 * its streams are here, however long until the channel's next message (a
 * chat answer's last token has none).  One queue entry per channel, one
 * fill per channel per second at most.
 */

void
ngx_http_sse_await_room(ngx_http_sse_rchan_t *rc)
{
    if (rc->room_queued) {
        return;
    }

    rc->room_queued = 1;
    rc->refs++;
    ngx_queue_insert_tail(&rc->rs->room_queue, &rc->room_link);
}


void
ngx_http_sse_retry_room(ngx_http_sse_rstore_t *rs)
{
    ngx_queue_t            queue, *q;
    ngx_http_sse_rchan_t  *rc;

    if (ngx_queue_empty(&rs->room_queue)) {
        return;
    }

    /* taken whole: a fill that finds no room again queues for next time */

    ngx_queue_init(&queue);
    ngx_queue_add(&queue, &rs->room_queue);
    ngx_queue_init(&rs->room_queue);

    while (!ngx_queue_empty(&queue)) {
        q = ngx_queue_head(&queue);
        ngx_queue_remove(q);

        rc = ngx_queue_data(q, ngx_http_sse_rchan_t, room_link);
        rc->room_queued = 0;

        if (rc->refs > 1) {
            ngx_http_sse_fill(rc);
        }

        ngx_http_sse_rchan_release(rc);
    }
}


void
ngx_http_sse_fill_reply(ngx_http_sse_redis_t *redis, redisReply *reply,
    void *data)
{
    ngx_int_t              rc_apply;
    ngx_uint_t             more, again, asked;
    sse::Position          pos;
    ngx_uint_t             subs;
    sse::Slice             id;
    ngx_queue_t           *q;
    ngx_http_sse_rchan_t  *next;
    ngx_http_sse_rchan_t  *rc = (ngx_http_sse_rchan_t *) data;
    ngx_http_sse_rstore_t *rs = rc->rs;

    /*
     * Something asked for a fill while this one was in flight: a message
     * held back (its events may be published after this read ran in
     * Redis, so its answer need not hold them), or a reconnect (the
     * messages lost with the connection).  Asked for, the fill is made
     * again even when this one brought nothing; each ask makes one more
     * at most, so a Redis announcing what it never gives costs a read
     * per message, not a loop.
     */
    asked = rc->fill_again;

    rc->filling = 0;
    rs->nfills--;
    again = 0;
    rc_apply = NGX_ERROR;

    if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 1) {
        more = 0;
        rc_apply = ngx_http_sse_read_apply(rc->rs, rc, reply->element[0],
                                           &more);

        id.data = rc->sn.str.data;
        id.len = rc->sn.str.len;

        if (rc_apply == NGX_OK && rc->refs > 1
            && ngx_http_sse_shm_position(rc->rs->zone, id, &pos, NULL,
                                         &subs)
               == NGX_OK
            && (pos.epoch != rc->fill_epoch || pos.seq != rc->fill_seq))
        {
            /* it made progress: more in Redis, or announced meanwhile */
            again = more
                    || rc->want_epoch > pos.epoch
                    || (rc->want_epoch == pos.epoch
                        && rc->want_seq > pos.seq);
        }

        if (rc_apply == NGX_OK && rc->refs > 1 && asked) {
            again = 1;
        }

    } else if (reply) {
        ngx_http_sse_redis_log_reply(&redis->commands,
                                     "answered a fill with", reply);
    }

    if (rc_apply == NGX_HTTP_SSE_ZONE_FULL && rc->refs > 1) {
        /* the zone had no room for all of it: again once it may have */
        ngx_http_sse_await_room(rc);
        again = 0;
    }

    if (!again) {
        rc->want_epoch = 0;
        rc->want_seq = 0;
    }

    rc->fill_again = 0;

    if (again) {
        ngx_http_sse_fill(rc);
    }

    ngx_http_sse_rchan_release(rc);

    /*
     * The next channels waiting for their turn; not after a refusal (that
     * could run down the whole queue from within this call): the
     * reconnect fills every channel anyway.
     */
    while (reply && rs->nfills < NGX_HTTP_SSE_FILLS_INFLIGHT
           && !ngx_queue_empty(&rs->fill_queue))
    {
        q = ngx_queue_head(&rs->fill_queue);
        ngx_queue_remove(q);

        next = ngx_queue_data(q, ngx_http_sse_rchan_t, fill_link);
        next->fill_queued = 0;

        if (next->refs > 1) {
            ngx_http_sse_fill(next);
        }

        ngx_http_sse_rchan_release(next);
    }
}


/* ---- the read script ----------------------------------------------------- */

ngx_uint_t
ngx_http_sse_history(ngx_http_sse_rstore_t *rs)
{
    ngx_uint_t  h;

    h = rs->zone->sh->limits.history;

    return h ? h : 1;
}


ngx_int_t
ngx_http_sse_read_args(ngx_http_sse_rstore_t *rs,
    ngx_http_sse_rchan_t **chans, sse::Position *client, ngx_uint_t n,
    ngx_uint_t bump, ngx_http_sse_rargs_t *a)
{
    u_char         *p;
    size_t          size;
    uint64_t        first;
    ngx_uint_t      i, k, subs;
    sse::Slice      id;
    sse::Position   node;
    ngx_str_t      *prefix = &rs->redis->conf->prefix;

    /* EVAL script numkeys, 3 keys and 4 numbers per channel, 2 more */

    size = 0;
    for (i = 0; i < n; i++) {
        size += 3 * (prefix->len + 2 + chans[i]->sn.str.len);
    }

    size += (2 + 5 * n) * NGX_INT64_LEN + NGX_INT64_LEN;

    k = 3 + 3 * n + 2 + 5 * n;

    a->argv = (const char **) ngx_alloc(k * (sizeof(char *) + sizeof(size_t))
                                        + size, ngx_cycle->log);
    if (a->argv == NULL) {
        return NGX_ERROR;
    }

    a->argvlen = (size_t *) (a->argv + k);
    a->buf = (u_char *) (a->argvlen + k);
    p = a->buf;

#define ngx_http_sse_arg(s, len)                                              \
    a->argv[a->argc] = (const char *) (s);                                    \
    a->argvlen[a->argc++] = (len)

    a->argc = 0;

    ngx_http_sse_arg("EVAL", 4);
    ngx_http_sse_arg(ngx_http_sse_read_script,
                     sizeof(ngx_http_sse_read_script) - 1);

    ngx_http_sse_arg(p, ngx_sprintf(p, "%ui", 3 * n) - p);
    p += a->argvlen[a->argc - 1];

    for (i = 0; i < n; i++) {
        static const char  *kinds[] = { "c:", "h:", "x:" };

        for (k = 0; k < 3; k++) {
            u_char  *s = p;

            p = ngx_cpymem(p, prefix->data, prefix->len);
            p = ngx_cpymem(p, kinds[k], 2);
            p = ngx_cpymem(p, chans[i]->sn.str.data, chans[i]->sn.str.len);
            ngx_http_sse_arg(s, p - s);
        }
    }

    ngx_http_sse_arg(p, ngx_sprintf(p, "%ui", ngx_http_sse_history(rs)) - p);
    p += a->argvlen[a->argc - 1];

    ngx_http_sse_arg(bump ? "1" : "0", 1);

    for (i = 0; i < n; i++) {
        id.data = chans[i]->sn.str.data;
        id.len = chans[i]->sn.str.len;

        if (ngx_http_sse_shm_position(rs->zone, id, &node, &first, &subs)
            != NGX_OK)
        {
            node.epoch = 0;
            node.seq = 0;
            first = 0;
        }

        if (client[i].epoch) {
            ngx_http_sse_arg(p, ngx_sprintf(p, "%uL", client[i].epoch) - p);
            p += a->argvlen[a->argc - 1];

        } else {
            ngx_http_sse_arg("", 0);
        }

        ngx_http_sse_arg(p, ngx_sprintf(p, "%uL", client[i].seq) - p);
        p += a->argvlen[a->argc - 1];

        if (node.epoch) {
            ngx_http_sse_arg(p, ngx_sprintf(p, "%uL", node.epoch) - p);
            p += a->argvlen[a->argc - 1];

        } else {
            ngx_http_sse_arg("", 0);
        }

        ngx_http_sse_arg(p, ngx_sprintf(p, "%uL", node.seq) - p);
        p += a->argvlen[a->argc - 1];

        ngx_http_sse_arg(p, ngx_sprintf(p, "%uL", first) - p);
        p += a->argvlen[a->argc - 1];
    }

#undef ngx_http_sse_arg

    return NGX_OK;
}


/*
 * One channel's part of the read script's answer into the zone.
 * NGX_HTTP_SSE_DELETED: it has a tomb.  *more: Redis has seqs the node
 * still lacks (a round of history entries was not all, or a hole).
 */

ngx_int_t
ngx_http_sse_read_apply(ngx_http_sse_rstore_t *rs, ngx_http_sse_rchan_t *rc,
    redisReply *r, ngx_uint_t *more)
{
    u_char                       *p, *end;
    uint64_t                      epoch, last, seq, ms, older;
    ngx_int_t                     rv;
    ngx_uint_t                    i, n;
    redisReply                  **e;
    ngx_http_sse_insert_t         in;
    ngx_http_sse_insert_event_t  *ev;

    *more = 0;

    if (r->type != REDIS_REPLY_ARRAY || r->elements == 0
        || r->element[0]->type != REDIS_REPLY_STRING
        || r->element[0]->len != 1)
    {
        ngx_http_sse_rsync_complain(rs, "a read script's answer");
        return NGX_ERROR;
    }

    e = r->element;

    ngx_memzero(&in, sizeof(ngx_http_sse_insert_t));
    in.id.data = rc->sn.str.data;
    in.id.len = rc->sn.str.len;

    switch (e[0]->str[0]) {

    case 'n':
        /* Redis knows nothing of it: never published, or lost; a
         * publish gives it a new epoch, which renews it here */
        return NGX_OK;

    case 'x':
        if (r->elements != 2 || e[1]->type != REDIS_REPLY_STRING) {
            break;
        }

        p = (u_char *) e[1]->str;
        end = p + e[1]->len;

        in.kind = NGX_HTTP_SSE_INSERT_DELETE;
        in.epoch = (uint64_t) -1;   /* whatever epoch the node has */

        if (ngx_http_sse_parse_u64(&p, end, NGX_HTTP_SSE_MAX_NUMBER, &epoch)
            == NGX_OK && p == end)
        {
            in.epoch = epoch;
        }

        (void) ngx_http_sse_shm_insert(rs->zone, &in);

        return NGX_HTTP_SSE_DELETED;

    case 'e':
        if (r->elements < 4 || (r->elements - 4) % 4
            || e[1]->type != REDIS_REPLY_STRING
            || e[2]->type != REDIS_REPLY_STRING
            || e[3]->type != REDIS_REPLY_STRING)
        {
            break;
        }

        p = (u_char *) e[1]->str;
        end = p + e[1]->len;

        if (ngx_http_sse_parse_u64(&p, end, NGX_HTTP_SSE_MAX_NUMBER, &epoch)
            != NGX_OK || p != end || epoch == 0)
        {
            break;
        }

        p = (u_char *) e[2]->str;
        end = p + e[2]->len;

        if (ngx_http_sse_parse_u64(&p, end, NGX_HTTP_SSE_MAX_NUMBER, &last)
            != NGX_OK || p != end)
        {
            break;
        }

        n = (r->elements - 4) / 4;

        p = (u_char *) e[3]->str;
        end = p + e[3]->len;

        if (ngx_http_sse_parse_u64(&p, end, n, &older) != NGX_OK
            || p != end)
        {
            break;
        }

        if (ngx_http_sse_grow((void **) &rs->events, &rs->events_cap, n,
                              sizeof(ngx_http_sse_insert_event_t), 64)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        for (i = 0; i < n; i++) {
            redisReply **f = &e[4 + 4 * i];

            if (f[0]->type != REDIS_REPLY_STRING
                || f[1]->type != REDIS_REPLY_STRING
                || f[2]->type != REDIS_REPLY_STRING
                || f[3]->type != REDIS_REPLY_STRING)
            {
                goto bad;
            }

            p = (u_char *) f[0]->str;
            end = p + f[0]->len;

            /* the entry id: "<seq>-0", every one after the one before */
            if (ngx_http_sse_parse_u64(&p, end, last, &seq) != NGX_OK
                || seq == 0 || (i && seq <= rs->events[i - 1].seq))
            {
                goto bad;
            }

            p = (u_char *) f[3]->str;
            end = p + f[3]->len;

            if (ngx_http_sse_parse_u64(&p, end, NGX_HTTP_SSE_MAX_NUMBER, &ms)
                != NGX_OK)
            {
                ms = 0;
            }

            ev = &rs->events[i];
            ev->seq = seq;
            ev->ms = ms;
            ev->type.data = (u_char *) f[1]->str;
            ev->type.len = f[1]->len;
            ev->data.data = (u_char *) f[2]->str;
            ev->data.len = f[2]->len;

            if (ngx_strlchr((u_char *) ev->type.data,
                            (u_char *) ev->type.data + ev->type.len, '\n')
                || ngx_strlchr((u_char *) ev->type.data,
                               (u_char *) ev->type.data + ev->type.len, '\r')
                || !sse::utf8_valid(ev->type.data, ev->type.len))
            {
                goto bad;
            }
        }

        in.epoch = epoch;
        in.last = last;

        if (n > older) {
            in.kind = NGX_HTTP_SSE_INSERT_FILL;
            in.events = rs->events + older;
            in.nevents = n - older;

        } else {
            in.kind = NGX_HTTP_SSE_INSERT_STATE;
        }

        rv = ngx_http_sse_shm_insert(rs->zone, &in);

        if (rv == NGX_HTTP_SSE_NEED_FILL) {
            /* streams wait at an older seq than Redis gave: fill from it */
            *more = 1;
            return NGX_OK;
        }

        if (rv != NGX_OK && rv != NGX_DECLINED) {
            return rv;
        }

        if (in.local_epoch == epoch && in.local_last < last) {
            *more = 1;
        }

        if (older) {
            /* a resume from before what the node holds */
            in.kind = NGX_HTTP_SSE_INSERT_OLDER;
            in.events = rs->events;
            in.nevents = (ngx_uint_t) older;

            (void) ngx_http_sse_shm_insert(rs->zone, &in);
        }

        return NGX_OK;
    }

bad:

    ngx_http_sse_rsync_complain(rs, "a read script's answer");

    return NGX_ERROR;
}


/* ---- messages ------------------------------------------------------------ */

void
ngx_http_sse_rsync_message(ngx_http_sse_redis_t *redis, ngx_str_t *channel,
    ngx_str_t *payload, void *data)
{
    u_char                 *p;
    uint64_t                last;
    ngx_int_t               rc;
    ngx_uint_t              i, n;
    ngx_str_t              *prefix = &redis->conf->prefix;
    ngx_http_sse_rchan_t   *rch;
    ngx_http_sse_insert_t   in;
    ngx_http_sse_rmsg_t     msg;
    ngx_http_sse_rstore_t  *rs = (ngx_http_sse_rstore_t *) data;

    if (channel->len <= prefix->len + 2
        || ngx_memcmp(channel->data, prefix->data, prefix->len) != 0
        || ngx_memcmp(channel->data + prefix->len, "m:", 2) != 0)
    {
        return;
    }

    rch = ngx_http_sse_rchan_find(rs, channel->data + prefix->len + 2,
                                  channel->len - prefix->len - 2);
    if (rch == NULL || rch->refs == 0) {
        /* its UNSUBSCRIBE is on its way */
        return;
    }

    if (ngx_http_sse_parse_message(payload, &msg) != NGX_OK) {
        ngx_http_sse_rsync_complain(rs, "a message");
        return;
    }

    ngx_memzero(&in, sizeof(ngx_http_sse_insert_t));
    in.id.data = rch->sn.str.data;
    in.id.len = rch->sn.str.len;
    in.epoch = msg.epoch;

    if (msg.deleted) {
        in.kind = NGX_HTTP_SSE_INSERT_DELETE;
        (void) ngx_http_sse_shm_insert(rs->zone, &in);
        return;
    }

    last = msg.first + msg.n - 1;

    if (rch->filling) {
        /* in order: after the fill, which goes on until it has these */
        if (msg.epoch > rch->want_epoch
            || (msg.epoch == rch->want_epoch && last > rch->want_seq))
        {
            rch->want_epoch = msg.epoch;
            rch->want_seq = last;
        }

        rch->fill_again = 1;
        return;
    }

    /*
     * The events, in rounds of a bounded number: what a worker holds for
     * a message is bounded however many events it announces.
     */

    if (ngx_http_sse_grow((void **) &rs->events, &rs->events_cap,
                          ngx_min(msg.n, NGX_HTTP_SSE_INSERT_ROUND),
                          sizeof(ngx_http_sse_insert_event_t), 64)
        != NGX_OK)
    {
        return;
    }

    in.kind = NGX_HTTP_SSE_INSERT_MESSAGE;
    in.events = rs->events;
    p = msg.events;

    for (i = 0; i < msg.n; i += n) {
        n = (ngx_uint_t) ngx_min(msg.n - i, NGX_HTTP_SSE_INSERT_ROUND);

        p = ngx_http_sse_message_events(p, msg.first + i, msg.ms, n,
                                        rs->events);
        in.nevents = n;

        rc = ngx_http_sse_shm_insert(rs->zone, &in);

        if (rc == NGX_HTTP_SSE_NEED_FILL) {
            rch->want_epoch = msg.epoch;
            rch->want_seq = last;
            ngx_http_sse_fill(rch);
            return;
        }

        if (rc == NGX_HTTP_SSE_ZONE_FULL) {
            /* in Redis but not in the zone: filled in once there is room */
            ngx_http_sse_await_room(rch);
            return;
        }

        if (rc != NGX_OK) {
            /* an older epoch: the next message's fill */
            return;
        }
    }
}


/*
 * "E <epoch> <first seq> <n> <ms>\n", then n times
 * "<type length> <data length>\n" <type> <data>; or "D <epoch>\n".
 * Every number and length is checked against the payload, the whole of
 * it before anything is taken: a hostile Redis gets a log line, not a
 * worker's memory, and never half a message.
 */

ngx_int_t
ngx_http_sse_parse_message(ngx_str_t *payload, ngx_http_sse_rmsg_t *msg)
{
    u_char    *p, *end;
    uint64_t   tlen, dlen, i;

    p = payload->data;
    end = p + payload->len;

    ngx_memzero(msg, sizeof(ngx_http_sse_rmsg_t));

    if (payload->len < 4 || p[1] != ' ') {
        return NGX_ERROR;
    }

    if (p[0] == 'D') {
        p += 2;

        if (ngx_http_sse_parse_u64(&p, end, NGX_HTTP_SSE_MAX_NUMBER,
                                   &msg->epoch)
            != NGX_OK || p + 1 != end || *p != '\n' || msg->epoch == 0)
        {
            return NGX_ERROR;
        }

        msg->deleted = 1;

        return NGX_OK;
    }

    if (p[0] != 'E') {
        return NGX_ERROR;
    }

    p += 2;

    if (ngx_http_sse_parse_u64(&p, end, NGX_HTTP_SSE_MAX_NUMBER, &msg->epoch)
        != NGX_OK || p == end || *p++ != ' ' || msg->epoch == 0
        || ngx_http_sse_parse_u64(&p, end, NGX_HTTP_SSE_MAX_NUMBER,
                                  &msg->first)
           != NGX_OK || p == end || *p++ != ' ' || msg->first == 0
        /* an event takes at least "0 0\n" */
        || ngx_http_sse_parse_u64(&p, end, payload->len / 4, &msg->n)
           != NGX_OK || p == end || *p++ != ' ' || msg->n == 0
        || ngx_http_sse_parse_u64(&p, end, NGX_HTTP_SSE_MAX_NUMBER, &msg->ms)
           != NGX_OK || p == end || *p++ != '\n'
        || msg->first + msg->n - 1 > NGX_HTTP_SSE_MAX_NUMBER)
    {
        return NGX_ERROR;
    }

    msg->events = p;

    for (i = 0; i < msg->n; i++) {
        if (ngx_http_sse_parse_u64(&p, end, (uint64_t) (end - p), &tlen)
            != NGX_OK || p == end || *p++ != ' '
            || ngx_http_sse_parse_u64(&p, end, (uint64_t) (end - p), &dlen)
               != NGX_OK || p == end || *p++ != '\n'
            || tlen > (uint64_t) (end - p)
            || dlen > (uint64_t) (end - p) - tlen)
        {
            return NGX_ERROR;
        }

        /* a type is one line of UTF-8 (the publisher checked it; Redis
         * may not be the publisher) */
        if (ngx_strlchr(p, p + tlen, '\n') || ngx_strlchr(p, p + tlen, '\r')
            || !sse::utf8_valid(p, (size_t) tlen))
        {
            return NGX_ERROR;
        }

        p += tlen + dlen;
    }

    return (p == end) ? NGX_OK : NGX_ERROR;
}


/* n events of a message that parsed, from p on; returns where it stopped */

u_char *
ngx_http_sse_message_events(u_char *p, uint64_t first, uint64_t ms,
    ngx_uint_t n, ngx_http_sse_insert_event_t *events)
{
    uint64_t                      tlen, dlen;
    ngx_uint_t                    i;
    ngx_http_sse_insert_event_t  *ev;

    for (i = 0; i < n; i++) {
        /* checked by ngx_http_sse_parse_message() */
        (void) ngx_http_sse_parse_u64(&p, p + NGX_INT64_LEN + 1,
                                      NGX_HTTP_SSE_MAX_NUMBER * 64, &tlen);
        p++;
        (void) ngx_http_sse_parse_u64(&p, p + NGX_INT64_LEN + 1,
                                      NGX_HTTP_SSE_MAX_NUMBER * 64, &dlen);
        p++;

        ev = &events[i];
        ev->seq = first + i;
        ev->ms = ms;
        ev->type.data = p;
        ev->type.len = (size_t) tlen;
        ev->data.data = p + tlen;
        ev->data.len = (size_t) dlen;

        p += tlen + dlen;
    }

    return p;
}


/* decimal digits, at least one, at most max */

ngx_int_t
ngx_http_sse_parse_u64(u_char **pp, u_char *end, uint64_t max, uint64_t *v)
{
    u_char    *p = *pp;
    uint64_t   n;

    if (p == end || *p < '0' || *p > '9') {
        return NGX_ERROR;
    }

    for (n = 0; p < end && *p >= '0' && *p <= '9'; p++) {
        if (n > (max - (*p - '0')) / 10) {
            return NGX_ERROR;
        }

        n = n * 10 + (*p - '0');
    }

    *pp = p;
    *v = n;

    return NGX_OK;
}


/* what Redis sent does not parse: a line a second at most */

void
ngx_http_sse_rsync_complain(ngx_http_sse_rstore_t *rs, const char *what)
{
    rs->malformed++;

    if (rs->complained == ngx_time()) {
        return;
    }

    rs->complained = ngx_time();

    ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                  "sse zone \"%V\": redis sent %s that does not parse, "
                  "dropped (%ui so far)", &rs->zone->name, what,
                  rs->malformed);
}


/* ---- reconnects ---------------------------------------------------------- */

/*
 * Both connections are up and every channel subscribed again: whatever
 * was published meanwhile is missing on every channel this worker has
 * streams of.  Each is filled now, without waiting for its next event,
 * and its epoch checked (a Redis that went back gets a new one).
 */

void
ngx_http_sse_rsync_reconnected(ngx_http_sse_redis_t *redis, void *data)
{
    ngx_queue_t            *q;
    ngx_http_sse_rchan_t   *rc;
    ngx_http_sse_rstore_t  *rs = (ngx_http_sse_rstore_t *) data;

    for (q = ngx_queue_head(&rs->chans_all);
         q != ngx_queue_sentinel(&rs->chans_all);
         q = ngx_queue_next(q))
    {
        rc = ngx_queue_data(q, ngx_http_sse_rchan_t, all);

        if (rc->refs == 0) {
            continue;
        }

        if (rc->state == NGX_HTTP_SSE_RCHAN_SUBSCRIBING && !rc->sub_queued) {
            /* its SUBSCRIBE went with the connection: it is in the set,
             * subscribed again now (a queued one is not in it yet) */
            rc->state = NGX_HTTP_SSE_RCHAN_SUBSCRIBED;
        }

        rc->dirty = 1;
        rc->bump = 1;
        rc->fill_again = 1;

        ngx_http_sse_fill(rc);
    }
}


/* ---- subscriber counts and liveness -------------------------------------- */

void
ngx_http_sse_rsync_ignore(ngx_http_sse_redis_t *redis, redisReply *reply,
    void *data)
{
    /* a count or a liveness key: the next tick writes it again */
}


/* the node's subscribers of a channel, from its zone */

ngx_uint_t
ngx_http_sse_rsync_node_count(ngx_http_sse_rstore_t *rs,
    ngx_http_sse_rchan_t *rc)
{
    ngx_uint_t     subs;
    sse::Slice     id;
    sse::Position  pos;

    id.data = rc->sn.str.data;
    id.len = rc->sn.str.len;

    subs = 0;
    (void) ngx_http_sse_shm_position(rs->zone, id, &pos, NULL, &subs);

    return subs;
}


/*
 * The node's counts of n channels into their P s:{id}, the dead nodes'
 * fields pruned and the keys' lifetime renewed: one script, whatever n.
 * NGX_OK: sent; NGX_AGAIN: refused (the queue is full) or no memory.
 */

ngx_int_t
ngx_http_sse_rsync_write_counts(ngx_http_sse_rstore_t *rs,
    ngx_http_sse_rchan_t **chans, ngx_uint_t *subs, ngx_uint_t n)
{
    u_char       *p, *buf;
    size_t        size, *argvlen;
    ngx_int_t     rc;
    ngx_uint_t    i, argc;
    const char  **argv;
    ngx_str_t    *prefix = &rs->redis->conf->prefix;

    if (rs->zone->sh == NULL || prefix->len > 256) {
        return NGX_AGAIN;
    }

    /* EVAL script numkeys, KEYS..., prefix node lifetime, counts... */

    argc = 3 + n + 3 + n;

    size = NGX_INT_T_LEN + NGX_INT_T_LEN;
    for (i = 0; i < n; i++) {
        size += prefix->len + 2 + chans[i]->sn.str.len + NGX_INT_T_LEN;
    }

    argv = (const char **) ngx_alloc(argc * (sizeof(char *) + sizeof(size_t))
                                     + size, ngx_cycle->log);
    if (argv == NULL) {
        return NGX_AGAIN;
    }

    argvlen = (size_t *) (argv + argc);
    buf = (u_char *) (argvlen + argc);
    p = buf;

    argv[0] = "EVAL";
    argvlen[0] = 4;
    argv[1] = ngx_http_sse_counts_script;
    argvlen[1] = sizeof(ngx_http_sse_counts_script) - 1;
    argv[2] = (const char *) p;
    p = ngx_sprintf(p, "%ui", n);
    argvlen[2] = p - (u_char *) argv[2];

    for (i = 0; i < n; i++) {
        argv[3 + i] = (const char *) p;
        p = ngx_cpymem(p, prefix->data, prefix->len);
        p = ngx_cpymem(p, "s:", 2);
        p = ngx_cpymem(p, chans[i]->sn.str.data, chans[i]->sn.str.len);
        argvlen[3 + i] = p - (u_char *) argv[3 + i];
    }

    argv[3 + n] = (const char *) prefix->data;
    argvlen[3 + n] = prefix->len;
    argv[4 + n] = (const char *) rs->zone->sh->node_id;
    argvlen[4 + n] = NGX_HTTP_SSE_NODE_ID_LEN;
    argv[5 + n] = (const char *) p;
    p = ngx_sprintf(p, "%M", rs->counts_ttl);
    argvlen[5 + n] = p - (u_char *) argv[5 + n];

    for (i = 0; i < n; i++) {
        argv[6 + n + i] = (const char *) p;
        p = ngx_sprintf(p, "%ui", subs[i]);
        argvlen[6 + n + i] = p - (u_char *) argv[6 + n + i];
    }

    rc = ngx_http_sse_redis_command(rs->redis, (int) argc, argv, argvlen,
                                    ngx_http_sse_rsync_ignore, NULL);

    /* the client formats the command into its own buffer */
    ngx_free(argv);

    if (rc != NGX_OK) {
        return NGX_AGAIN;
    }

    for (i = 0; i < n; i++) {
        chans[i]->count_sent = subs[i];
        chans[i]->refreshed = ngx_time();
    }

    return NGX_OK;
}


void
ngx_http_sse_rsync_tick(ngx_event_t *ev)
{
    u_char                 *p;
    u_char                  key[NGX_HTTP_SSE_NODE_ID_LEN + 512];
    ngx_http_sse_rstore_t  *rs = (ngx_http_sse_rstore_t *) ev->data;
    ngx_str_t              *prefix = &rs->redis->conf->prefix;
    ngx_http_sse_redis_t   *redis = rs->redis;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        /* the counts a shutdown wrote (ngx_http_sse_rsync_leave()) */
        if (!rs->tick.cancelable && !ngx_terminate
            && rs->redis->commands.npending && ++rs->lingered < 10)
        {
            ngx_add_timer(&rs->tick, 100);
        }

        return;
    }

    ngx_add_timer(&rs->tick, 1000);

    /* while Redis is down, the channels waiting are let go: the
     * reconnect fills every channel */
    ngx_http_sse_retry_room(rs);

    if (!ngx_http_sse_redis_is_up(redis) || rs->zone->sh == NULL
        || prefix->len > 256)
    {
        return;
    }

    /* P n:{node}: this node is alive (its counts are summed) */

    p = ngx_cpymem(key, prefix->data, prefix->len);
    p = ngx_cpymem(p, "n:", 2);
    p = ngx_cpymem(p, rs->zone->sh->node_id, NGX_HTTP_SSE_NODE_ID_LEN);

    {
        const char  *a[5] = { "SET", (const char *) key, "1", "PX", "3000" };
        size_t       al[5] = { 3, (size_t) (p - key), 1, 2, 4 };

        (void) ngx_http_sse_redis_command(redis, 5, a, al,
                                          ngx_http_sse_rsync_ignore, NULL);
    }

    /*
     * P s:{id} node count: the channels whose streams here changed, and
     * those whose key is due for its renewal, in one script
     */

    ngx_http_sse_rsync_counts(rs);
}


void
ngx_http_sse_rsync_counts(ngx_http_sse_rstore_t *rs)
{
    time_t                  now, period;
    ngx_uint_t              n, held, due;
    ngx_queue_t            *q, *next;
    ngx_http_sse_rchan_t   *rc;

    ngx_http_sse_rchan_t   *chans[NGX_HTTP_SSE_COUNTS_PER_TICK];
    ngx_uint_t              subs[NGX_HTTP_SSE_COUNTS_PER_TICK];

    now = ngx_time();
    n = 0;
    held = 0;

    for (q = ngx_queue_head(&rs->chans_all);
         q != ngx_queue_sentinel(&rs->chans_all);
         q = ngx_queue_next(q))
    {
        rc = ngx_queue_data(q, ngx_http_sse_rchan_t, all);

        if (rc->refs) {
            held++;
        }

        /* a channel with streams here: its key is renewed */
        due = (rc->refs
               && now - rc->refreshed >= NGX_HTTP_SSE_COUNTS_REFRESH);

        if ((!rc->dirty && !due) || n == NGX_HTTP_SSE_COUNTS_PER_TICK) {
            continue;
        }

        subs[n] = ngx_http_sse_rsync_node_count(rs, rc);

        if (!due && subs[n] == rc->count_sent) {
            rc->dirty = 0;
            continue;
        }

        chans[n++] = rc;
    }

    /*
     * One round over every channel held here takes held / 1024 ticks
     * (in the queue's order: those written this tick are not due again
     * for 5 s, so the next ticks take the ones after them); a key lives
     * three such rounds, or three periods.
     */

    period = ngx_max((time_t) NGX_HTTP_SSE_COUNTS_REFRESH,
                     (time_t) ((held + NGX_HTTP_SSE_COUNTS_PER_TICK - 1)
                               / NGX_HTTP_SSE_COUNTS_PER_TICK));

    rs->counts_ttl = (ngx_msec_t) (NGX_HTTP_SSE_COUNTS_LIVES * period * 1000);

    if (n && ngx_http_sse_rsync_write_counts(rs, chans, subs, n) == NGX_OK) {
        while (n) {
            chans[--n]->dirty = 0;
        }
    }

    /* a refused script: the dirty ones stay dirty, for the next tick */

    for (q = ngx_queue_head(&rs->chans_all);
         q != ngx_queue_sentinel(&rs->chans_all);
         q = next)
    {
        next = ngx_queue_next(q);
        rc = ngx_queue_data(q, ngx_http_sse_rchan_t, all);

        if (rc->refs == 0 && !rc->filling && !rc->dirty) {
            ngx_http_sse_rchan_free(rc);
        }
    }
}

} // namespace
