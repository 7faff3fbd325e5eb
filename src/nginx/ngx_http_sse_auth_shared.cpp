/*
 * Tokens whose signature a worker has verified, shared by all workers: a
 * small shared memory zone of its own ("sse_auth_tokens", 1 MB), made when
 * any location checks tokens.
 *
 * Why: a browser's reconnects land on any worker, and after a reload on
 * new ones; a per-worker cache alone would check the signature of a
 * storm's tokens again on every worker (ES256: ~100 us each).  Here one
 * check serves all workers and survives reloads.
 *
 * What: a fixed table of (key, until) entries, the key being the SHA-256
 * of the key material's fingerprint and of the whole token.  Only a full
 * verification inserts, so an entry can only vouch for a signature that
 * was really checked with the very same keys; claims and times are always
 * checked again by the caller.  Lookups and inserts probe a bounded number
 * of slots under the zone's lock; when they are all taken, the entry
 * nearest to expiry goes.  A flood of distinct valid tokens thus costs a
 * signature check each, never memory.
 */

#include "ngx_http_sse_access.h"


namespace {

#define NGX_HTTP_SSE_TOKENS_SIZE    (1024 * 1024)
#define NGX_HTTP_SSE_TOKENS_PROBES  8
#define NGX_HTTP_SSE_TOKENS_MAGIC   0x53534154  /* "SSAT" */

typedef struct {
    u_char                      key[32];
    int64_t                     until;      /* 0: free */
} ngx_http_sse_token_entry_t;

typedef struct {
    uint32_t                    magic;
    ngx_uint_t                  nentries;
    ngx_http_sse_token_entry_t *entries;

    /* what verifications cost, for sse_status */
    ngx_atomic_t                signatures;     /* checked in full */
    ngx_atomic_t                shared_hits;    /* another worker's check */
    ngx_atomic_t                worker_hits;    /* this worker's result */
    ngx_atomic_t                refused;        /* invalid tokens */
} ngx_http_sse_tokens_t;


ngx_str_t  ngx_http_sse_tokens_name = ngx_string("sse_auth_tokens");

ngx_int_t ngx_http_sse_tokens_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
ngx_http_sse_token_entry_t *ngx_http_sse_tokens_slot(
    ngx_http_sse_tokens_t *tokens, const u_char *key, ngx_uint_t probe);

} // namespace


void
ngx_http_sse_tokens_count(ngx_shm_zone_t *shm_zone, ngx_uint_t what)
{
    ngx_http_sse_tokens_t  *tokens;

    if (shm_zone == NULL) {
        return;
    }

    tokens = (ngx_http_sse_tokens_t *) shm_zone->data;

    switch (what) {
    case NGX_HTTP_SSE_TOKENS_SIGNATURE:
        (void) ngx_atomic_fetch_add(&tokens->signatures, 1);
        break;
    case NGX_HTTP_SSE_TOKENS_SHARED_HIT:
        (void) ngx_atomic_fetch_add(&tokens->shared_hits, 1);
        break;
    case NGX_HTTP_SSE_TOKENS_WORKER_HIT:
        (void) ngx_atomic_fetch_add(&tokens->worker_hits, 1);
        break;
    default:
        (void) ngx_atomic_fetch_add(&tokens->refused, 1);
        break;
    }
}


/*
 * The figures for sse_status, found among the cycle's shared memory by
 * name and tag (the status location need not check tokens itself).
 * NGX_DECLINED: no location checks tokens.
 */

ngx_int_t
ngx_http_sse_tokens_figures(ngx_cycle_t *cycle, ngx_uint_t *figures)
{
    ngx_uint_t              i;
    ngx_list_part_t        *part;
    ngx_shm_zone_t         *shm_zone;
    ngx_http_sse_tokens_t  *tokens;

    part = &cycle->shared_memory.part;
    shm_zone = (ngx_shm_zone_t *) part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NGX_DECLINED;
            }

            part = part->next;
            shm_zone = (ngx_shm_zone_t *) part->elts;
            i = 0;
        }

        if (shm_zone[i].tag == &ngx_http_sse_access_module
            && shm_zone[i].data != NULL)
        {
            break;
        }
    }

    tokens = (ngx_http_sse_tokens_t *) shm_zone[i].data;

    figures[0] = tokens->signatures;
    figures[1] = tokens->shared_hits;
    figures[2] = tokens->worker_hits;
    figures[3] = tokens->refused;

    return NGX_OK;
}


/* called while the configuration is read, for each location that checks
 * tokens: the zone is added once per configuration */

ngx_shm_zone_t *
ngx_http_sse_tokens_zone(ngx_conf_t *cf)
{
    ngx_shm_zone_t  *shm_zone;

    shm_zone = ngx_shared_memory_add(cf, &ngx_http_sse_tokens_name,
                                     NGX_HTTP_SSE_TOKENS_SIZE,
                                     &ngx_http_sse_access_module);
    if (shm_zone == NULL) {
        return NULL;
    }

    shm_zone->init = ngx_http_sse_tokens_init_zone;

    return shm_zone;
}


ngx_uint_t
ngx_http_sse_tokens_known(ngx_shm_zone_t *shm_zone, const u_char *key,
    int64_t now)
{
    ngx_uint_t                   i, found;
    ngx_slab_pool_t             *shpool;
    ngx_http_sse_tokens_t       *tokens;
    ngx_http_sse_token_entry_t  *e;

    tokens = (ngx_http_sse_tokens_t *) shm_zone->data;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    found = 0;

    ngx_shmtx_lock(&shpool->mutex);

    for (i = 0; i < NGX_HTTP_SSE_TOKENS_PROBES; i++) {
        e = ngx_http_sse_tokens_slot(tokens, key, i);

        if (e->until > now && ngx_memcmp(e->key, key, 32) == 0) {
            found = 1;
            break;
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return found;
}


void
ngx_http_sse_tokens_remember(ngx_shm_zone_t *shm_zone, const u_char *key,
    int64_t until, int64_t now)
{
    ngx_uint_t                   i;
    ngx_slab_pool_t             *shpool;
    ngx_http_sse_tokens_t       *tokens;
    ngx_http_sse_token_entry_t  *e, *victim;

    tokens = (ngx_http_sse_tokens_t *) shm_zone->data;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    victim = NULL;

    ngx_shmtx_lock(&shpool->mutex);

    for (i = 0; i < NGX_HTTP_SSE_TOKENS_PROBES; i++) {
        e = ngx_http_sse_tokens_slot(tokens, key, i);

        if (e->until <= now || ngx_memcmp(e->key, key, 32) == 0) {
            victim = e;
            break;
        }

        if (victim == NULL || e->until < victim->until) {
            victim = e;
        }
    }

    ngx_memcpy(victim->key, key, 32);
    victim->until = until;

    ngx_shmtx_unlock(&shpool->mutex);
}


namespace {

ngx_int_t
ngx_http_sse_tokens_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    size_t                  size;
    ngx_slab_pool_t        *shpool;
    ngx_http_sse_tokens_t  *tokens, *old;

    old = (ngx_http_sse_tokens_t *) data;

    /* a reload keeps what was verified: the keys are part of every key */

    if (old != NULL) {
        shm_zone->data = old;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        return NGX_OK;
    }

    tokens = (ngx_http_sse_tokens_t *)
                 ngx_slab_calloc(shpool, sizeof(ngx_http_sse_tokens_t));
    if (tokens == NULL) {
        return NGX_ERROR;
    }

    /* about two thirds of the zone; the slab allocator keeps the rest */

    size = NGX_HTTP_SSE_TOKENS_SIZE / 3 * 2;

    tokens->magic = NGX_HTTP_SSE_TOKENS_MAGIC;
    tokens->nentries = size / sizeof(ngx_http_sse_token_entry_t);
    tokens->entries = (ngx_http_sse_token_entry_t *)
        ngx_slab_calloc(shpool,
                        tokens->nentries * sizeof(ngx_http_sse_token_entry_t));

    if (tokens->entries == NULL) {
        return NGX_ERROR;
    }

    shpool->data = tokens;
    shm_zone->data = tokens;

    return NGX_OK;
}


ngx_http_sse_token_entry_t *
ngx_http_sse_tokens_slot(ngx_http_sse_tokens_t *tokens, const u_char *key,
    ngx_uint_t probe)
{
    uint64_t  h;

    /* the key is a SHA-256: any 8 of its bytes are a good hash */
    ngx_memcpy(&h, key, sizeof(h));

    return &tokens->entries[(h + probe) % tokens->nentries];
}

} // namespace
