/*
 * Test helpers for tokens: keys generated with OpenSSL in the test, tokens
 * signed here with the private halves, public keys exported as PEM and as
 * JWK.  The signing side is written independently of src/ (straight
 * OpenSSL calls) so that a shared mistake cannot make both sides agree.
 */

#ifndef SSE_JWT_TEST_UTIL_H
#define SSE_JWT_TEST_UTIL_H

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

#include "sse_jwt.h"

namespace jwt_test {

inline sse::Slice slice(const std::string &s)
{
    return { reinterpret_cast<const unsigned char *>(s.data()), s.size() };
}

inline const unsigned char *bytes(const std::string &s)
{
    return reinterpret_cast<const unsigned char *>(s.data());
}

/* plain base64url, written out here, not the one under test */
inline std::string b64(const std::string &in)
{
    static const char a[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    uint32_t    acc = 0;
    int         bits = 0;

    for (unsigned char c : in) {
        acc = (acc << 8) | c;
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out += a[(acc >> bits) & 63];
        }
    }
    if (bits > 0) {
        out += a[(acc << (6 - bits)) & 63];
    }
    return out;
}

struct PkeyDeleter {
    void operator()(EVP_PKEY *p) const { EVP_PKEY_free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

inline Pkey make_rsa(unsigned bits)
{
    return Pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t(bits)));
}

inline Pkey make_ec(const char *curve)
{
    return Pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve));
}

inline Pkey make_ed25519()
{
    return Pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
}

inline const char *digest_of(sse::jwt::Alg alg)
{
    using sse::jwt::Alg;
    switch (alg) {
    case Alg::HS384: case Alg::RS384: case Alg::PS384: case Alg::ES384:
        return "SHA384";
    case Alg::HS512: case Alg::RS512: case Alg::PS512:
        return "SHA512";
    case Alg::EdDSA:
        return nullptr;
    default:
        return "SHA256";
    }
}

inline std::string hmac(const char *digest, const std::string &key,
                        const std::string &data)
{
    unsigned char out[EVP_MAX_MD_SIZE];
    size_t        len = 0;

    if (EVP_Q_mac(nullptr, "HMAC", nullptr, digest, nullptr, key.data(),
                  key.size(), bytes(data), data.size(), out, sizeof(out),
                  &len) == nullptr)
    {
        throw std::runtime_error("EVP_Q_mac");
    }
    return std::string(reinterpret_cast<char *>(out), len);
}

/* a signature in JWS form (ECDSA as r || s) by a private key */
inline std::string pkey_sign(sse::jwt::Alg alg, EVP_PKEY *key,
                             const std::string &data)
{
    using sse::jwt::Alg;

    EVP_MD_CTX    *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX  *pctx = nullptr;
    const char    *digest = digest_of(alg);

    if (EVP_DigestSignInit_ex(ctx, &pctx, digest, nullptr, nullptr, key,
                              nullptr) != 1)
    {
        EVP_MD_CTX_free(ctx);
        throw std::runtime_error("EVP_DigestSignInit_ex");
    }

    if (alg == Alg::PS256 || alg == Alg::PS384 || alg == Alg::PS512) {
        EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
    }

    size_t len = 0;
    EVP_DigestSign(ctx, nullptr, &len, bytes(data), data.size());
    std::string sig(len, '\0');
    if (EVP_DigestSign(ctx, reinterpret_cast<unsigned char *>(&sig[0]), &len,
                       bytes(data), data.size()) != 1)
    {
        EVP_MD_CTX_free(ctx);
        throw std::runtime_error("EVP_DigestSign");
    }
    EVP_MD_CTX_free(ctx);
    sig.resize(len);

    if (alg != Alg::ES256 && alg != Alg::ES384) {
        return sig;
    }

    /* DER to r || s */
    size_t               half = alg == Alg::ES256 ? 32 : 48;
    const unsigned char *p = bytes(sig);
    ECDSA_SIG           *es = d2i_ECDSA_SIG(nullptr, &p, long(sig.size()));
    std::string          raw(2 * half, '\0');

    BN_bn2binpad(ECDSA_SIG_get0_r(es),
                 reinterpret_cast<unsigned char *>(&raw[0]), int(half));
    BN_bn2binpad(ECDSA_SIG_get0_s(es),
                 reinterpret_cast<unsigned char *>(&raw[half]), int(half));
    ECDSA_SIG_free(es);
    return raw;
}

/* signs the given header and payload JSON texts as they are */
inline std::string sign_raw(sse::jwt::Alg alg, EVP_PKEY *key,
                            const std::string &secret,
                            const std::string &header,
                            const std::string &payload)
{
    std::string input = b64(header) + "." + b64(payload);
    std::string sig = sse::jwt::Alg::HS256 <= alg
                              && alg <= sse::jwt::Alg::HS512
                          ? hmac(digest_of(alg), secret, input)
                          : pkey_sign(alg, key, input);
    return input + "." + b64(sig);
}

inline std::string header_for(sse::jwt::Alg alg, const std::string &kid = "")
{
    std::string h = std::string("{\"alg\":\"") + sse::jwt::alg_name(alg)
                    + "\",\"typ\":\"JWT\"";
    if (!kid.empty()) {
        h += ",\"kid\":\"" + kid + "\"";
    }
    return h + "}";
}

inline std::string public_pem(EVP_PKEY *key)
{
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, key);
    char *data = nullptr;
    long  len = BIO_get_mem_data(bio, &data);
    std::string pem(data, size_t(len));
    BIO_free(bio);
    return pem;
}

inline std::string private_pem(EVP_PKEY *key)
{
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
    char *data = nullptr;
    long  len = BIO_get_mem_data(bio, &data);
    std::string pem(data, size_t(len));
    BIO_free(bio);
    return pem;
}

inline std::string bn_param(EVP_PKEY *key, const char *name, int pad = 0)
{
    BIGNUM *bn = nullptr;
    EVP_PKEY_get_bn_param(key, name, &bn);
    std::string out(pad ? size_t(pad) : size_t(BN_num_bytes(bn)), '\0');
    if (pad) {
        BN_bn2binpad(bn, reinterpret_cast<unsigned char *>(&out[0]), pad);
    } else {
        BN_bn2bin(bn, reinterpret_cast<unsigned char *>(&out[0]));
    }
    BN_free(bn);
    return out;
}

/* the public JWK members of a key (no braces), e.g. "kty":"RSA","n":... */
inline std::string jwk_members(EVP_PKEY *key)
{
    if (EVP_PKEY_is_a(key, "RSA")) {
        return "\"kty\":\"RSA\",\"n\":\""
               + b64(bn_param(key, OSSL_PKEY_PARAM_RSA_N)) + "\",\"e\":\""
               + b64(bn_param(key, OSSL_PKEY_PARAM_RSA_E)) + "\"";
    }

    if (EVP_PKEY_is_a(key, "ED25519")) {
        unsigned char raw[32];
        size_t        len = sizeof(raw);
        EVP_PKEY_get_raw_public_key(key, raw, &len);
        return "\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\""
               + b64(std::string(reinterpret_cast<char *>(raw), len)) + "\"";
    }

    int bits = EVP_PKEY_get_bits(key);
    int pad = (bits + 7) / 8;
    return std::string("\"kty\":\"EC\",\"crv\":\"")
           + (bits == 256 ? "P-256" : bits == 384 ? "P-384" : "P-521")
           + "\",\"x\":\"" + b64(bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, pad))
           + "\",\"y\":\"" + b64(bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, pad))
           + "\"";
}

} // namespace jwt_test

#endif /* SSE_JWT_TEST_UTIL_H */
