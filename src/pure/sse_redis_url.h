/*
 * Pure C++ parts of the Redis client: the sse_redis URL and the reconnect
 * backoff schedule.  Nothing here depends on nginx, allocates, or throws.
 */

#ifndef SSE_REDIS_URL_H
#define SSE_REDIS_URL_H

#include <cstddef>
#include <cstdint>

#include "sse_wire.h"

namespace sse {

constexpr unsigned redis_default_port = 6379;
constexpr unsigned redis_max_db = 0x7fffffff;

struct RedisUrl {
    bool      tls;            /* rediss:// */
    bool      unix_socket;    /* unix:/path */
    Slice     host;           /* a name or an address, IPv6 unbracketed */
    bool      host_is_ip6;
    unsigned  port;
    Slice     path;           /* unix: the socket's path */
    Slice     user;           /* decoded; empty: the default user */
    Slice     password;       /* decoded; has_password tells if one was given */
    bool      has_password;
    unsigned  db;
};

/*
 * Parses redis://[user:password@]host[:port][/db],
 * rediss://[user:password@]host[:port][/db] or unix:/path.
 * User and password are percent-decoded into buf, which must hold n bytes;
 * every other slice points into p.  Returns nullptr on success, or a
 * message that says what is wrong (it never quotes the password).
 */
const char *parse_redis_url(const unsigned char *p, size_t n,
    unsigned char *buf, RedisUrl *url);

/*
 * RFC 3986 percent-decoding of p into out (n bytes at most): returns the
 * decoded length, or -1 on a '%' not followed by two hex digits.
 */
long percent_decode(const unsigned char *p, size_t n, unsigned char *out);

/*
 * Milliseconds to wait before reconnect attempt number `attempt` (0: the
 * first retry after a connection was lost): 100 ms doubling to at most
 * 5 s, jittered down to half of that by `random` (any 32-bit value), so
 * that many workers and nodes do not retry in step.
 */
constexpr unsigned redis_backoff_first_ms = 100;
constexpr unsigned redis_backoff_max_ms = 5000;

unsigned redis_backoff_ms(unsigned attempt, uint32_t random);

} // namespace sse

#endif /* SSE_REDIS_URL_H */
