/*
 * libFuzzer target: parse_redis_url() and redis_backoff_ms().
 *
 * Checks that an accepted URL's slices lie inside the input (host, path)
 * or inside the decoding buffer (user, password), that the port and the
 * database are in range, that a refusal never quotes the input, and that
 * the backoff stays within its bounds for any attempt and random value.
 */

#include <cstdint>
#include <cstring>
#include <vector>

#include "sse_redis_url.h"

#include "fuzz_check.h"

namespace {

bool inside(sse::Slice s, const unsigned char *p, size_t n)
{
    return s.len == 0 || (s.data >= p && s.data + s.len <= p + n);
}

} // namespace


extern "C" int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    std::vector<unsigned char>  in(data, data + size);
    std::vector<unsigned char>  buf(size + 1, 0xa5);
    sse::RedisUrl               url;

    const char *err = sse::parse_redis_url(in.data(), in.size(), buf.data(),
                                           &url);

    if (err) {
        CHECK(std::strlen(err) > 0);

        /* messages are fixed texts, never made of the input (it may hold
         * a password) */
        const unsigned char *e = reinterpret_cast<const unsigned char *>(err);
        CHECK(!(e >= in.data() && e < in.data() + size));
        CHECK(!(e >= buf.data() && e < buf.data() + buf.size()));

    } else if (url.unix_socket) {
        CHECK(!url.tls);
        CHECK(url.path.len > 0 && url.path.data[0] == '/');
        CHECK(inside(url.path, in.data(), in.size()));

    } else {
        CHECK(url.host.len > 0);
        CHECK(inside(url.host, in.data(), in.size()));
        CHECK(url.port >= 1 && url.port <= 65535);
        CHECK(url.db <= sse::redis_max_db);
        CHECK(inside(url.user, buf.data(), size));
        CHECK(inside(url.password, buf.data(), size));
        CHECK(url.has_password == (url.password.len > 0));
        CHECK(url.user.len + url.password.len <= size);
    }

    if (size >= 8) {
        uint32_t  attempt, random;

        std::memcpy(&attempt, data, 4);
        std::memcpy(&random, data + 4, 4);

        unsigned ms = sse::redis_backoff_ms(attempt, random);
        CHECK(ms >= 50 && ms <= 5000);
        if (attempt == 0) {
            CHECK(ms <= 100);
        }
    }

    return 0;
}
