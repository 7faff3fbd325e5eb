/*
 * The shared-memory store behind a zone for the contract tests: a zone
 * in anonymous shared memory, laid out the way nginx lays out a shared
 * zone (ngx_init_zone_pool: a slab pool, its mutex), initialized by the
 * module's own ngx_http_sse_init_zone(), and this process attached to it
 * as a worker.
 */

#ifndef SSE_TEST_SHM_HARNESS_H
#define SSE_TEST_SHM_HARNESS_H

#include "store_contract.h"

#include <sys/mman.h>


namespace sse_test {

struct ShmHarness {
    u_char               *mem = nullptr;
    size_t                size = 0;
    ngx_shm_zone_t        shm_zone;
    ngx_http_sse_zone_t   zone;

    ngx_http_sse_zone_t *start(const ngx_http_sse_limits_t &limits,
        size_t zone_size)
    {
        static bool       nginx_ready;
        ngx_slab_pool_t  *sp;
        u_char            addr[] = "\0sse-contract";

        if (!nginx_ready) {
            nginx_init();
            nginx_ready = true;
        }

        size = zone_size;
        mem = (u_char *) mmap(NULL, size, PROT_READ | PROT_WRITE,
                              MAP_ANON | MAP_SHARED, -1, 0);
        if (mem == MAP_FAILED) {
            mem = nullptr;
            return nullptr;
        }

        sp = (ngx_slab_pool_t *) mem;
        sp->end = mem + size;
        sp->min_shift = 3;
        sp->addr = mem;

        if (ngx_shmtx_create(&sp->mutex, &sp->lock, NULL) != NGX_OK) {
            return nullptr;
        }

        ngx_slab_init(sp);

        std::memset(&zone, 0, sizeof(zone));
        ngx_str_set(&zone.name, "contract");
        zone.store = &ngx_http_sse_shm_store;
        zone.slot = -1;
        zone.limits = limits;
        ngx_rbtree_init(&zone.locals, &zone.locals_sentinel,
                        ngx_rbtree_insert_value);

        std::memset(&shm_zone, 0, sizeof(shm_zone));
        shm_zone.shm.addr = mem;
        shm_zone.shm.size = size;
        shm_zone.shm.name = zone.name;
        shm_zone.shm.log = ngx_cycle->log;
        shm_zone.data = &zone;
        zone.shm_zone = &shm_zone;

        if (ngx_http_sse_init_zone(&shm_zone, NULL) != NGX_OK) {
            return nullptr;
        }

        if (zone.store->attach(&zone, addr, sizeof(addr) - 1) != NGX_OK) {
            return nullptr;
        }

        return &zone;
    }

    void stop()
    {
        if (mem == nullptr) {
            return;
        }

        zone.store->detach(&zone);
        EXPECT_EQ(zone.nlocals, 0u);

        munmap(mem, size);
        mem = nullptr;
    }

    /* the shm store answers before an operation returns */
    template <typename F>
    bool run_until(F done)
    {
        return done();
    }
};

} // namespace sse_test

#endif /* SSE_TEST_SHM_HARNESS_H */
