/*
 * Signed tokens for the sse locations: the sse_auth_jwt directives, where
 * a request's token comes from, its verification (sse_jwt.cpp does the
 * cryptography) with a per-worker cache, the channel check, and the
 * $sse_jwt_sub / $sse_jwt_claim_NAME variables.
 */

#include "ngx_http_sse_access.h"
#include "sse_jwt.h"

#include <openssl/evp.h>

#include <memory>
#include <new>
#include <string>
#include <unordered_map>


namespace {

/*
 * What one request's token turned out to be, for the location whose
 * settings verified it: a request that moves to another location (rewrite
 * ... last keeps module contexts) is verified again there.  "valid" comes
 * only with the claims; a verification that failed for want of memory
 * leaves "pending", so nothing ever passes by default.
 */
struct ngx_http_sse_auth_ctx_t {
    ngx_int_t                                 state;
    sse::jwt::Status                          status;
    ngx_http_sse_access_conf_t               *sacf;
    std::shared_ptr<const sse::jwt::Claims>   claims;
};

#define NGX_HTTP_SSE_AUTH_PENDING   0
#define NGX_HTTP_SSE_AUTH_VALID     1
#define NGX_HTTP_SSE_AUTH_MISSING   2
#define NGX_HTTP_SSE_AUTH_INVALID   3


/*
 * Verified tokens, per worker: a reconnect storm of browsers sending the
 * same cookie costs one signature check per token and worker.  The key is
 * the SHA-256 of the whole token plus the location's random nonce (its
 * keys, issuer, audience and leeway are the location's), so a token is
 * never taken as verified for a location, or a configuration, whose
 * settings did not verify it.  Only valid
 * tokens are kept, each until it expires; the size is bounded, and when
 * full an entry is dropped (expired ones first), so a flood of distinct
 * valid tokens costs a signature check each, never unbounded memory.
 */
struct ngx_http_sse_auth_cached_t {
    std::shared_ptr<const sse::jwt::Claims>   claims;
    int64_t                                   until;
};

typedef std::unordered_map<std::string, ngx_http_sse_auth_cached_t>
    ngx_http_sse_auth_cache_t;

#define NGX_HTTP_SSE_AUTH_CACHE_MAX  4096

ngx_http_sse_auth_cache_t  *ngx_http_sse_auth_cache;


#define NGX_HTTP_SSE_CLAIM_PREFIX  "sse_jwt_claim_"

ngx_int_t ngx_http_sse_auth_verify(ngx_http_request_t *r,
    ngx_http_sse_access_conf_t *sacf, ngx_http_sse_auth_ctx_t **ctxp);
ngx_int_t ngx_http_sse_auth_token(ngx_http_request_t *r,
    ngx_http_sse_access_conf_t *sacf, ngx_str_t *token);
ngx_int_t ngx_http_sse_auth_refuse(ngx_http_request_t *r, ngx_uint_t status,
    const char *challenge, const char *code, const char *reason,
    const char *message);
std::shared_ptr<const sse::jwt::Claims> ngx_http_sse_auth_cache_get(
    const std::string &key, int64_t now);
void ngx_http_sse_auth_cache_put(const std::string &key,
    std::shared_ptr<const sse::jwt::Claims> claims, int64_t until,
    int64_t now);
void ngx_http_sse_auth_ctx_cleanup(void *data);
void ngx_http_sse_auth_keys_cleanup(void *data);
ngx_int_t ngx_http_sse_variable_claims(ngx_http_request_t *r,
    const sse::jwt::Claims **claims);
ngx_int_t ngx_http_sse_variable_jwt_sub(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
ngx_int_t ngx_http_sse_variable_jwt_claim(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
ngx_int_t ngx_http_sse_variable_set(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, const std::string *s);
const char *ngx_http_sse_auth_message(sse::jwt::Status status);
ngx_int_t ngx_http_sse_auth_fingerprint(u_char *fp, ngx_array_t *args,
    u_char *file, size_t len);
ngx_int_t ngx_http_sse_auth_shared_key(ngx_http_sse_access_conf_t *sacf,
    const unsigned char *digest, u_char *key);


ngx_http_variable_t  ngx_http_sse_auth_vars[] = {

    { ngx_string("sse_jwt_sub"), NULL, ngx_http_sse_variable_jwt_sub, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string(NGX_HTTP_SSE_CLAIM_PREFIX), NULL,
      ngx_http_sse_variable_jwt_claim, 0,
      NGX_HTTP_VAR_NOCACHEABLE|NGX_HTTP_VAR_PREFIX, 0 },

      ngx_http_null_variable
};

} // namespace


/* ---- configuration ------------------------------------------------ */

/* sse_auth_jwt off | on [token=value] */

char *
ngx_http_sse_auth_jwt(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_sse_access_conf_t *sacf = (ngx_http_sse_access_conf_t *) conf;

    ngx_str_t                         *value, v;
    ngx_http_compile_complex_value_t   ccv;

    if (sacf->auth != NGX_CONF_UNSET) {
        return (char *) "is duplicate";
    }

    value = (ngx_str_t *) cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        if (cf->args->nelts > 2) {
            return (char *) "takes no token= when off";
        }

        sacf->auth = 0;
        return NGX_CONF_OK;
    }

    if (ngx_strcmp(value[1].data, "on") != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\": \"on\" or \"off\"",
                           &value[1]);
        return (char *) NGX_CONF_ERROR;
    }

    sacf->auth = 1;

    if (cf->args->nelts == 2) {
        return NGX_CONF_OK;
    }

    if (ngx_strncmp(value[2].data, "token=", 6) != 0 || value[2].len == 6) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\": \"token=value\"",
                           &value[2]);
        return (char *) NGX_CONF_ERROR;
    }

    v.data = value[2].data + 6;
    v.len = value[2].len - 6;

    sacf->token = (ngx_http_complex_value_t *)
                      ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (sacf->token == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &v;
    ccv.complex_value = sacf->token;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return (char *) NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * sse_auth_jwt_key_file file [alg=name];
 * sse_auth_jwt_key_secret file [kid=id] [alg=HS256|HS384|HS512];
 *
 * The file is read now, so "nginx -t" names a bad one and a reload reads
 * it again.  The keys of one level are kept in one set, made by the
 * level's first key directive.
 */

char *
ngx_http_sse_auth_key(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_sse_access_conf_t *sacf = (ngx_http_sse_access_conf_t *) conf;

    bool                   ok;
    u_char                *buf;
    ssize_t                n;
    ngx_fd_t               fd;
    ngx_str_t             *value, name;
    ngx_uint_t             i, secret;
    ngx_file_t             file;
    sse::Slice             kid;
    sse::jwt::Alg          alg;
    std::string            error;
    ngx_file_info_t        fi;
    ngx_pool_cleanup_t    *cln;

    value = (ngx_str_t *) cf->args->elts;
    secret = cmd->offset;

    alg = sse::jwt::Alg::none_or_unknown;
    kid.data = NULL;
    kid.len = 0;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "alg=", 4) == 0) {
            alg = sse::jwt::alg_from_name(value[i].data + 4,
                                          value[i].len - 4);

            if (alg == sse::jwt::Alg::none_or_unknown
                || (secret && alg != sse::jwt::Alg::HS256
                    && alg != sse::jwt::Alg::HS384
                    && alg != sse::jwt::Alg::HS512)
                || (!secret && (alg == sse::jwt::Alg::HS256
                                || alg == sse::jwt::Alg::HS384
                                || alg == sse::jwt::Alg::HS512)))
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid algorithm \"%V\"", &value[i]);
                return (char *) NGX_CONF_ERROR;
            }

            continue;
        }

        if (secret && ngx_strncmp(value[i].data, "kid=", 4) == 0
            && value[i].len > 4)
        {
            kid.data = value[i].data + 4;
            kid.len = value[i].len - 4;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return (char *) NGX_CONF_ERROR;
    }

    name = value[1];

    if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
        return (char *) NGX_CONF_ERROR;
    }

    /* read the whole file; key files are small, 1 MB is plenty */

    fd = ngx_open_file(name.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%V\" failed", &name);
        return (char *) NGX_CONF_ERROR;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));
    file.fd = fd;
    file.name = name;
    file.log = cf->log;

    buf = NULL;
    n = NGX_ERROR;

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_fd_info_n " \"%V\" failed", &name);

    } else if (!ngx_is_file(&fi)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "key file \"%V\" is not a file", &name);

    } else if (ngx_file_size(&fi) > 1024 * 1024) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "key file \"%V\" is larger than 1 MB", &name);

    } else {
        buf = (u_char *) ngx_pnalloc(cf->temp_pool,
                                     (size_t) ngx_file_size(&fi) + 1);
        if (buf != NULL) {
            n = ngx_read_file(&file, buf, (size_t) ngx_file_size(&fi), 0);
        }
    }

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, cf->log, ngx_errno,
                      ngx_close_file_n " \"%V\" failed", &name);
    }

    if (buf == NULL || n == NGX_ERROR) {
        return (char *) NGX_CONF_ERROR;
    }

    if (n != (ssize_t) ngx_file_size(&fi)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "key file \"%V\" changed while read", &name);
        return (char *) NGX_CONF_ERROR;
    }

    if (sacf->keys == NULL) {
        cln = ngx_pool_cleanup_add(cf->pool, 0);
        if (cln == NULL) {
            return (char *) NGX_CONF_ERROR;
        }

        sacf->keys = new (std::nothrow) sse::jwt::KeySet();
        if (sacf->keys == NULL) {
            return (char *) NGX_CONF_ERROR;
        }

        cln->handler = ngx_http_sse_auth_keys_cleanup;
        cln->data = sacf->keys;
    }

    try {
        if (secret) {
            ok = sacf->keys->add_secret(buf, n, kid, alg, &error);

        } else {
            /* a JWKS is a JSON object; anything else is taken as PEM */

            for (i = 0; i < (ngx_uint_t) n; i++) {
                if (buf[i] != ' ' && buf[i] != '\t' && buf[i] != '\r'
                    && buf[i] != '\n')
                {
                    break;
                }
            }

            if (i < (ngx_uint_t) n && buf[i] == '{') {
                ok = sacf->keys->add_jwks(buf, n, alg, &error);

            } else {
                ok = sacf->keys->add_pem(buf, n, alg, &error);
            }
        }

    } catch (...) {
        ok = false;
        error = "out of memory";
    }

    if (ok
        && ngx_http_sse_auth_fingerprint(sacf->keys_fingerprint, cf->args,
                                         buf, n)
           != NGX_OK)
    {
        ok = false;
        error = "out of memory";
    }

    /* a secret stays in memory only where the key set keeps it */
    ngx_explicit_memzero(buf, n);

    if (!ok) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid key file \"%V\": %s",
                           &name, error.c_str());
        return (char *) NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_sse_auth_add_variables(ngx_conf_t *cf)
{
    return ngx_http_sse_add_variables(cf, ngx_http_sse_auth_vars);
}


void
ngx_http_sse_auth_exit_process(ngx_cycle_t *cycle)
{
    delete ngx_http_sse_auth_cache;
    ngx_http_sse_auth_cache = NULL;
}


/* ---- requests ----------------------------------------------------- */

ngx_int_t
ngx_http_sse_auth_check(ngx_http_request_t *r,
    ngx_http_sse_access_conf_t *sacf)
{
    ngx_http_sse_auth_ctx_t  *ctx;

    if (ngx_http_sse_auth_verify(r, sacf, &ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    switch (ctx->state) {

    case NGX_HTTP_SSE_AUTH_VALID:
        return NGX_DECLINED;

    case NGX_HTTP_SSE_AUTH_MISSING:
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "sse: no token");

        return ngx_http_sse_auth_refuse(r, NGX_HTTP_UNAUTHORIZED, "Bearer",
                                        "token_required", "no_token",
                                        "this location needs a token");

    default:
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "sse: token refused: %s",
                      sse::jwt::status_name(ctx->status));

        return ngx_http_sse_auth_refuse(r, NGX_HTTP_UNAUTHORIZED,
                                        "Bearer error=\"invalid_token\"",
                                        "invalid_token",
                                        sse::jwt::status_name(ctx->status),
                                        ngx_http_sse_auth_message(
                                            ctx->status));
    }
}


ngx_int_t
ngx_http_sse_auth_channels(ngx_http_request_t *r,
    ngx_http_sse_access_conf_t *sacf, ngx_uint_t role, sse::Slice *ids,
    ngx_uint_t n)
{
    ngx_str_t                        id;
    ngx_uint_t                       i;
    ngx_http_sse_auth_ctx_t         *ctx;
    const std::vector<std::string>  *patterns;

    if (ngx_http_sse_auth_verify(r, sacf, &ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->state != NGX_HTTP_SSE_AUTH_VALID) {
        /* the variables of the channel list asked first: refuse now */
        return ngx_http_sse_auth_check(r, sacf);
    }

    patterns = (role == NGX_HTTP_SSE_ROLE_PUBLISH) ? &ctx->claims->publish
                                                    : &ctx->claims->subscribe;

    for (i = 0; i < n; i++) {
        if (sse::jwt::patterns_allow(*patterns, ids[i])) {
            continue;
        }

        /* channel ids are printable ASCII by now: safe to log */
        id.data = (u_char *) ids[i].data;
        id.len = ids[i].len;

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "sse: token does not allow %s channel \"%V\"",
                      role == NGX_HTTP_SSE_ROLE_PUBLISH ? "publishing to"
                                                        : "subscribing to",
                      &id);

        return ngx_http_sse_auth_refuse(r, NGX_HTTP_FORBIDDEN,
                                        "Bearer error=\"insufficient_scope\"",
                                        "insufficient_scope",
                                        "channel_not_allowed",
                                        "the token does not allow every "
                                        "channel of this request");
    }

    return NGX_DECLINED;
}


time_t
ngx_http_sse_auth_expires(ngx_http_request_t *r)
{
    ngx_http_sse_auth_ctx_t     *ctx;
    ngx_http_sse_access_conf_t  *sacf;

    ctx = (ngx_http_sse_auth_ctx_t *)
              ngx_http_get_module_ctx(r, ngx_http_sse_access_module);

    if (ctx == NULL || ctx->state != NGX_HTTP_SSE_AUTH_VALID) {
        return 0;
    }

    sacf = (ngx_http_sse_access_conf_t *)
               ngx_http_get_module_loc_conf(r, ngx_http_sse_access_module);

    return (time_t) (ctx->claims->exp + sacf->leeway);
}


namespace {

/*
 * Verifies the request's token once per request; the result stays in the
 * request's context for the handler and the variables.  NGX_ERROR only
 * when out of memory.
 */

ngx_int_t
ngx_http_sse_auth_verify(ngx_http_request_t *r,
    ngx_http_sse_access_conf_t *sacf, ngx_http_sse_auth_ctx_t **ctxp)
{
    void                      *p;
    int64_t                    now;
    ngx_str_t                  token;
    bool                       cacheable;
    std::string                key;
    sse::Slice                 t;
    unsigned char              digest[32], shared[32];
    sse::jwt::Status           status;
    sse::jwt::Options          opt;
    ngx_pool_cleanup_t        *cln;
    ngx_http_sse_auth_ctx_t   *ctx;

    ctx = (ngx_http_sse_auth_ctx_t *)
              ngx_http_get_module_ctx(r, ngx_http_sse_access_module);

    if (ctx != NULL && ctx->sacf == sacf
        && ctx->state != NGX_HTTP_SSE_AUTH_PENDING)
    {
        *ctxp = ctx;
        return NGX_OK;
    }

    if (ctx == NULL) {
        cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_http_sse_auth_ctx_t));
        if (cln == NULL) {
            return NGX_ERROR;
        }

        p = cln->data;
        ctx = new (p) ngx_http_sse_auth_ctx_t();
        cln->handler = ngx_http_sse_auth_ctx_cleanup;

        ngx_http_set_ctx(r, ctx, ngx_http_sse_access_module);
    }

    ctx->state = NGX_HTTP_SSE_AUTH_PENDING;
    ctx->sacf = sacf;
    ctx->claims.reset();

    *ctxp = ctx;

    if (ngx_http_sse_auth_token(r, sacf, &token) != NGX_OK) {
        return NGX_ERROR;
    }

    if (token.len == 0) {
        ctx->state = NGX_HTTP_SSE_AUTH_MISSING;
        return NGX_OK;
    }

    t.data = token.data;
    t.len = token.len;
    now = (int64_t) ngx_time();

    opt.now = now;
    opt.leeway = sacf->leeway;
    opt.issuer.data = sacf->issuer.data;
    opt.issuer.len = sacf->issuer.len;
    opt.audience.data = sacf->audience.data;
    opt.audience.len = sacf->audience.len;

    /*
     * Three tiers, cheapest first: this worker verified the token for
     * this location (its claims are kept); some worker verified its
     * signature with the same keys (the claims are read and checked
     * again, the signature not); or the whole verification.
     */

    cacheable = sacf->tokens != NULL
                && token.len <= sse::jwt::max_token_len
                && sse::jwt::token_digest(t, digest)
                && ngx_http_sse_auth_shared_key(sacf, digest, shared) == NGX_OK;

    try {
        if (cacheable) {
            /* the location's nonce: never another location's or another
             * configuration's settings */
            key.assign((const char *) digest, sizeof(digest));
            key.append((const char *) &sacf->nonce, sizeof(sacf->nonce));

            ctx->claims = ngx_http_sse_auth_cache_get(key, now);

            if (ctx->claims) {
                ngx_http_sse_tokens_count(sacf->tokens,
                                          NGX_HTTP_SSE_TOKENS_WORKER_HIT);
                ctx->state = NGX_HTTP_SSE_AUTH_VALID;
                ctx->status = sse::jwt::Status::ok;
                return NGX_OK;
            }

            opt.signature_known_valid =
                (sacf->tokens
                 && ngx_http_sse_tokens_known(sacf->tokens, shared, now))
                ? true : false;
        }

        ngx_http_sse_tokens_count(sacf->tokens,
                                  opt.signature_known_valid
                                  ? NGX_HTTP_SSE_TOKENS_SHARED_HIT
                                  : NGX_HTTP_SSE_TOKENS_SIGNATURE);

        std::shared_ptr<sse::jwt::Claims>  claims =
            std::make_shared<sse::jwt::Claims>();

        status = sse::jwt::verify(*sacf->keys, t, opt, claims.get());

        ctx->status = status;

        if (status == sse::jwt::Status::no_memory) {
            return NGX_ERROR;
        }

        if (status != sse::jwt::Status::ok) {
            ngx_http_sse_tokens_count(sacf->tokens,
                                      NGX_HTTP_SSE_TOKENS_REFUSED);
            ctx->state = NGX_HTTP_SSE_AUTH_INVALID;
            return NGX_OK;
        }

        ctx->state = NGX_HTTP_SSE_AUTH_VALID;
        ctx->claims = claims;

        if (cacheable) {
            ngx_http_sse_auth_cache_put(key, claims,
                                        claims->exp + sacf->leeway, now);

            if (!opt.signature_known_valid) {
                ngx_http_sse_tokens_remember(sacf->tokens, shared,
                                             claims->exp + sacf->leeway,
                                             now);
            }
        }

    } catch (...) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* token=, else "Authorization: Bearer", else the cookie sse_token */

ngx_int_t
ngx_http_sse_auth_token(ngx_http_request_t *r,
    ngx_http_sse_access_conf_t *sacf, ngx_str_t *token)
{
    u_char                     *p, *last;
    ngx_table_elt_t            *h;
    ngx_http_variable_value_t  *vv;

    static ngx_str_t   cookie = ngx_string("cookie_sse_token");
    static ngx_uint_t  cookie_hash;

    token->len = 0;
    token->data = NULL;

    if (sacf->token) {
        return ngx_http_complex_value(r, sacf->token, token);
    }

    h = r->headers_in.authorization;

    if (h != NULL) {
        p = h->value.data;
        last = p + h->value.len;

        if (last - p > 6 && ngx_strncasecmp(p, (u_char *) "Bearer", 6) == 0
            && (p[6] == ' ' || p[6] == '\t'))
        {
            for (p += 6; p < last && (*p == ' ' || *p == '\t'); p++) {
                /* void */
            }

            while (last > p && (last[-1] == ' ' || last[-1] == '\t')) {
                last--;
            }

            token->data = p;
            token->len = last - p;
            return NGX_OK;
        }
    }

    if (cookie_hash == 0) {
        cookie_hash = ngx_hash_key(cookie.data, cookie.len);
    }

    vv = ngx_http_get_variable(r, &cookie, cookie_hash);

    if (vv == NULL) {
        return NGX_ERROR;
    }

    if (!vv->not_found) {
        token->data = vv->data;
        token->len = vv->len;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_sse_auth_refuse(ngx_http_request_t *r, ngx_uint_t status,
    const char *challenge, const char *code, const char *reason,
    const char *message)
{
    u_char  *json, *p;
    size_t   len;

    /* a refused publish stores nothing: its body is read and dropped */

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_sse_add_header(r, "WWW-Authenticate", challenge) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    len = sizeof("{\"error\":\"\",\"reason\":\"\",\"message\":\"\"}\n") - 1
          + ngx_strlen(code) + ngx_strlen(reason) + ngx_strlen(message);

    json = (u_char *) ngx_pnalloc(r->pool, len);
    if (json == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* our own literals, never the token's bytes: nothing to escape */
    p = ngx_sprintf(json,
                    "{\"error\":\"%s\",\"reason\":\"%s\",\"message\":\"%s\"}\n",
                    code, reason, message);

    return ngx_http_sse_send_json(r, status, json, p - json);
}


const char *
ngx_http_sse_auth_message(sse::jwt::Status status)
{
    switch (status) {
    case sse::jwt::Status::malformed:
        return "the token is not a well-formed signed JWT";
    case sse::jwt::Status::bad_alg:
        return "the token's algorithm is not its key's";
    case sse::jwt::Status::unknown_kid:
        return "no key has the token's kid";
    case sse::jwt::Status::no_key:
        return "no key for the token's algorithm";
    case sse::jwt::Status::bad_signature:
        return "the token's signature is not valid";
    case sse::jwt::Status::expired:
        return "the token has expired";
    case sse::jwt::Status::not_yet_valid:
        return "the token is not valid yet";
    case sse::jwt::Status::bad_issuer:
        return "the token's issuer is not accepted";
    case sse::jwt::Status::bad_audience:
        return "the token is not for this audience";
    default:
        return "the token is not valid";
    }
}


/*
 * fp = SHA-256(fp, the directive's words, the file's bytes): chained over
 * the key directives of one level, in order.
 */

ngx_int_t
ngx_http_sse_auth_fingerprint(u_char *fp, ngx_array_t *args, u_char *file,
    size_t len)
{
    int            ok;
    ngx_str_t     *value;
    ngx_uint_t     i;
    unsigned int   n;
    EVP_MD_CTX    *md;

    md = EVP_MD_CTX_new();
    if (md == NULL) {
        return NGX_ERROR;
    }

    value = (ngx_str_t *) args->elts;

    ok = EVP_DigestInit_ex(md, EVP_sha256(), NULL)
         && EVP_DigestUpdate(md, fp, 32);

    /* each word with its terminating NUL, so that words cannot shift */
    for (i = 0; ok && i < args->nelts; i++) {
        ok = EVP_DigestUpdate(md, value[i].data, value[i].len + 1);
    }

    ok = ok
         && EVP_DigestUpdate(md, file, len)
         && EVP_DigestFinal_ex(md, fp, &n)
         && n == 32;

    EVP_MD_CTX_free(md);

    return ok ? NGX_OK : NGX_ERROR;
}


/* the shared table's key: SHA-256(keys' fingerprint, token's digest) */

ngx_int_t
ngx_http_sse_auth_shared_key(ngx_http_sse_access_conf_t *sacf,
    const unsigned char *digest, u_char *key)
{
    u_char        in[64];
    unsigned int  n;

    ngx_memcpy(in, sacf->keys_fingerprint, 32);
    ngx_memcpy(in + 32, digest, 32);

    if (EVP_Digest(in, sizeof(in), key, &n, EVP_sha256(), NULL) != 1
        || n != 32)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


std::shared_ptr<const sse::jwt::Claims>
ngx_http_sse_auth_cache_get(const std::string &key, int64_t now)
{
    ngx_http_sse_auth_cache_t::iterator  it;

    if (ngx_http_sse_auth_cache == NULL) {
        return nullptr;
    }

    it = ngx_http_sse_auth_cache->find(key);

    if (it == ngx_http_sse_auth_cache->end()) {
        return nullptr;
    }

    if (it->second.until <= now) {
        ngx_http_sse_auth_cache->erase(it);
        return nullptr;
    }

    return it->second.claims;
}


void
ngx_http_sse_auth_cache_put(const std::string &key,
    std::shared_ptr<const sse::jwt::Claims> claims, int64_t until,
    int64_t now)
{
    ngx_uint_t                           n;
    ngx_http_sse_auth_cache_t::iterator  it;

    if (ngx_http_sse_auth_cache == NULL) {
        ngx_http_sse_auth_cache = new ngx_http_sse_auth_cache_t();
    }

    if (ngx_http_sse_auth_cache->size() >= NGX_HTTP_SSE_AUTH_CACHE_MAX) {

        /* a bounded look for expired entries, then any one goes */

        n = 0;
        it = ngx_http_sse_auth_cache->begin();

        while (it != ngx_http_sse_auth_cache->end() && n++ < 16) {
            if (it->second.until <= now) {
                it = ngx_http_sse_auth_cache->erase(it);
            } else {
                ++it;
            }
        }

        if (ngx_http_sse_auth_cache->size() >= NGX_HTTP_SSE_AUTH_CACHE_MAX) {
            ngx_http_sse_auth_cache->erase(ngx_http_sse_auth_cache->begin());
        }
    }

    (*ngx_http_sse_auth_cache)[key] = { claims, until };
}


void
ngx_http_sse_auth_ctx_cleanup(void *data)
{
    ngx_http_sse_auth_ctx_t  *ctx = (ngx_http_sse_auth_ctx_t *) data;

    ctx->~ngx_http_sse_auth_ctx_t();
}


void
ngx_http_sse_auth_keys_cleanup(void *data)
{
    delete (sse::jwt::KeySet *) data;
}


/* ---- variables ---------------------------------------------------- */

/*
 * The verified claims for a variable: the token is verified on first use
 * when the location checks tokens; NULL when it does not, or the token is
 * not valid.  NGX_ERROR only when out of memory.
 */

ngx_int_t
ngx_http_sse_variable_claims(ngx_http_request_t *r,
    const sse::jwt::Claims **claims)
{
    ngx_http_sse_auth_ctx_t     *ctx;
    ngx_http_sse_access_conf_t  *sacf;

    sacf = (ngx_http_sse_access_conf_t *)
               ngx_http_get_module_loc_conf(r, ngx_http_sse_access_module);

    /*
     * Only where tokens are checked (a subscribe or publish location with
     * its keys): elsewhere, e.g. a static location that inherits
     * "sse_auth_jwt on" and logs $sse_jwt_sub, the variables are empty.
     */

    if (!sacf->auth || sacf->keys == NULL || sacf->tokens == NULL) {
        *claims = NULL;
        return NGX_OK;
    }

    if (ngx_http_sse_auth_verify(r, sacf, &ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    *claims = (ctx->state == NGX_HTTP_SSE_AUTH_VALID) ? ctx->claims.get()
                                                      : NULL;

    return NGX_OK;
}


ngx_int_t
ngx_http_sse_variable_jwt_sub(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    const sse::jwt::Claims  *claims;

    if (ngx_http_sse_variable_claims(r, &claims) != NGX_OK) {
        return NGX_ERROR;
    }

    if (claims == NULL || !claims->has_sub) {
        v->not_found = 1;
        return NGX_OK;
    }

    return ngx_http_sse_variable_set(r, v, &claims->sub);
}


ngx_int_t
ngx_http_sse_variable_jwt_claim(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t               *name = (ngx_str_t *) data;

    size_t                   prefix;
    const sse::jwt::Claims  *claims;

    if (ngx_http_sse_variable_claims(r, &claims) != NGX_OK) {
        return NGX_ERROR;
    }

    prefix = sizeof(NGX_HTTP_SSE_CLAIM_PREFIX) - 1;

    if (claims == NULL || name->len <= prefix) {
        v->not_found = 1;
        return NGX_OK;
    }

    /*
     * nginx lowercases variable names, so claims are matched without
     * regard to case: $sse_jwt_claim_role is "role", "Role" or "ROLE",
     * the first of them in the token.
     */

    for (const auto &claim : claims->all) {
        if (claim.first.size() == name->len - prefix
            && ngx_strncasecmp((u_char *) claim.first.data(),
                               name->data + prefix, name->len - prefix)
               == 0)
        {
            return ngx_http_sse_variable_set(r, v, &claim.second);
        }
    }

    v->not_found = 1;
    return NGX_OK;
}


ngx_int_t
ngx_http_sse_variable_set(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, const std::string *s)
{
    u_char  *p;
    size_t   i;

    /*
     * A claim is the token issuer's text, but it may come from a user
     * (a display name): with a control byte in it, it could split a
     * response header (add_header) or a request to an upstream
     * (proxy_set_header), so such a value is not given at all.
     */

    for (i = 0; i < s->size(); i++) {
        if ((u_char) (*s)[i] < 0x20 || (u_char) (*s)[i] == 0x7f) {
            v->not_found = 1;
            return NGX_OK;
        }
    }

    /* a copy: the value may be used after the claims are gone */

    p = (u_char *) ngx_pnalloc(r->pool, s->size() + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(p, s->data(), s->size());

    v->data = p;
    v->len = s->size();
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}

} // namespace
