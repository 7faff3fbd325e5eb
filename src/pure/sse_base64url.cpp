/*
 * Strict base64url (see sse_base64url.h).
 */

#include "sse_base64url.h"

#include <cstdint>

namespace sse {

namespace {

const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* 0..63, or 64 for any byte outside the url alphabet */
unsigned letter_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '-') {
        return 62;
    }
    if (c == '_') {
        return 63;
    }
    return 64;
}

} // namespace


bool base64url_decode(const unsigned char *p, size_t n, unsigned char *out,
    size_t *out_len)
{
    /* one letter alone carries 6 bits: no whole byte, never an encoding */
    if (n % 4 == 1) {
        return false;
    }

    size_t    o = 0;
    uint32_t  acc = 0;
    unsigned  bits = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned v = letter_value(p[i]);

        if (v == 64) {
            return false;
        }

        acc = (acc << 6) | v;
        bits += 6;

        if (bits >= 8) {
            bits -= 8;
            out[o++] = static_cast<unsigned char>(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }

    /*
     * The 2 or 4 bits left over after the last byte are padding an encoder
     * sets to zero; other values would give a second text for the same
     * bytes.
     */
    if (acc != 0) {
        return false;
    }

    *out_len = o;
    return true;
}


size_t base64url_encode(unsigned char *out, const unsigned char *p, size_t n)
{
    size_t o = 0;
    size_t i = 0;

    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t(p[i]) << 16) | (uint32_t(p[i + 1]) << 8)
                     | p[i + 2];

        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        out[o++] = alphabet[v & 63];
    }

    if (n - i == 1) {
        uint32_t v = uint32_t(p[i]) << 16;

        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];

    } else if (n - i == 2) {
        uint32_t v = (uint32_t(p[i]) << 16) | (uint32_t(p[i + 1]) << 8);

        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
    }

    return o;
}

} // namespace sse
