/*
 * One configured verification key (internal to sse_jwt*.cpp): what
 * KeySet::add_*() build and verify() uses.  Kept out of sse_jwt.h so that
 * the nginx side sees no OpenSSL types.
 */

#ifndef SSE_JWT_KEY_H
#define SSE_JWT_KEY_H

#include <openssl/types.h>

#include <string>

#include "sse_jwt.h"

namespace sse {
namespace jwt {

enum class AlgFamily : uint8_t {
    none,
    hmac,
    rsa_pkcs1,
    rsa_pss,
    ecdsa,
    eddsa,
};

AlgFamily alg_family(Alg alg);

/* "SHA256", ...; nullptr for EdDSA (no separate digest) and unknown */
const char *alg_digest_name(Alg alg);


struct KeySet::Key {
    Alg          alg = Alg::none_or_unknown;   /* the one it verifies */
    bool         has_kid = false;
    std::string  kid;

    /* fetched once at configuration time, not per token */
    EVP_MD       *md = nullptr;     /* not for EdDSA */

    EVP_PKEY     *pkey = nullptr;   /* asymmetric keys */

    /*
     * HMAC keys: a context set up with the secret and digest, copied for
     * each token (cheaper than setting one up, and the secret is held
     * only inside OpenSSL, which wipes it when freed).
     */
    EVP_MAC_CTX  *mac = nullptr;

    Key() = default;
    ~Key();
    Key(const Key &) = delete;
    Key &operator=(const Key &) = delete;
};


/*
 * The signature check itself: signature over the signing input (the
 * token's "header.payload" bytes) with key.alg.  Defined in sse_jwt.cpp.
 */
bool signature_valid(const KeySet::Key &key, Slice signing_input,
                     Slice signature);

} // namespace jwt
} // namespace sse

#endif /* SSE_JWT_KEY_H */
