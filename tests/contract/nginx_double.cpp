/*
 * What the shm store's files need of a running nginx, for the contract
 * tests: the few globals nginx's core objects (slab, shmtx, rbtree,
 * string, crc32) and the store read, a log that keeps its last line, a
 * clock the tests move, and the worker side the store calls back (its
 * fan-out entry point, its wake-up socket: none here, so no datagram is
 * ever sent).  nginx's own objects come from the sanitizer tier's nginx
 * tree (mk/contract.mk).
 */

#include "ngx_http_sse.h"
#include "nginx_double.h"

#include <cstdarg>
#include <cstdlib>
#include <cstdio>
#include <string>
#include <unistd.h>


extern "C" {

volatile ngx_cycle_t  *ngx_cycle;
volatile ngx_time_t   *ngx_cached_time;
volatile ngx_msec_t    ngx_current_msec;   /* events' publish stamps */
ngx_pid_t              ngx_pid;
ngx_int_t              ngx_ncpu = 1;

}

ngx_module_t       ngx_http_sse_module;
ngx_connection_t  *ngx_http_sse_ipc;


namespace {

ngx_cycle_t   test_cycle;
ngx_log_t     test_log;
ngx_time_t    test_time;
std::string   last_line;
ngx_uint_t    processed;

} // namespace


extern "C" void
ngx_log_error_core(ngx_uint_t level, ngx_log_t *log, ngx_err_t err,
    const char *fmt, ...)
{
    u_char   buf[2048], *p;
    va_list  args;

    va_start(args, fmt);
    p = ngx_vslprintf(buf, buf + sizeof(buf), fmt, args);
    va_end(args);

    last_line.assign((char *) buf, p - buf);
}


/* a slab pool found corrupt: nginx stops or aborts the worker */

extern "C" void
ngx_debug_point(void)
{
    abort();
}


/* the store's news for this worker: counted, the tests collect() */

void
ngx_http_sse_process_zone(ngx_http_sse_zone_t *zone)
{
    processed++;
}


namespace sse_test {

void
nginx_init()
{
    ngx_uint_t  n;

    ngx_pid = getpid();

    ngx_pagesize = getpagesize();
    for (n = ngx_pagesize, ngx_pagesize_shift = 0; n >>= 1;
         ngx_pagesize_shift++)
    {
        /* void */
    }

    ngx_cacheline_size = NGX_CPU_CACHE_LINE;

    test_log.log_level = NGX_LOG_DEBUG;
    test_cycle.log = &test_log;
    ngx_cycle = &test_cycle;

    test_time.sec = 1700000000;
    ngx_cached_time = &test_time;

    ngx_slab_sizes_init();
}


void
advance_clock(time_t seconds)
{
    test_time.sec += seconds;
}


const std::string &
last_log_line()
{
    return last_line;
}


ngx_uint_t
worker_woken()
{
    return processed;
}

} // namespace sse_test
