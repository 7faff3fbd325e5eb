/*
 * ngx_http_sse_redis_module: the sse_redis directives, and the clients
 * every worker holds (one per zone with sse_redis).  Its own module in the
 * same .so, so that its configuration stays apart from the streams'; it
 * finds its sse zone by name once the http block is read.
 */

#include "ngx_http_sse_redis.h"
#include "ngx_http_sse_store_redis.h"
#include "sse_redis_url.h"


namespace {

void *ngx_http_sse_redis_create_main_conf(ngx_conf_t *cf);
char *ngx_http_sse_redis_init_main_conf(ngx_conf_t *cf, void *conf);
ngx_int_t ngx_http_sse_redis_postconfiguration(ngx_conf_t *cf);
char *ngx_http_sse_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_sse_redis_address(ngx_conf_t *cf,
    ngx_http_sse_redis_conf_t *rcf, sse::RedisUrl *url);
ngx_int_t ngx_http_sse_redis_ssl(ngx_conf_t *cf,
    ngx_http_sse_redis_main_conf_t *rmcf);
ngx_int_t ngx_http_sse_redis_init_process(ngx_cycle_t *cycle);
void ngx_http_sse_redis_exit_process(ngx_cycle_t *cycle);


ngx_command_t  ngx_http_sse_redis_commands[] = {

    { ngx_string("sse_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_sse_redis,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("sse_redis_ssl_trusted_certificate"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_sse_redis_main_conf_t, ssl_trusted_certificate),
      NULL },

    { ngx_string("sse_redis_ssl_verify"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_sse_redis_main_conf_t, ssl_verify),
      NULL },

    { ngx_string("sse_redis_ssl_certificate"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_sse_redis_main_conf_t, ssl_certificate),
      NULL },

    { ngx_string("sse_redis_ssl_certificate_key"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_sse_redis_main_conf_t, ssl_certificate_key),
      NULL },

      ngx_null_command
};


ngx_http_module_t  ngx_http_sse_redis_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_sse_redis_postconfiguration,  /* postconfiguration */

    ngx_http_sse_redis_create_main_conf,   /* create main configuration */
    ngx_http_sse_redis_init_main_conf,     /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};

} // namespace


ngx_module_t  ngx_http_sse_redis_module = {
    NGX_MODULE_V1,
    &ngx_http_sse_redis_module_ctx,        /* module context */
    ngx_http_sse_redis_commands,           /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_sse_redis_init_process,       /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_sse_redis_exit_process,       /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


ngx_http_sse_redis_t *
ngx_http_sse_redis_get(ngx_http_sse_zone_t *zone)
{
    ngx_uint_t                       i;
    ngx_http_sse_redis_t           **clients;
    ngx_http_sse_redis_main_conf_t  *rmcf;

    rmcf = (ngx_http_sse_redis_main_conf_t *)
               ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                                   ngx_http_sse_redis_module);
    if (rmcf == NULL) {
        return NULL;
    }

    clients = (ngx_http_sse_redis_t **) rmcf->clients.elts;

    for (i = 0; i < rmcf->clients.nelts; i++) {
        if (clients[i]->zone == zone) {
            return clients[i];
        }
    }

    return NULL;
}


void
ngx_http_sse_redis_set_handlers(ngx_http_sse_redis_t *redis,
    ngx_http_sse_redis_message_pt on_message,
    ngx_http_sse_redis_reconnected_pt on_reconnected, void *data)
{
    redis->on_message = on_message;
    redis->on_reconnected = on_reconnected;
    redis->data = data;
}


void
ngx_http_sse_redis_refused(ngx_http_sse_redis_t *redis)
{
    (void) ngx_atomic_fetch_add(&redis->zone->sh->redis.publishes_refused, 1);
}


void
ngx_http_sse_redis_error(ngx_http_sse_redis_t *redis)
{
    (void) ngx_atomic_fetch_add(&redis->zone->sh->redis.errors, 1);
}


/* this worker's state, as sse_status sees it: up when both are */

void
ngx_http_sse_redis_report(ngx_http_sse_redis_t *redis)
{
    ngx_uint_t                    state;
    ngx_http_sse_redis_worker_t  *w;

    if (redis->commands.state == NGX_HTTP_SSE_REDIS_DOWN
        || redis->pubsub.state == NGX_HTTP_SSE_REDIS_DOWN)
    {
        state = NGX_HTTP_SSE_REDIS_DOWN;

    } else if (redis->commands.state == NGX_HTTP_SSE_REDIS_UP
               && redis->pubsub.state == NGX_HTTP_SSE_REDIS_UP)
    {
        state = NGX_HTTP_SSE_REDIS_UP;

    } else {
        state = NGX_HTTP_SSE_REDIS_CONNECTING;
    }

    if (redis->slot < 0 || redis->zone->sh == NULL) {
        return;
    }

    w = &redis->zone->sh->redis.workers[redis->slot];

    w->state = state;
    w->pid = ngx_pid;
}


ngx_int_t
ngx_http_sse_redis_figures(ngx_cycle_t *cycle, ngx_http_sse_zone_t *zone,
    ngx_http_sse_redis_figures_t *f)
{
    ngx_uint_t                       i, found, state, any_other;
    ngx_msec_t                       last;
    ngx_atomic_uint_t                pid;
    ngx_http_sse_shctx_t            *sh = zone->sh;
    ngx_http_sse_redis_conf_t       *confs;
    ngx_http_sse_redis_main_conf_t  *rmcf;

    rmcf = (ngx_http_sse_redis_main_conf_t *)
               ngx_http_cycle_get_module_main_conf(cycle,
                                                   ngx_http_sse_redis_module);
    if (rmcf == NULL) {
        return NGX_DECLINED;
    }

    confs = (ngx_http_sse_redis_conf_t *) rmcf->confs.elts;
    found = 0;

    for (i = 0; i < rmcf->confs.nelts; i++) {
        if (confs[i].zone == zone) {
            found = 1;
            break;
        }
    }

    if (!found || sh == NULL) {
        return NGX_DECLINED;
    }

    /*
     * Every worker attached to the zone counts: one that has not
     * reported yet is still connecting.
     */

    any_other = 0;
    f->workers_down = 0;

    for (i = 0; i < NGX_HTTP_SSE_MAX_SLOTS; i++) {
        pid = sh->slots[i].pid;
        if (pid == 0) {
            continue;
        }

        state = (sh->redis.workers[i].pid == pid)
                ? sh->redis.workers[i].state : NGX_HTTP_SSE_REDIS_CONNECTING;

        if (state == NGX_HTTP_SSE_REDIS_DOWN) {
            f->workers_down++;

        } else if (state != NGX_HTTP_SSE_REDIS_UP) {
            any_other = 1;
        }
    }

    f->state = f->workers_down ? NGX_HTTP_SSE_REDIS_DOWN
               : any_other ? NGX_HTTP_SSE_REDIS_CONNECTING
               : NGX_HTTP_SSE_REDIS_UP;

    f->reconnects = sh->redis.reconnects;
    f->publishes_refused = sh->redis.publishes_refused;
    f->errors = sh->redis.errors;

    /* another worker's clock may be a little ahead of this one's */
    last = sh->redis.last_reply;
    f->last_reply_ms = -1;

    if (last) {
        f->last_reply_ms = ngx_max((ngx_msec_int_t) (ngx_current_msec - last),
                                   0);
    }

    return NGX_OK;
}


namespace {

void *
ngx_http_sse_redis_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_sse_redis_main_conf_t  *rmcf;

    rmcf = (ngx_http_sse_redis_main_conf_t *)
               ngx_pcalloc(cf->pool, sizeof(ngx_http_sse_redis_main_conf_t));
    if (rmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     rmcf->ssl_trusted_certificate = { 0, NULL };
     *     rmcf->ssl_certificate = { 0, NULL };
     *     rmcf->ssl_certificate_key = { 0, NULL };
     *     rmcf->ssl = NULL;
     */

    rmcf->ssl_verify = NGX_CONF_UNSET;

    if (ngx_array_init(&rmcf->confs, cf->pool, 1,
                       sizeof(ngx_http_sse_redis_conf_t))
        != NGX_OK)
    {
        return NULL;
    }

    if (ngx_array_init(&rmcf->clients, cf->pool, 1,
                       sizeof(ngx_http_sse_redis_t *))
        != NGX_OK)
    {
        return NULL;
    }

    return rmcf;
}


char *
ngx_http_sse_redis_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_sse_redis_main_conf_t *rmcf =
        (ngx_http_sse_redis_main_conf_t *) conf;

    ngx_conf_init_value(rmcf->ssl_verify, 1);

    return NGX_CONF_OK;
}


/*
 * sse_redis url [zone=name] [prefix=string]
 *           [user=name] [password=secret] [db=n];    (the last three with
 *                                                     unix:/path only)
 */

char *
ngx_http_sse_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_sse_redis_main_conf_t *rmcf =
        (ngx_http_sse_redis_main_conf_t *) conf;

    u_char                     *buf, *p;
    ngx_int_t                   n;
    ngx_str_t                  *value, v;
    ngx_uint_t                  i;
    const char                 *err;
    sse::RedisUrl               url;
    ngx_http_sse_redis_conf_t  *rcf;

    value = (ngx_str_t *) cf->args->elts;

    buf = (u_char *) ngx_pnalloc(cf->pool, value[1].len + 1);
    if (buf == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    /* the message says what is wrong without quoting the URL: it may
     * hold the password */
    err = sse::parse_redis_url(value[1].data, value[1].len, buf, &url);
    if (err) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "sse_redis: invalid URL: %s",
                           err);
        return (char *) NGX_CONF_ERROR;
    }

    rcf = (ngx_http_sse_redis_conf_t *) ngx_array_push(&rmcf->confs);
    if (rcf == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    ngx_memzero(rcf, sizeof(ngx_http_sse_redis_conf_t));

    rcf->file = cf->conf_file->file.name.data;
    rcf->line = cf->conf_file->line;
    rcf->tls = url.tls;

    rcf->user.data = (u_char *) url.user.data;
    rcf->user.len = url.user.len;
    rcf->password.data = (u_char *) url.password.data;
    rcf->password.len = url.password.len;
    rcf->has_password = url.has_password;

    if (url.db) {
        p = (u_char *) ngx_pnalloc(cf->pool, NGX_INT_T_LEN);
        if (p == NULL) {
            return (char *) NGX_CONF_ERROR;
        }

        rcf->db.data = p;
        rcf->db.len = ngx_sprintf(p, "%ui", (ngx_uint_t) url.db) - p;
    }

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "zone=", 5) == 0) {
            rcf->zone_name.data = value[i].data + 5;
            rcf->zone_name.len = value[i].len - 5;

            if (rcf->zone_name.len == 0) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "prefix=", 7) == 0) {
            rcf->prefix.data = value[i].data + 7;
            rcf->prefix.len = value[i].len - 7;

            if (rcf->prefix.len == 0) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "user=", 5) == 0
            || ngx_strncmp(value[i].data, "password=", 9) == 0
            || ngx_strncmp(value[i].data, "db=", 3) == 0)
        {
            if (!url.unix_socket) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "sse_redis: user=, password= and db= go "
                                   "with a unix: socket; a redis:// URL "
                                   "holds them itself");
                return (char *) NGX_CONF_ERROR;
            }

            p = (u_char *) ngx_strlchr(value[i].data,
                                       value[i].data + value[i].len, '=');
            v.data = p + 1;
            v.len = value[i].data + value[i].len - v.data;

            if (value[i].data[0] == 'u') {
                if (v.len == 0) {
                    goto invalid;
                }

                rcf->user = v;

            } else if (value[i].data[0] == 'p') {
                if (v.len == 0) {
                    /* never quoted: the value is a password */
                    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                       "sse_redis: an empty password=");
                    return (char *) NGX_CONF_ERROR;
                }

                rcf->password = v;
                rcf->has_password = 1;

            } else {
                n = ngx_atoi(v.data, v.len);
                if (n == NGX_ERROR || n > (ngx_int_t) sse::redis_max_db) {
                    goto invalid;
                }

                if (n == 0) {
                    ngx_str_null(&rcf->db);

                } else {
                    rcf->db = v;
                }
            }

            continue;
        }

        goto invalid;
    }

    if (rcf->user.len && !rcf->has_password) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "sse_redis: user= without password=");
        return (char *) NGX_CONF_ERROR;
    }

    if (ngx_http_sse_redis_address(cf, rcf, &url) != NGX_OK) {
        return (char *) NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;

invalid:

    if (ngx_strncmp(value[i].data, "password=", 9) == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "sse_redis: invalid parameter password=...");
        return (char *) NGX_CONF_ERROR;
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "sse_redis: invalid parameter \"%V\" (expected "
                       "zone=<name>, prefix=<string>, or with unix: "
                       "user=, password=, db=)", &value[i]);

    return (char *) NGX_CONF_ERROR;
}


/* the address is resolved once, as an upstream server's is */

ngx_int_t
ngx_http_sse_redis_address(ngx_conf_t *cf, ngx_http_sse_redis_conf_t *rcf,
    sse::RedisUrl *url)
{
    u_char     *p;
    ngx_url_t   u;
    in_addr_t   inaddr;

    ngx_memzero(&u, sizeof(ngx_url_t));

    if (url->unix_socket) {
        u.url.len = 5 + url->path.len;
        u.url.data = (u_char *) ngx_pnalloc(cf->pool, u.url.len);
        if (u.url.data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(ngx_cpymem(u.url.data, "unix:", 5), url->path.data,
                   url->path.len);

    } else {
        u.url.data = (u_char *) ngx_pnalloc(cf->pool,
                                            url->host.len + 2 + 1
                                            + NGX_INT_T_LEN);
        if (u.url.data == NULL) {
            return NGX_ERROR;
        }

        p = url->host_is_ip6
            ? ngx_sprintf(u.url.data, "[%*s]", url->host.len, url->host.data)
            : ngx_sprintf(u.url.data, "%*s", url->host.len, url->host.data);
        p = ngx_sprintf(p, ":%ui", (ngx_uint_t) url->port);
        u.url.len = p - u.url.data;

        /* a copy that ends in NUL, for SNI and the certificate check */
        rcf->host.len = url->host.len;
        rcf->host.data = (u_char *) ngx_pnalloc(cf->pool, url->host.len + 1);
        if (rcf->host.data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(rcf->host.data, url->host.data, url->host.len);
        rcf->host.data[url->host.len] = '\0';

        inaddr = ngx_inet_addr(rcf->host.data, rcf->host.len);
        rcf->host_is_ip = (url->host_is_ip6 || inaddr != INADDR_NONE);
    }

    u.default_port = (in_port_t) url->port;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "sse_redis: %s in \"%V\"",
                           u.err ? u.err : "invalid address", &u.url);
        return NGX_ERROR;
    }

    if (u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "sse_redis: no address for \"%V\"", &u.url);
        return NGX_ERROR;
    }

    /* every address of the name is tried in turn ("localhost" is ::1 and
     * 127.0.0.1 on Debian; a Redis may listen on one of them only) */
    rcf->addrs = u.addrs;
    rcf->naddrs = u.naddrs;

    return NGX_OK;
}


/*
 * Once the http block is read, every zone exists (sse_zone, or the
 * embedded default made for the first location that needs it): each
 * sse_redis finds its own.
 */

ngx_int_t
ngx_http_sse_redis_postconfiguration(ngx_conf_t *cf)
{
    u_char                          *p;
    ngx_uint_t                       i, j, tls;
    ngx_http_sse_zone_t            **zones;
    ngx_http_sse_main_conf_t        *smcf;
    ngx_http_sse_redis_conf_t       *rcf;
    ngx_http_sse_redis_main_conf_t  *rmcf;

    rmcf = (ngx_http_sse_redis_main_conf_t *)
               ngx_http_conf_get_module_main_conf(cf,
                                                  ngx_http_sse_redis_module);
    smcf = (ngx_http_sse_main_conf_t *)
               ngx_http_conf_get_module_main_conf(cf, ngx_http_sse_module);

    zones = (ngx_http_sse_zone_t **) smcf->zones.elts;
    rcf = (ngx_http_sse_redis_conf_t *) rmcf->confs.elts;
    tls = 0;

    for (i = 0; i < rmcf->confs.nelts; i++) {

        if (rcf[i].zone_name.len == 0) {
            if (smcf->zones.nelts == 0) {
                ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                              "sse_redis in %s:%ui: no sse zone to share "
                              "(no sse_zone, and no sse location)",
                              rcf[i].file, rcf[i].line);
                return NGX_ERROR;
            }

            rcf[i].zone = zones[0];

        } else {
            for (j = 0; j < smcf->zones.nelts; j++) {
                if (zones[j]->name.len == rcf[i].zone_name.len
                    && ngx_strncmp(zones[j]->name.data,
                                   rcf[i].zone_name.data,
                                   rcf[i].zone_name.len) == 0)
                {
                    rcf[i].zone = zones[j];
                    break;
                }
            }

            if (rcf[i].zone == NULL) {
                ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                              "sse_redis in %s:%ui: unknown sse zone "
                              "\"%V\"", rcf[i].file, rcf[i].line,
                              &rcf[i].zone_name);
                return NGX_ERROR;
            }
        }

        for (j = 0; j < i; j++) {
            if (rcf[j].zone == rcf[i].zone) {
                ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                              "sse_redis in %s:%ui: the sse zone \"%V\" "
                              "already has sse_redis (one per zone)",
                              rcf[i].file, rcf[i].line,
                              &rcf[i].zone->name);
                return NGX_ERROR;
            }
        }

        if (rcf[i].prefix.len == 0) {
            p = (u_char *) ngx_pnalloc(cf->pool, rcf[i].zone->name.len + 5);
            if (p == NULL) {
                return NGX_ERROR;
            }

            rcf[i].prefix.data = p;
            rcf[i].prefix.len = ngx_sprintf(p, "sse:%V:", &rcf[i].zone->name)
                                - p;
        }

        /* the zone's channels are the Redis store's from now on */
        rcf[i].zone->store = &ngx_http_sse_redis_store;

        tls |= rcf[i].tls;
    }

    if (tls) {
        return ngx_http_sse_redis_ssl(cf, rmcf);
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_sse_redis_ssl(ngx_conf_t *cf, ngx_http_sse_redis_main_conf_t *rmcf)
{
    ngx_pool_cleanup_t  *cln;

    rmcf->ssl = (ngx_ssl_t *) ngx_pcalloc(cf->pool, sizeof(ngx_ssl_t));
    if (rmcf->ssl == NULL) {
        return NGX_ERROR;
    }

    rmcf->ssl->log = cf->log;

    if (ngx_ssl_create(rmcf->ssl, NGX_SSL_TLSv1_2|NGX_SSL_TLSv1_3, NULL)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        ngx_ssl_cleanup_ctx(rmcf->ssl);
        return NGX_ERROR;
    }

    cln->handler = ngx_ssl_cleanup_ctx;
    cln->data = rmcf->ssl;

    if (rmcf->ssl_certificate.len) {
        if (rmcf->ssl_certificate_key.len == 0) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "no \"sse_redis_ssl_certificate_key\" for "
                          "sse_redis_ssl_certificate \"%V\"",
                          &rmcf->ssl_certificate);
            return NGX_ERROR;
        }

        if (ngx_ssl_certificate(cf, rmcf->ssl, &rmcf->ssl_certificate,
                                &rmcf->ssl_certificate_key, NULL)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

    } else if (rmcf->ssl_certificate_key.len) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "sse_redis_ssl_certificate_key without "
                      "sse_redis_ssl_certificate");
        return NGX_ERROR;
    }

    if (!rmcf->ssl_verify) {
        return NGX_OK;
    }

    if (rmcf->ssl_trusted_certificate.len == 0) {
        /* the system's CAs, as a managed Redis with a public CA needs */
        if (SSL_CTX_set_default_verify_paths(rmcf->ssl->ctx) != 1) {
            ngx_ssl_error(NGX_LOG_EMERG, cf->log, 0,
                          (char *) "SSL_CTX_set_default_verify_paths() failed");
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    return ngx_ssl_trusted_certificate(cf, rmcf->ssl,
                                       &rmcf->ssl_trusted_certificate, 4);
}


ngx_int_t
ngx_http_sse_redis_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                       i;
    ngx_http_sse_redis_t            *redis, **rp;
    ngx_http_sse_redis_conf_t       *rcf;
    ngx_http_sse_redis_main_conf_t  *rmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    rmcf = (ngx_http_sse_redis_main_conf_t *)
               ngx_http_cycle_get_module_main_conf(cycle,
                                                   ngx_http_sse_redis_module);
    if (rmcf == NULL) {
        return NGX_OK;
    }

    rcf = (ngx_http_sse_redis_conf_t *) rmcf->confs.elts;

    for (i = 0; i < rmcf->confs.nelts; i++) {

        redis = (ngx_http_sse_redis_t *)
                    ngx_calloc(sizeof(ngx_http_sse_redis_t), cycle->log);
        if (redis == NULL) {
            return NGX_ERROR;
        }

        rp = (ngx_http_sse_redis_t **) ngx_array_push(&rmcf->clients);
        if (rp == NULL) {
            ngx_free(redis);
            return NGX_ERROR;
        }

        *rp = redis;

        redis->conf = &rcf[i];
        redis->zone = rcf[i].zone;
        redis->rmcf = rmcf;
        redis->slot = rcf[i].zone->slot;

        ngx_rbtree_init(&redis->channels, &redis->sentinel,
                        ngx_str_rbtree_insert_value);
        ngx_http_sse_redis_pubsub_init(redis, cycle->log);

        ngx_http_sse_redis_link_init(redis, &redis->commands,
                                     NGX_HTTP_SSE_REDIS_COMMANDS, cycle->log);
        ngx_http_sse_redis_link_init(redis, &redis->pubsub,
                                     NGX_HTTP_SSE_REDIS_PUBSUB, cycle->log);

        ngx_http_sse_redis_report(redis);

        if (ngx_http_sse_rstore_init(redis) != NGX_OK) {
            return NGX_ERROR;
        }

        ngx_http_sse_redis_link_connect(&redis->commands);
        ngx_http_sse_redis_link_connect(&redis->pubsub);
    }

    return NGX_OK;
}


void
ngx_http_sse_redis_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                       i;
    ngx_rbtree_node_t               *node;
    ngx_http_sse_redis_t            *redis, **clients;
    ngx_http_sse_redis_main_conf_t  *rmcf;

    rmcf = (ngx_http_sse_redis_main_conf_t *)
               ngx_http_cycle_get_module_main_conf(cycle,
                                                   ngx_http_sse_redis_module);
    if (rmcf == NULL) {
        return;
    }

    clients = (ngx_http_sse_redis_t **) rmcf->clients.elts;

    for (i = 0; i < rmcf->clients.nelts; i++) {
        redis = clients[i];

        ngx_http_sse_redis_link_exit(&redis->commands);
        ngx_http_sse_redis_link_exit(&redis->pubsub);

        if (redis->commands.out) {
            ngx_free(redis->commands.out);
        }

        if (redis->pubsub.out) {
            ngx_free(redis->pubsub.out);
        }

        ngx_http_sse_rstore_exit(redis);
        ngx_http_sse_redis_unsubs_drop(redis);

        if (redis->resub_from.data) {
            ngx_free(redis->resub_from.data);
        }

        while (redis->channels.root != redis->channels.sentinel) {
            node = ngx_rbtree_min(redis->channels.root,
                                  redis->channels.sentinel);
            ngx_rbtree_delete(&redis->channels, node);
            ngx_free(node);
        }

        /* the slot's next worker reports afresh */
        if (redis->slot >= 0 && redis->zone->sh
            && redis->zone->sh->redis.workers[redis->slot].pid
               == (ngx_atomic_uint_t) ngx_pid)
        {
            redis->zone->sh->redis.workers[redis->slot].pid = 0;
        }

        ngx_free(redis);
    }

    rmcf->clients.nelts = 0;
}

} // namespace
