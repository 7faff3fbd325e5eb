/*
 * TLS for a Redis connection (rediss://): nginx's SSL connection and
 * handshake, SNI, the server certificate checked against the trusted CAs
 * and the URL's host, reads and writes whose failures are logged at
 * "error".
 */

#include "ngx_http_sse_redis.h"


namespace {

ngx_int_t ngx_http_sse_redis_ssl_handshake(ngx_connection_t *c);
void ngx_http_sse_redis_ssl_handshake_handler(ngx_event_t *ev);
void ngx_http_sse_redis_ssl_handshaked(ngx_connection_t *c);
ngx_int_t ngx_http_sse_redis_verify(ngx_http_sse_redis_link_t *link,
    ngx_connection_t *c);
ssize_t ngx_http_sse_redis_ssl_recv(ngx_connection_t *c, u_char *buf,
    size_t size);
ssize_t ngx_http_sse_redis_ssl_send(ngx_connection_t *c, u_char *buf,
    size_t size);
ngx_int_t ngx_http_sse_redis_ssl_failed(ngx_connection_t *c, int n,
    ngx_uint_t reading);

} // namespace


void
ngx_http_sse_redis_tls_start(ngx_http_sse_redis_link_t *link)
{
    ngx_int_t                        rc;
    ngx_connection_t                *c = link->peer.connection;
    ngx_http_sse_redis_conf_t       *conf = link->redis->conf;
    ngx_http_sse_redis_main_conf_t  *rmcf = link->redis->rmcf;

    link->phase = NGX_HTTP_SSE_REDIS_PHASE_TLS;
    link->log.action = (char *) "in the TLS handshake with redis";

    if (ngx_ssl_create_connection(rmcf->ssl, c, NGX_SSL_CLIENT) != NGX_OK) {
        ngx_http_sse_redis_lost(link);
        return;
    }

    /* what is unsent stays in link->out, which may move as commands are
     * added: OpenSSL takes the rest of a write from its new address */
    SSL_set_mode(c->ssl->connection, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER
                                     |SSL_MODE_ENABLE_PARTIAL_WRITE);

    /* SNI for names only (RFC 6066: not for addresses) */
    if (!conf->host_is_ip
        && SSL_set_tlsext_host_name(c->ssl->connection,
                                    (char *) conf->host.data)
           != 1)
    {
        ngx_ssl_error(NGX_LOG_ERR, &link->log, 0,
                      (char *) "SSL_set_tlsext_host_name(\"%V\") failed",
                      &conf->host);
        ngx_http_sse_redis_lost(link);
        return;
    }

    /* what nginx logs of this connection (its close) at "error" too */
    c->log_error = NGX_ERROR_ERR;

    rc = ngx_http_sse_redis_ssl_handshake(c);

    if (rc == NGX_AGAIN) {
        return;
    }

    ngx_http_sse_redis_ssl_handshaked(c);
}


namespace {

/*
 * The client's handshake, as ngx_ssl_handshake() does it, with every
 * failure logged at "error": nginx logs those it does not list as a
 * client's handshake failures (an unknown cipher suite in the ServerHello,
 * say) at "crit", and a Redis server that fails the handshake is an
 * error, never more.
 */

ngx_int_t
ngx_http_sse_redis_ssl_handshake(ngx_connection_t *c)
{
    int        n, sslerr;
    ngx_err_t  err;

    ERR_clear_error();

    n = SSL_do_handshake(c->ssl->connection);

    if (n == 1) {
        c->ssl->handshaked = 1;
        return NGX_OK;
    }

    sslerr = SSL_get_error(c->ssl->connection, n);

    if (sslerr == SSL_ERROR_WANT_READ || sslerr == SSL_ERROR_WANT_WRITE) {
        if (sslerr == SSL_ERROR_WANT_READ) {
            c->read->ready = 0;

        } else {
            c->write->ready = 0;
        }

        c->read->handler = ngx_http_sse_redis_ssl_handshake_handler;
        c->write->handler = ngx_http_sse_redis_ssl_handshake_handler;

        if (ngx_handle_read_event(c->read, 0) != NGX_OK
            || ngx_handle_write_event(c->write, 0) != NGX_OK)
        {
            return NGX_ERROR;
        }

        return NGX_AGAIN;
    }

    err = (sslerr == SSL_ERROR_SYSCALL) ? ngx_socket_errno : 0;

    c->ssl->no_wait_shutdown = 1;
    c->ssl->no_send_shutdown = 1;
    c->read->eof = 1;

    if (sslerr == SSL_ERROR_ZERO_RETURN || ERR_peek_error() == 0) {
        ngx_log_error(NGX_LOG_ERR, c->log, err,
                      "redis closed the connection in the TLS handshake");
        return NGX_ERROR;
    }

    c->read->error = 1;

    ngx_ssl_error(NGX_LOG_ERR, c->log, err,
                  (char *) "SSL_do_handshake() failed");

    return NGX_ERROR;
}


void
ngx_http_sse_redis_ssl_handshake_handler(ngx_event_t *ev)
{
    ngx_connection_t  *c = (ngx_connection_t *) ev->data;

    /* the link's own timer bounds the handshake: no event timeouts */
    if (ngx_http_sse_redis_ssl_handshake(c) == NGX_AGAIN) {
        return;
    }

    ngx_http_sse_redis_ssl_handshaked(c);
}


void
ngx_http_sse_redis_ssl_handshaked(ngx_connection_t *c)
{
    ngx_http_sse_redis_link_t  *link = (ngx_http_sse_redis_link_t *) c->data;

    if (!c->ssl->handshaked) {
        /* ngx_http_sse_redis_ssl_handshake() logged why */
        ngx_http_sse_redis_lost(link);
        return;
    }

    if (ngx_http_sse_redis_verify(link, c) != NGX_OK) {
        ngx_http_sse_redis_lost(link);
        return;
    }

    c->read->handler = ngx_http_sse_redis_read_handler;
    c->write->handler = ngx_http_sse_redis_write_handler;

    c->recv = ngx_http_sse_redis_ssl_recv;
    c->send = ngx_http_sse_redis_ssl_send;

    ngx_http_sse_redis_handshake(link);
}


/*
 * SSL_read() and SSL_write() with their failures logged at "error":
 * nginx's ngx_ssl_recv() and ngx_ssl_write() log some of the failures a
 * Redis server causes at "crit" (a TLS 1.3 server that refuses the client
 * certificate sends its alert after the client's handshake is done), and
 * a failed TLS connection to Redis is an error, never more.
 */

ssize_t
ngx_http_sse_redis_ssl_recv(ngx_connection_t *c, u_char *buf, size_t size)
{
    int  n;

    ERR_clear_error();

    n = SSL_read(c->ssl->connection, buf, size);

    if (n > 0) {
        return n;
    }

    return ngx_http_sse_redis_ssl_failed(c, n, 1);
}


ssize_t
ngx_http_sse_redis_ssl_send(ngx_connection_t *c, u_char *buf, size_t size)
{
    int  n;

    if (size == 0) {
        return 0;
    }

    ERR_clear_error();

    n = SSL_write(c->ssl->connection, buf, size);

    if (n > 0) {
        return n;
    }

    return ngx_http_sse_redis_ssl_failed(c, n, 0);
}


ngx_int_t
ngx_http_sse_redis_ssl_failed(ngx_connection_t *c, int n, ngx_uint_t reading)
{
    int        sslerr;
    ngx_err_t  err;

    sslerr = SSL_get_error(c->ssl->connection, n);
    err = (sslerr == SSL_ERROR_SYSCALL) ? ngx_socket_errno : 0;

    if (sslerr == SSL_ERROR_WANT_READ || sslerr == SSL_ERROR_WANT_WRITE) {
        /*
         * A read that must write first (rare in TLS 1.3, no
         * renegotiation) is tried again after the current handlers; a
         * write that must read first is tried again by the read handler,
         * which flushes what is unsent once it has read.
         */
        if (sslerr == SSL_ERROR_WANT_WRITE && reading
            && !c->read->posted)
        {
            ngx_post_event(c->read, &ngx_posted_events);
        }

        return NGX_AGAIN;
    }

    if (sslerr == SSL_ERROR_ZERO_RETURN
        || (sslerr == SSL_ERROR_SYSCALL && err == 0
            && ERR_peek_error() == 0))
    {
        return 0;
    }

    ngx_ssl_error(NGX_LOG_ERR, c->log, err, (char *) "%s failed",
                  reading ? "SSL_read()" : "SSL_write()");

    return NGX_ERROR;
}


ngx_int_t
ngx_http_sse_redis_verify(ngx_http_sse_redis_link_t *link,
    ngx_connection_t *c)
{
    long                        rc;
    X509                       *cert;
    ngx_http_sse_redis_conf_t  *conf = link->redis->conf;

    if (!link->redis->rmcf->ssl_verify) {
        return NGX_OK;
    }

    /* nginx's verify callback lets the handshake finish: the result is
     * checked here, as the proxy module does */
    rc = SSL_get_verify_result(c->ssl->connection);

    if (rc != X509_V_OK) {
        ngx_log_error(NGX_LOG_ERR, &link->log, 0,
                      "redis TLS certificate verify error: (%l:%s)",
                      rc, X509_verify_cert_error_string(rc));
        return NGX_ERROR;
    }

    if (!conf->host_is_ip) {
        if (ngx_ssl_check_host(c, &conf->host) != NGX_OK) {
            ngx_log_error(NGX_LOG_ERR, &link->log, 0,
                          "redis TLS certificate does not match \"%V\"",
                          &conf->host);
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    /* an address is matched against the certificate's IP addresses,
     * which ngx_ssl_check_host() does not look at */
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    cert = SSL_get1_peer_certificate(c->ssl->connection);
#else
    cert = SSL_get_peer_certificate(c->ssl->connection);
#endif

    if (cert == NULL) {
        ngx_log_error(NGX_LOG_ERR, &link->log, 0,
                      "redis sent no TLS certificate");
        return NGX_ERROR;
    }

    rc = X509_check_ip_asc(cert, (char *) conf->host.data, 0);
    X509_free(cert);

    if (rc != 1) {
        ngx_log_error(NGX_LOG_ERR, &link->log, 0,
                      "redis TLS certificate does not match \"%V\"",
                      &conf->host);
        return NGX_ERROR;
    }

    return NGX_OK;
}

} // namespace
