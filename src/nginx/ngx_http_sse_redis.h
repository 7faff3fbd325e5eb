/*
 * ngx_http_sse_redis_module: a zone's Redis client, per worker, on nginx's
 * event loop.
 *
 *   ngx_http_sse_redis_module.cpp  directives, configuration, process
 *                                  hooks, the figures for sse_status
 *   ngx_http_sse_redis_link.cpp    one connection: connect, AUTH, SELECT
 *                                  and PING, the pipelined command queue,
 *                                  reply deadlines, reconnects
 *   ngx_http_sse_redis_tls.cpp     TLS for rediss://
 *   ngx_http_sse_redis_pubsub.cpp  the subscribed channels, resubscribing
 *   sse_redis_url.cpp              the URL and the backoff (pure C++)
 *
 * Each worker holds two connections per zone with sse_redis: one for
 * commands (pipelined, answered in order) and one for pub/sub (SUBSCRIBE
 * puts a Redis connection in a mode where it takes no other commands).
 * The protocol is libhiredis' redisReader and redisFormatCommandArgv only:
 * the sockets and TLS are nginx's own.
 */

#ifndef NGX_HTTP_SSE_REDIS_H
#define NGX_HTTP_SSE_REDIS_H

#include "ngx_http_sse.h"

extern "C" {
#include <hiredis/hiredis.h>
}


/* commands queued or awaiting their reply, per connection */
#define NGX_HTTP_SSE_REDIS_MAX_PENDING   1024

/* Redis not answering a command (or not completing a connection and its
 * handshake) within this long: the connection is considered down */
#define NGX_HTTP_SSE_REDIS_TIMEOUT       1000

/* every connection that is up sends a PING this often: a Redis that
 * stopped answering is found even when nothing else is sent */
#define NGX_HTTP_SSE_REDIS_PING          1000

/* bytes of one reply the reader may hold before it is complete, and
 * elements of one reply: both counted over the whole reply, nested
 * arrays included (each array alone would be bounded, but a reply whose
 * arrays never end could grow without one) */
#define NGX_HTTP_SSE_REDIS_MAX_REPLY     (256 * 1024 * 1024)
#define NGX_HTTP_SSE_REDIS_MAX_ELEMENTS  (1024 * 1024)

/* reads of up to 16 KB in one turn of the event loop, per connection */
#define NGX_HTTP_SSE_REDIS_READS         64


typedef struct ngx_http_sse_redis_s       ngx_http_sse_redis_t;
typedef struct ngx_http_sse_redis_link_s  ngx_http_sse_redis_link_t;


/*
 * A command's completion: reply is the reply (an error reply included),
 * or NULL when there is none: the command was refused (the connection is
 * not up, or too many are pending), the connection was lost, or Redis did
 * not answer in time.  The reply is freed after the call returns.
 */
typedef void (*ngx_http_sse_redis_reply_pt)(ngx_http_sse_redis_t *redis,
    redisReply *reply, void *data);

/* a pub/sub message on a channel the worker subscribed to */
typedef void (*ngx_http_sse_redis_message_pt)(ngx_http_sse_redis_t *redis,
    ngx_str_t *channel, ngx_str_t *payload, void *data);

/* both connections are up (for the first time, or again after one of
 * them was lost) and Redis confirmed every channel's SUBSCRIBE: what was
 * published meanwhile is missing */
typedef void (*ngx_http_sse_redis_reconnected_pt)(ngx_http_sse_redis_t *redis,
    void *data);


/* ---- configuration -------------------------------------------------- */

typedef struct {
    ngx_str_t                   zone_name;  /* empty: the first zone */
    ngx_http_sse_zone_t        *zone;
    ngx_str_t                   prefix;

    ngx_addr_t                 *addrs;      /* resolved when configured */
    ngx_uint_t                  naddrs;
    ngx_str_t                   host;       /* NUL-terminated, for SNI */
    ngx_str_t                   user;       /* empty: the default user */
    ngx_str_t                   password;
    ngx_str_t                   db;         /* digits; empty: 0, no SELECT */
    unsigned                    tls:1;
    unsigned                    host_is_ip:1;
    unsigned                    has_password:1;

    u_char                     *file;       /* where it was configured */
    ngx_uint_t                  line;
} ngx_http_sse_redis_conf_t;


typedef struct {
    ngx_array_t                 confs;      /* ngx_http_sse_redis_conf_t */

    ngx_str_t                   ssl_trusted_certificate;
    ngx_flag_t                  ssl_verify;
    ngx_str_t                   ssl_certificate;
    ngx_str_t                   ssl_certificate_key;
    ngx_ssl_t                  *ssl;        /* with a rediss:// URL */

    ngx_array_t                 clients;    /* ngx_http_sse_redis_t *:
                                               this worker's */
} ngx_http_sse_redis_main_conf_t;


/* ---- one connection ------------------------------------------------- */

#define NGX_HTTP_SSE_REDIS_COMMANDS  0
#define NGX_HTTP_SSE_REDIS_PUBSUB    1

#define NGX_HTTP_SSE_REDIS_PHASE_NONE       0   /* closed */
#define NGX_HTTP_SSE_REDIS_PHASE_TCP        1   /* connect() under way */
#define NGX_HTTP_SSE_REDIS_PHASE_TLS        2
#define NGX_HTTP_SSE_REDIS_PHASE_HANDSHAKE  3   /* AUTH, SELECT, PING */
#define NGX_HTTP_SSE_REDIS_PHASE_UP         4

/* why the reader stopped at a reply: it was over a bound */
#define NGX_HTTP_SSE_REDIS_REFUSED_NONE      0
#define NGX_HTTP_SSE_REDIS_REFUSED_ARRAY     1   /* one array header */
#define NGX_HTTP_SSE_REDIS_REFUSED_ELEMENTS  2   /* the reply's elements */
#define NGX_HTTP_SSE_REDIS_REFUSED_BYTES     3   /* the reply's strings */

struct ngx_http_sse_redis_link_s {
    ngx_http_sse_redis_t       *redis;
    ngx_uint_t                  kind;       /* NGX_HTTP_SSE_REDIS_COMMANDS
                                               or _PUBSUB */
    ngx_peer_connection_t       peer;
    ngx_pool_t                 *pool;       /* of the connection */
    redisReader                *reader;
    ngx_log_t                   log;
    const char                 *kind_name;

    ngx_queue_t                 pending;    /* ngx_http_sse_redis_cmd_t */
    ngx_uint_t                  npending;

    u_char                     *out;        /* formatted, not yet sent */
    size_t                      out_len;
    size_t                      out_sent;
    size_t                      out_cap;

    ngx_uint_t                  state;      /* NGX_HTTP_SSE_REDIS_* */
    ngx_uint_t                  attempt;    /* failures since last up */
    ngx_uint_t                  generation; /* bumped on every close */

    ngx_event_t                 retry;      /* the backoff's end */
    ngx_event_t                 timeout;    /* connect or reply deadline */
    ngx_event_t                 ping;

    ngx_uint_t                  phase;      /* NGX_HTTP_SSE_REDIS_PHASE_* */

    /* what the reader built so far of the reply it reads */
    size_t                      reply_elements;
    size_t                      reply_bytes;
    ngx_uint_t                  refused;    /* NGX_HTTP_SSE_REDIS_REFUSED_* */
    ngx_int_t                   refused_n;

    unsigned                    ever_up:1;
    unsigned                    exiting:1;
};


/* ---- a zone's client in this worker --------------------------------- */

struct ngx_http_sse_redis_s {
    ngx_http_sse_redis_conf_t  *conf;
    ngx_http_sse_zone_t        *zone;
    ngx_http_sse_redis_main_conf_t *rmcf;
    ngx_int_t                   slot;       /* the zone slot it reports in */

    ngx_http_sse_redis_link_t   commands;
    ngx_http_sse_redis_link_t   pubsub;

    ngx_rbtree_t                channels;   /* ngx_str_node_t: subscribed */
    ngx_rbtree_node_t           sentinel;
    ngx_uint_t                  nchannels;

    /* channels left, whose UNSUBSCRIBE goes at the end of this turn of
     * the event loop, many to a command (ngx_str_node_t) */
    ngx_rbtree_t                unsubs;
    ngx_rbtree_node_t           unsubs_sentinel;
    ngx_uint_t                  nunsubs;
    ngx_event_t                 unsub_event;

    ngx_http_sse_redis_message_pt      on_message;
    ngx_http_sse_redis_reconnected_pt  on_reconnected;
    void                       *data;

    ngx_uint_t                  resubscribing;  /* SUBSCRIBEs sent again
                                                   and not yet confirmed */
    ngx_str_t                   resub_from;     /* the last channel sent
                                                   again */
    uint32_t                    resub_hash;
    size_t                      resub_cap;
    unsigned                    resub_more:1;   /* channels left to send */

    unsigned                    lost:1;     /* a link was lost since both
                                               were last up */
    unsigned                    synced:1;   /* on_reconnected ran once */
};


/* ---- the interface the store uses ----------------------------------- */

/* this worker's client of the zone; NULL: the zone has no sse_redis */
ngx_http_sse_redis_t *ngx_http_sse_redis_get(ngx_http_sse_zone_t *zone);

void ngx_http_sse_redis_set_handlers(ngx_http_sse_redis_t *redis,
    ngx_http_sse_redis_message_pt on_message,
    ngx_http_sse_redis_reconnected_pt on_reconnected, void *data);

/* both connections up */
ngx_uint_t ngx_http_sse_redis_is_up(ngx_http_sse_redis_t *redis);

/*
 * Queues a command on the commands connection.  The handler is called
 * exactly once: later with the reply, or before this returns (with NULL,
 * and NGX_DECLINED returned) when the connection is not up or
 * NGX_HTTP_SSE_REDIS_MAX_PENDING commands are pending.
 */
ngx_int_t ngx_http_sse_redis_command(ngx_http_sse_redis_t *redis,
    int argc, const char **argv, const size_t *argvlen,
    ngx_http_sse_redis_reply_pt handler, void *data);

/* channel names are used as given: the caller adds conf->prefix */
/*
 * subscribe: NGX_DECLINED (and no call) when the channel is in the set
 * already; otherwise the handler (if any) is called exactly once: with
 * Redis' confirmation, or NULL when there is none (the connection is not
 * up, or was lost: the channel stays in the set and is subscribed again
 * with the others once it is up).  unsubscribe: out of the set at once;
 * the UNSUBSCRIBE goes at the end of the event loop's turn with the
 * others of the turn, and a channel subscribed again before that is
 * answered at once (NULL): Redis never stopped sending it
 */
ngx_int_t ngx_http_sse_redis_subscribe(ngx_http_sse_redis_t *redis,
    ngx_str_t *channel, ngx_http_sse_redis_reply_pt handler, void *data);
ngx_int_t ngx_http_sse_redis_unsubscribe(ngx_http_sse_redis_t *redis,
    ngx_str_t *channel);

/* counts a publish refused for want of Redis (sse_status) */
void ngx_http_sse_redis_refused(ngx_http_sse_redis_t *redis);

/* counts a request Redis refused with an error a retry does not mend */
void ngx_http_sse_redis_error(ngx_http_sse_redis_t *redis);


/* ---- sse_status ----------------------------------------------------- */

typedef struct {
    ngx_uint_t                  state;      /* NGX_HTTP_SSE_REDIS_* */
    ngx_uint_t                  workers_down;   /* of those attached */
    ngx_uint_t                  reconnects;
    ngx_uint_t                  publishes_refused;
    ngx_uint_t                  errors;
    ngx_int_t                   last_reply_ms;  /* -1: never */
} ngx_http_sse_redis_figures_t;

/* NGX_DECLINED: the zone has no sse_redis */
ngx_int_t ngx_http_sse_redis_figures(ngx_cycle_t *cycle,
    ngx_http_sse_zone_t *zone, ngx_http_sse_redis_figures_t *f);


/* ---- between the module's files ------------------------------------- */

extern ngx_module_t  ngx_http_sse_redis_module;

void ngx_http_sse_redis_link_init(ngx_http_sse_redis_t *redis,
    ngx_http_sse_redis_link_t *link, ngx_uint_t kind, ngx_log_t *log);
void ngx_http_sse_redis_link_connect(ngx_http_sse_redis_link_t *link);
void ngx_http_sse_redis_link_exit(ngx_http_sse_redis_link_t *link);
ngx_int_t ngx_http_sse_redis_link_send(ngx_http_sse_redis_link_t *link,
    int argc, const char **argv, const size_t *argvlen, ngx_uint_t expect,
    ngx_http_sse_redis_reply_pt handler, void *data);
void ngx_http_sse_redis_link_up(ngx_http_sse_redis_link_t *link);
void ngx_http_sse_redis_lost(ngx_http_sse_redis_link_t *link);
void ngx_http_sse_redis_handshake(ngx_http_sse_redis_link_t *link);
void ngx_http_sse_redis_read_handler(ngx_event_t *rev);
void ngx_http_sse_redis_write_handler(ngx_event_t *wev);
void ngx_http_sse_redis_log_reply(ngx_http_sse_redis_link_t *link,
    const char *what, redisReply *reply);
void ngx_http_sse_redis_report(ngx_http_sse_redis_t *redis);

/* ngx_http_sse_redis_tls.cpp */
void ngx_http_sse_redis_tls_start(ngx_http_sse_redis_link_t *link);

/* ngx_http_sse_redis_pubsub.cpp */
void ngx_http_sse_redis_pubsub_init(ngx_http_sse_redis_t *redis,
    ngx_log_t *log);
void ngx_http_sse_redis_unsubs_drop(ngx_http_sse_redis_t *redis);
ngx_int_t ngx_http_sse_redis_resubscribe(ngx_http_sse_redis_link_t *link);
void ngx_http_sse_redis_check_synced(ngx_http_sse_redis_t *redis);

#endif /* NGX_HTTP_SSE_REDIS_H */
