/*
 * One Redis connection of a worker: nginx's own connect (TCP or unix),
 * TLS, then AUTH, SELECT and a PING before it counts as up; a pipelined
 * command queue answered in order, each command with a deadline; pub/sub
 * messages; reconnects with backoff.  Never a blocking call.
 */

#include "ngx_http_sse_redis.h"
#include "sse_redis_url.h"


namespace {

typedef struct {
    ngx_queue_t                  link;      /* link->pending */
    ngx_http_sse_redis_reply_pt  handler;
    void                        *data;
    ngx_msec_t                   sent;      /* when it was queued */
    ngx_uint_t                   expect;    /* replies it takes */
} ngx_http_sse_redis_cmd_t;


ngx_int_t ngx_http_sse_redis_connect_peer(ngx_peer_connection_t *pc);
void ngx_http_sse_redis_connected(ngx_http_sse_redis_link_t *link);
ngx_int_t ngx_http_sse_redis_test_connect(ngx_connection_t *c);
void ngx_http_sse_redis_dispatch(ngx_http_sse_redis_link_t *link,
    redisReply *reply);
void ngx_http_sse_redis_complete(ngx_http_sse_redis_link_t *link,
    redisReply *reply);
void ngx_http_sse_redis_close(ngx_http_sse_redis_link_t *link);
void ngx_http_sse_redis_drop_pending(ngx_http_sse_redis_link_t *link,
    ngx_uint_t call);
void ngx_http_sse_redis_arm_timeout(ngx_http_sse_redis_link_t *link);
void ngx_http_sse_redis_retry_handler(ngx_event_t *ev);
void ngx_http_sse_redis_timeout_handler(ngx_event_t *ev);
void ngx_http_sse_redis_ping_handler(ngx_event_t *ev);
void ngx_http_sse_redis_auth_reply(ngx_http_sse_redis_t *redis,
    redisReply *reply, void *data);
void ngx_http_sse_redis_hello_reply(ngx_http_sse_redis_t *redis,
    redisReply *reply, void *data);
void ngx_http_sse_redis_ping_reply(ngx_http_sse_redis_t *redis,
    redisReply *reply, void *data);
u_char *ngx_http_sse_redis_log_context(ngx_log_t *log, u_char *buf,
    size_t len);
ngx_uint_t ngx_http_sse_redis_is(redisReply *r, const char *s, size_t n);
void *ngx_http_sse_redis_create_array(const redisReadTask *task,
    int elements);
void *ngx_http_sse_redis_create_string(const redisReadTask *task,
    char *str, size_t len);
void ngx_http_sse_redis_log_refused(ngx_http_sse_redis_link_t *link);


/*
 * hiredis' own reply objects, with bounds added: an array header makes
 * the reader allocate the array's element table at once, before a single
 * element arrived, so "*2000000000" alone would cost gigabytes; and what
 * the reader already parsed of a reply is no longer in its buffer, so the
 * elements and string bytes of a reply are counted as they are built.
 */
redisReplyObjectFunctions  *ngx_http_sse_redis_hiredis_fns;
redisReplyObjectFunctions   ngx_http_sse_redis_reply_fns;

} // namespace


void
ngx_http_sse_redis_link_init(ngx_http_sse_redis_t *redis,
    ngx_http_sse_redis_link_t *link, ngx_uint_t kind, ngx_log_t *log)
{
    link->redis = redis;
    link->kind = kind;
    link->kind_name = (kind == NGX_HTTP_SSE_REDIS_PUBSUB) ? "pubsub"
                                                          : "commands";
    link->state = NGX_HTTP_SSE_REDIS_CONNECTING;

    /* every line about the connection names it, never its password */
    link->log = *log;
    link->log.data = link;
    link->log.handler = ngx_http_sse_redis_log_context;
    link->log.action = NULL;

    ngx_queue_init(&link->pending);

    link->retry.handler = ngx_http_sse_redis_retry_handler;
    link->timeout.handler = ngx_http_sse_redis_timeout_handler;
    link->ping.handler = ngx_http_sse_redis_ping_handler;

    link->retry.data = link;
    link->timeout.data = link;
    link->ping.data = link;

    link->retry.log = &link->log;
    link->timeout.log = &link->log;
    link->ping.log = &link->log;

    /* a worker shutting down gracefully does not wait for these */
    link->retry.cancelable = 1;
    link->timeout.cancelable = 1;
    link->ping.cancelable = 1;
}


void
ngx_http_sse_redis_link_connect(ngx_http_sse_redis_link_t *link)
{
    ngx_int_t                   rc;
    ngx_addr_t                 *addr;
    ngx_connection_t           *c;
    ngx_http_sse_redis_conf_t  *conf = link->redis->conf;

    if (link->exiting) {
        return;
    }

    link->reader = redisReaderCreate();
    if (link->reader == NULL) {
        ngx_log_error(NGX_LOG_ERR, &link->log, 0,
                      "redis: no memory for a reply reader");
        ngx_http_sse_redis_lost(link);
        return;
    }

    if (ngx_http_sse_redis_hiredis_fns == NULL) {
        ngx_http_sse_redis_hiredis_fns = link->reader->fn;
        ngx_http_sse_redis_reply_fns = *link->reader->fn;
        ngx_http_sse_redis_reply_fns.createArray =
                                           ngx_http_sse_redis_create_array;
        ngx_http_sse_redis_reply_fns.createString =
                                           ngx_http_sse_redis_create_string;
    }

    link->reader->fn = &ngx_http_sse_redis_reply_fns;
    link->reader->privdata = link;

    link->reply_elements = 0;
    link->reply_bytes = 0;

    ngx_memzero(&link->peer, sizeof(ngx_peer_connection_t));

    /* the first address after an up connection, the next after a failure */
    addr = &conf->addrs[link->attempt % conf->naddrs];

    link->peer.sockaddr = addr->sockaddr;
    link->peer.socklen = addr->socklen;
    link->peer.name = &addr->name;
    link->peer.log = &link->log;
    link->peer.log_error = NGX_ERROR_ERR;

    link->log.action = (char *) "connecting to redis";
    link->phase = NGX_HTTP_SSE_REDIS_PHASE_TCP;

    /* the whole of connect, TLS and handshake has one deadline */
    ngx_add_timer(&link->timeout, NGX_HTTP_SSE_REDIS_TIMEOUT);

    rc = ngx_http_sse_redis_connect_peer(&link->peer);

    if (rc == NGX_ERROR || rc == NGX_DECLINED) {
        /* logged why, and closed the socket */
        link->peer.connection = NULL;
        ngx_http_sse_redis_lost(link);
        return;
    }

    c = link->peer.connection;
    c->data = link;
    c->read->handler = ngx_http_sse_redis_read_handler;
    c->write->handler = ngx_http_sse_redis_write_handler;

    c->pool = ngx_create_pool(512, &link->log);
    if (c->pool == NULL) {
        ngx_http_sse_redis_lost(link);
        return;
    }

    link->pool = c->pool;

    if (rc == NGX_AGAIN) {
        /* the write event says when connect() is done */
        return;
    }

    ngx_http_sse_redis_connected(link);
}


void
ngx_http_sse_redis_link_exit(ngx_http_sse_redis_link_t *link)
{
    link->exiting = 1;

    if (link->retry.timer_set) {
        ngx_del_timer(&link->retry);
    }

    /* the requests that were waiting are gone with the worker: no
     * handler is called */
    ngx_http_sse_redis_drop_pending(link, 0);
    ngx_http_sse_redis_close(link);
}


ngx_int_t
ngx_http_sse_redis_link_send(ngx_http_sse_redis_link_t *link, int argc,
    const char **argv, const size_t *argvlen, ngx_uint_t expect,
    ngx_http_sse_redis_reply_pt handler, void *data)
{
    int                        len;
    char                      *cmd;
    u_char                    *out;
    size_t                     cap, unsent;
    ngx_connection_t          *c;
    ngx_http_sse_redis_cmd_t  *rec;

    len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len < 0) {
        return NGX_ERROR;
    }

    rec = (ngx_http_sse_redis_cmd_t *)
              ngx_alloc(sizeof(ngx_http_sse_redis_cmd_t), &link->log);
    if (rec == NULL) {
        redisFreeCommand(cmd);
        return NGX_ERROR;
    }

    unsent = link->out_len - link->out_sent;

    if (link->out_sent) {
        ngx_memmove(link->out, link->out + link->out_sent, unsent);
        link->out_len = unsent;
        link->out_sent = 0;
    }

    if (unsent + len > link->out_cap) {
        cap = ngx_max(2 * link->out_cap, unsent + len);
        cap = ngx_max(cap, 4096);

        out = (u_char *) ngx_alloc(cap, &link->log);
        if (out == NULL) {
            redisFreeCommand(cmd);
            ngx_free(rec);
            return NGX_ERROR;
        }

        if (unsent) {
            ngx_memcpy(out, link->out, unsent);
        }

        if (link->out) {
            ngx_free(link->out);
        }

        link->out = out;
        link->out_cap = cap;
    }

    ngx_memcpy(link->out + link->out_len, cmd, len);
    link->out_len += len;
    redisFreeCommand(cmd);

    rec->handler = handler;
    rec->data = data;
    rec->sent = ngx_current_msec;
    rec->expect = expect;

    ngx_queue_insert_tail(&link->pending, &rec->link);
    link->npending++;

    if (link->phase == NGX_HTTP_SSE_REDIS_PHASE_UP
        && !link->timeout.timer_set)
    {
        ngx_add_timer(&link->timeout, NGX_HTTP_SSE_REDIS_TIMEOUT);
    }

    /* written once the current handlers are done: the commands queued
     * meanwhile go out together, and no handler runs inside this call */
    c = link->peer.connection;

    if (c && link->phase >= NGX_HTTP_SSE_REDIS_PHASE_HANDSHAKE
        && !c->write->posted)
    {
        ngx_post_event(c->write, &ngx_posted_events);
    }

    return NGX_OK;
}


void
ngx_http_sse_redis_link_up(ngx_http_sse_redis_link_t *link)
{
    ngx_http_sse_redis_t  *redis = link->redis;

    link->phase = NGX_HTTP_SSE_REDIS_PHASE_UP;
    link->state = NGX_HTTP_SSE_REDIS_UP;
    link->attempt = 0;
    link->log.action = (char *) "talking to redis";

    ngx_log_error(NGX_LOG_INFO, &link->log, 0, "redis connection is up");

    if (link->kind == NGX_HTTP_SSE_REDIS_PUBSUB
        && ngx_http_sse_redis_resubscribe(link) != NGX_OK)
    {
        ngx_http_sse_redis_lost(link);
        return;
    }

    link->ever_up = 1;

    ngx_http_sse_redis_arm_timeout(link);
    ngx_add_timer(&link->ping, NGX_HTTP_SSE_REDIS_PING);

    ngx_http_sse_redis_report(redis);

    ngx_http_sse_redis_check_synced(redis);
}


ngx_uint_t
ngx_http_sse_redis_is_up(ngx_http_sse_redis_t *redis)
{
    return redis->commands.phase == NGX_HTTP_SSE_REDIS_PHASE_UP
           && redis->pubsub.phase == NGX_HTTP_SSE_REDIS_PHASE_UP;
}


ngx_int_t
ngx_http_sse_redis_command(ngx_http_sse_redis_t *redis, int argc,
    const char **argv, const size_t *argvlen,
    ngx_http_sse_redis_reply_pt handler, void *data)
{
    ngx_http_sse_redis_link_t  *link = &redis->commands;

    if (link->phase != NGX_HTTP_SSE_REDIS_PHASE_UP
        || link->npending >= NGX_HTTP_SSE_REDIS_MAX_PENDING
        || ngx_http_sse_redis_link_send(link, argc, argv, argvlen, 1,
                                        handler, data)
           != NGX_OK)
    {
        handler(redis, NULL, data);
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * AUTH and SELECT, as configured, then a PING: the connection is up when
 * Redis answered all of them, so a Redis that accepts connections but
 * does not answer (stopped, loading) is never taken for up.
 */

void
ngx_http_sse_redis_handshake(ngx_http_sse_redis_link_t *link)
{
    int                         argc;
    const char                 *argv[3];
    size_t                      argvlen[3];
    ngx_http_sse_redis_conf_t  *conf = link->redis->conf;

    link->phase = NGX_HTTP_SSE_REDIS_PHASE_HANDSHAKE;
    link->log.action = (char *) "authenticating to redis";

    if (conf->has_password) {
        argc = 0;
        argv[argc] = "AUTH";
        argvlen[argc++] = 4;

        if (conf->user.len) {
            argv[argc] = (const char *) conf->user.data;
            argvlen[argc++] = conf->user.len;
        }

        argv[argc] = (const char *) conf->password.data;
        argvlen[argc++] = conf->password.len;

        if (ngx_http_sse_redis_link_send(link, argc, argv, argvlen, 1,
                                         ngx_http_sse_redis_auth_reply, link)
            != NGX_OK)
        {
            goto failed;
        }
    }

    if (conf->db.len) {
        argv[0] = "SELECT";
        argvlen[0] = 6;
        argv[1] = (const char *) conf->db.data;
        argvlen[1] = conf->db.len;

        if (ngx_http_sse_redis_link_send(link, 2, argv, argvlen, 1,
                                         ngx_http_sse_redis_auth_reply, link)
            != NGX_OK)
        {
            goto failed;
        }
    }

    argv[0] = "PING";
    argvlen[0] = 4;

    if (ngx_http_sse_redis_link_send(link, 1, argv, argvlen, 1,
                                     ngx_http_sse_redis_hello_reply, link)
        != NGX_OK)
    {
        goto failed;
    }

    return;

failed:

    ngx_log_error(NGX_LOG_ERR, &link->log, 0,
                  "redis: no memory for the handshake");
    ngx_http_sse_redis_lost(link);
}


void
ngx_http_sse_redis_read_handler(ngx_event_t *rev)
{
    ssize_t                     n;
    void                       *reply;
    ngx_uint_t                  generation, reads;
    ngx_connection_t           *c = (ngx_connection_t *) rev->data;
    ngx_http_sse_redis_link_t  *link = (ngx_http_sse_redis_link_t *) c->data;

    static u_char               buf[16384];

    if (link->phase == NGX_HTTP_SSE_REDIS_PHASE_TCP) {
        if (ngx_http_sse_redis_test_connect(c) != NGX_OK) {
            ngx_http_sse_redis_lost(link);
            return;
        }

        ngx_http_sse_redis_connected(link);
        return;
    }

    generation = link->generation;

    for (reads = 0; /* void */; reads++) {

        if (reads == NGX_HTTP_SSE_REDIS_READS) {
            /*
             * A Redis that never pauses (a flood of messages) does not
             * keep the worker from its other connections: the rest is
             * read in the next turn of the event loop, after its timers
             * and the other connections' events.  Not ngx_posted_events:
             * that queue is run until it is empty, so an event that posts
             * itself there again never gives the loop back.
             */
            ngx_post_event(rev, &ngx_posted_next_events);
            return;
        }

        n = c->recv(c, buf, sizeof(buf));

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == 0 || n == NGX_ERROR) {
            ngx_log_error(NGX_LOG_ERR, &link->log, 0,
                          "redis closed the connection");
            ngx_http_sse_redis_lost(link);
            return;
        }

        if (redisReaderFeed(link->reader, (const char *) buf, n)
            != REDIS_OK)
        {
            ngx_log_error(NGX_LOG_ERR, &link->log, 0,
                          "redis: no memory for a reply");
            ngx_http_sse_redis_lost(link);
            return;
        }

        for ( ;; ) {
            link->refused = NGX_HTTP_SSE_REDIS_REFUSED_NONE;

            if (redisReaderGetReply(link->reader, &reply) != REDIS_OK) {
                ngx_http_sse_redis_log_refused(link);
                ngx_http_sse_redis_lost(link);
                return;
            }

            if (reply == NULL) {
                break;
            }

            link->reply_elements = 0;
            link->reply_bytes = 0;

            ngx_http_sse_redis_dispatch(link, (redisReply *) reply);
            freeReplyObject(reply);

            if (link->generation != generation) {
                /* a handler closed the connection */
                return;
            }
        }

        if (link->reader->len - link->reader->pos
            > NGX_HTTP_SSE_REDIS_MAX_REPLY)
        {
            ngx_log_error(NGX_LOG_ERR, &link->log, 0,
                          "redis sent a reply of more than %uz bytes",
                          (size_t) NGX_HTTP_SSE_REDIS_MAX_REPLY);
            ngx_http_sse_redis_lost(link);
            return;
        }
    }

    /* a TLS write may have waited for this read */
    if (c->ssl && link->out_sent < link->out_len && !c->write->posted) {
        ngx_post_event(c->write, &ngx_posted_events);
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_http_sse_redis_lost(link);
    }
}


void
ngx_http_sse_redis_write_handler(ngx_event_t *wev)
{
    ssize_t                     n;
    ngx_connection_t           *c = (ngx_connection_t *) wev->data;
    ngx_http_sse_redis_link_t  *link = (ngx_http_sse_redis_link_t *) c->data;

    if (link->phase == NGX_HTTP_SSE_REDIS_PHASE_TCP) {
        if (ngx_http_sse_redis_test_connect(c) != NGX_OK) {
            ngx_http_sse_redis_lost(link);
            return;
        }

        ngx_http_sse_redis_connected(link);
        return;
    }

    if (link->phase < NGX_HTTP_SSE_REDIS_PHASE_HANDSHAKE) {
        return;
    }

    while (link->out_sent < link->out_len) {
        n = c->send(c, link->out + link->out_sent,
                    link->out_len - link->out_sent);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == NGX_ERROR) {
            ngx_http_sse_redis_lost(link);
            return;
        }

        link->out_sent += n;
    }

    if (link->out_sent == link->out_len) {
        link->out_sent = 0;
        link->out_len = 0;
    }

    if (ngx_handle_write_event(wev, 0) != NGX_OK) {
        ngx_http_sse_redis_lost(link);
    }
}


/*
 * The connection failed or was lost: close it, give every pending
 * command its NULL reply, and try again after the backoff.
 */

void
ngx_http_sse_redis_lost(ngx_http_sse_redis_link_t *link)
{
    ngx_msec_t  delay;

    if (link->phase == NGX_HTTP_SSE_REDIS_PHASE_UP) {
        link->redis->lost = 1;
    }

    ngx_http_sse_redis_close(link);

    link->state = NGX_HTTP_SSE_REDIS_DOWN;
    ngx_http_sse_redis_report(link->redis);

    /* the handlers see the connection down: what they send again is
     * refused at once, not queued on a dead connection */
    ngx_http_sse_redis_drop_pending(link, 1);

    if (link->exiting || link->retry.timer_set) {
        return;
    }

    delay = sse::redis_backoff_ms(link->attempt, (uint32_t) ngx_random());

    if (link->attempt < 64) {
        link->attempt++;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_EVENT, &link->log, 0,
                   "redis: reconnecting in %M ms", delay);

    ngx_add_timer(&link->retry, delay);
}


/* an error reply in a log line: Redis' own words, escaped, never ours */

void
ngx_http_sse_redis_log_reply(ngx_http_sse_redis_link_t *link,
    const char *what, redisReply *reply)
{
    ngx_http_sse_log_value_t  shown;

    ngx_log_error(NGX_LOG_ERR, &link->log, 0, "redis %s \"%V\"", what,
                  ngx_http_sse_log_value(&shown, (u_char *) reply->str,
                                         reply->len));
}


namespace {

/*
 * ngx_event_connect_peer() for a Redis connection (a stream socket, no
 * local address), with a failed connect() logged at "error" whatever its
 * errno: nginx's logs ENOENT and EACCES at "crit", and a Redis whose unix
 * socket is gone (redis-server removes it when it stops) is down, which
 * is an error, never more.
 */

ngx_int_t
ngx_http_sse_redis_connect_peer(ngx_peer_connection_t *pc)
{
    int                rc;
    ngx_int_t          event;
    ngx_err_t          err;
    ngx_socket_t       s;
    ngx_connection_t  *c;

    s = ngx_socket(pc->sockaddr->sa_family, SOCK_STREAM, 0);

    if (s == (ngx_socket_t) -1) {
        ngx_log_error(NGX_LOG_ALERT, pc->log, ngx_socket_errno,
                      ngx_socket_n " failed");
        return NGX_ERROR;
    }

    c = ngx_get_connection(s, pc->log);

    if (c == NULL) {
        if (ngx_close_socket(s) == -1) {
            ngx_log_error(NGX_LOG_ALERT, pc->log, ngx_socket_errno,
                          ngx_close_socket_n " failed");
        }

        return NGX_ERROR;
    }

    c->type = SOCK_STREAM;

    if (ngx_nonblocking(s) == -1) {
        ngx_log_error(NGX_LOG_ALERT, pc->log, ngx_socket_errno,
                      ngx_nonblocking_n " failed");
        goto failed;
    }

    c->recv = ngx_recv;
    c->send = ngx_send;
    c->recv_chain = ngx_recv_chain;
    c->send_chain = ngx_send_chain;

    if (pc->sockaddr->sa_family == AF_UNIX) {
        c->tcp_nopush = NGX_TCP_NOPUSH_DISABLED;
        c->tcp_nodelay = NGX_TCP_NODELAY_DISABLED;
    }

    c->log_error = pc->log_error;

    c->read->log = pc->log;
    c->write->log = pc->log;

    pc->connection = c;

    c->number = ngx_atomic_fetch_add(ngx_connection_counter, 1);
    c->start_time = ngx_current_msec;

    if (ngx_add_conn) {
        if (ngx_add_conn(c) == NGX_ERROR) {
            goto failed;
        }
    }

    ngx_log_debug3(NGX_LOG_DEBUG_EVENT, pc->log, 0,
                   "redis: connect to %V, fd:%d #%uA", pc->name, s,
                   c->number);

    rc = connect(s, pc->sockaddr, pc->socklen);

    if (rc == -1) {
        err = ngx_socket_errno;

        if (err != NGX_EINPROGRESS) {
            ngx_log_error(NGX_LOG_ERR, c->log, err, "connect() to %V failed",
                          pc->name);

            ngx_close_connection(c);
            pc->connection = NULL;

            return NGX_DECLINED;
        }
    }

    if (ngx_add_conn) {
        if (rc == -1) {
            /* NGX_EINPROGRESS */
            return NGX_AGAIN;
        }

        c->write->ready = 1;

        return NGX_OK;
    }

    if (ngx_event_flags & NGX_USE_CLEAR_EVENT) {
        /* kqueue */
        event = NGX_CLEAR_EVENT;

    } else {
        /* select, poll, /dev/poll */
        event = NGX_LEVEL_EVENT;
    }

    if (ngx_add_event(c->read, NGX_READ_EVENT, event) != NGX_OK) {
        goto failed;
    }

    if (rc == -1) {
        if (ngx_add_event(c->write, NGX_WRITE_EVENT, event) != NGX_OK) {
            goto failed;
        }

        return NGX_AGAIN;
    }

    c->write->ready = 1;

    return NGX_OK;

failed:

    ngx_close_connection(c);
    pc->connection = NULL;

    return NGX_ERROR;
}


void
ngx_http_sse_redis_connected(ngx_http_sse_redis_link_t *link)
{
    if (!link->redis->conf->tls) {
        ngx_http_sse_redis_handshake(link);
        return;
    }

    ngx_http_sse_redis_tls_start(link);
}


ngx_int_t
ngx_http_sse_redis_test_connect(ngx_connection_t *c)
{
    int        err;
    socklen_t  len;

    err = 0;
    len = sizeof(int);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len) == -1) {
        err = ngx_socket_errno;
    }

    if (err) {
        (void) ngx_connection_error(c, err, (char *) "connect() failed");
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* a NULL from these is out of memory to the reader: the read handler
 * says what it was */

void *
ngx_http_sse_redis_create_array(const redisReadTask *task, int elements)
{
    ngx_http_sse_redis_link_t  *link;

    link = (ngx_http_sse_redis_link_t *) task->privdata;

    if (elements > NGX_HTTP_SSE_REDIS_MAX_ELEMENTS) {
        link->refused = NGX_HTTP_SSE_REDIS_REFUSED_ARRAY;
        link->refused_n = elements;
        return NULL;
    }

    if (link->reply_elements + elements > NGX_HTTP_SSE_REDIS_MAX_ELEMENTS) {
        link->refused = NGX_HTTP_SSE_REDIS_REFUSED_ELEMENTS;
        return NULL;
    }

    link->reply_elements += elements;

    return ngx_http_sse_redis_hiredis_fns->createArray(task, elements);
}


void *
ngx_http_sse_redis_create_string(const redisReadTask *task, char *str,
    size_t len)
{
    ngx_http_sse_redis_link_t  *link;

    link = (ngx_http_sse_redis_link_t *) task->privdata;

    if (len > NGX_HTTP_SSE_REDIS_MAX_REPLY - link->reply_bytes) {
        link->refused = NGX_HTTP_SSE_REDIS_REFUSED_BYTES;
        return NULL;
    }

    link->reply_bytes += len;

    return ngx_http_sse_redis_hiredis_fns->createString(task, str, len);
}


void
ngx_http_sse_redis_log_refused(ngx_http_sse_redis_link_t *link)
{
    switch (link->refused) {

    case NGX_HTTP_SSE_REDIS_REFUSED_ARRAY:
        ngx_log_error(NGX_LOG_ERR, &link->log, 0,
                      "redis sent an array of %i elements (more than %d)",
                      link->refused_n, NGX_HTTP_SSE_REDIS_MAX_ELEMENTS);
        break;

    case NGX_HTTP_SSE_REDIS_REFUSED_ELEMENTS:
        ngx_log_error(NGX_LOG_ERR, &link->log, 0,
                      "redis sent a reply of more than %d elements",
                      NGX_HTTP_SSE_REDIS_MAX_ELEMENTS);
        break;

    case NGX_HTTP_SSE_REDIS_REFUSED_BYTES:
        ngx_log_error(NGX_LOG_ERR, &link->log, 0,
                      "redis sent a reply of more than %uz bytes",
                      (size_t) NGX_HTTP_SSE_REDIS_MAX_REPLY);
        break;

    default:
        ngx_log_error(NGX_LOG_ERR, &link->log, 0,
                      "redis protocol error: %s", link->reader->errstr);
    }
}


ngx_uint_t
ngx_http_sse_redis_is(redisReply *r, const char *s, size_t n)
{
    return r->type == REDIS_REPLY_STRING && (size_t) r->len == n
           && ngx_strncasecmp((u_char *) r->str, (u_char *) s, n) == 0;
}


void
ngx_http_sse_redis_dispatch(ngx_http_sse_redis_link_t *link,
    redisReply *reply)
{
    ngx_str_t              channel, payload;
    redisReply           **e;
    ngx_http_sse_redis_t  *redis = link->redis;

    if (link->kind == NGX_HTTP_SSE_REDIS_PUBSUB
        && reply->type == REDIS_REPLY_ARRAY && reply->elements == 3)
    {
        e = reply->element;

        if (ngx_http_sse_redis_is(e[0], "message", 7)
            && e[1]->type == REDIS_REPLY_STRING
            && e[2]->type == REDIS_REPLY_STRING)
        {
            /* a push, not the reply to a command */
            if (redis->on_message) {
                channel.data = (u_char *) e[1]->str;
                channel.len = e[1]->len;
                payload.data = (u_char *) e[2]->str;
                payload.len = e[2]->len;

                redis->on_message(redis, &channel, &payload, redis->data);
            }

            return;
        }
    }

    ngx_http_sse_redis_complete(link, reply);
}


/* the reply belongs to the oldest command (Redis answers in order) */

void
ngx_http_sse_redis_complete(ngx_http_sse_redis_link_t *link,
    redisReply *reply)
{
    ngx_queue_t               *q;
    ngx_http_sse_redis_cmd_t  *cmd;

    if (ngx_queue_empty(&link->pending)) {
        ngx_log_error(NGX_LOG_ERR, &link->log, 0,
                      "redis sent a reply to no command");
        ngx_http_sse_redis_lost(link);
        return;
    }

    q = ngx_queue_head(&link->pending);
    cmd = ngx_queue_data(q, ngx_http_sse_redis_cmd_t, link);

    if (link->redis->zone->sh) {
        link->redis->zone->sh->redis.last_reply = ngx_current_msec;
    }

    /* SUBSCRIBE and UNSUBSCRIBE get one reply per channel */
    if (cmd->expect > 1) {
        cmd->expect--;
        return;
    }

    ngx_queue_remove(q);
    link->npending--;

    if (link->phase == NGX_HTTP_SSE_REDIS_PHASE_UP) {
        ngx_http_sse_redis_arm_timeout(link);
    }

    cmd->handler(link->redis, reply, cmd->data);

    ngx_free(cmd);
}


/* the oldest command's deadline, or none when nothing is pending */

void
ngx_http_sse_redis_arm_timeout(ngx_http_sse_redis_link_t *link)
{
    ngx_msec_int_t             left;
    ngx_http_sse_redis_cmd_t  *cmd;

    if (ngx_queue_empty(&link->pending)) {
        if (link->timeout.timer_set) {
            ngx_del_timer(&link->timeout);
        }

        return;
    }

    cmd = ngx_queue_data(ngx_queue_head(&link->pending),
                         ngx_http_sse_redis_cmd_t, link);

    left = (ngx_msec_int_t) (cmd->sent + NGX_HTTP_SSE_REDIS_TIMEOUT
                             - ngx_current_msec);

    ngx_add_timer(&link->timeout, left > 0 ? (ngx_msec_t) left : 1);
}


void
ngx_http_sse_redis_close(ngx_http_sse_redis_link_t *link)
{
    ngx_connection_t  *c = link->peer.connection;

    if (c) {
        if (c->ssl) {
            /* close_notify when the worker exits (if it can go at once;
             * never waiting for Redis); none on a broken connection */
            c->ssl->no_wait_shutdown = 1;
            c->ssl->no_send_shutdown = !link->exiting;
            (void) ngx_ssl_shutdown(c);
        }

        ngx_close_connection(c);
        link->peer.connection = NULL;
    }

    if (link->pool) {
        ngx_destroy_pool(link->pool);
        link->pool = NULL;
    }

    if (link->reader) {
        redisReaderFree(link->reader);
        link->reader = NULL;
    }

    if (link->timeout.timer_set) {
        ngx_del_timer(&link->timeout);
    }

    if (link->ping.timer_set) {
        ngx_del_timer(&link->ping);
    }

    link->out_len = 0;
    link->out_sent = 0;

    link->phase = NGX_HTTP_SSE_REDIS_PHASE_NONE;
    link->generation++;
}


void
ngx_http_sse_redis_drop_pending(ngx_http_sse_redis_link_t *link,
    ngx_uint_t call)
{
    ngx_queue_t               *q, pending;
    ngx_http_sse_redis_cmd_t  *cmd;

    /* taken apart first: a handler may queue (and be refused) meanwhile */
    if (ngx_queue_empty(&link->pending)) {
        return;
    }

    pending = link->pending;
    pending.next->prev = &pending;
    pending.prev->next = &pending;

    ngx_queue_init(&link->pending);
    link->npending = 0;

    while (!ngx_queue_empty(&pending)) {
        q = ngx_queue_head(&pending);
        ngx_queue_remove(q);

        cmd = ngx_queue_data(q, ngx_http_sse_redis_cmd_t, link);

        if (call) {
            cmd->handler(link->redis, NULL, cmd->data);
        }

        ngx_free(cmd);
    }
}


void
ngx_http_sse_redis_retry_handler(ngx_event_t *ev)
{
    ngx_http_sse_redis_link_t  *link = (ngx_http_sse_redis_link_t *) ev->data;

    if (link->redis->zone->sh) {
        (void) ngx_atomic_fetch_add(&link->redis->zone->sh->redis.reconnects,
                                    1);
    }

    ngx_http_sse_redis_link_connect(link);
}


void
ngx_http_sse_redis_timeout_handler(ngx_event_t *ev)
{
    ngx_http_sse_redis_link_t  *link = (ngx_http_sse_redis_link_t *) ev->data;

    if (link->phase == NGX_HTTP_SSE_REDIS_PHASE_UP) {
        ngx_log_error(NGX_LOG_ERR, &link->log, 0,
                      "redis did not answer within %ui ms",
                      (ngx_uint_t) NGX_HTTP_SSE_REDIS_TIMEOUT);

    } else {
        ngx_log_error(NGX_LOG_ERR, &link->log, 0,
                      "redis connection not ready within %ui ms",
                      (ngx_uint_t) NGX_HTTP_SSE_REDIS_TIMEOUT);
    }

    ngx_http_sse_redis_lost(link);
}


void
ngx_http_sse_redis_ping_handler(ngx_event_t *ev)
{
    const char                 *argv[1];
    size_t                      argvlen[1];
    ngx_http_sse_redis_link_t  *link = (ngx_http_sse_redis_link_t *) ev->data;

    if (link->phase != NGX_HTTP_SSE_REDIS_PHASE_UP) {
        return;
    }

    /* with commands pending, their deadline already proves the link */
    if (link->npending == 0) {
        argv[0] = "PING";
        argvlen[0] = 4;

        if (ngx_http_sse_redis_link_send(link, 1, argv, argvlen, 1,
                                         ngx_http_sse_redis_ping_reply, link)
            != NGX_OK)
        {
            ngx_http_sse_redis_lost(link);
            return;
        }
    }

    ngx_add_timer(&link->ping, NGX_HTTP_SSE_REDIS_PING);
}


/* AUTH and SELECT: an error reply ends the connection */

void
ngx_http_sse_redis_auth_reply(ngx_http_sse_redis_t *redis, redisReply *reply,
    void *data)
{
    ngx_http_sse_redis_link_t  *link = (ngx_http_sse_redis_link_t *) data;

    if (reply == NULL || reply->type != REDIS_REPLY_ERROR) {
        return;
    }

    ngx_http_sse_redis_log_reply(link, "refused the handshake", reply);
    ngx_http_sse_redis_lost(link);
}


void
ngx_http_sse_redis_hello_reply(ngx_http_sse_redis_t *redis,
    redisReply *reply, void *data)
{
    ngx_http_sse_redis_link_t  *link = (ngx_http_sse_redis_link_t *) data;

    if (reply == NULL) {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        /* e.g. NOAUTH (a password is needed) or LOADING */
        ngx_http_sse_redis_log_reply(link, "answered PING with", reply);
        ngx_http_sse_redis_lost(link);
        return;
    }

    ngx_http_sse_redis_link_up(link);
}


void
ngx_http_sse_redis_ping_reply(ngx_http_sse_redis_t *redis, redisReply *reply,
    void *data)
{
    ngx_http_sse_redis_link_t  *link = (ngx_http_sse_redis_link_t *) data;

    if (reply == NULL || reply->type != REDIS_REPLY_ERROR) {
        return;
    }

    ngx_http_sse_redis_log_reply(link, "answered PING with", reply);
    ngx_http_sse_redis_lost(link);
}


u_char *
ngx_http_sse_redis_log_context(ngx_log_t *log, u_char *buf, size_t len)
{
    u_char                     *p = buf;
    ngx_http_sse_redis_link_t  *link = (ngx_http_sse_redis_link_t *) log->data;

    if (log->action) {
        p = ngx_snprintf(p, len, " while %s", log->action);
        len -= p - buf;
        buf = p;
    }

    /* the address of this attempt (a name may have several) */
    p = ngx_snprintf(p, len, ", redis: %V, sse zone: %V, connection: %s",
                     link->peer.name ? link->peer.name
                                     : &link->redis->conf->addrs[0].name,
                     &link->redis->zone->name, link->kind_name);

    return p;
}

} // namespace
