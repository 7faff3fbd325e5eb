/*
 * ngx_http_sse_access_module: directives and configuration of signed
 * tokens and CORS for the sse locations.
 */

#include "ngx_http_sse_access.h"
#include "sse_jwt.h"


namespace {

ngx_int_t ngx_http_sse_access_preconfiguration(ngx_conf_t *cf);
ngx_int_t ngx_http_sse_access_postconfiguration(ngx_conf_t *cf);
void *ngx_http_sse_access_create_loc_conf(ngx_conf_t *cf);
char *ngx_http_sse_access_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
void ngx_http_sse_access_exit_process(ngx_cycle_t *cycle);


#define NGX_HTTP_SSE_ACCESS_CONF                                             \
    (NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF)

ngx_command_t  ngx_http_sse_access_commands[] = {

    { ngx_string("sse_auth_jwt"),
      NGX_HTTP_SSE_ACCESS_CONF|NGX_CONF_TAKE12,
      ngx_http_sse_auth_jwt,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("sse_auth_jwt_key_file"),
      NGX_HTTP_SSE_ACCESS_CONF|NGX_CONF_TAKE12,
      ngx_http_sse_auth_key,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("sse_auth_jwt_key_secret"),
      NGX_HTTP_SSE_ACCESS_CONF|NGX_CONF_TAKE123,
      ngx_http_sse_auth_key,
      NGX_HTTP_LOC_CONF_OFFSET,
      1,
      NULL },

    { ngx_string("sse_auth_jwt_issuer"),
      NGX_HTTP_SSE_ACCESS_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_sse_access_conf_t, issuer),
      NULL },

    { ngx_string("sse_auth_jwt_audience"),
      NGX_HTTP_SSE_ACCESS_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_sse_access_conf_t, audience),
      NULL },

    { ngx_string("sse_auth_jwt_leeway"),
      NGX_HTTP_SSE_ACCESS_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_sse_access_conf_t, leeway),
      NULL },

    { ngx_string("sse_cors_origins"),
      NGX_HTTP_SSE_ACCESS_CONF|NGX_CONF_1MORE,
      ngx_http_sse_cors_origins,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


ngx_http_module_t  ngx_http_sse_access_module_ctx = {
    ngx_http_sse_access_preconfiguration,  /* preconfiguration */
    ngx_http_sse_access_postconfiguration, /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_sse_access_create_loc_conf,   /* create location configuration */
    ngx_http_sse_access_merge_loc_conf     /* merge location configuration */
};

} // namespace


ngx_module_t  ngx_http_sse_access_module = {
    NGX_MODULE_V1,
    &ngx_http_sse_access_module_ctx,       /* module context */
    ngx_http_sse_access_commands,          /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_sse_access_exit_process,      /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


ngx_int_t
ngx_http_sse_access(ngx_http_request_t *r, ngx_uint_t role)
{
    ngx_int_t                    rc;
    ngx_http_sse_access_conf_t  *sacf;

    sacf = (ngx_http_sse_access_conf_t *)
               ngx_http_get_module_loc_conf(r, ngx_http_sse_access_module);

    rc = ngx_http_sse_cors(r, sacf, role);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (!sacf->auth) {
        return NGX_DECLINED;
    }

    return ngx_http_sse_auth_check(r, sacf);
}


ngx_int_t
ngx_http_sse_access_channels(ngx_http_request_t *r, ngx_uint_t role,
    sse::Slice *ids, ngx_uint_t n)
{
    ngx_http_sse_access_conf_t  *sacf;

    sacf = (ngx_http_sse_access_conf_t *)
               ngx_http_get_module_loc_conf(r, ngx_http_sse_access_module);

    if (!sacf->auth) {
        return NGX_DECLINED;
    }

    return ngx_http_sse_auth_channels(r, sacf, role, ids, n);
}


time_t
ngx_http_sse_access_expires(ngx_http_request_t *r)
{
    ngx_http_sse_access_conf_t  *sacf;

    sacf = (ngx_http_sse_access_conf_t *)
               ngx_http_get_module_loc_conf(r, ngx_http_sse_access_module);

    if (!sacf->auth) {
        return 0;
    }

    return ngx_http_sse_auth_expires(r);
}


namespace {

ngx_int_t
ngx_http_sse_access_preconfiguration(ngx_conf_t *cf)
{
    return ngx_http_sse_auth_add_variables(cf);
}


ngx_int_t
ngx_http_sse_access_postconfiguration(ngx_conf_t *cf)
{
    return ngx_http_sse_cors_init(cf);
}


void *
ngx_http_sse_access_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_sse_access_conf_t  *sacf;

    sacf = (ngx_http_sse_access_conf_t *)
               ngx_pcalloc(cf->pool, sizeof(ngx_http_sse_access_conf_t));
    if (sacf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     sacf->token = NULL;
     *     sacf->keys = NULL;
     *     sacf->issuer = { 0, NULL };
     *     sacf->audience = { 0, NULL };
     */

    sacf->auth = NGX_CONF_UNSET;
    sacf->leeway = NGX_CONF_UNSET;
    sacf->nonce = ((uint64_t) ngx_random() << 32) ^ (uint64_t) ngx_random()
                  ^ (uint64_t) (uintptr_t) sacf;
    sacf->cors_origins = (ngx_array_t *) NGX_CONF_UNSET_PTR;

    return sacf;
}


char *
ngx_http_sse_access_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_sse_access_conf_t *prev = (ngx_http_sse_access_conf_t *) parent;
    ngx_http_sse_access_conf_t *conf = (ngx_http_sse_access_conf_t *) child;

    ngx_http_sse_loc_conf_t  *slcf;

    /* "sse_auth_jwt on token=..." sets both: they are inherited together */

    if (conf->auth == NGX_CONF_UNSET) {
        conf->auth = (prev->auth == NGX_CONF_UNSET) ? 0 : prev->auth;
        conf->token = prev->token;
    }

    /* a level that sets any key replaces the keys it would inherit */

    if (conf->keys == NULL) {
        conf->keys = prev->keys;
        ngx_memcpy(conf->keys_fingerprint, prev->keys_fingerprint,
                   sizeof(conf->keys_fingerprint));
    }

    ngx_conf_merge_str_value(conf->issuer, prev->issuer, "");
    ngx_conf_merge_str_value(conf->audience, prev->audience, "");
    ngx_conf_merge_sec_value(conf->leeway, prev->leeway, 30);

    /* clock skew is seconds or minutes; a day is plenty, and keeps
     * exp + leeway far from overflowing */
    if (conf->leeway > 86400) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"sse_auth_jwt_leeway\" must be at most 1d");
        return (char *) NGX_CONF_ERROR;
    }
    ngx_conf_merge_ptr_value(conf->cors_origins, prev->cors_origins, NULL);

    slcf = (ngx_http_sse_loc_conf_t *)
               ngx_http_conf_get_module_loc_conf(cf, ngx_http_sse_module);

    if (conf->auth
        && conf->keys == NULL
        && (slcf->role == NGX_HTTP_SSE_ROLE_SUBSCRIBE
            || slcf->role == NGX_HTTP_SSE_ROLE_PUBLISH))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"sse_auth_jwt on\" needs a key: "
                           "\"sse_auth_jwt_key_file\" or "
                           "\"sse_auth_jwt_key_secret\"");
        return (char *) NGX_CONF_ERROR;
    }

    if (conf->auth
        && (slcf->role == NGX_HTTP_SSE_ROLE_SUBSCRIBE
            || slcf->role == NGX_HTTP_SSE_ROLE_PUBLISH))
    {
        conf->tokens = ngx_http_sse_tokens_zone(cf);
        if (conf->tokens == NULL) {
            return (char *) NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


void
ngx_http_sse_access_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_sse_auth_exit_process(cycle);
}

} // namespace
