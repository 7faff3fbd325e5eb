/*
 * ngx_http_sse_module: directives, configuration and process hooks.
 */

#include "ngx_http_sse.h"


namespace {

void *ngx_http_sse_create_main_conf(ngx_conf_t *cf);
void *ngx_http_sse_create_loc_conf(ngx_conf_t *cf);
char *ngx_http_sse_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child);
char *ngx_http_sse_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_sse_location(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_sse_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_sse_time_or_off(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_sse_replay(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_sse_size(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_sse_reset_event(ngx_conf_t *cf, void *post, void *data);
ngx_int_t ngx_http_sse_init_process(ngx_cycle_t *cycle);
void ngx_http_sse_exit_process(ngx_cycle_t *cycle);
ngx_http_sse_zone_t *ngx_http_sse_add_zone(ngx_conf_t *cf, ngx_str_t *name,
    size_t size);
void ngx_http_sse_default_limits(ngx_http_sse_limits_t *limits);


/* nginx's own slots where the value is of their form; ours where it is
 * not ("off" for a time, "all" for a count) or where a bad value is
 * better named in the error (sse_max_pending) */
ngx_conf_post_t  ngx_http_sse_reset_event_post = { ngx_http_sse_reset_event };


ngx_command_t  ngx_http_sse_commands[] = {

    { ngx_string("sse_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_sse_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("sse_subscribe"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_sse_location,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_HTTP_SSE_ROLE_SUBSCRIBE,
      NULL },

    { ngx_string("sse_publish"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_sse_location,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_HTTP_SSE_ROLE_PUBLISH,
      NULL },

    { ngx_string("sse_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_sse_status,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("sse_heartbeat"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_sse_time_or_off,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_sse_loc_conf_t, heartbeat),
      NULL },

    { ngx_string("sse_retry"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_sse_time_or_off,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_sse_loc_conf_t, retry),
      NULL },

    { ngx_string("sse_replay"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_sse_replay,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("sse_last_event_id"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_sse_loc_conf_t, last_event_id),
      NULL },

    { ngx_string("sse_reset_event"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_sse_loc_conf_t, reset_event),
      &ngx_http_sse_reset_event_post },

    { ngx_string("sse_max_pending"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_sse_size,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_sse_loc_conf_t, max_pending),
      NULL },

    { ngx_string("sse_lifetime"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_sse_time_or_off,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_sse_loc_conf_t, lifetime),
      NULL },

      ngx_null_command
};


ngx_http_module_t  ngx_http_sse_module_ctx = {
    ngx_http_sse_log_add_variables,        /* preconfiguration */
    NULL,                                  /* postconfiguration */

    ngx_http_sse_create_main_conf,         /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_sse_create_loc_conf,          /* create location configuration */
    ngx_http_sse_merge_loc_conf            /* merge location configuration */
};

} // namespace


ngx_module_t  ngx_http_sse_module = {
    NGX_MODULE_V1,
    &ngx_http_sse_module_ctx,              /* module context */
    ngx_http_sse_commands,                 /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_sse_init_process,             /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_sse_exit_process,             /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


namespace {

void *
ngx_http_sse_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_sse_main_conf_t  *smcf;

    smcf = (ngx_http_sse_main_conf_t *)
               ngx_pcalloc(cf->pool, sizeof(ngx_http_sse_main_conf_t));
    if (smcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&smcf->zones, cf->pool, 2,
                       sizeof(ngx_http_sse_zone_t *))
        != NGX_OK)
    {
        return NULL;
    }

    return smcf;
}


void *
ngx_http_sse_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_sse_loc_conf_t  *slcf;

    slcf = (ngx_http_sse_loc_conf_t *)
               ngx_pcalloc(cf->pool, sizeof(ngx_http_sse_loc_conf_t));
    if (slcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     slcf->role = NGX_HTTP_SSE_ROLE_NONE;
     *     slcf->channels = NULL;
     *     slcf->zone_name = { 0, NULL };
     *     slcf->zone = NULL;
     *     slcf->reset_event = { 0, NULL };
     */

    slcf->heartbeat = NGX_CONF_UNSET_MSEC;
    slcf->retry = NGX_CONF_UNSET_MSEC;
    slcf->replay = NGX_CONF_UNSET;
    slcf->last_event_id = (ngx_http_complex_value_t *) NGX_CONF_UNSET_PTR;
    slcf->max_pending = NGX_CONF_UNSET_SIZE;
    slcf->lifetime = NGX_CONF_UNSET;

    return slcf;
}


char *
ngx_http_sse_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_sse_loc_conf_t *prev = (ngx_http_sse_loc_conf_t *) parent;
    ngx_http_sse_loc_conf_t *conf = (ngx_http_sse_loc_conf_t *) child;

    ngx_uint_t                  i;
    ngx_str_t                   name;
    ngx_http_sse_zone_t       **zones;
    ngx_http_sse_main_conf_t   *smcf;

    ngx_conf_merge_msec_value(conf->heartbeat, prev->heartbeat,
                              NGX_HTTP_SSE_DEFAULT_HEARTBEAT);
    ngx_conf_merge_msec_value(conf->retry, prev->retry,
                              NGX_HTTP_SSE_DEFAULT_RETRY);
    ngx_conf_merge_value(conf->replay, prev->replay,
                         NGX_HTTP_SSE_DEFAULT_REPLAY);
    ngx_conf_merge_ptr_value(conf->last_event_id, prev->last_event_id, NULL);
    ngx_conf_merge_str_value(conf->reset_event, prev->reset_event,
                             NGX_HTTP_SSE_DEFAULT_RESET_EVENT);
    ngx_conf_merge_size_value(conf->max_pending, prev->max_pending,
                              NGX_HTTP_SSE_DEFAULT_MAX_PENDING);
    ngx_conf_merge_sec_value(conf->lifetime, prev->lifetime,
                             NGX_HTTP_SSE_DEFAULT_LIFETIME);

    if (conf->role == NGX_HTTP_SSE_ROLE_NONE) {
        return NGX_CONF_OK;
    }

    /*
     * Every sse location needs a zone; when none was declared, the
     * embedded default zone is made here, the first time one is needed.
     */

    smcf = (ngx_http_sse_main_conf_t *)
               ngx_http_conf_get_module_main_conf(cf, ngx_http_sse_module);

    if (conf->role == NGX_HTTP_SSE_ROLE_STATUS) {
        if (smcf->zones.nelts == 0) {
            ngx_str_set(&name, NGX_HTTP_SSE_DEFAULT_ZONE);
            if (ngx_http_sse_add_zone(cf, &name, NGX_HTTP_SSE_DEFAULT_SIZE)
                == NULL)
            {
                return (char *) NGX_CONF_ERROR;
            }
        }

        return NGX_CONF_OK;
    }

    zones = (ngx_http_sse_zone_t **) smcf->zones.elts;

    if (conf->zone_name.len == 0) {
        if (smcf->zones.nelts == 0) {
            ngx_str_set(&name, NGX_HTTP_SSE_DEFAULT_ZONE);
            conf->zone = ngx_http_sse_add_zone(cf, &name,
                                               NGX_HTTP_SSE_DEFAULT_SIZE);
            if (conf->zone == NULL) {
                return (char *) NGX_CONF_ERROR;
            }

        } else {
            conf->zone = zones[0];
        }

        return NGX_CONF_OK;
    }

    for (i = 0; i < smcf->zones.nelts; i++) {
        if (zones[i]->name.len == conf->zone_name.len
            && ngx_strncmp(zones[i]->name.data, conf->zone_name.data,
                           conf->zone_name.len) == 0)
        {
            conf->zone = zones[i];
            return NGX_CONF_OK;
        }
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "unknown sse zone \"%V\": declare it with "
                       "\"sse_zone %V <size>;\" in the http block",
                       &conf->zone_name, &conf->zone_name);

    return (char *) NGX_CONF_ERROR;
}


/* sse_zone's parameters when not given (and the embedded default zone's) */

void
ngx_http_sse_default_limits(ngx_http_sse_limits_t *limits)
{
    limits->history = NGX_HTTP_SSE_DEFAULT_HISTORY;
    limits->history_ttl = NGX_HTTP_SSE_DEFAULT_HISTORY_TTL;
    limits->channel_ttl = NGX_HTTP_SSE_DEFAULT_CHANNEL_TTL;
    limits->max_channels = NGX_HTTP_SSE_DEFAULT_MAX_CHANNELS;
    limits->max_subscribers = NGX_HTTP_SSE_DEFAULT_MAX_SUBS;
    limits->max_message = NGX_HTTP_SSE_DEFAULT_MAX_MESSAGE;
}


ngx_http_sse_zone_t *
ngx_http_sse_add_zone(ngx_conf_t *cf, ngx_str_t *name, size_t size)
{
    ngx_http_sse_zone_t        *zone, **zp;
    ngx_http_sse_main_conf_t   *smcf;

    smcf = (ngx_http_sse_main_conf_t *)
               ngx_http_conf_get_module_main_conf(cf, ngx_http_sse_module);

    zone = (ngx_http_sse_zone_t *) ngx_pcalloc(cf->pool,
                                               sizeof(ngx_http_sse_zone_t));
    if (zone == NULL) {
        return NULL;
    }

    zone->name = *name;
    zone->store = &ngx_http_sse_shm_store;
    zone->slot = -1;
    ngx_http_sse_default_limits(&zone->limits);

    ngx_rbtree_init(&zone->locals, &zone->locals_sentinel,
                    ngx_rbtree_insert_value);

    zone->shm_zone = ngx_shared_memory_add(cf, name, size,
                                           &ngx_http_sse_module);
    if (zone->shm_zone == NULL) {
        return NULL;
    }

    if (zone->shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate sse_zone \"%V\"", name);
        return NULL;
    }

    zone->shm_zone->init = ngx_http_sse_init_zone;
    zone->shm_zone->data = zone;

    zp = (ngx_http_sse_zone_t **) ngx_array_push(&smcf->zones);
    if (zp == NULL) {
        return NULL;
    }

    *zp = zone;

    return zone;
}


/* sse_zone name size [history=n] [history_ttl=t] [channel_ttl=t]
 *          [max_channels=n] [max_subscribers=n] [max_message=size]; */

char *
ngx_http_sse_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ssize_t               size;
    ngx_int_t             n;
    ngx_str_t            *value, s;
    ngx_uint_t            i;
    ngx_http_sse_zone_t  *zone;
    ngx_http_sse_limits_t limits;

    value = (ngx_str_t *) cf->args->elts;

    if (value[1].len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "sse_zone: empty zone name");
        return (char *) NGX_CONF_ERROR;
    }

    if (cf->args->nelts < 3) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "sse_zone \"%V\": no size given", &value[1]);
        return (char *) NGX_CONF_ERROR;
    }

    size = ngx_parse_size(&value[2]);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "sse_zone \"%V\": invalid size \"%V\"",
                           &value[1], &value[2]);
        return (char *) NGX_CONF_ERROR;
    }

    if (size < (ssize_t) (8 * ngx_pagesize
                          + sizeof(ngx_http_sse_shctx_t)))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "sse_zone \"%V\" is too small: \"%V\" "
                           "(at least %uzk)", &value[1], &value[2],
                           (8 * ngx_pagesize + sizeof(ngx_http_sse_shctx_t)
                            + 1023) / 1024);
        return (char *) NGX_CONF_ERROR;
    }

    ngx_http_sse_default_limits(&limits);

    for (i = 3; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "history=", 8) == 0) {
            n = ngx_atoi(value[i].data + 8, value[i].len - 8);
            if (n == NGX_ERROR) {
                goto invalid;
            }
            limits.history = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "history_ttl=", 12) == 0) {
            s.data = value[i].data + 12;
            s.len = value[i].len - 12;
            limits.history_ttl = ngx_parse_time(&s, 1);
            if (limits.history_ttl == (time_t) NGX_ERROR
                || limits.history_ttl == 0)
            {
                goto invalid;
            }
            continue;
        }

        if (ngx_strncmp(value[i].data, "channel_ttl=", 12) == 0) {
            s.data = value[i].data + 12;
            s.len = value[i].len - 12;
            limits.channel_ttl = ngx_parse_time(&s, 1);
            if (limits.channel_ttl == (time_t) NGX_ERROR
                || limits.channel_ttl == 0)
            {
                goto invalid;
            }
            continue;
        }

        if (ngx_strncmp(value[i].data, "max_channels=", 13) == 0) {
            n = ngx_atoi(value[i].data + 13, value[i].len - 13);
            if (n == NGX_ERROR) {
                goto invalid;
            }
            limits.max_channels = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "max_subscribers=", 16) == 0) {
            n = ngx_atoi(value[i].data + 16, value[i].len - 16);
            if (n == NGX_ERROR) {
                goto invalid;
            }
            limits.max_subscribers = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "max_message=", 12) == 0) {
            s.data = value[i].data + 12;
            s.len = value[i].len - 12;
            size = ngx_parse_size(&s);
            if (size == NGX_ERROR || size == 0 || size > 64 * 1024 * 1024) {
                goto invalid;
            }
            limits.max_message = size;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "sse_zone \"%V\": unknown parameter \"%V\"",
                           &value[1], &value[i]);
        return (char *) NGX_CONF_ERROR;
    }

    size = ngx_parse_size(&value[2]);

    zone = ngx_http_sse_add_zone(cf, &value[1], size);
    if (zone == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    zone->limits = limits;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "sse_zone \"%V\": invalid value \"%V\"",
                       &value[1], &value[i]);

    return (char *) NGX_CONF_ERROR;
}


/* sse_subscribe channels [zone=name];  sse_publish channels [zone=name]; */

char *
ngx_http_sse_location(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_sse_loc_conf_t *slcf = (ngx_http_sse_loc_conf_t *) conf;

    ngx_str_t                         *value;
    ngx_http_core_loc_conf_t          *clcf;
    ngx_http_compile_complex_value_t   ccv;

    if (slcf->role != NGX_HTTP_SSE_ROLE_NONE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": this location already has an sse role "
                           "(sse_subscribe, sse_publish and sse_status "
                           "exclude each other)", &cmd->name);
        return (char *) NGX_CONF_ERROR;
    }

    value = (ngx_str_t *) cf->args->elts;

    if (value[1].len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": empty channel list", &cmd->name);
        return (char *) NGX_CONF_ERROR;
    }

    slcf->channels = (ngx_http_complex_value_t *)
                         ngx_palloc(cf->pool,
                                    sizeof(ngx_http_complex_value_t));
    if (slcf->channels == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = slcf->channels;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return (char *) NGX_CONF_ERROR;
    }

    if (cf->args->nelts == 3) {
        if (ngx_strncmp(value[2].data, "zone=", 5) != 0
            || value[2].len == 5)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\": invalid parameter \"%V\" "
                               "(expected zone=<name>)",
                               &cmd->name, &value[2]);
            return (char *) NGX_CONF_ERROR;
        }

        slcf->zone_name.data = value[2].data + 5;
        slcf->zone_name.len = value[2].len - 5;
    }

    slcf->role = cmd->offset;

    clcf = (ngx_http_core_loc_conf_t *)
               ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    clcf->handler = (slcf->role == NGX_HTTP_SSE_ROLE_SUBSCRIBE)
                    ? ngx_http_sse_subscribe_handler
                    : ngx_http_sse_publish_handler;

    return NGX_CONF_OK;
}


char *
ngx_http_sse_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_sse_loc_conf_t *slcf = (ngx_http_sse_loc_conf_t *) conf;

    ngx_http_core_loc_conf_t  *clcf;

    if (slcf->role != NGX_HTTP_SSE_ROLE_NONE) {
        return (char *) "is duplicate or conflicts with sse_subscribe or "
                        "sse_publish";
    }

    slcf->role = NGX_HTTP_SSE_ROLE_STATUS;

    clcf = (ngx_http_core_loc_conf_t *)
               ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_sse_status_handler;

    return NGX_CONF_OK;
}


/* "time | off": milliseconds (retry, heartbeat) or seconds (lifetime) */

char *
ngx_http_sse_time_or_off(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    u_char      *p = (u_char *) conf;
    ngx_str_t   *value;
    ngx_msec_t   ms;

    value = (ngx_str_t *) cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        ms = 0;

    } else {
        ms = ngx_parse_time(&value[1], 0);
        if (ms == (ngx_msec_t) NGX_ERROR || ms == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\": invalid value \"%V\" "
                               "(expected a time such as 15s, or off)",
                               &cmd->name, &value[1]);
            return (char *) NGX_CONF_ERROR;
        }
    }

    if (cmd->offset == offsetof(ngx_http_sse_loc_conf_t, retry)
        || cmd->offset == offsetof(ngx_http_sse_loc_conf_t, heartbeat))
    {
        ngx_msec_t  *mp = (ngx_msec_t *) (p + cmd->offset);

        if (*mp != NGX_CONF_UNSET_MSEC) {
            return (char *) "is duplicate";
        }

        *mp = ms;
        return NGX_CONF_OK;
    }

    time_t  *tp = (time_t *) (p + cmd->offset);

    if (*tp != NGX_CONF_UNSET) {
        return (char *) "is duplicate";
    }

    /* whole seconds, at least one: the sweep ticks once a second */
    *tp = (time_t) ((ms + 999) / 1000);

    return NGX_CONF_OK;
}


/* a size, with an error message that names the bad value */

char *
ngx_http_sse_size(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    size_t     *sp = (size_t *) ((u_char *) conf + cmd->offset);
    ssize_t     size;
    ngx_str_t  *value;

    if (*sp != NGX_CONF_UNSET_SIZE) {
        return (char *) "is duplicate";
    }

    value = (ngx_str_t *) cf->args->elts;

    size = ngx_parse_size(&value[1]);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": invalid size \"%V\" "
                           "(expected a size such as 256k)",
                           &cmd->name, &value[1]);
        return (char *) NGX_CONF_ERROR;
    }

    *sp = (size_t) size;

    return NGX_CONF_OK;
}


/* sse_replay none | all | number; */

char *
ngx_http_sse_replay(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_sse_loc_conf_t *slcf = (ngx_http_sse_loc_conf_t *) conf;

    ngx_int_t   n;
    ngx_str_t  *value;

    if (slcf->replay != NGX_CONF_UNSET) {
        return (char *) "is duplicate";
    }

    value = (ngx_str_t *) cf->args->elts;

    if (ngx_strcmp(value[1].data, "none") == 0) {
        slcf->replay = 0;
        return NGX_CONF_OK;
    }

    if (ngx_strcmp(value[1].data, "all") == 0) {
        slcf->replay = NGX_HTTP_SSE_REPLAY_ALL;
        return NGX_CONF_OK;
    }

    n = ngx_atoi(value[1].data, value[1].len);
    if (n == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"sse_replay\": invalid value \"%V\" "
                           "(expected none, all or a number)", &value[1]);
        return (char *) NGX_CONF_ERROR;
    }

    slcf->replay = n;

    return NGX_CONF_OK;
}


/* sse_reset_event name | off; after ngx_conf_set_str_slot() */

char *
ngx_http_sse_reset_event(ngx_conf_t *cf, void *post, void *data)
{
    ngx_str_t  *name = (ngx_str_t *) data;

    ngx_uint_t  i;

    if (ngx_strcmp(name->data, "off") == 0) {
        /* empty, but set: the merge keeps it */
        name->len = 0;
        return NGX_CONF_OK;
    }

    if (name->len > 64) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"sse_reset_event\": the event name \"%V\" is "
                           "longer than 64 bytes", name);
        return (char *) NGX_CONF_ERROR;
    }

    for (i = 0; i < name->len; i++) {
        if (name->data[i] < 0x21 || name->data[i] > 0x7e) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"sse_reset_event\": invalid event name "
                               "\"%V\"", name);
            return (char *) NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_sse_init_process(ngx_cycle_t *cycle)
{
    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    return ngx_http_sse_ipc_init(cycle);
}


void
ngx_http_sse_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_sse_ipc_exit(cycle);
}

} // namespace
