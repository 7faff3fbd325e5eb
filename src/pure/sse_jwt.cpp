/*
 * Verification of compact JWS tokens and their claims (see sse_jwt.h).
 *
 * The order of the checks is the point: sizes first, then the structure
 * (three strict base64url parts, a header object whose "alg" names a
 * supported algorithm), then the key chosen by configuration, then the
 * signature, and only then is the payload parsed and its claims looked
 * at.  Until the signature is checked, nothing of the payload is trusted
 * or even parsed.
 */

#include "sse_jwt_key.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include <cstring>
#include <new>

#include "sse_base64url.h"
#include "sse_json.h"

namespace sse {
namespace jwt {

namespace {

/* SPEC: a token without "kid" is tried against at most this many keys */
constexpr size_t max_keys_tried = 4;

/* the leeway is clamped so that adding it to a clamped date cannot overflow */
constexpr int64_t max_leeway = int64_t(1) << 60;

struct AlgEntry {
    Alg          alg;
    const char  *name;
};

const AlgEntry alg_table[] = {
    { Alg::HS256, "HS256" }, { Alg::HS384, "HS384" }, { Alg::HS512, "HS512" },
    { Alg::RS256, "RS256" }, { Alg::RS384, "RS384" }, { Alg::RS512, "RS512" },
    { Alg::PS256, "PS256" }, { Alg::PS384, "PS384" }, { Alg::PS512, "PS512" },
    { Alg::ES256, "ES256" }, { Alg::ES384, "ES384" },
    { Alg::EdDSA, "EdDSA" },
};

struct MdCtxFree {
    void operator()(EVP_MD_CTX *p) const { EVP_MD_CTX_free(p); }
};
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

struct MacCtxFree {
    void operator()(EVP_MAC_CTX *p) const { EVP_MAC_CTX_free(p); }
};
using MacCtxPtr = std::unique_ptr<EVP_MAC_CTX, MacCtxFree>;

struct EcdsaSigFree {
    void operator()(ECDSA_SIG *p) const { ECDSA_SIG_free(p); }
};
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, EcdsaSigFree>;


bool hmac_valid(const KeySet::Key &key, Slice input, Slice signature)
{
    MacCtxPtr      ctx(EVP_MAC_CTX_dup(key.mac));
    unsigned char  mac[EVP_MAX_MD_SIZE];
    size_t         mac_len = 0;

    if (!ctx) {
        throw std::bad_alloc();
    }

    if (EVP_MAC_update(ctx.get(), input.data, input.len) != 1
        || EVP_MAC_final(ctx.get(), mac, &mac_len, sizeof(mac)) != 1)
    {
        return false;
    }

    /* the length is public; the bytes are compared in constant time */
    bool valid = signature.len == mac_len
                 && CRYPTO_memcmp(mac, signature.data, mac_len) == 0;

    OPENSSL_cleanse(mac, sizeof(mac));
    return valid;
}


/*
 * JWS carries an ECDSA signature as r || s, each the size of the curve's
 * order (RFC 7518 3.4); OpenSSL verifies DER.  The exact length is
 * required, so a DER signature or a shortened one never gets here.
 */
bool ecdsa_to_der(Alg alg, Slice signature, std::string *der)
{
    size_t half = alg == Alg::ES256 ? 32 : 48;

    if (signature.len != 2 * half) {
        return false;
    }

    BIGNUM *r = BN_bin2bn(signature.data, static_cast<int>(half), nullptr);
    BIGNUM *s = BN_bin2bn(signature.data + half, static_cast<int>(half),
                          nullptr);
    EcdsaSigPtr sig(ECDSA_SIG_new());

    if (r == nullptr || s == nullptr || !sig
        || ECDSA_SIG_set0(sig.get(), r, s) != 1)
    {
        BN_free(r);
        BN_free(s);
        throw std::bad_alloc();
    }

    int len = i2d_ECDSA_SIG(sig.get(), nullptr);
    if (len <= 0) {
        return false;
    }

    der->resize(static_cast<size_t>(len));

    unsigned char *out = reinterpret_cast<unsigned char *>(&(*der)[0]);

    return i2d_ECDSA_SIG(sig.get(), &out) == len;
}


bool pkey_signature_valid(const KeySet::Key &key, Slice input,
                          Slice signature)
{
    AlgFamily    family = alg_family(key.alg);
    std::string  der;

    if (family == AlgFamily::ecdsa) {
        if (!ecdsa_to_der(key.alg, signature, &der)) {
            return false;
        }

        signature.data = reinterpret_cast<const unsigned char *>(der.data());
        signature.len = der.size();

    } else if (signature.len
               != static_cast<size_t>(EVP_PKEY_get_size(key.pkey)))
    {
        /* RSA: exactly the modulus' length (RFC 8017 8.2.2); Ed25519: 64 */
        return false;
    }

    MdCtxPtr       ctx(EVP_MD_CTX_new());
    EVP_PKEY_CTX  *pctx = nullptr;

    if (!ctx) {
        throw std::bad_alloc();
    }

    /* EdDSA hashes inside the signature scheme: no digest (key.md null) */
    if (EVP_DigestVerifyInit(ctx.get(), &pctx, key.md, nullptr, key.pkey)
        != 1)
    {
        return false;
    }

    if (family == AlgFamily::rsa_pkcs1) {
        if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1) {
            return false;
        }

    } else if (family == AlgFamily::rsa_pss) {
        /* RFC 7518 3.5: MGF1 with the same hash, salt as long as the hash */
        if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1
            || EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST)
               != 1
            || EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, key.md) != 1)
        {
            return false;
        }
    }

    return EVP_DigestVerify(ctx.get(), signature.data, signature.len,
                            input.data, input.len) == 1;
}


/* the decoded bytes of a base64url part, or false if it is not one */
bool decode_part(Slice part, std::string *out)
{
    out->resize(base64url_decoded_size(part.len));

    size_t len = 0;

    if (!base64url_decode(part.data, part.len,
                          reinterpret_cast<unsigned char *>(&(*out)[0]),
                          &len))
    {
        return false;
    }

    out->resize(len);
    return true;
}


/* parses a decoded part that must be a JSON object */
Status parse_object(const std::string &text, json::Document *doc)
{
    json::Error e = doc->parse(
        reinterpret_cast<const unsigned char *>(text.data()), text.size());

    if (e == json::Error::no_memory) {
        throw std::bad_alloc();
    }

    if (e != json::Error::ok || doc->node(0).type != json::Type::object) {
        return Status::malformed;
    }

    return Status::ok;
}


std::string decoded(const json::Document &doc, size_t node)
{
    std::string s;

    if (!doc.string_value(node, &s)) {
        throw std::bad_alloc();
    }

    return s;
}


/* the "subscribe" or "publish" member of the "sse" claim */
Status read_patterns(const json::Document &doc, size_t sse, const char *name,
                     bool *has, std::vector<std::string> *patterns)
{
    size_t node = doc.member(sse, name);

    if (node == json::Document::npos) {
        return Status::ok;
    }

    const json::Node &list = doc.node(node);

    if (list.type != json::Type::array) {
        return Status::malformed;
    }

    patterns->reserve(list.count);

    size_t c = node + 1;
    for (uint32_t k = 0; k < list.count; k++, c = doc.node(c).next) {
        if (doc.node(c).type != json::Type::string) {
            return Status::malformed;
        }
        patterns->push_back(decoded(doc, c));
    }

    *has = true;
    return Status::ok;
}


/*
 * An optional NumericDate claim: absent, or a JSON number.  Rounded up:
 * with "now" in whole seconds, "now < exp" (RFC 7519 4.1.4) is
 * "now < ceil(exp)", and "now >= nbf" (4.1.5) is "now >= ceil(nbf)".
 */
Status read_date(const json::Document &doc, const char *name, bool *has,
                 int64_t *value)
{
    size_t node = doc.member(0, name);

    *has = node != json::Document::npos;

    if (!*has) {
        return Status::ok;
    }

    if (doc.node(node).type != json::Type::number) {
        return Status::malformed;
    }

    *value = json::number_ceil(doc.raw(node));
    return Status::ok;
}


bool audience_matches(const json::Document &doc, size_t node, Slice audience)
{
    const json::Node &aud = doc.node(node);

    if (aud.type == json::Type::string) {
        return doc.string_equals(node, audience.data, audience.len);
    }

    if (aud.type != json::Type::array) {
        return false;
    }

    size_t c = node + 1;
    for (uint32_t k = 0; k < aud.count; k++, c = doc.node(c).next) {
        if (doc.string_equals(c, audience.data, audience.len)) {
            return true;
        }
    }

    return false;
}


Status read_claims(const std::string &payload, const Options &opt,
                   Claims *claims)
{
    json::Document doc;

    Status status = parse_object(payload, &doc);
    if (status != Status::ok) {
        return status;
    }

    /* first everything that makes the claims malformed ... */

    bool     has_exp, has_nbf, has_iat;
    int64_t  exp = 0, nbf = 0, iat = 0;

    if (read_date(doc, "exp", &has_exp, &exp) != Status::ok || !has_exp
        || read_date(doc, "nbf", &has_nbf, &nbf) != Status::ok
        || read_date(doc, "iat", &has_iat, &iat) != Status::ok)
    {
        return Status::malformed;
    }

    size_t node = doc.member(0, "sub");
    if (node != json::Document::npos) {
        if (doc.node(node).type != json::Type::string) {
            return Status::malformed;
        }
        claims->has_sub = true;
        claims->sub = decoded(doc, node);
    }

    node = doc.member(0, "sse");
    if (node != json::Document::npos) {
        if (doc.node(node).type != json::Type::object
            || read_patterns(doc, node, "subscribe", &claims->has_subscribe,
                             &claims->subscribe) != Status::ok
            || read_patterns(doc, node, "publish", &claims->has_publish,
                             &claims->publish) != Status::ok)
        {
            return Status::malformed;
        }
    }

    /* ... then the checks of a well-formed token */

    int64_t leeway = opt.leeway < 0 ? 0
                     : opt.leeway > max_leeway ? max_leeway : opt.leeway;

    /*
     * RFC 7519 4.1.4: valid only before exp, so a token is expired from
     * the second exp + leeway on.  Written so that nothing is added to
     * opt.now, which may be anything.
     */
    if (exp + leeway <= opt.now) {
        return Status::expired;
    }

    if ((has_nbf && nbf - leeway > opt.now)
        || (has_iat && iat - leeway > opt.now))
    {
        return Status::not_yet_valid;
    }

    if (opt.issuer.len > 0) {
        node = doc.member(0, "iss");
        if (node == json::Document::npos
            || !doc.string_equals(node, opt.issuer.data, opt.issuer.len))
        {
            return Status::bad_issuer;
        }
    }

    if (opt.audience.len > 0) {
        node = doc.member(0, "aud");
        if (node == json::Document::npos
            || !audience_matches(doc, node, opt.audience))
        {
            return Status::bad_audience;
        }
    }

    /* the floor, as the header says; the checks used the exact time */
    claims->exp = json::number_floor(doc.raw(doc.member(0, "exp")));

    /* every member, for $sse_jwt_claim_NAME */
    const json::Node &root = doc.node(0);
    claims->all.reserve(root.count);

    size_t c = 1;
    for (uint32_t k = 0; k < root.count; k++, c = doc.node(c + 1).next) {
        size_t       value = c + 1;
        std::string  text;

        if (doc.node(value).type == json::Type::string) {
            text = decoded(doc, value);
        } else {
            Slice raw = doc.raw(value);
            text.assign(reinterpret_cast<const char *>(raw.data), raw.len);
        }

        claims->all.emplace_back(decoded(doc, c), std::move(text));
    }

    return Status::ok;
}


/*
 * Tries the configured keys that may verify this token: with a kid, the
 * keys of that kid (bound to the token's alg); without, the keys bound to
 * the token's alg, the first max_keys_tried of them in configuration
 * order, so that a token cannot make a worker try every key there is.
 */
Status check_signature(const KeySet &keys, Alg alg, bool has_kid,
                       const std::string &kid, Slice input, Slice signature,
                       bool known_valid)
{
    bool    kid_known = false;
    size_t  tried = 0;

    for (const auto &key : keys.keys()) {
        if (has_kid) {
            if (!key->has_kid || key->kid != kid) {
                continue;
            }
            kid_known = true;
        }

        if (key->alg != alg) {
            continue;
        }

        if (tried == max_keys_tried) {
            break;
        }

        tried++;

        /* known valid: only that a key for it is configured is checked */
        if (known_valid || signature_valid(*key, input, signature)) {
            return Status::ok;
        }
    }

    if (has_kid && !kid_known) {
        return Status::unknown_kid;
    }

    if (tried == 0) {
        /* the kid's key is bound to another algorithm: a confusion try */
        return has_kid ? Status::bad_alg : Status::no_key;
    }

    return Status::bad_signature;
}


Status verify_token(const KeySet &keys, Slice token, const Options &opt,
                    Claims *claims)
{
    if (token.len == 0 || token.len > max_token_len) {
        return Status::malformed;
    }

    const unsigned char *end = token.data + token.len;
    const unsigned char *dot1 = static_cast<const unsigned char *>(
        std::memchr(token.data, '.', token.len));

    if (dot1 == nullptr) {
        return Status::malformed;
    }

    const unsigned char *dot2 = static_cast<const unsigned char *>(
        std::memchr(dot1 + 1, '.', static_cast<size_t>(end - dot1 - 1)));

    if (dot2 == nullptr
        || std::memchr(dot2 + 1, '.', static_cast<size_t>(end - dot2 - 1))
           != nullptr)
    {
        return Status::malformed;
    }

    Slice header_part = { token.data,
                          static_cast<size_t>(dot1 - token.data) };
    Slice payload_part = { dot1 + 1, static_cast<size_t>(dot2 - dot1 - 1) };
    Slice signature_part = { dot2 + 1, static_cast<size_t>(end - dot2 - 1) };

    std::string header, payload, signature;

    if (!decode_part(header_part, &header)
        || !decode_part(payload_part, &payload)
        || !decode_part(signature_part, &signature))
    {
        return Status::malformed;
    }

    json::Document hdr;

    Status status = parse_object(header, &hdr);
    if (status != Status::ok) {
        return status;
    }

    /* RFC 7515 4.1.11: an extension we must understand; we know none */
    if (hdr.member(0, "crit") != json::Document::npos) {
        return Status::malformed;
    }

    size_t node = hdr.member(0, "alg");
    if (node == json::Document::npos
        || hdr.node(node).type != json::Type::string)
    {
        return Status::malformed;
    }

    std::string alg_text = decoded(hdr, node);
    Alg alg = alg_from_name(
        reinterpret_cast<const unsigned char *>(alg_text.data()),
        alg_text.size());

    if (alg == Alg::none_or_unknown) {
        return Status::bad_alg;
    }

    /* "jku", "x5u", "jwk", "x5c": never looked at */

    bool         has_kid = false;
    std::string  kid;

    node = hdr.member(0, "kid");
    if (node != json::Document::npos) {
        if (hdr.node(node).type != json::Type::string) {
            return Status::malformed;
        }
        has_kid = true;
        kid = decoded(hdr, node);
    }

    Slice input = { token.data, static_cast<size_t>(dot2 - token.data) };
    Slice sig = { reinterpret_cast<const unsigned char *>(signature.data()),
                  signature.size() };

    status = check_signature(keys, alg, has_kid, kid, input, sig,
                             opt.signature_known_valid);
    if (status != Status::ok) {
        return status;
    }

    Claims found;

    status = read_claims(payload, opt, &found);
    if (status != Status::ok) {
        return status;
    }

    *claims = std::move(found);
    return Status::ok;
}

} // namespace


AlgFamily alg_family(Alg alg)
{
    switch (alg) {
    case Alg::HS256: case Alg::HS384: case Alg::HS512:
        return AlgFamily::hmac;
    case Alg::RS256: case Alg::RS384: case Alg::RS512:
        return AlgFamily::rsa_pkcs1;
    case Alg::PS256: case Alg::PS384: case Alg::PS512:
        return AlgFamily::rsa_pss;
    case Alg::ES256: case Alg::ES384:
        return AlgFamily::ecdsa;
    case Alg::EdDSA:
        return AlgFamily::eddsa;
    default:
        return AlgFamily::none;
    }
}


const char *alg_digest_name(Alg alg)
{
    switch (alg) {
    case Alg::HS256: case Alg::RS256: case Alg::PS256: case Alg::ES256:
        return "SHA256";
    case Alg::HS384: case Alg::RS384: case Alg::PS384: case Alg::ES384:
        return "SHA384";
    case Alg::HS512: case Alg::RS512: case Alg::PS512:
        return "SHA512";
    default:
        return nullptr;
    }
}


const char *alg_name(Alg alg)
{
    for (const AlgEntry &e : alg_table) {
        if (e.alg == alg) {
            return e.name;
        }
    }
    return "?";
}


Alg alg_from_name(const unsigned char *p, size_t n)
{
    for (const AlgEntry &e : alg_table) {
        if (std::strlen(e.name) == n && std::memcmp(e.name, p, n) == 0) {
            return e.alg;
        }
    }
    return Alg::none_or_unknown;
}


const char *status_name(Status s)
{
    switch (s) {
    case Status::ok:             return "ok";
    case Status::malformed:      return "malformed";
    case Status::bad_alg:        return "bad_alg";
    case Status::unknown_kid:    return "unknown_kid";
    case Status::no_key:         return "no_key";
    case Status::bad_signature:  return "bad_signature";
    case Status::expired:        return "expired";
    case Status::not_yet_valid:  return "not_yet_valid";
    case Status::bad_issuer:     return "bad_issuer";
    case Status::bad_audience:   return "bad_audience";
    case Status::no_memory:      return "no_memory";
    }
    return "?";
}


const std::string *Claims::claim(const unsigned char *name, size_t n) const
{
    for (const auto &member : all) {
        if (member.first.size() == n
            && (n == 0 || std::memcmp(member.first.data(), name, n) == 0))
        {
            return &member.second;
        }
    }
    return nullptr;
}


bool signature_valid(const KeySet::Key &key, Slice signing_input,
                     Slice signature)
{
    if (alg_family(key.alg) == AlgFamily::hmac) {
        return hmac_valid(key, signing_input, signature);
    }

    return pkey_signature_valid(key, signing_input, signature);
}


Status verify(const KeySet &keys, Slice token, const Options &opt,
              Claims *claims)
{
    Status status;

    try {
        status = verify_token(keys, token, opt, claims);

    } catch (const std::bad_alloc &) {
        status = Status::no_memory;
    }

    /* a failed check leaves errors on OpenSSL's per-thread queue, where
       nginx's own SSL error reporting would find them */
    ERR_clear_error();

    return status;
}


bool pattern_matches(Slice pattern, Slice channel)
{
    if (pattern.len > 0 && pattern.data[pattern.len - 1] == '*') {
        size_t prefix = pattern.len - 1;

        return channel.len >= prefix
               && (prefix == 0
                   || std::memcmp(pattern.data, channel.data, prefix) == 0);
    }

    return pattern.len == channel.len
           && (pattern.len == 0
               || std::memcmp(pattern.data, channel.data, pattern.len) == 0);
}


bool patterns_allow(const std::vector<std::string> &patterns, Slice channel)
{
    for (const std::string &p : patterns) {
        Slice pattern = { reinterpret_cast<const unsigned char *>(p.data()),
                          p.size() };

        if (pattern_matches(pattern, channel)) {
            return true;
        }
    }
    return false;
}


bool token_digest(Slice token, unsigned char out[32])
{
    unsigned int len = 0;

    bool ok = EVP_Digest(token.data, token.len, out, &len, EVP_sha256(),
                         nullptr) == 1
              && len == 32;

    ERR_clear_error();
    return ok;
}

} // namespace jwt
} // namespace sse
