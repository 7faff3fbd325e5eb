/*
 * A stream's access-log line, and the $sse_* variables.
 *
 * The line of a stream is written when the stream ends, with its real
 * duration, bytes and status.  A stream that stays on its request (HTTP/2,
 * HTTP/3, limit_conn, ...) gets it from nginx itself when the request is
 * freed.  A detached stream has let its request go long before: when it
 * detaches it keeps, in one small record, what a log line is made of and
 * cannot be found on the connection (the request line, the start time, the
 * request's sizes and configuration, and only those request headers that
 * some variable of the configuration reads), and nginx's own line at that
 * moment is suppressed.  When the stream ends, a request is built on the
 * connection from that record and freed the way nginx frees any request,
 * so the log phase (access_log, its formats, buffers, conditions and
 * syslog, and any other module's log handler) writes the line as it would
 * have: one line per stream, at its end.
 */

#include "ngx_http_sse.h"


/* nginx's access log (ngx_http_log_module.c), always built in */
extern "C" {
extern ngx_module_t  ngx_http_log_module;
}


/*
 * One malloc()ed block per stream: the stream's channel list (if
 * $sse_channels is used), then, once detached, its request line, the
 * request headers it keeps and, if the realip module had changed it, the
 * client's address as the request saw it.
 */
struct ngx_http_sse_log_s {
    ngx_http_connection_t      *http_connection;
    void                      **srv_conf;
    void                      **loc_conf;
    time_t                      start_sec;
    off_t                       request_length;
    uint32_t                    header_size;
    uint32_t                    channels_len;
    uint32_t                    line_len;
    uint32_t                    headers_len;    /* klen, vlen, key, value */
    uint16_t                    start_msec;
    uint16_t                    nheaders;
    uint16_t                    socklen;        /* 0: the connection's */
    uint8_t                     addr_len;
    uint8_t                     request;        /* the request's part is in */
    u_char                      data[1];
};


namespace {

/*
 * What the configuration's variables read of a request: the request
 * headers whose $http_NAME (and the like) is used anywhere, found once per
 * worker among the variables the configuration indexed (log_format,
 * access_log if=, map sources, ...).
 */
typedef struct {
    void                       *cmcf;       /* found for */
    ngx_str_t                  *names;      /* "user_agent": '-' is '_' */
    ngx_uint_t                  nnames;
    unsigned                    channels:1;     /* $sse_channels */
    unsigned                    last_event_id:1;    /* $sse_last_event_id */
    unsigned                    remote_user:1;  /* Authorization: Basic */
    unsigned                    log_handlers:1; /* another module's too */
} ngx_http_sse_log_needs_t;


/*
 * The head of ngx_http_log_module's location configuration, private to
 * it: its first field, the location's access logs, has been first since
 * nginx 0.7.  After the configuration is merged it is NULL only where
 * "access_log off" holds (see ngx_http_sse_log_wanted()).
 */
typedef struct {
    ngx_array_t                *logs;
} ngx_http_sse_log_module_conf_t;


/* the request's client address, before the request is freed */
typedef struct {
    struct sockaddr            *sockaddr;
    socklen_t                   socklen;
    ngx_str_t                   addr_text;
    ngx_sockaddr_t              copy;
    u_char                      text[NGX_SOCKADDR_STRLEN];
} ngx_http_sse_log_addr_t;


ngx_http_sse_log_needs_t *ngx_http_sse_log_needs(ngx_http_request_t *r);
ngx_uint_t ngx_http_sse_log_wanted(ngx_http_request_t *r,
    ngx_http_sse_log_needs_t *needs);
ngx_uint_t ngx_http_sse_log_named(ngx_table_elt_t *h, ngx_str_t *name);
ngx_uint_t ngx_http_sse_log_keeps(ngx_http_sse_log_needs_t *needs,
    ngx_table_elt_t *h);
ngx_int_t ngx_http_sse_log_rebuild(ngx_http_request_t *r,
    ngx_http_sse_log_t *lg);
ngx_http_sse_sub_t *ngx_http_sse_log_stream(ngx_http_request_t *r);
ngx_int_t ngx_http_sse_variable_channels(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
ngx_int_t ngx_http_sse_variable_events_sent(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
ngx_int_t ngx_http_sse_variable_last_event_id(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
ngx_int_t ngx_http_sse_variable_close_reason(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


ngx_http_sse_log_needs_t  ngx_http_sse_needs;
ngx_http_sse_log_addr_t   ngx_http_sse_detach_addr;


/* indexed by NGX_HTTP_SSE_CLOSE_* */
ngx_str_t  ngx_http_sse_close_reasons[] = {
    ngx_null_string,
    ngx_string("client"),
    ngx_string("slow"),
    ngx_string("timeout"),
    ngx_string("lifetime"),
    ngx_string("token"),
    ngx_string("deleted"),
    ngx_string("shutdown"),
    ngx_string("error"),
};


ngx_http_variable_t  ngx_http_sse_log_vars[] = {

    { ngx_string("sse_channels"), NULL, ngx_http_sse_variable_channels, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("sse_events_sent"), NULL,
      ngx_http_sse_variable_events_sent, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("sse_last_event_id"), NULL,
      ngx_http_sse_variable_last_event_id, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("sse_close_reason"), NULL,
      ngx_http_sse_variable_close_reason, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};

} // namespace


ngx_int_t
ngx_http_sse_log_add_variables(ngx_conf_t *cf)
{
    return ngx_http_sse_add_variables(cf, ngx_http_sse_log_vars);
}


/*
 * Whether streams keep the ids they sent, for $sse_last_event_id: only
 * when the configuration reads that variable (a log_format, a map),
 * 32 bytes per channel of every stream otherwise spent for nothing.
 */

ngx_uint_t
ngx_http_sse_log_ids(ngx_http_request_t *r)
{
    ngx_http_sse_log_needs_t  *needs;

    needs = ngx_http_sse_log_needs(r);

    return needs == NULL || needs->last_event_id;
}


/* a stream is created: its channel list, if a variable shows it */

ngx_int_t
ngx_http_sse_log_start(ngx_http_sse_sub_t *sub, ngx_http_request_t *r,
    sse::Slice *ids, ngx_uint_t n)
{
    u_char                    *p;
    size_t                     len;
    ngx_uint_t                 i;
    ngx_http_sse_log_t        *lg;
    ngx_http_sse_log_needs_t  *needs;

    needs = ngx_http_sse_log_needs(r);

    if (needs == NULL) {
        return NGX_ERROR;
    }

    if (!needs->channels) {
        return NGX_OK;
    }

    len = n - 1;

    for (i = 0; i < n; i++) {
        len += ids[i].len;
    }

    lg = (ngx_http_sse_log_t *) ngx_calloc(offsetof(ngx_http_sse_log_t, data)
                                           + len, r->connection->log);
    if (lg == NULL) {
        return NGX_ERROR;
    }

    p = lg->data;

    for (i = 0; i < n; i++) {
        if (i) {
            *p++ = ',';
        }

        p = ngx_cpymem(p, ids[i].data, ids[i].len);
    }

    lg->channels_len = (uint32_t) len;
    sub->log = lg;

    return NGX_OK;
}


/*
 * The stream lets its request go: what its log line needs is kept, and
 * the request is not logged now.  Without memory for that, the line is
 * written now, as before, and not at the end: never lost, never twice.
 */

void
ngx_http_sse_log_detach(ngx_http_sse_sub_t *sub, ngx_http_request_t *r)
{
    u_char                    *p;
    size_t                     size, headers_len;
    uint32_t                   klen, vlen;
    ngx_uint_t                 i, nheaders;
    ngx_list_part_t           *part;
    ngx_table_elt_t           *h;
    ngx_connection_t          *c = r->connection;
    ngx_http_sse_log_t        *lg;
    ngx_http_sse_log_addr_t   *addr = &ngx_http_sse_detach_addr;
    ngx_http_sse_log_needs_t  *needs;

    addr->sockaddr = NULL;

    needs = ngx_http_sse_log_needs(r);

    if (needs == NULL || r->request_line.len > NGX_MAX_UINT32_VALUE) {
        return;
    }

    if (!ngx_http_sse_log_wanted(r, needs)) {
        /* no line to write at the end: nothing kept for it */
        ngx_free(sub->log);
        sub->log = NULL;
        return;
    }

    /* the headers a variable reads: never more than the request had */

    headers_len = 0;
    nheaders = 0;

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        h = (ngx_table_elt_t *) part->elts;

        for (i = 0; i < part->nelts; i++) {
            if (ngx_http_sse_log_keeps(needs, &h[i])) {
                headers_len += 2 * sizeof(uint32_t) + h[i].key.len
                               + h[i].value.len;
                nheaders++;
            }
        }
    }

    if (nheaders > 0xffff || headers_len > NGX_MAX_UINT32_VALUE
        || r->header_size > NGX_MAX_UINT32_VALUE)
    {
        return;
    }

    size = offsetof(ngx_http_sse_log_t, data)
           + (sub->log ? sub->log->channels_len : 0)
           + r->request_line.len + headers_len;

    lg = (ngx_http_sse_log_t *) ngx_alloc(size, c->log);
    if (lg == NULL) {
        return;
    }

    if (sub->log) {
        ngx_memcpy(lg, sub->log, offsetof(ngx_http_sse_log_t, data)
                                 + sub->log->channels_len);
        ngx_free(sub->log);

    } else {
        lg->channels_len = 0;
    }

    sub->log = lg;

    lg->http_connection = r->http_connection;
    lg->srv_conf = r->srv_conf;
    lg->loc_conf = r->loc_conf;
    lg->start_sec = r->start_sec;
    lg->start_msec = (uint16_t) r->start_msec;
    lg->request_length = r->request_length;
    lg->header_size = (uint32_t) r->header_size;
    lg->line_len = (uint32_t) r->request_line.len;
    lg->headers_len = (uint32_t) headers_len;
    lg->nheaders = (uint16_t) nheaders;
    lg->socklen = 0;
    lg->addr_len = 0;
    lg->request = 1;

    p = ngx_cpymem(lg->data + lg->channels_len, r->request_line.data,
                   r->request_line.len);

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        h = (ngx_table_elt_t *) part->elts;

        for (i = 0; i < part->nelts; i++) {
            if (!ngx_http_sse_log_keeps(needs, &h[i])) {
                continue;
            }

            klen = (uint32_t) h[i].key.len;
            vlen = (uint32_t) h[i].value.len;
            p = ngx_cpymem(p, &klen, sizeof(uint32_t));
            p = ngx_cpymem(p, &vlen, sizeof(uint32_t));
            p = ngx_cpymem(p, h[i].key.data, klen);
            p = ngx_cpymem(p, h[i].value.data, vlen);
        }
    }

    r->logged = 1;

    /*
     * The realip module gives the connection its own address back when
     * the request's pool goes: the address the request saw is copied
     * now, and kept (ngx_http_sse_log_detached()) only if it differs.
     */

    if (c->socklen <= (socklen_t) sizeof(ngx_sockaddr_t)
        && c->addr_text.len <= NGX_SOCKADDR_STRLEN)
    {
        addr->sockaddr = c->sockaddr;
        addr->socklen = c->socklen;
        ngx_memcpy(&addr->copy, c->sockaddr, c->socklen);
        addr->addr_text.len = c->addr_text.len;
        addr->addr_text.data = addr->text;
        ngx_memcpy(addr->text, c->addr_text.data, c->addr_text.len);
    }
}


/* the request is freed: the client's address it saw, if not the same */

void
ngx_http_sse_log_detached(ngx_http_sse_sub_t *sub)
{
    size_t                    size;
    ngx_connection_t         *c = sub->connection;
    ngx_http_sse_log_t       *lg = sub->log;
    ngx_http_sse_log_addr_t  *addr = &ngx_http_sse_detach_addr;

    if (lg == NULL || !lg->request || addr->sockaddr == NULL
        || addr->sockaddr == c->sockaddr)
    {
        return;
    }

    addr->sockaddr = NULL;

    size = offsetof(ngx_http_sse_log_t, data) + lg->channels_len
           + lg->line_len + lg->headers_len;

    lg = (ngx_http_sse_log_t *) ngx_alloc(size + addr->socklen
                                          + addr->addr_text.len, c->log);
    if (lg == NULL) {
        /* the line shows the connection's own address */
        return;
    }

    ngx_memcpy(lg, sub->log, size);
    ngx_memcpy(lg->data + size - offsetof(ngx_http_sse_log_t, data),
               &addr->copy, addr->socklen);
    ngx_memcpy(lg->data + size - offsetof(ngx_http_sse_log_t, data)
               + addr->socklen,
               addr->addr_text.data, addr->addr_text.len);

    lg->socklen = (uint16_t) addr->socklen;
    lg->addr_len = (uint8_t) addr->addr_text.len;

    ngx_free(sub->log);
    sub->log = lg;
}


/*
 * A detached stream ends: a request is built on its connection from what
 * was kept, and freed by nginx, whose log phase writes the line.  It is
 * not counted as a request of the connection nor in stub_status: it is the
 * stream's own request, logged late.
 */

void
ngx_http_sse_log_end(ngx_http_sse_sub_t *sub)
{
    u_char               *p;
    socklen_t             socklen;
    ngx_str_t             addr_text;
    ngx_connection_t     *c = sub->connection;
    struct sockaddr      *sockaddr;
    ngx_http_request_t   *r;
    ngx_http_sse_log_t   *lg = sub->log;

    if (lg == NULL || !lg->request || sub->ended) {
        return;
    }

    sub->ended = 1;

    c->data = lg->http_connection;
    r = ngx_http_create_request(c);
    c->data = sub;

    if (r == NULL) {
        return;
    }

    c->requests--;

#if (NGX_STAT_STUB)
    (void) ngx_atomic_fetch_add(ngx_stat_requests, -1);
#endif

    sockaddr = c->sockaddr;
    socklen = c->socklen;
    addr_text = c->addr_text;

    if (lg->socklen) {
        p = lg->data + lg->channels_len + lg->line_len + lg->headers_len;
        c->sockaddr = (struct sockaddr *) p;
        c->socklen = lg->socklen;
        c->addr_text.data = p + lg->socklen;
        c->addr_text.len = lg->addr_len;
    }

    /*
     * One more reference while the request is rebuilt: nginx's header
     * handlers close a request they cannot take (only on no memory here:
     * the same headers were taken once), and that must not free it under
     * us nor close the connection.
     */

    r->count++;

    (void) ngx_http_sse_log_rebuild(r, lg);

    r->count = 1;
    r->srv_conf = lg->srv_conf;
    r->loc_conf = lg->loc_conf;
    r->start_sec = lg->start_sec;
    r->start_msec = lg->start_msec;
    r->request_length = lg->request_length;
    r->header_size = lg->header_size;
    r->headers_out.status = NGX_HTTP_OK;
    r->logged = 0;

    ngx_http_set_ctx(r, sub, ngx_http_sse_module);

    ngx_http_free_request(r, 0);

    c->sockaddr = sockaddr;
    c->socklen = socklen;
    c->addr_text = addr_text;
}


namespace {

ngx_http_sse_log_needs_t *
ngx_http_sse_log_needs(ngx_http_request_t *r)
{
    ngx_str_t                  *name;
    ngx_uint_t                  i;
    ngx_http_variable_t        *v;
    ngx_http_sse_log_needs_t   *needs = &ngx_http_sse_needs;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = (ngx_http_core_main_conf_t *)
               ngx_http_get_module_main_conf(r, ngx_http_core_module);

    if (needs->cmcf == cmcf) {
        return needs;
    }

    /* once per worker: the configuration does not change under it */

    v = (ngx_http_variable_t *) cmcf->variables.elts;

    needs->names = (ngx_str_t *) ngx_palloc(ngx_cycle->pool,
                                            (cmcf->variables.nelts + 1)
                                            * sizeof(ngx_str_t));
    if (needs->names == NULL) {
        return NULL;
    }

    needs->nnames = 0;
    needs->channels = 0;
    needs->last_event_id = 0;
    needs->remote_user = 0;

    /* ngx_http_log_module's own handler is always there */
    needs->log_handlers = cmcf->phases[NGX_HTTP_LOG_PHASE].handlers.nelts > 1;

    for (i = 0; i < cmcf->variables.nelts; i++) {
        name = &needs->names[needs->nnames];

        if (v[i].name.len > 5
            && ngx_strncmp(v[i].name.data, "http_", 5) == 0)
        {
            name->data = v[i].name.data + 5;
            name->len = v[i].name.len - 5;
            needs->nnames++;

        } else if (v[i].name.len > 7
                   && ngx_strncmp(v[i].name.data, "cookie_", 7) == 0)
        {
            ngx_str_set(name, "cookie");
            needs->nnames++;

        } else if ((v[i].name.len == 4
                    && ngx_strncmp(v[i].name.data, "host", 4) == 0)
                   || (v[i].name.len == 12
                       && ngx_strncmp(v[i].name.data, "content_type", 12)
                          == 0)
                   || (v[i].name.len == 14
                       && ngx_strncmp(v[i].name.data, "content_length", 14)
                          == 0))
        {
            *name = v[i].name;
            needs->nnames++;

        } else if (v[i].name.len == 11
                   && ngx_strncmp(v[i].name.data, "remote_user", 11) == 0)
        {
            needs->remote_user = 1;

        } else if (v[i].name.len == 12
                   && ngx_strncmp(v[i].name.data, "sse_channels", 12) == 0)
        {
            needs->channels = 1;

        } else if (v[i].name.len == 17
                   && ngx_strncmp(v[i].name.data, "sse_last_event_id", 17)
                      == 0)
        {
            needs->last_event_id = 1;
        }
    }

    needs->cmcf = cmcf;

    return needs;
}


/*
 * Whether the request's access-log line is written at all: not when its
 * location has no access log ("access_log off") and no other module has
 * a log-phase handler.  A detached stream then keeps nothing for a line
 * at its end (~100 bytes an idle subscriber).  Should nginx ever reorder
 * that configuration, a location's logs would be misread as none: its
 * line would then be written when the stream detaches, as when memory
 * for the record is short, not lost.
 */

ngx_uint_t
ngx_http_sse_log_wanted(ngx_http_request_t *r,
    ngx_http_sse_log_needs_t *needs)
{
    ngx_http_sse_log_module_conf_t  *lcf;

    if (needs->log_handlers) {
        return 1;
    }

    lcf = (ngx_http_sse_log_module_conf_t *)
              ngx_http_get_module_loc_conf(r, ngx_http_log_module);

    return lcf->logs != NULL;
}


/* the header's name as a variable has it: lowercase, '-' is '_' */

ngx_uint_t
ngx_http_sse_log_named(ngx_table_elt_t *h, ngx_str_t *name)
{
    u_char      ch;
    ngx_uint_t  i;

    if (h->key.len != name->len) {
        return 0;
    }

    for (i = 0; i < name->len; i++) {
        ch = h->key.data[i];

        if (ch >= 'A' && ch <= 'Z') {
            ch |= 0x20;

        } else if (ch == '-') {
            ch = '_';
        }

        if (ch != name->data[i]) {
            return 0;
        }
    }

    return 1;
}


ngx_uint_t
ngx_http_sse_log_keeps(ngx_http_sse_log_needs_t *needs, ngx_table_elt_t *h)
{
    ngx_uint_t  i;
    ngx_str_t   authorization = ngx_string("authorization");

    for (i = 0; i < needs->nnames; i++) {
        if (ngx_http_sse_log_named(h, &needs->names[i])) {
            return 1;
        }
    }

    /* $remote_user reads Basic credentials only: a bearer token stays out */

    return needs->remote_user
           && ngx_http_sse_log_named(h, &authorization)
           && h->value.len >= 6
           && ngx_strncasecmp(h->value.data, (u_char *) "Basic ", 6) == 0;
}


/*
 * The request line and the kept headers, through nginx's own parser and
 * header handlers, so that every variable finds them where it looks
 * ($request, $uri, $args, $http_*, $cookie_*, $host, $remote_user, ...).
 */

ngx_int_t
ngx_http_sse_log_rebuild(ngx_http_request_t *r, ngx_http_sse_log_t *lg)
{
    u_char                     *p;
    uint32_t                    klen, vlen;
    ngx_buf_t                  *b;
    ngx_uint_t                  i;
    ngx_table_elt_t            *h;
    ngx_http_header_t          *hh;
    ngx_http_core_main_conf_t  *cmcf;

    r->srv_conf = lg->srv_conf;
    r->loc_conf = lg->loc_conf;

    p = lg->data + lg->channels_len;

    b = ngx_create_temp_buf(r->pool, lg->line_len + 2);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->last = ngx_cpymem(b->last, p, lg->line_len);
    *b->last++ = CR;
    *b->last++ = LF;

    if (ngx_http_parse_request_line(r, b) == NGX_OK) {
        r->request_line.len = r->request_end - r->request_start;
        r->request_line.data = r->request_start;
        r->method_name.len = r->method_end - r->request_start + 1;
        r->method_name.data = r->request_line.data;

        if (r->http_protocol.data) {
            r->http_protocol.len = r->request_end - r->http_protocol.data;
        }

        if (ngx_http_process_request_uri(r) != NGX_OK) {
            return NGX_ERROR;
        }

    } else {
        /* cannot happen: nginx parsed it once; the line as it was */
        r->request_line.len = lg->line_len;
        r->request_line.data = b->start;
    }

    if (ngx_list_init(&r->headers_in.headers, r->pool,
                      ngx_max(lg->nheaders, 1), sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    cmcf = (ngx_http_core_main_conf_t *)
               ngx_http_get_module_main_conf(r, ngx_http_core_module);

    p += lg->line_len;

    for (i = 0; i < lg->nheaders; i++) {
        ngx_memcpy(&klen, p, sizeof(uint32_t));
        ngx_memcpy(&vlen, p + sizeof(uint32_t), sizeof(uint32_t));
        p += 2 * sizeof(uint32_t);

        h = (ngx_table_elt_t *) ngx_list_push(&r->headers_in.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        /* nginx's header values end with a NUL, as the parser leaves them */

        h->key.len = klen;
        h->key.data = (u_char *) ngx_pnalloc(r->pool, klen + 1 + vlen + 1
                                                      + klen);
        if (h->key.data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(h->key.data, p, klen);
        h->key.data[klen] = '\0';
        p += klen;

        h->value.len = vlen;
        h->value.data = h->key.data + klen + 1;
        ngx_memcpy(h->value.data, p, vlen);
        h->value.data[vlen] = '\0';
        p += vlen;

        h->lowcase_key = h->value.data + vlen + 1;
        ngx_strlow(h->lowcase_key, h->key.data, klen);
        h->hash = ngx_hash_key(h->lowcase_key, klen);

#if (nginx_version >= 1023000)
        h->next = NULL;
#endif

        hh = (ngx_http_header_t *) ngx_hash_find(&cmcf->headers_in_hash,
                                                 h->hash, h->lowcase_key,
                                                 klen);

        if (hh && hh->handler(r, h, hh->offset) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* the stream of a subscribe request, or of its late log line */

ngx_http_sse_sub_t *
ngx_http_sse_log_stream(ngx_http_request_t *r)
{
    ngx_http_sse_loc_conf_t  *slcf;

    slcf = (ngx_http_sse_loc_conf_t *)
               ngx_http_get_module_loc_conf(r, ngx_http_sse_module);

    if (slcf == NULL || slcf->role != NGX_HTTP_SSE_ROLE_SUBSCRIBE) {
        /* a publish location's context is not a stream */
        return NULL;
    }

    return (ngx_http_sse_sub_t *) ngx_http_get_module_ctx(r,
                                                          ngx_http_sse_module);
}


ngx_int_t
ngx_http_sse_variable_channels(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_sse_sub_t  *sub;

    sub = ngx_http_sse_log_stream(r);

    if (sub == NULL || sub->log == NULL || sub->log->channels_len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->data = sub->log->data;
    v->len = sub->log->channels_len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


ngx_int_t
ngx_http_sse_variable_events_sent(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char              *p;
    ngx_http_sse_sub_t  *sub;

    sub = ngx_http_sse_log_stream(r);

    if (sub == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    p = (u_char *) ngx_pnalloc(r->pool, NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->data = p;
    v->len = ngx_sprintf(p, "%ui", sub->events_sent) - p;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


ngx_int_t
ngx_http_sse_variable_last_event_id(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char              *p;
    ngx_http_sse_sub_t  *sub;

    sub = ngx_http_sse_log_stream(r);

    if (sub == NULL || sub->events_sent == 0 || !sub->ids) {
        v->not_found = 1;
        return NGX_OK;
    }

    p = (u_char *) ngx_pnalloc(r->pool,
                               sub->nchans * (sse::max_position_len + 1));
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->data = p;
    v->len = sse::format_id(p, ngx_http_sse_sent_ids(sub), sub->nchans);
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


/*
 * Set where the module ends a stream; a stream on its request whose end
 * nginx found (the client went away, send_timeout in nginx's writer) is
 * told by its connection.  Nothing until the stream ends.
 */

ngx_int_t
ngx_http_sse_variable_close_reason(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_uint_t           reason;
    ngx_connection_t    *c = r->connection;
    ngx_http_sse_sub_t  *sub;

    sub = ngx_http_sse_log_stream(r);

    if (sub == NULL
        || !(sub->ended || sub->done || r->main->count == 0 || c->error))
    {
        v->not_found = 1;
        return NGX_OK;
    }

    reason = sub->close_reason;

    if (reason == NGX_HTTP_SSE_CLOSE_NONE) {
        if (c->read->eof || c->read->error) {
            reason = NGX_HTTP_SSE_CLOSE_CLIENT;

        } else if (c->timedout) {
            reason = NGX_HTTP_SSE_CLOSE_TIMEOUT;

        } else {
            reason = NGX_HTTP_SSE_CLOSE_ERROR;
        }
    }

    v->data = ngx_http_sse_close_reasons[reason].data;
    v->len = ngx_http_sse_close_reasons[reason].len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}

} // namespace
