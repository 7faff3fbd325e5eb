/*
 * The contract suite itself, checked for stores that answer later: the
 * shm store behind a table whose publish, remove, info and join complete
 * only when the harness runs its "event loop" (run_until), as a remote
 * store's would.  A test that looked at an answer before its completion
 * ran, or that counted on an inline answer, fails here.
 */

#include "shm_harness.h"

#include <functional>


namespace sse_test {

struct DeferredHarness : ShmHarness {
    static std::function<void()>  pending;
    static ngx_http_sse_store_t   table;

    static ngx_int_t defer(std::function<void()> op)
    {
        EXPECT_FALSE(pending) << "two operations in flight";
        pending = std::move(op);
        return NGX_AGAIN;
    }

    static ngx_int_t publish(ngx_http_sse_zone_t *zone,
        ngx_http_sse_store_publish_t *op)
    {
        return defer([=] { ngx_http_sse_shm_store.publish(zone, op); });
    }

    static ngx_int_t remove(ngx_http_sse_zone_t *zone,
        ngx_http_sse_store_query_t *op)
    {
        return defer([=] { ngx_http_sse_shm_store.remove(zone, op); });
    }

    static ngx_int_t info(ngx_http_sse_zone_t *zone,
        ngx_http_sse_store_query_t *op)
    {
        return defer([=] { ngx_http_sse_shm_store.info(zone, op); });
    }

    static ngx_int_t join(ngx_http_sse_zone_t *zone,
        ngx_http_sse_store_join_t *op)
    {
        return defer([=] { ngx_http_sse_shm_store.join(zone, op); });
    }

    static void cancel(ngx_http_sse_zone_t *zone, void *op)
    {
        pending = nullptr;
    }

    ngx_http_sse_zone_t *start(const ngx_http_sse_limits_t &limits,
        size_t zone_size)
    {
        ngx_http_sse_zone_t  *z = ShmHarness::start(limits, zone_size);

        if (z == nullptr) {
            return nullptr;
        }

        table = ngx_http_sse_shm_store;
        table.name = "deferred shm";
        table.publish = publish;
        table.remove = remove;
        table.info = info;
        table.join = join;
        table.cancel = cancel;
        z->store = &table;

        return z;
    }

    void stop()
    {
        EXPECT_FALSE(pending) << "an operation never completed";
        pending = nullptr;
        ShmHarness::stop();
    }

    /* the answer has not come before the loop runs */
    template <typename F>
    bool run_until(F done)
    {
        if (done()) {
            ADD_FAILURE() << "completed before the store's loop ran";
            return true;
        }

        if (pending) {
            auto op = std::move(pending);
            pending = nullptr;
            op();
        }

        return done();
    }
};

std::function<void()>  DeferredHarness::pending;
ngx_http_sse_store_t   DeferredHarness::table;

INSTANTIATE_TYPED_TEST_SUITE_P(Deferred, StoreContract, DeferredHarness);

} // namespace sse_test
