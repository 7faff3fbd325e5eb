/*
 * The sse_redis URL (percent-decoding included) and the reconnect backoff.
 */

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sse_redis_url.h"

namespace {

std::string str(sse::Slice s)
{
    return std::string(reinterpret_cast<const char *>(s.data), s.len);
}

struct Parsed {
    const char      *error;
    sse::RedisUrl    url;
    std::vector<unsigned char> text;    /* the slices point into these */
    std::vector<unsigned char> buf;
};

/* filled in place: the caller's copy is the one the slices point into */
void parse_into(Parsed &r, const std::string &text)
{
    r.text.assign(text.begin(), text.end());
    r.buf.resize(text.size() + 1);
    r.error = sse::parse_redis_url(r.text.data(), r.text.size(),
                                   r.buf.data(), &r.url);
}

#define PARSE(r, text)  Parsed r; parse_into(r, text)

TEST(RedisUrl, PlainHost)
{
    PARSE(r, "redis://127.0.0.1");
    ASSERT_EQ(r.error, nullptr);
    EXPECT_FALSE(r.url.tls);
    EXPECT_FALSE(r.url.unix_socket);
    EXPECT_EQ(str(r.url.host), "127.0.0.1");
    EXPECT_EQ(r.url.port, 6379u);
    EXPECT_EQ(r.url.db, 0u);
    EXPECT_FALSE(r.url.has_password);
    EXPECT_EQ(r.url.user.len, 0u);
}

TEST(RedisUrl, PortDbAndTls)
{
    PARSE(r, "rediss://cache.example.com:6380/3");
    ASSERT_EQ(r.error, nullptr);
    EXPECT_TRUE(r.url.tls);
    EXPECT_EQ(str(r.url.host), "cache.example.com");
    EXPECT_EQ(r.url.port, 6380u);
    EXPECT_EQ(r.url.db, 3u);

    parse_into(r, "redis://h:1/");
    ASSERT_EQ(r.error, nullptr);
    EXPECT_EQ(r.url.db, 0u);
}

TEST(RedisUrl, UserAndPasswordPercentDecoded)
{
    PARSE(r, "redis://app%40x:p%3Aw%2Fd%25@10.0.0.1:7000/2");
    ASSERT_EQ(r.error, nullptr);
    EXPECT_EQ(str(r.url.user), "app@x");
    EXPECT_TRUE(r.url.has_password);
    EXPECT_EQ(str(r.url.password), "p:w/d%");
    EXPECT_EQ(str(r.url.host), "10.0.0.1");
    EXPECT_EQ(r.url.port, 7000u);
    EXPECT_EQ(r.url.db, 2u);
}

TEST(RedisUrl, PasswordOnlyIsTheDefaultUser)
{
    PARSE(r, "redis://:s3cret@localhost");
    ASSERT_EQ(r.error, nullptr);
    EXPECT_EQ(r.url.user.len, 0u);
    EXPECT_EQ(str(r.url.password), "s3cret");
}

TEST(RedisUrl, RawAtInPasswordLastAtWins)
{
    PARSE(r, "redis://u:a@b@host");
    ASSERT_EQ(r.error, nullptr);
    EXPECT_EQ(str(r.url.password), "a@b");
    EXPECT_EQ(str(r.url.host), "host");
}

TEST(RedisUrl, Ipv6)
{
    PARSE(r, "redis://[::1]:6390");
    ASSERT_EQ(r.error, nullptr);
    EXPECT_TRUE(r.url.host_is_ip6);
    EXPECT_EQ(str(r.url.host), "::1");
    EXPECT_EQ(r.url.port, 6390u);
}

TEST(RedisUrl, UnixSocket)
{
    PARSE(r, "unix:/run/redis/redis.sock");
    ASSERT_EQ(r.error, nullptr);
    EXPECT_TRUE(r.url.unix_socket);
    EXPECT_EQ(str(r.url.path), "/run/redis/redis.sock");

    parse_into(r, "unix:relative.sock");
    EXPECT_NE(r.error, nullptr);
    parse_into(r, "unix:");
    EXPECT_NE(r.error, nullptr);
}

TEST(RedisUrl, Refused)
{
    const char *bad[] = {
        "",
        "http://h",
        "redis:/h",
        "redis://",
        "redis://:6379",
        "redis://h:0",
        "redis://h:65536",
        "redis://h:x",
        "redis://h:",
        "redis://h/x",
        "redis://h/-1",
        "redis://h/99999999999",
        "redis://h/1/2",
        "redis://h?db=1",
        "redis://h#x",
        "redis://user@h",
        "redis://u:@h",
        "redis://u:%4@h",
        "redis://u:%zz@h",
        "redis://%g:p@h",
        "redis://[::1",
        "redis://[zz]",
        "redis://h h",
        "redis://h\n",
        "redis://h%41",
    };

    for (const char *text : bad) {
        PARSE(r, text);
        EXPECT_NE(r.error, nullptr) << "accepted: " << text;
    }
}

TEST(RedisUrl, ErrorNeverQuotesThePassword)
{
    PARSE(r, "redis://u:%zzhunter2@h");
    ASSERT_NE(r.error, nullptr);
    EXPECT_EQ(std::string(r.error).find("hunter2"), std::string::npos);
}

TEST(PercentDecode, Edges)
{
    unsigned char out[16];
    const unsigned char *in = reinterpret_cast<const unsigned char *>("%41%4a%4Bx");
    EXPECT_EQ(sse::percent_decode(in, 10, out), 4);
    EXPECT_EQ(std::string(reinterpret_cast<char *>(out), 4), "AJKx");

    EXPECT_EQ(sse::percent_decode(reinterpret_cast<const unsigned char *>("%"), 1, out), -1);
    EXPECT_EQ(sse::percent_decode(reinterpret_cast<const unsigned char *>("a%4"), 3, out), -1);
    EXPECT_EQ(sse::percent_decode(reinterpret_cast<const unsigned char *>("%00"), 3, out), 1);
    EXPECT_EQ(out[0], 0);
}

TEST(RedisBackoff, FirstWithin100msDoublingToFiveSeconds)
{
    const uint32_t randoms[] = { 0, 1, 49, 50, 51, 12345, 0x7fffffff,
                                 0xffffffff };
    unsigned ceiling = 100;

    for (unsigned attempt = 0; attempt < 40; attempt++) {
        for (uint32_t r : randoms) {
            unsigned ms = sse::redis_backoff_ms(attempt, r);
            EXPECT_LE(ms, ceiling) << attempt;
            EXPECT_GE(ms, ceiling / 2) << attempt;
        }

        ceiling = ceiling * 2 > 5000 ? 5000 : ceiling * 2;
    }

    EXPECT_LE(sse::redis_backoff_ms(0, 0xffffffff), 100u);
    EXPECT_EQ(sse::redis_backoff_ms(1000000, 0), 2500u);
    EXPECT_LE(sse::redis_backoff_ms(1000000, 0xffffffff), 5000u);
}

TEST(RedisBackoff, JitterSpreads)
{
    /* different random values give different delays: workers spread out */
    EXPECT_NE(sse::redis_backoff_ms(5, 0), sse::redis_backoff_ms(5, 777));
    EXPECT_EQ(sse::redis_backoff_ms(5, 0), 1600u);
    EXPECT_EQ(sse::redis_backoff_ms(5, 1600), 3200u);
}

} // namespace
