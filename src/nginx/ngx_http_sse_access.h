/*
 * ngx_http_sse_access_module: who may subscribe and publish.
 *
 *   ngx_http_sse_access.cpp   the module: directives, configuration
 *   ngx_http_sse_auth.cpp     signed tokens (sse_auth_jwt*), variables
 *   ngx_http_sse_auth_shared.cpp  verified signatures shared by workers
 *   ngx_http_sse_cors.cpp     sse_cors_origins and preflight
 *
 * A module of its own (in the same .so as ngx_http_sse_module), so that
 * its configuration and its per-request state stay apart from the
 * streams': the sse handlers ask it three questions, below.
 */

#ifndef NGX_HTTP_SSE_ACCESS_H
#define NGX_HTTP_SSE_ACCESS_H

#include "ngx_http_sse.h"

namespace sse {
namespace jwt {
class KeySet;
struct Claims;
} // namespace jwt
} // namespace sse


typedef struct {
    /* sse_auth_jwt */
    ngx_flag_t                  auth;
    ngx_http_complex_value_t   *token;      /* token=; NULL: header, cookie */

    /* keys set at this level; NULL: inherited (or none) */
    sse::jwt::KeySet           *keys;

    /* SHA-256 over every key directive of the set and its file's bytes:
     * the same keys give the same fingerprint, in every worker and after
     * a reload */
    u_char                      keys_fingerprint[32];

    /* verified signatures shared by the workers; NULL: no tokens here */
    ngx_shm_zone_t             *tokens;

    /* random, per configuration: a worker's cache of verified tokens
     * never takes another configuration's at a reused address */
    uint64_t                    nonce;

    ngx_str_t                   issuer;
    ngx_str_t                   audience;
    time_t                      leeway;

    /* sse_cors_origins: ngx_str_t; NULL: off */
    ngx_array_t                *cors_origins;
} ngx_http_sse_access_conf_t;


extern ngx_module_t  ngx_http_sse_access_module;


/*
 * Before anything else in an sse location: CORS headers, the preflight,
 * and the token.  NGX_DECLINED: go on; anything else is the handler's
 * result (an answer was sent, or an error status), as for nginx's access
 * handlers.
 */
ngx_int_t ngx_http_sse_access(ngx_http_request_t *r, ngx_uint_t role);

/* every channel of the request allowed by the token: NGX_DECLINED, or
 * the handler's result (403 sent) */
ngx_int_t ngx_http_sse_access_channels(ngx_http_request_t *r,
    ngx_uint_t role, sse::Slice *ids, ngx_uint_t n);

/* when the request's token stops being valid (exp + leeway); 0: never */
time_t ngx_http_sse_access_expires(ngx_http_request_t *r);


/* ngx_http_sse_auth.cpp */
ngx_int_t ngx_http_sse_auth_add_variables(ngx_conf_t *cf);
ngx_int_t ngx_http_sse_auth_check(ngx_http_request_t *r,
    ngx_http_sse_access_conf_t *sacf);
ngx_int_t ngx_http_sse_auth_channels(ngx_http_request_t *r,
    ngx_http_sse_access_conf_t *sacf, ngx_uint_t role, sse::Slice *ids,
    ngx_uint_t n);
time_t ngx_http_sse_auth_expires(ngx_http_request_t *r);
char *ngx_http_sse_auth_jwt(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_sse_auth_key(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
void ngx_http_sse_auth_exit_process(ngx_cycle_t *cycle);

/* ngx_http_sse_auth_shared.cpp */
ngx_shm_zone_t *ngx_http_sse_tokens_zone(ngx_conf_t *cf);
ngx_uint_t ngx_http_sse_tokens_known(ngx_shm_zone_t *shm_zone,
    const u_char *key, int64_t now);
void ngx_http_sse_tokens_remember(ngx_shm_zone_t *shm_zone, const u_char *key,
    int64_t until, int64_t now);
void ngx_http_sse_tokens_count(ngx_shm_zone_t *shm_zone, ngx_uint_t what);

#define NGX_HTTP_SSE_TOKENS_SIGNATURE   0
#define NGX_HTTP_SSE_TOKENS_SHARED_HIT  1
#define NGX_HTTP_SSE_TOKENS_WORKER_HIT  2
#define NGX_HTTP_SSE_TOKENS_REFUSED     3

/* ngx_http_sse_cors.cpp */
ngx_int_t ngx_http_sse_cors(ngx_http_request_t *r,
    ngx_http_sse_access_conf_t *sacf, ngx_uint_t role);
char *ngx_http_sse_cors_origins(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_sse_cors_init(ngx_conf_t *cf);

#endif /* NGX_HTTP_SSE_ACCESS_H */
