/*
 * sse_cors_origins: CORS headers on every answer of an sse location to a
 * listed origin (errors included, so a page can read why it was refused),
 * added by a header filter, and the OPTIONS preflight.
 */

#include "ngx_http_sse_access.h"


namespace {

ngx_str_t *ngx_http_sse_cors_allowed(ngx_http_request_t *r,
    ngx_http_sse_access_conf_t *sacf);
ngx_int_t ngx_http_sse_cors_header_filter(ngx_http_request_t *r);

ngx_str_t  ngx_http_sse_cors_any = ngx_string("*");

ngx_http_output_header_filter_pt  ngx_http_sse_cors_next_header_filter;

} // namespace


/* sse_cors_origins off | origin ... */

char *
ngx_http_sse_cors_origins(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_sse_access_conf_t *sacf = (ngx_http_sse_access_conf_t *) conf;

    u_char      *p;
    ngx_str_t   *value, *origin;
    ngx_uint_t   i;

    if (sacf->cors_origins != NGX_CONF_UNSET_PTR) {
        return (char *) "is duplicate";
    }

    value = (ngx_str_t *) cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        sacf->cors_origins = NULL;
        return NGX_CONF_OK;
    }

    sacf->cors_origins = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                          sizeof(ngx_str_t));
    if (sacf->cors_origins == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    for (i = 1; i < cf->args->nelts; i++) {

        /*
         * An origin is scheme://host[:port], exactly as a browser sends
         * it: no path, no trailing slash (which would never match).
         */

        if (!(value[i].len == 1 && value[i].data[0] == '*')) {
            p = (u_char *) ngx_strstr(value[i].data, "://");

            if (p == NULL || p == value[i].data
                || p + 3 == value[i].data + value[i].len
                || ngx_strlchr(p + 3, value[i].data + value[i].len, '/')
                   != NULL)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid origin \"%V\": "
                                   "scheme://host[:port], or \"*\"",
                                   &value[i]);
                return (char *) NGX_CONF_ERROR;
            }
        }

        origin = (ngx_str_t *) ngx_array_push(sacf->cors_origins);
        if (origin == NULL) {
            return (char *) NGX_CONF_ERROR;
        }

        *origin = value[i];
    }

    return NGX_CONF_OK;
}


/*
 * The preflight.  The CORS headers of every other answer are added by the
 * header filter below, so that also answers nginx itself makes for the
 * location (413 for a body over client_max_body_size, 400, 500) carry
 * them, and a page can read why it was refused.
 */

ngx_int_t
ngx_http_sse_cors(ngx_http_request_t *r, ngx_http_sse_access_conf_t *sacf,
    ngx_uint_t role)
{
    if (sacf->cors_origins == NULL || r->method != NGX_HTTP_OPTIONS) {
        return NGX_DECLINED;
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_sse_cors_allowed(r, sacf) == NULL) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "sse: preflight from an origin not listed in "
                      "sse_cors_origins");

        return ngx_http_sse_send_error(r, NGX_HTTP_FORBIDDEN,
                                       "origin_not_allowed",
                                       "this origin is not listed in "
                                       "sse_cors_origins");
    }

    if (ngx_http_sse_add_header(r, "Access-Control-Allow-Methods",
                                role == NGX_HTTP_SSE_ROLE_PUBLISH
                                ? "POST, PUT, DELETE, GET, HEAD"
                                : "GET, POST, HEAD")
        != NGX_OK
        || ngx_http_sse_add_header(r, "Access-Control-Allow-Headers",
                                   role == NGX_HTTP_SSE_ROLE_PUBLISH
                                   ? "Content-Type, Last-Event-ID, "
                                     "SSE-Event, Authorization, "
                                     "Idempotency-Key"
                                   : "Content-Type, Last-Event-ID, "
                                     "SSE-Event, Authorization")
           != NGX_OK
        || ngx_http_sse_add_header(r, "Access-Control-Max-Age", "600")
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_sse_send_no_content(r);
}


ngx_int_t
ngx_http_sse_cors_init(ngx_conf_t *cf)
{
    ngx_http_sse_cors_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_sse_cors_header_filter;

    return NGX_OK;
}


namespace {

/* the value for Access-Control-Allow-Origin, or NULL: no CORS headers */

ngx_str_t *
ngx_http_sse_cors_allowed(ngx_http_request_t *r,
    ngx_http_sse_access_conf_t *sacf)
{
    ngx_str_t   *origins, *origin;
    ngx_uint_t   i, any;

    origin = ngx_http_sse_header_in(r, "Origin", NULL);

    if (origin == NULL) {
        return NULL;
    }

    origins = (ngx_str_t *) sacf->cors_origins->elts;
    any = 0;

    /* an origin listed by name gets credentials even when "*" is there */

    for (i = 0; i < sacf->cors_origins->nelts; i++) {
        if (origins[i].len == 1 && origins[i].data[0] == '*') {
            any = 1;
            continue;
        }

        /* scheme and host are case-insensitive; browsers send them
         * lowercased, and the configuration may not be */

        if (origins[i].len == origin->len
            && ngx_strncasecmp(origins[i].data, origin->data,
                               origin->len) == 0)
        {
            return origin;
        }
    }

    return any ? &ngx_http_sse_cors_any : NULL;
}


ngx_int_t
ngx_http_sse_cors_header_filter(ngx_http_request_t *r)
{
    ngx_str_t                   *allowed;
    ngx_http_sse_loc_conf_t     *slcf;
    ngx_http_sse_access_conf_t  *sacf;

    if (r != r->main) {
        return ngx_http_sse_cors_next_header_filter(r);
    }

    slcf = (ngx_http_sse_loc_conf_t *)
               ngx_http_get_module_loc_conf(r, ngx_http_sse_module);
    sacf = (ngx_http_sse_access_conf_t *)
               ngx_http_get_module_loc_conf(r, ngx_http_sse_access_module);

    /* only the answers of sse locations, never the rest of a server */

    if (sacf->cors_origins == NULL
        || (slcf->role != NGX_HTTP_SSE_ROLE_SUBSCRIBE
            && slcf->role != NGX_HTTP_SSE_ROLE_PUBLISH))
    {
        return ngx_http_sse_cors_next_header_filter(r);
    }

    allowed = ngx_http_sse_cors_allowed(r, sacf);

    /*
     * An answer depends on the Origin whenever an origin may be named: a
     * shared cache must not give one origin's answer to another, so
     * "Vary: Origin" goes on every answer but "*" ones.
     */

    if (allowed != &ngx_http_sse_cors_any
        && ngx_http_sse_add_header(r, "Vary", "Origin") != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (allowed == NULL) {
        return ngx_http_sse_cors_next_header_filter(r);
    }

    if (ngx_http_sse_add_header_str(r, "Access-Control-Allow-Origin",
                                    allowed)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* "*" is never answered with credentials (the Fetch standard refuses
     * that combination anyway) */

    if (allowed != &ngx_http_sse_cors_any
        && ngx_http_sse_add_header(r, "Access-Control-Allow-Credentials",
                                   "true") != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_sse_cors_next_header_filter(r);
}


} // namespace
