/*
 * Small helpers shared by the locations: JSON replies, errors, and the
 * channel list of a request.
 */

#include "ngx_http_sse.h"


ngx_int_t
ngx_http_sse_send_json(ngx_http_request_t *r, ngx_uint_t status, u_char *json,
    size_t len)
{
    r->headers_out.status = status;
    r->headers_out.content_length_n = len;

    if (r->headers_out.content_type.len == 0) {
        ngx_str_set(&r->headers_out.content_type, "application/json");
        r->headers_out.content_type_len = sizeof("application/json") - 1;
        r->headers_out.content_type_lowcase = NULL;
    }

    if (len == 0) {
        r->header_only = 1;
    }

    return ngx_http_sse_send_memory(r, json, len);
}


/*
 * The response's header, then bytes that stay where they are until sent
 * (the request's pool, or static), as its whole body; HEAD gets the
 * header alone.
 */

ngx_int_t
ngx_http_sse_send_memory(ngx_http_request_t *r, u_char *p, size_t len)
{
    ngx_int_t    rc;
    ngx_buf_t   *b;
    ngx_chain_t  out;

    if (r->method == NGX_HTTP_HEAD) {
        r->header_only = 1;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = (ngx_buf_t *) ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->memory = 1;
    b->pos = p;
    b->last = p + len;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/* registers a module's variables from their table (ending in a null name) */

ngx_int_t
ngx_http_sse_add_variables(ngx_conf_t *cf, ngx_http_variable_t *vars)
{
    ngx_http_variable_t  *var, *v;

    for (v = vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_sse_send_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *message)
{
    u_char  *json, *p;
    size_t   len;

    len = sizeof("{\"error\":\"\",\"message\":\"\"}\n") - 1
          + ngx_strlen(code) + ngx_strlen(message);

    json = (u_char *) ngx_pnalloc(r->pool, len);
    if (json == NULL) {
        return NGX_ERROR;
    }

    /* code and message are our own literals: nothing to escape */
    p = ngx_sprintf(json, "{\"error\":\"%s\",\"message\":\"%s\"}\n",
                    code, message);

    return ngx_http_sse_send_json(r, status, json, p - json);
}


/*
 * Anything a client sent goes into a log line only through this: CR, LF,
 * other control bytes, non-ASCII bytes, quotes and backslashes become \xHH
 * and the result is at most sse::max_log_value bytes, so that a client can
 * neither forge log lines nor flood the log.  Use as
 * "%V", ngx_http_sse_log_value(&shown, p, len).
 */

ngx_str_t *
ngx_http_sse_log_value(ngx_http_sse_log_value_t *shown, u_char *p, size_t len)
{
    shown->str.data = shown->buf;
    shown->str.len = sse::log_escape(shown->buf, sizeof(shown->buf),
                                     { p, len });

    return &shown->str;
}


/* the request's channels: NGX_OK, NGX_DECLINED (an invalid list), NGX_ERROR */

ngx_int_t
ngx_http_sse_channel_list(ngx_http_request_t *r, ngx_http_complex_value_t *cv,
    sse::Slice *out, ngx_uint_t *n)
{
    int                        count;
    ngx_str_t                  value;
    ngx_http_sse_log_value_t   shown;

    if (ngx_http_complex_value(r, cv, &value) != NGX_OK) {
        return NGX_ERROR;
    }

    count = sse::parse_channel_list(value.data, value.len, out,
                                    sse::max_channels_per_stream);

    if (count > 0) {
        *n = (ngx_uint_t) count;
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "sse: invalid channel list \"%V\"",
                  ngx_http_sse_log_value(&shown, value.data, value.len));

    return NGX_DECLINED;
}


ngx_int_t
ngx_http_sse_bad_channels(ngx_http_request_t *r)
{
    return ngx_http_sse_send_error(r, NGX_HTTP_BAD_REQUEST, "bad_channel",
                                   "a request names 1 to 64 channel ids, "
                                   "each of 1 to 255 printable ASCII bytes "
                                   "other than space and comma");
}


ngx_int_t
ngx_http_sse_add_header(ngx_http_request_t *r, const char *key,
    const char *value)
{
    ngx_str_t  v;

    v.data = (u_char *) value;
    v.len = ngx_strlen(value);

    return ngx_http_sse_add_header_str(r, key, &v);
}


ngx_int_t
ngx_http_sse_add_header_str(ngx_http_request_t *r, const char *key,
    ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = (ngx_table_elt_t *) ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) key;
    h->key.len = ngx_strlen(key);
    h->value = *value;
#if (nginx_version >= 1023000)
    /* since 1.23.0 same-named headers are linked through "next", which
     * ngx_list_push() leaves uninitialised */
    h->next = NULL;
#endif

    return NGX_OK;
}


/*
 * A request header's value by name (any case), or NULL.  With n, every
 * header of the name is counted in *n (the first one's value returned):
 * for headers that must come once.
 */

ngx_str_t *
ngx_http_sse_header_in(ngx_http_request_t *r, const char *name,
    ngx_uint_t *n)
{
    size_t            len;
    ngx_str_t        *first;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    len = ngx_strlen(name);
    first = NULL;

    if (n) {
        *n = 0;
    }

    part = &r->headers_in.headers.part;
    h = (ngx_table_elt_t *) part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return first;
            }

            part = part->next;
            h = (ngx_table_elt_t *) part->elts;
            i = 0;
        }

        if (h[i].key.len != len
            || ngx_strncasecmp(h[i].key.data, (u_char *) name, len) != 0)
        {
            continue;
        }

        if (first == NULL) {
            first = &h[i].value;
        }

        if (n == NULL) {
            return first;
        }

        (*n)++;
    }
}


/* 204 No Content, headers only: what tells an EventSource to stop */

ngx_int_t
ngx_http_sse_send_no_content(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    r->header_only = 1;
    r->headers_out.status = NGX_HTTP_NO_CONTENT;
    r->headers_out.content_length_n = 0;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK) {
        return rc;
    }

    return ngx_http_send_special(r, NGX_HTTP_LAST);
}
