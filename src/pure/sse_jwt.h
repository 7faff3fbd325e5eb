/*
 * JSON Web Tokens (RFC 7515 compact JWS, RFC 7519 claims, RFC 7517 JWKS)
 * for sse_auth_jwt: plain C++ over OpenSSL's EVP interface, no nginx.
 *
 * The algorithm of a verification always comes from the configured key,
 * never from the token: the token's "alg" must name the key's algorithm,
 * "kid" only selects among the configured keys, and "jku", "x5u", "jwk"
 * are never used.  Nothing here throws out of its functions; errors are
 * values.
 */

#ifndef SSE_JWT_H
#define SSE_JWT_H

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "sse_wire.h"

namespace sse {
namespace jwt {

/* the largest token looked at; longer ones are refused unparsed */
constexpr size_t max_token_len = 16384;

enum class Alg : uint8_t {
    none_or_unknown = 0,
    HS256, HS384, HS512,
    RS256, RS384, RS512,
    PS256, PS384, PS512,
    ES256, ES384,
    EdDSA,
};

const char *alg_name(Alg alg);                  /* "HS256", ...; "?" */
Alg alg_from_name(const unsigned char *p, size_t n);   /* exact match */


class KeySet {
public:
    KeySet();
    ~KeySet();
    KeySet(const KeySet &) = delete;
    KeySet &operator=(const KeySet &) = delete;

    /*
     * Each adds keys from bytes the caller read from a file.  On failure
     * nothing is added and *error holds one sentence saying why (for
     * "nginx -t"), without any key material in it.
     *
     * add_jwks:   {"keys":[...]}: RSA, EC P-256/P-384, OKP Ed25519, oct.
     *             alg: Alg::none_or_unknown to take each key's "alg",
     *             else its type's default; another value binds every key
     *             of the set to it (refused when a key cannot do it).
     * add_pem:    one PEM public key (SPKI "PUBLIC KEY", or a
     *             certificate); a private key is refused.
     * add_secret: the bytes exactly, an HMAC secret; alg HS256 when
     *             none_or_unknown; kid may be empty.
     */
    bool add_jwks(const unsigned char *p, size_t n, Alg alg,
                  std::string *error);
    bool add_pem(const unsigned char *p, size_t n, Alg alg,
                 std::string *error);
    bool add_secret(const unsigned char *p, size_t n, Slice kid, Alg alg,
                    std::string *error);

    size_t size() const;

    struct Key;                 /* defined in sse_jwt_key.h */
    const std::vector<std::unique_ptr<Key>> &keys() const { return keys_; }

private:
    std::vector<std::unique_ptr<Key>>  keys_;
};


/* what a valid token says; strings are copies, valid after verify() */
struct Claims {
    int64_t                   exp = 0;          /* required; a fraction
                                                   rounded down */

    bool                      has_sub = false;
    std::string               sub;

    /* the "sse" claim; has_*: the member was there (an array) */
    bool                      has_subscribe = false;
    bool                      has_publish = false;
    std::vector<std::string>  subscribe;
    std::vector<std::string>  publish;

    /*
     * Every top-level claim, by name, as a string for $sse_jwt_claim_NAME:
     * a JSON string as its decoded text, any other value as its JSON
     * text exactly as it appeared in the token.
     */
    std::vector<std::pair<std::string, std::string>>  all;

    /* the claim's value as above, or nullptr */
    const std::string *claim(const unsigned char *name, size_t n) const;
};


/*
 * The times, as RFC 7519 4.1.4 and 4.1.5 put them: a token is valid while
 * now < exp + leeway, and once nbf - leeway <= now; it is also refused
 * while iat - leeway > now (issued in the future).
 */
struct Options {
    int64_t   now = 0;          /* seconds since the epoch */
    int64_t   leeway = 30;      /* seconds, for exp, nbf and iat */
    Slice     issuer = { nullptr, 0 };      /* len 0: not checked */
    Slice     audience = { nullptr, 0 };    /* len 0: not checked */

    /*
     * The caller knows that exactly this token's signature was verified
     * before with a key set of exactly the same keys (a cache shared by
     * nginx's workers, keyed by the SHA-256 of the token and of the key
     * material): the signature itself is not checked again; everything
     * else (form, algorithm, that a key for its kid and alg is configured,
     * every claim and time) is checked as always.
     */
    bool      signature_known_valid = false;
};


enum class Status : uint8_t {
    ok = 0,
    malformed,          /* not three base64url parts, bad JSON, bad claims */
    bad_alg,            /* none, unknown, or not the key's algorithm */
    unknown_kid,        /* no configured key has this kid */
    no_key,             /* no configured key for the token's alg */
    bad_signature,
    expired,
    not_yet_valid,      /* nbf, or iat, in the future */
    bad_issuer,
    bad_audience,
    no_memory,          /* allocation failed: not the token's fault, so
                           not a 401 and never cached */
};

/* a short reason for logs and JSON bodies: "expired", "bad_signature" */
const char *status_name(Status s);


/*
 * Verifies a compact JWS and its claims.  claims is filled only when the
 * result is ok.  The token is at most max_token_len bytes (else
 * malformed); its JSON is parsed strictly: duplicate keys, nesting deeper
 * than 32, invalid UTF-8 and trailing bytes are malformed.
 */
Status verify(const KeySet &keys, Slice token, const Options &opt,
              Claims *claims);


/*
 * Channel patterns of the "sse" claim: an exact id, or a prefix followed
 * by a final '*' that matches zero or more bytes; '*' alone matches every
 * channel.  No other byte is special.
 */
bool pattern_matches(Slice pattern, Slice channel);
bool patterns_allow(const std::vector<std::string> &patterns, Slice channel);


/*
 * SHA-256 of the token, for caching verified results.  False (out not
 * set) only when OpenSSL cannot allocate: then the result must not be
 * cached, as no digest stands for the token.
 */
bool token_digest(Slice token, unsigned char out[32]);

} // namespace jwt
} // namespace sse

#endif /* SSE_JWT_H */
