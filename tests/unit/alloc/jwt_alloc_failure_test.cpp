/*
 * Allocation failure in token verification and key loading: every C++
 * allocation on the way, failed in turn, gives Status::no_memory (verify)
 * or "out of memory" (add_jwks), never a crash, an exception, a leak or a
 * half-loaded key set.
 *
 * Its own test binary (see mk/unit.mk): it replaces the global operator
 * new with one that fails the n-th allocation from now, which the other
 * allocation failure test replaces in its own way.
 */

#include <gtest/gtest.h>

#include <cstdlib>
#include <new>
#include <string>

#include "sse_jwt.h"

#include "../jwt_test_util.h"

namespace {

/* allocations left before one fails; negative: none fails */
long allocations_left = -1;

/*
 * Runs f with allocation n failing, for n = 0, 1, ... until f gets
 * through without reaching its n-th allocation; f reports whether the
 * failure was handled as it should be.  Returns how many were.
 */
template <typename F>
int fail_each_allocation(F f)
{
    int handled = 0;

    for (long n = 0; n < 100000; n++) {
        allocations_left = n;
        bool failed = f();
        bool reached = allocations_left < 0;
        allocations_left = -1;

        if (!reached) {
            EXPECT_FALSE(failed) << "allocation " << n << " did not fail";
            return handled;
        }

        EXPECT_TRUE(failed) << "allocation " << n << " failed unnoticed";
        handled++;
    }

    ADD_FAILURE() << "no end of allocations";
    return handled;
}

} // namespace


__attribute__((noinline)) void *operator new(size_t size)
{
    if (allocations_left >= 0 && allocations_left-- == 0) {
        throw std::bad_alloc();
    }

    void *p = std::malloc(size ? size : 1);
    if (p == nullptr) {
        throw std::bad_alloc();
    }

    return p;
}

__attribute__((noinline)) void operator delete(void *p) noexcept
{
    std::free(p);
}

__attribute__((noinline)) void operator delete(void *p, size_t) noexcept
{
    std::free(p);
}


using namespace jwt_test;
using sse::jwt::Alg;
using sse::jwt::Status;

namespace {

const std::string secret(32, 's');

std::string key_set(EVP_PKEY *ec)
{
    return "{\"keys\":[{" + jwk_members(ec) + ",\"kid\":\"e\"},"
           "{\"kty\":\"oct\",\"k\":\"" + b64(secret) + "\",\"kid\":\"h\"}]}";
}

const std::string claims =
    "{\"sub\":\"42\",\"exp\":1700000600,\"sse\":{\"subscribe\":[\"a\","
    "\"b*\"],\"publish\":[\"c\"]},\"x\":{\"y\":[1,2,\"z\"]}}";

} // namespace


TEST(JwtAllocFailure, AddJwks)
{
    Pkey        ec = make_ec("P-256");
    std::string jwks = key_set(ec.get());

    int handled = fail_each_allocation([&] {
        sse::jwt::KeySet  set;
        std::string       error;

        if (set.add_jwks(bytes(jwks), jwks.size(), Alg::none_or_unknown,
                         &error))
        {
            EXPECT_EQ(set.size(), 2u);
            return false;
        }

        EXPECT_EQ(error, "out of memory");
        EXPECT_EQ(set.size(), 0u);
        return error == "out of memory";
    });

    EXPECT_GT(handled, 10);
}


TEST(JwtAllocFailure, Verify)
{
    Pkey              ec = make_ec("P-256");
    std::string       jwks = key_set(ec.get());
    sse::jwt::KeySet  set;
    std::string       error;

    ASSERT_TRUE(set.add_jwks(bytes(jwks), jwks.size(), Alg::none_or_unknown,
                             &error)) << error;

    const std::string tokens[] = {
        sign_raw(Alg::ES256, ec.get(), "", header_for(Alg::ES256, "e"),
                 claims),
        sign_raw(Alg::HS256, nullptr, secret, header_for(Alg::HS256, "h"),
                 claims),
    };

    for (const std::string &token : tokens) {
        int handled = fail_each_allocation([&] {
            sse::jwt::Claims   out;
            sse::jwt::Options  opt;

            opt.now = 1700000000;
            Status status = sse::jwt::verify(set, slice(token), opt, &out);

            if (status == Status::ok) {
                EXPECT_EQ(out.sub, "42");
                return false;
            }

            EXPECT_EQ(status, Status::no_memory);
            EXPECT_TRUE(out.all.empty());
            return status == Status::no_memory;
        });

        EXPECT_GT(handled, 10);
    }
}
