/*
 * Base64url without padding (RFC 4648 section 5, as JWS uses it, RFC 7515
 * section 2), decoded strictly: only the 64 letters of the url alphabet,
 * no '=', no white space, no length that cannot be a whole encoding, and
 * no set bits in the unused low bits of the last letter.  So one byte
 * string has exactly one accepted text, which keeps "the same token" a
 * byte-for-byte notion (the verification cache is keyed by those bytes).
 *
 * No allocation, no exceptions, no nginx.
 */

#ifndef SSE_BASE64URL_H
#define SSE_BASE64URL_H

#include <cstddef>

namespace sse {

/* the exact decoded size of a text of n letters, when n is a valid length */
constexpr size_t base64url_decoded_size(size_t n)
{
    return n / 4 * 3 + (n % 4 == 0 ? 0 : n % 4 - 1);
}

constexpr size_t base64url_encoded_size(size_t n)
{
    return n / 3 * 4 + (n % 3 == 0 ? 0 : n % 3 + 1);
}

/*
 * Decodes n letters into out, which has room for base64url_decoded_size(n)
 * bytes; returns false (out partly written) if the text is not canonical
 * base64url.  The empty text decodes to zero bytes.
 */
bool base64url_decode(const unsigned char *p, size_t n, unsigned char *out,
    size_t *out_len);

/* writes base64url_encoded_size(n) letters; returns that length */
size_t base64url_encode(unsigned char *out, const unsigned char *p, size_t n);

} // namespace sse

#endif /* SSE_BASE64URL_H */
