/*
 * Large events shared by a worker's streams.
 *
 * A large event (NGX_HTTP_SSE_BLOCK_MIN bytes or more) of the fan-out is
 * copied once into a counted block, by the first stream that takes it;
 * each stream it is appended to references the block from its buffer
 * (ngx_http_sse_refs_t) instead of copying it, and the stream's write
 * hands nginx a chain: its own bytes (a chunk header, a multi-channel
 * stream's id line, smaller events) with the blocks' bytes in between.
 * A reference is released when the buffer that holds it is sent, or
 * when the stream is freed (the client went away, it was dropped, the
 * worker shuts down, an HTTP/2 stream was reset): whatever nginx still
 * keeps of the chain (HTTP/2 frames point to the caller's buffers) goes
 * no later than the stream does.
 */

#include "ngx_http_sse.h"


namespace {

ngx_http_sse_block_t *ngx_http_sse_block_create(u_char *wire, size_t len);

} // namespace


void
ngx_http_sse_block_release(ngx_http_sse_block_t *block)
{
    if (--block->refs == 0) {
        /* a block left at exit is a leak LeakSanitizer reports (t/528) */
        ngx_free(block);
    }
}


/*
 * A buffer references len bytes of a large event at pos (in share->wire),
 * to go in at "at" of its copied data.  The event's block is made by the
 * first buffer that references it, with the fan-out's reference (released
 * when the fan-out is done with the event).  NGX_DECLINED: the buffer
 * holds as many references as it may, or there is no memory for its
 * table or the block: the caller copies the bytes instead.
 */

ngx_int_t
ngx_http_sse_refs_add(ngx_http_sse_refs_t **refs, ngx_http_sse_share_t *share,
    u_char *pos, size_t len, size_t at)
{
    ngx_http_sse_ref_t   *ref;
    ngx_http_sse_refs_t  *rs;

    rs = *refs;

    if (rs == NULL) {
        rs = (ngx_http_sse_refs_t *) ngx_alloc(sizeof(ngx_http_sse_refs_t),
                                               ngx_cycle->log);
        if (rs == NULL) {
            return NGX_DECLINED;
        }

        rs->nrefs = 0;
        rs->bytes = 0;
        *refs = rs;
    }

    if (rs->nrefs == NGX_HTTP_SSE_REFS_MAX) {
        return NGX_DECLINED;
    }

    if (share->block == NULL) {
        share->block = ngx_http_sse_block_create(share->wire, share->len);

        if (share->block == NULL) {
            return NGX_DECLINED;
        }
    }

    ref = &rs->refs[rs->nrefs++];
    ref->block = share->block;
    ref->pos = ngx_http_sse_block_data(share->block) + (pos - share->wire);
    ref->len = len;
    ref->at = at;

    rs->bytes += len;
    share->block->refs++;

    return NGX_OK;
}


/* the buffer's bytes are sent, or it goes: its references are released */

void
ngx_http_sse_refs_clear(ngx_http_sse_refs_t *refs)
{
    ngx_uint_t  i;

    if (refs == NULL) {
        return;
    }

    for (i = 0; i < refs->nrefs; i++) {
        ngx_http_sse_block_release(refs->refs[i].block);
    }

    refs->nrefs = 0;
    refs->bytes = 0;
}


void
ngx_http_sse_refs_free(ngx_http_sse_refs_t **refs)
{
    if (*refs == NULL) {
        return;
    }

    ngx_http_sse_refs_clear(*refs);
    ngx_free(*refs);
    *refs = NULL;
}


/*
 * The buffer's output as one chain: its bytes from start to end (data is
 * where its copied data begins: a chunk header may come before it, the
 * chunk's CRLF after), the blocks' bytes inserted where they go.  Memory
 * buffers (nginx reads them, never writes to them), the last one flushed.
 */

ngx_chain_t *
ngx_http_sse_refs_chain(ngx_http_sse_refs_t *refs, u_char *start,
    u_char *data, u_char *end)
{
    u_char              *p, *at;
    ngx_buf_t           *b;
    ngx_uint_t           i, n;
    ngx_chain_t         *cl;
    ngx_http_sse_ref_t  *ref;

    n = 0;
    p = start;
    refs->head = data - start;
    refs->size = (end - start) + refs->bytes;

    for (i = 0; i <= refs->nrefs; i++) {

        at = (i < refs->nrefs) ? data + refs->refs[i].at : end;

        if (at > p) {
            b = &refs->bufs[n++];
            ngx_memzero(b, sizeof(ngx_buf_t));
            b->memory = 1;
            b->start = p;
            b->pos = p;
            b->last = at;
            b->end = at;
            p = at;
        }

        if (i == refs->nrefs) {
            break;
        }

        ref = &refs->refs[i];

        b = &refs->bufs[n++];
        ngx_memzero(b, sizeof(ngx_buf_t));
        b->memory = 1;
        b->start = ref->pos;
        b->pos = ref->pos;
        b->last = ref->pos + ref->len;
        b->end = b->last;
    }

    refs->bufs[n - 1].flush = 1;

    for (i = 0; i < n; i++) {
        cl = &refs->chain[i];
        cl->buf = &refs->bufs[i];
        cl->next = (i + 1 < n) ? &refs->chain[i + 1] : NULL;
    }

    return &refs->chain[0];
}


/*
 * Bytes of the chain sent: nginx moves each buffer's pos as it sends,
 * never its start or last.  The rest of the chain's bytes are unsent.
 */

size_t
ngx_http_sse_refs_sent(ngx_http_sse_refs_t *refs)
{
    size_t        size;
    ngx_chain_t  *cl;

    size = 0;

    for (cl = &refs->chain[0]; cl; cl = cl->next) {
        size += cl->buf->pos - cl->buf->start;
    }

    return size;
}


size_t
ngx_http_sse_refs_unsent(ngx_http_sse_refs_t *refs)
{
    return refs->size - ngx_http_sse_refs_sent(refs);
}


namespace {

/* one reference, the fan-out's (ngx_http_sse_unshare() releases it) */

ngx_http_sse_block_t *
ngx_http_sse_block_create(u_char *wire, size_t len)
{
    ngx_http_sse_block_t  *block;

    block = (ngx_http_sse_block_t *) ngx_alloc(sizeof(ngx_http_sse_block_t)
                                               + len, ngx_cycle->log);
    if (block == NULL) {
        return NULL;
    }

    block->refs = 1;
    block->len = len;
    ngx_memcpy(ngx_http_sse_block_data(block), wire, len);

    return block;
}

} // namespace
