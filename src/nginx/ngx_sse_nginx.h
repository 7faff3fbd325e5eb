/*
 * The nginx headers, for C++ translation units.  Include this first.
 */

#ifndef NGX_SSE_NGINX_H
#define NGX_SSE_NGINX_H

extern "C" {
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_http.h>
}

#endif /* NGX_SSE_NGINX_H */
