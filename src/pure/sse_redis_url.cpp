/*
 * The sse_redis URL and the reconnect backoff schedule.
 */

#include "sse_redis_url.h"

#include <cstring>


namespace sse {

namespace {

int
hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}


/* digits only, no sign, no leading '+', at most max */
bool
parse_number(const unsigned char *p, size_t n, unsigned long max,
    unsigned *out)
{
    unsigned long  v = 0;

    if (n == 0 || n > 10) {
        return false;
    }

    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return false;
        }

        v = v * 10 + (p[i] - '0');
    }

    if (v > max) {
        return false;
    }

    *out = static_cast<unsigned>(v);
    return true;
}


/* bytes a host name or address may hold: no controls, spaces or URL
 * delimiters, so that nothing odd reaches a log line or SNI */
bool
host_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

} // namespace


long
percent_decode(const unsigned char *p, size_t n, unsigned char *out)
{
    size_t  len = 0;

    for (size_t i = 0; i < n; i++) {
        if (p[i] != '%') {
            out[len++] = p[i];
            continue;
        }

        if (i + 2 >= n) {
            return -1;
        }

        int hi = hex_value(p[i + 1]);
        int lo = hex_value(p[i + 2]);

        if (hi < 0 || lo < 0) {
            return -1;
        }

        out[len++] = static_cast<unsigned char>(hi * 16 + lo);
        i += 2;
    }

    return static_cast<long>(len);
}


const char *
parse_redis_url(const unsigned char *p, size_t n, unsigned char *buf,
    RedisUrl *url)
{
    const unsigned char  *end = p + n, *at, *host, *host_end, *q;
    long                  len;

    std::memset(url, 0, sizeof(RedisUrl));
    url->port = redis_default_port;

    for (size_t i = 0; i < n; i++) {
        if (p[i] <= 0x20 || p[i] == 0x7f) {
            return "a space or control byte in the URL";
        }
    }

    if (n > 5 && std::memcmp(p, "unix:", 5) == 0) {
        url->unix_socket = true;
        url->path = Slice{ p + 5, n - 5 };

        if (p[5] != '/') {
            return "a unix socket path must be absolute (unix:/path)";
        }

        return nullptr;
    }

    if (n >= 8 && std::memcmp(p, "redis://", 8) == 0) {
        p += 8;

    } else if (n >= 9 && std::memcmp(p, "rediss://", 9) == 0) {
        url->tls = true;
        p += 9;

    } else {
        return "the URL must begin with redis://, rediss:// or unix:/";
    }

    /* the authority ends at the first '/'; '?' and '#' are not allowed */

    for (q = p; q < end; q++) {
        if (*q == '?' || *q == '#') {
            return "query strings and fragments are not supported";
        }
    }

    const unsigned char *auth_end = p;
    while (auth_end < end && *auth_end != '/') {
        auth_end++;
    }

    /* the last '@' ends the userinfo: a password may hold a raw '@' */

    at = nullptr;
    for (q = p; q < auth_end; q++) {
        if (*q == '@') {
            at = q;
        }
    }

    if (at) {
        const unsigned char *colon = p;
        while (colon < at && *colon != ':') {
            colon++;
        }

        if (colon == at) {
            return "a user without a password (user:password@host, "
                   "or :password@host for the default user)";
        }

        len = percent_decode(p, colon - p, buf);
        if (len < 0) {
            return "a bad percent escape in the user";
        }

        url->user = Slice{ buf, static_cast<size_t>(len) };
        buf += len;

        len = percent_decode(colon + 1, at - colon - 1, buf);
        if (len < 0) {
            return "a bad percent escape in the password";
        }

        if (len == 0) {
            return "an empty password";
        }

        url->password = Slice{ buf, static_cast<size_t>(len) };
        url->has_password = true;

        p = at + 1;
    }

    /* host: a name, an IPv4 address or a bracketed IPv6 address */

    if (p < auth_end && *p == '[') {
        host = p + 1;
        host_end = host;
        while (host_end < auth_end && *host_end != ']') {
            host_end++;
        }

        if (host_end == auth_end) {
            return "an IPv6 address without its closing ']'";
        }

        for (q = host; q < host_end; q++) {
            if (hex_value(*q) < 0 && *q != ':' && *q != '.') {
                return "a bad IPv6 address";
            }
        }

        url->host_is_ip6 = true;
        p = host_end + 1;

    } else {
        host = p;
        for (host_end = p; host_end < auth_end && *host_end != ':';
             host_end++)
        {
            if (!host_byte(*host_end)) {
                return "a bad byte in the host";
            }
        }

        p = host_end;
    }

    if (host_end == host) {
        return "no host";
    }

    url->host = Slice{ host, static_cast<size_t>(host_end - host) };

    if (p < auth_end) {
        if (*p != ':'
            || !parse_number(p + 1, auth_end - p - 1, 65535, &url->port)
            || url->port == 0)
        {
            return "a bad port (1 to 65535)";
        }
    }

    /* "/" alone or "/<db>" */

    if (auth_end < end && end - auth_end > 1) {
        if (!parse_number(auth_end + 1, end - auth_end - 1, redis_max_db,
                          &url->db))
        {
            return "a bad database number after the host (/0, /1, ...)";
        }
    }

    return nullptr;
}


unsigned
redis_backoff_ms(unsigned attempt, uint32_t random)
{
    unsigned  ceiling = redis_backoff_first_ms;

    for (unsigned i = 0; i < attempt && ceiling < redis_backoff_max_ms; i++) {
        ceiling *= 2;
    }

    if (ceiling > redis_backoff_max_ms) {
        ceiling = redis_backoff_max_ms;
    }

    /* between half the ceiling and the ceiling itself */
    return ceiling / 2 + random % (ceiling - ceiling / 2 + 1);
}

} // namespace sse
