/*
 * The Redis store's publish, DELETE and channel info: one script each
 * (ngx_http_sse_store_redis_scripts.h), sent with EVALSHA, and with EVAL
 * when Redis does not have the script yet (NOSCRIPT).
 *
 * Nothing is written to the node's zone here: the events reach it, like
 * every other node's, through the pub/sub message the script publishes
 * (ngx_http_sse_store_redis_sync.cpp).
 *
 * Each command has a context of its own, allocated here, that points to
 * the caller's operation record.  cancel() detaches the record from it;
 * the reply, when it comes, then only frees the context.
 *
 * Redis is not trusted to answer sanely: every reply is checked for its
 * type, its element count and the range of every number before anything
 * of it reaches the record; a reply that does not pass is an error (503),
 * logged.  Error replies: see ngx_http_sse_rpub_error().
 */

#include "ngx_http_sse_store_redis.h"
#include "ngx_http_sse_store_redis_scripts.h"

#include <openssl/sha.h>


#define NGX_HTTP_SSE_RPUB_PUBLISH  0
#define NGX_HTTP_SSE_RPUB_REMOVE   1
#define NGX_HTTP_SSE_RPUB_INFO     2

/* the largest number a script hands back: 2^53 - 1 */
#define NGX_HTTP_SSE_RPUB_MAX_NUMBER  9007199254740991LL


namespace {

typedef struct {
    const char                 *text;
    size_t                      len;
    u_char                      sha[2 * SHA_DIGEST_LENGTH];
} ngx_http_sse_rpub_script_t;


/* one command in flight: its operation, until cancel() detaches it */
typedef struct {
    ngx_queue_t                 queue;      /* rs->rpub_pending, until
                                               its reply */
    ngx_http_sse_rstore_t      *rs;
    void                       *op;         /* NULL: cancelled */
    ngx_uint_t                  kind;       /* NGX_HTTP_SSE_RPUB_* */
    unsigned                    eval:1;     /* sent with EVAL already */
} ngx_http_sse_rpub_cmd_t;


/* the arguments of one command, built for one send */
typedef struct {
    int                         argc;
    const char                **argv;
    size_t                     *argvlen;
    u_char                     *strings;    /* key names and numbers */
    u_char                     *last;
} ngx_http_sse_rpub_args_t;


ngx_int_t ngx_http_sse_rpub_start(ngx_http_sse_zone_t *zone, void *op,
    ngx_uint_t kind);
ngx_int_t ngx_http_sse_rpub_send(ngx_http_sse_rpub_cmd_t *cmd);
ngx_int_t ngx_http_sse_rpub_args(ngx_http_sse_rpub_cmd_t *cmd,
    ngx_http_sse_rpub_args_t *a);
void ngx_http_sse_rpub_arg(ngx_http_sse_rpub_args_t *a, const void *p,
    size_t len);
void ngx_http_sse_rpub_arg_key(ngx_http_sse_rpub_args_t *a, ngx_str_t *prefix,
    const char *kind, sse::Slice id);
void ngx_http_sse_rpub_arg_number(ngx_http_sse_rpub_args_t *a, uint64_t n);
void ngx_http_sse_rpub_reply(ngx_http_sse_redis_t *redis, redisReply *reply,
    void *data);
ngx_int_t ngx_http_sse_rpub_error(ngx_http_sse_rpub_cmd_t *cmd,
    redisReply *reply);
const char *ngx_http_sse_rpub_refused(ngx_http_sse_rpub_cmd_t *cmd);
void ngx_http_sse_rpub_log_error(ngx_http_sse_rpub_cmd_t *cmd,
    redisReply *reply);
ngx_int_t ngx_http_sse_rpub_parse_publish(ngx_http_sse_store_publish_t *op,
    redisReply *reply);
ngx_int_t ngx_http_sse_rpub_parse_query(ngx_http_sse_store_query_t *op,
    redisReply *reply);
void ngx_http_sse_rpub_count(ngx_http_sse_zone_t *zone,
    ngx_http_sse_store_publish_t *op);
ngx_int_t ngx_http_sse_rpub_integer(redisReply *r, long long max,
    uint64_t *out);
ngx_int_t ngx_http_sse_rpub_epoch(redisReply *r, uint64_t *out);
void ngx_http_sse_rpub_complete(ngx_http_sse_rpub_cmd_t *cmd, ngx_int_t rc);
void ngx_http_sse_rpub_done(void *op, ngx_uint_t kind, ngx_int_t rc);
ngx_http_sse_rpub_script_t *ngx_http_sse_rpub_script(ngx_uint_t kind);
void ngx_http_sse_rpub_clear(void *op, ngx_uint_t kind);


ngx_http_sse_rpub_script_t  ngx_http_sse_rpub_scripts[] = {
    { ngx_http_sse_lua_publish, sizeof(ngx_http_sse_lua_publish) - 1, {0} },
    { ngx_http_sse_lua_remove, sizeof(ngx_http_sse_lua_remove) - 1, {0} },
    { ngx_http_sse_lua_info, sizeof(ngx_http_sse_lua_info) - 1, {0} }
};

} // namespace


ngx_int_t
ngx_http_sse_rpub_publish(ngx_http_sse_zone_t *zone,
    ngx_http_sse_store_publish_t *op)
{
    return ngx_http_sse_rpub_start(zone, op, NGX_HTTP_SSE_RPUB_PUBLISH);
}


ngx_int_t
ngx_http_sse_rpub_remove(ngx_http_sse_zone_t *zone,
    ngx_http_sse_store_query_t *op)
{
    return ngx_http_sse_rpub_start(zone, op, NGX_HTTP_SSE_RPUB_REMOVE);
}


ngx_int_t
ngx_http_sse_rpub_info(ngx_http_sse_zone_t *zone,
    ngx_http_sse_store_query_t *op)
{
    return ngx_http_sse_rpub_start(zone, op, NGX_HTTP_SSE_RPUB_INFO);
}


/* 1: op was one of ours in flight, and is detached now */

ngx_uint_t
ngx_http_sse_rpub_cancel(ngx_http_sse_rstore_t *rs, void *op)
{
    ngx_queue_t              *q;
    ngx_http_sse_rpub_cmd_t  *cmd;

    if (rs == NULL || rs->rpub_pending.next == NULL) {
        return 0;
    }

    for (q = ngx_queue_head(&rs->rpub_pending);
         q != ngx_queue_sentinel(&rs->rpub_pending);
         q = ngx_queue_next(q))
    {
        cmd = ngx_queue_data(q, ngx_http_sse_rpub_cmd_t, queue);

        if (cmd->op == op) {
            /*
             * The reply, when it comes, frees cmd and touches nothing
             * else; until then cmd stays queued, for the worker's exit
             */
            cmd->op = NULL;
            return 1;
        }
    }

    return 0;
}


/* the worker exits: its client drops what it waits for, calling nothing */

void
ngx_http_sse_rpub_exit(void *data)
{
    ngx_http_sse_rstore_t *rs = (ngx_http_sse_rstore_t *) data;

    ngx_queue_t              *q;
    ngx_http_sse_rpub_cmd_t  *cmd;

    while (!ngx_queue_empty(&rs->rpub_pending)) {
        q = ngx_queue_head(&rs->rpub_pending);
        cmd = ngx_queue_data(q, ngx_http_sse_rpub_cmd_t, queue);

        ngx_queue_remove(q);
        ngx_free(cmd);
    }
}


namespace {

ngx_int_t
ngx_http_sse_rpub_start(ngx_http_sse_zone_t *zone, void *op, ngx_uint_t kind)
{
    ngx_int_t                 rc;
    ngx_http_sse_rstore_t    *rs;
    ngx_http_sse_rpub_cmd_t  *cmd;

    ngx_http_sse_rpub_clear(op, kind);

    rs = ngx_http_sse_rstore_get(zone);

    if (rs == NULL) {
        /* no client in this process (a worker always has one) */
        rc = NGX_HTTP_SSE_UNAVAILABLE;
        goto failed;
    }

    cmd = (ngx_http_sse_rpub_cmd_t *)
              ngx_calloc(sizeof(ngx_http_sse_rpub_cmd_t), ngx_cycle->log);
    if (cmd == NULL) {
        rc = NGX_ERROR;
        goto failed;
    }

    cmd->rs = rs;
    cmd->op = op;
    cmd->kind = kind;

    ngx_queue_insert_tail(&rs->rpub_pending, &cmd->queue);

    /* refused at once (Redis not up): the completion ran already */
    return (ngx_http_sse_rpub_send(cmd) == NGX_DECLINED) ? NGX_OK
                                                         : NGX_AGAIN;

failed:

    ngx_http_sse_rpub_done(op, kind, rc);

    return NGX_OK;
}


/*
 * Sends the command; NGX_DECLINED: it was refused and completed before
 * this returned (cmd is gone then).
 */

ngx_int_t
ngx_http_sse_rpub_send(ngx_http_sse_rpub_cmd_t *cmd)
{
    ngx_int_t                 rc;
    ngx_http_sse_redis_t     *redis = cmd->rs->redis;
    ngx_http_sse_rpub_args_t  a;

    if (ngx_http_sse_rpub_args(cmd, &a) != NGX_OK) {
        ngx_http_sse_rpub_complete(cmd, NGX_ERROR);
        return NGX_DECLINED;
    }

    /* the client formats the command into its own buffer: a is ours */

    rc = ngx_http_sse_redis_command(redis, a.argc, a.argv, a.argvlen,
                                    ngx_http_sse_rpub_reply, cmd);

    ngx_free(a.argv);

    return rc;
}


/*
 * EVALSHA sha numkeys KEYS... ARGV... (EVAL script ... after NOSCRIPT).
 * KEYS, per channel: P c:{id}, P h:{id}, P x:{id}, P s:{id}; ARGV as the
 * scripts say.  One allocation holds the vectors and the strings made
 * here; the ids, types and data are the caller's, pointed to.
 */

ngx_int_t
ngx_http_sse_rpub_args(ngx_http_sse_rpub_cmd_t *cmd,
    ngx_http_sse_rpub_args_t *a)
{
    u_char                        *p;
    size_t                         size, ids_len;
    uint64_t                       lifetime;
    ngx_uint_t                     i, k, n, nargs, nevents;
    sse::Slice                    *ids;
    sse::Position                  pos;
    ngx_str_t                     *prefix;
    ngx_http_sse_zone_t           *zone = cmd->rs->zone;
    ngx_http_sse_limits_t         *limits = &zone->sh->limits;
    ngx_http_sse_rpub_script_t    *script;
    ngx_http_sse_store_query_t    *q;
    ngx_http_sse_store_publish_t  *op;

    prefix = &cmd->rs->redis->conf->prefix;
    script = ngx_http_sse_rpub_script(cmd->kind);

    op = NULL;
    nevents = 0;

    if (cmd->kind == NGX_HTTP_SSE_RPUB_PUBLISH) {
        op = (ngx_http_sse_store_publish_t *) cmd->op;
        ids = op->ids;
        n = op->nchans;
        nevents = op->nevents;
        nargs = 7 + 3 * n + 2 * nevents;

    } else {
        q = (ngx_http_sse_store_query_t *) cmd->op;
        ids = q->ids;
        n = q->nchans;
        nargs = 3 + n;
    }

    ids_len = 0;

    for (i = 0; i < n; i++) {
        ids_len += ids[i].len;
    }

    a->argc = (int) (3 + 4 * n + nargs);

    /* keys, and at most 3 + 2 * n numbers of up to 20 digits */
    size = a->argc * (sizeof(char *) + sizeof(size_t))
           + 4 * (n * (prefix->len + 2) + ids_len)
           + (8 + 2 * n) * NGX_INT64_LEN;

    a->argv = (const char **) ngx_alloc(size, ngx_cycle->log);
    if (a->argv == NULL) {
        return NGX_ERROR;
    }

    a->argvlen = (size_t *) (a->argv + a->argc);
    a->strings = (u_char *) (a->argvlen + a->argc);
    a->last = a->strings;
    a->argc = 0;

    if (cmd->eval) {
        ngx_http_sse_rpub_arg(a, "EVAL", 4);
        ngx_http_sse_rpub_arg(a, script->text, script->len);

    } else {
        ngx_http_sse_rpub_arg(a, "EVALSHA", 7);
        ngx_http_sse_rpub_arg(a, script->sha, sizeof(script->sha));
    }

    ngx_http_sse_rpub_arg_number(a, 4 * n);

    for (i = 0; i < n; i++) {
        ngx_http_sse_rpub_arg_key(a, prefix, "c:", ids[i]);
        ngx_http_sse_rpub_arg_key(a, prefix, "h:", ids[i]);
        ngx_http_sse_rpub_arg_key(a, prefix, "x:", ids[i]);
        ngx_http_sse_rpub_arg_key(a, prefix, "s:", ids[i]);
    }

    ngx_http_sse_rpub_arg(a, prefix->data, prefix->len);
    ngx_http_sse_rpub_arg_number(a, n);

    if (op == NULL) {
        if (cmd->kind == NGX_HTTP_SSE_RPUB_REMOVE) {
            ngx_http_sse_rpub_arg_number(a,
                                         (uint64_t) limits->history_ttl * 1000);
        }

        for (i = 0; i < n; i++) {
            ngx_http_sse_rpub_arg(a, ids[i].data, ids[i].len);
        }

        return NGX_OK;
    }

    /*
     * A channel's keys live as long as it would in a zone of its own
     * (channel_ttl after its last publish); its events no longer than
     * history_ttl after the last one (the stream's key then goes).
     */

    lifetime = (uint64_t) limits->channel_ttl * 1000;

    ngx_http_sse_rpub_arg_number(a, nevents);
    ngx_http_sse_rpub_arg_number(a, limits->history ? limits->history : 1);
    ngx_http_sse_rpub_arg_number(a, (uint64_t) limits->history_ttl * 1000);
    ngx_http_sse_rpub_arg_number(a, lifetime);
    ngx_http_sse_rpub_arg(a, op->idempotency_key.data,
                          op->idempotency_key.len);

    for (i = 0; i < n; i++) {
        ngx_http_sse_rpub_arg(a, ids[i].data, ids[i].len);

        /*
         * What this node holds of the channel: an epoch of Redis' (a
         * node's own epochs, from before it had Redis, are far larger
         * and mean nothing here) and a seq
         */

        if (ngx_http_sse_shm_position(zone, ids[i], &pos) == NGX_OK
            && pos.epoch <= (uint64_t) NGX_HTTP_SSE_RPUB_MAX_NUMBER
            && pos.seq <= (uint64_t) NGX_HTTP_SSE_RPUB_MAX_NUMBER)
        {
            ngx_http_sse_rpub_arg_number(a, pos.epoch);
            ngx_http_sse_rpub_arg_number(a, pos.seq);

        } else {
            ngx_http_sse_rpub_arg(a, "", 0);
            ngx_http_sse_rpub_arg(a, "", 0);
        }
    }

    p = op->buf;

    for (k = 0; k < nevents; k++) {
        ngx_http_sse_rpub_arg(a, p, op->events[k].type_len);
        p += op->events[k].type_len;
        ngx_http_sse_rpub_arg(a, p, op->events[k].data_len);
        p += op->events[k].data_len;
    }

    return NGX_OK;
}


void
ngx_http_sse_rpub_arg(ngx_http_sse_rpub_args_t *a, const void *p, size_t len)
{
    /* an empty argument still needs an address */
    a->argv[a->argc] = len ? (const char *) p : "";
    a->argvlen[a->argc] = len;
    a->argc++;
}


void
ngx_http_sse_rpub_arg_key(ngx_http_sse_rpub_args_t *a, ngx_str_t *prefix,
    const char *kind, sse::Slice id)
{
    u_char  *p;

    p = a->last;
    a->last = ngx_cpymem(a->last, prefix->data, prefix->len);
    a->last = ngx_cpymem(a->last, kind, 2);
    a->last = ngx_cpymem(a->last, id.data, id.len);

    ngx_http_sse_rpub_arg(a, p, a->last - p);
}


void
ngx_http_sse_rpub_arg_number(ngx_http_sse_rpub_args_t *a, uint64_t n)
{
    u_char  *p;

    p = a->last;
    a->last = ngx_sprintf(a->last, "%uL", n);

    ngx_http_sse_rpub_arg(a, p, a->last - p);
}


/* the command's reply: NULL when Redis is not up or did not answer */

void
ngx_http_sse_rpub_reply(ngx_http_sse_redis_t *redis, redisReply *reply,
    void *data)
{
    ngx_http_sse_rpub_cmd_t *cmd = (ngx_http_sse_rpub_cmd_t *) data;

    ngx_int_t  rc;

    if (cmd->op == NULL) {
        /* cancelled: its caller is gone */
        ngx_queue_remove(&cmd->queue);
        ngx_free(cmd);
        return;
    }

    if (reply == NULL) {
        /* Redis is not up, or did not answer within the deadline */
        if (cmd->kind == NGX_HTTP_SSE_RPUB_PUBLISH) {
            ngx_http_sse_redis_refused(redis);
        }

        ngx_http_sse_rpub_complete(cmd, NGX_HTTP_SSE_UNAVAILABLE);
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {

        if (!cmd->eval && reply->len >= 8
            && ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0)
        {
            /* Redis does not have the script (restarted, flushed) */
            cmd->eval = 1;
            (void) ngx_http_sse_rpub_send(cmd);
            return;
        }

        ngx_http_sse_rpub_complete(cmd, ngx_http_sse_rpub_error(cmd, reply));
        return;
    }

    if (cmd->kind == NGX_HTTP_SSE_RPUB_PUBLISH) {
        rc = ngx_http_sse_rpub_parse_publish(
                 (ngx_http_sse_store_publish_t *) cmd->op, reply);

        if (rc == NGX_OK) {
            ngx_http_sse_rpub_count(cmd->rs->zone,
                                    (ngx_http_sse_store_publish_t *) cmd->op);
        }

    } else {
        rc = ngx_http_sse_rpub_parse_query(
                 (ngx_http_sse_store_query_t *) cmd->op, reply);
    }

    if (rc != NGX_OK) {
        ngx_http_sse_rpub_clear(cmd->op, cmd->kind);

        ngx_log_error(NGX_LOG_ERR, &redis->commands.log, 0,
                      "redis sent a reply to the %s script that is not "
                      "one of its replies",
                      cmd->kind == NGX_HTTP_SSE_RPUB_PUBLISH ? "publish"
                      : cmd->kind == NGX_HTTP_SSE_RPUB_REMOVE ? "delete"
                      : "channel info");

        rc = NGX_HTTP_SSE_UNAVAILABLE;
    }

    ngx_http_sse_rpub_complete(cmd, rc);
}


/*
 * An error reply.  Out of memory is the store's "full" (507).  Redis
 * busy with a long script, loading its data, or a replica in a failover:
 * a retry soon may pass (503, Retry-After).  Anything else stays until
 * someone mends Redis: a key of another type where the module keeps its
 * own, a corrupt record, a number past 2^53, a script error, a command
 * the ACL forbids: 500, no Retry-After, counted in sse_status' redis
 * "errors".  The scripts check before they write: nothing was applied.
 */

ngx_int_t
ngx_http_sse_rpub_error(ngx_http_sse_rpub_cmd_t *cmd, redisReply *reply)
{
    size_t                  len;
    ngx_uint_t              i;
    ngx_http_sse_redis_t   *redis = cmd->rs->redis;

    static const char  *transient[] = {
        "LOADING", "BUSY", "MASTERDOWN", "READONLY", "TRYAGAIN",
        "CLUSTERDOWN", "NOREPLICAS", "MISCONF", "NOAUTH", NULL
    };

    /* the error's code: its first word */
    for (len = 0; len < reply->len && reply->str[len] != ' '; len++) {
        /* void */
    }

    if (len == 3 && ngx_strncmp(reply->str, "OOM", 3) == 0) {
        ngx_http_sse_redis_log_reply(&redis->commands,
                                     ngx_http_sse_rpub_refused(cmd), reply);

        if (cmd->kind == NGX_HTTP_SSE_RPUB_PUBLISH) {
            (void) ngx_atomic_fetch_add(&cmd->rs->zone->sh->refused_full, 1);
        }

        return NGX_HTTP_SSE_ZONE_FULL;
    }

    for (i = 0; transient[i]; i++) {
        if (len == ngx_strlen(transient[i])
            && ngx_strncmp(reply->str, transient[i], len) == 0)
        {
            ngx_http_sse_redis_log_reply(&redis->commands,
                                         ngx_http_sse_rpub_refused(cmd),
                                         reply);
            return NGX_HTTP_SSE_UNAVAILABLE;
        }
    }

    ngx_http_sse_redis_error(redis);
    ngx_http_sse_rpub_log_error(cmd, reply);

    if ((len == 12 && ngx_strncmp(reply->str, "SSEWRONGTYPE", 12) == 0)
        || (len == 9 && ngx_strncmp(reply->str, "WRONGTYPE", 9) == 0))
    {
        return NGX_HTTP_SSE_WRONG_TYPE;
    }

    return NGX_HTTP_SSE_STORE_ERROR;
}


const char *
ngx_http_sse_rpub_refused(ngx_http_sse_rpub_cmd_t *cmd)
{
    return cmd->kind == NGX_HTTP_SSE_RPUB_PUBLISH
           ? "refused the publish script"
           : cmd->kind == NGX_HTTP_SSE_RPUB_REMOVE
           ? "refused the delete script"
           : "refused the channel info script";
}


/*
 * An error a retry does not mend comes back on every request to the
 * channel until someone mends Redis: logged once a minute per cause (the
 * Redis text, which names the key) and worker, with the request's first
 * channel, so that a publisher retrying in a loop does not flood the log.
 */

void
ngx_http_sse_rpub_log_error(ngx_http_sse_rpub_cmd_t *cmd, redisReply *reply)
{
    uint32_t                   crc;
    sse::Slice                *ids;
    ngx_uint_t                 nchans;
    ngx_http_sse_rstore_t     *rs = cmd->rs;
    ngx_http_sse_log_value_t   text, channel;

    crc = ngx_crc32_long((u_char *) reply->str, reply->len);

    if (rs->error_logged && rs->error_crc == crc
        && ngx_time() - rs->error_logged < 60)
    {
        return;
    }

    rs->error_crc = crc;
    rs->error_logged = ngx_time();

    if (cmd->kind == NGX_HTTP_SSE_RPUB_PUBLISH) {
        ids = ((ngx_http_sse_store_publish_t *) cmd->op)->ids;
        nchans = ((ngx_http_sse_store_publish_t *) cmd->op)->nchans;

    } else {
        ids = ((ngx_http_sse_store_query_t *) cmd->op)->ids;
        nchans = ((ngx_http_sse_store_query_t *) cmd->op)->nchans;
    }

    /* Redis' own text, escaped: it names keys, never data */
    ngx_log_error(NGX_LOG_ERR, &rs->redis->commands.log, 0,
                  "redis %s \"%V\" (channel \"%V\"%s): a retry will not "
                  "help, answered 500",
                  ngx_http_sse_rpub_refused(cmd),
                  ngx_http_sse_log_value(&text, (u_char *) reply->str,
                                         reply->len),
                  ngx_http_sse_log_value(&channel, (u_char *) ids[0].data,
                                         ids[0].len),
                  nchans > 1 ? " and others" : "");
}


/*
 * { repeated, then per channel: epoch (string), last seq, published,
 * subscribers }
 */

ngx_int_t
ngx_http_sse_rpub_parse_publish(ngx_http_sse_store_publish_t *op,
    redisReply *reply)
{
    uint64_t     repeated, epoch, seq, published, subscribers;
    ngx_uint_t   i;
    redisReply **e;

    if (reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 1 + 4 * op->nchans)
    {
        return NGX_ERROR;
    }

    e = reply->element;

    if (ngx_http_sse_rpub_integer(e[0], 1, &repeated) != NGX_OK) {
        return NGX_ERROR;
    }

    for (i = 0; i < op->nchans; i++) {
        e = &reply->element[1 + 4 * i];

        if (ngx_http_sse_rpub_epoch(e[0], &epoch) != NGX_OK
            || ngx_http_sse_rpub_integer(e[1], NGX_HTTP_SSE_RPUB_MAX_NUMBER,
                                         &seq)
               != NGX_OK
            || ngx_http_sse_rpub_integer(e[2], NGX_HTTP_SSE_RPUB_MAX_NUMBER,
                                         &published)
               != NGX_OK
            || ngx_http_sse_rpub_integer(e[3], NGX_MAX_UINT32_VALUE,
                                         &subscribers)
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        /*
         * This publish stored exactly its events; a repeated one answers
         * with the first's count, which its ids must hold
         */
        if (published > seq
            || (!repeated && published != op->nevents)
            || (published == 0 && !repeated))
        {
            return NGX_ERROR;
        }

        op->last[i].epoch = epoch;
        op->last[i].seq = seq;
        op->published[i] = (ngx_uint_t) published;
        op->subscribers[i] = (ngx_uint_t) subscribers;
    }

    op->repeated = (ngx_uint_t) repeated;

    return NGX_OK;
}


/*
 * The zone's "published" counts the events this node's publish location
 * accepted, per channel, as on one node (an answer repeated for an
 * Idempotency-Key published nothing)
 */

void
ngx_http_sse_rpub_count(ngx_http_sse_zone_t *zone,
    ngx_http_sse_store_publish_t *op)
{
    ngx_uint_t  i, n;

    if (op->repeated) {
        return;
    }

    n = 0;

    for (i = 0; i < op->nchans; i++) {
        n += op->published[i];
    }

    (void) ngx_atomic_fetch_add(&zone->sh->published, n);
}


/*
 * Per channel: state, subscribers, events, epoch (string, '' none),
 * last seq, last publish
 */

ngx_int_t
ngx_http_sse_rpub_parse_query(ngx_http_sse_store_query_t *op,
    redisReply *reply)
{
    uint64_t                      state, subscribers, events, epoch, seq, t;
    ngx_uint_t                    i;
    redisReply                  **e;
    ngx_http_sse_channel_info_t  *info;

    if (reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 6 * op->nchans)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < op->nchans; i++) {
        e = &reply->element[6 * i];

        if (ngx_http_sse_rpub_integer(e[0], NGX_HTTP_SSE_CHANNEL_DELETED,
                                      &state)
               != NGX_OK
            || ngx_http_sse_rpub_integer(e[1], NGX_MAX_UINT32_VALUE,
                                         &subscribers)
               != NGX_OK
            || ngx_http_sse_rpub_integer(e[2], NGX_MAX_UINT32_VALUE,
                                         &events)
               != NGX_OK
            || e[3]->type != REDIS_REPLY_STRING
            || ngx_http_sse_rpub_integer(e[4], NGX_HTTP_SSE_RPUB_MAX_NUMBER,
                                         &seq)
               != NGX_OK
            || ngx_http_sse_rpub_integer(e[5], NGX_MAX_INT32_VALUE, &t)
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        epoch = 0;

        if (e[3]->len && ngx_http_sse_rpub_epoch(e[3], &epoch) != NGX_OK) {
            return NGX_ERROR;
        }

        /* a last id needs its epoch */
        if (seq && epoch == 0) {
            return NGX_ERROR;
        }

        info = &op->channels[i];

        info->state = (ngx_uint_t) state;
        info->subscribers = (ngx_uint_t) subscribers;
        info->events = (ngx_uint_t) events;
        info->last.epoch = epoch;
        info->last.seq = seq;
        info->last_publish = (time_t) t;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_sse_rpub_integer(redisReply *r, long long max, uint64_t *out)
{
    if (r->type != REDIS_REPLY_INTEGER || r->integer < 0 || r->integer > max)
    {
        return NGX_ERROR;
    }

    *out = (uint64_t) r->integer;

    return NGX_OK;
}


/* a decimal epoch: 1 to 16 digits, not 0, at most 2^53 - 1 */

ngx_int_t
ngx_http_sse_rpub_epoch(redisReply *r, uint64_t *out)
{
    size_t    i;
    uint64_t  v;

    if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->len > 16) {
        return NGX_ERROR;
    }

    v = 0;

    for (i = 0; i < r->len; i++) {
        if (r->str[i] < '0' || r->str[i] > '9') {
            return NGX_ERROR;
        }

        v = v * 10 + (r->str[i] - '0');
    }

    if (v == 0 || v > (uint64_t) NGX_HTTP_SSE_RPUB_MAX_NUMBER) {
        return NGX_ERROR;
    }

    *out = v;

    return NGX_OK;
}


void
ngx_http_sse_rpub_complete(ngx_http_sse_rpub_cmd_t *cmd, ngx_int_t rc)
{
    void        *op = cmd->op;
    ngx_uint_t   kind = cmd->kind;

    ngx_queue_remove(&cmd->queue);

    /* the completion may start the next operation: cmd is gone first */
    ngx_free(cmd);

    if (rc != NGX_OK) {
        ngx_http_sse_rpub_clear(op, kind);
    }

    ngx_http_sse_rpub_done(op, kind, rc);
}


/* the operation's completion, with its rc */

void
ngx_http_sse_rpub_done(void *op, ngx_uint_t kind, ngx_int_t rc)
{
    ngx_http_sse_store_query_t    *q;
    ngx_http_sse_store_publish_t  *p;

    if (kind == NGX_HTTP_SSE_RPUB_PUBLISH) {
        p = (ngx_http_sse_store_publish_t *) op;
        p->rc = rc;
        p->handler(p->data);
        return;
    }

    q = (ngx_http_sse_store_query_t *) op;
    q->rc = rc;
    q->handler(q->data);
}


ngx_http_sse_rpub_script_t *
ngx_http_sse_rpub_script(ngx_uint_t kind)
{
    u_char                       digest[SHA_DIGEST_LENGTH];
    ngx_http_sse_rpub_script_t  *s;

    s = &ngx_http_sse_rpub_scripts[kind];

    if (s->sha[0] == 0) {
        (void) SHA1((const u_char *) s->text, s->len, digest);
        ngx_hex_dump(s->sha, digest, SHA_DIGEST_LENGTH);
    }

    return s;
}


/* the "out" fields of a record, before a command and after a failure */

void
ngx_http_sse_rpub_clear(void *op, ngx_uint_t kind)
{
    ngx_uint_t                     i;
    ngx_http_sse_store_query_t    *q;
    ngx_http_sse_store_publish_t  *p;

    if (kind == NGX_HTTP_SSE_RPUB_PUBLISH) {
        p = (ngx_http_sse_store_publish_t *) op;
        p->repeated = 0;

        for (i = 0; i < p->nchans; i++) {
            p->published[i] = 0;
            p->subscribers[i] = 0;
            p->last[i].epoch = 0;
            p->last[i].seq = 0;
        }

        return;
    }

    q = (ngx_http_sse_store_query_t *) op;

    ngx_memzero(q->channels, q->nchans * sizeof(ngx_http_sse_channel_info_t));
}

} // namespace
