/*
 * KeySet: loading verification keys (see sse_jwt.h) from a JWKS
 * (RFC 7517), a PEM public key or certificate, or an HMAC secret, with
 * OpenSSL 3's provider interfaces only (no deprecated RSA/EC_KEY calls).
 *
 * Every key is bound to exactly one algorithm here, at configuration
 * time, and checked as hard as OpenSSL allows (public key checks, RSA
 * size, HMAC secret length), so that verify() only has to look up.
 * A file is taken whole or not at all: one malformed key refuses it, and
 * the error names the key by its position, never by its material.
 */

#include "sse_jwt_key.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <climits>
#include <cstring>
#include <new>

#include "sse_base64url.h"
#include "sse_json.h"

namespace sse {
namespace jwt {

namespace {

/* RFC 7518 3.3: 2048 bits at least; OpenSSL's own ceiling above */
constexpr int min_rsa_bits = 2048;
constexpr int max_rsa_bits = 16384;

/* a key file larger than this is surely not a key file */
constexpr size_t max_key_file_len = 1024 * 1024;

/* what a public key is, as far as binding it to an algorithm goes */
enum class KeyKind : uint8_t {
    unsupported,
    rsa,
    ec_p256,
    ec_p384,
    ed25519,
    secret,
};

bool alg_fits(KeyKind kind, Alg alg)
{
    switch (kind) {
    case KeyKind::rsa:
        return alg_family(alg) == AlgFamily::rsa_pkcs1
               || alg_family(alg) == AlgFamily::rsa_pss;
    case KeyKind::ec_p256:
        return alg == Alg::ES256;
    case KeyKind::ec_p384:
        return alg == Alg::ES384;
    case KeyKind::ed25519:
        return alg == Alg::EdDSA;
    case KeyKind::secret:
        return alg_family(alg) == AlgFamily::hmac;
    default:
        return false;
    }
}

/* SPEC: "else its type" */
Alg default_alg(KeyKind kind)
{
    switch (kind) {
    case KeyKind::rsa:      return Alg::RS256;
    case KeyKind::ec_p256:  return Alg::ES256;
    case KeyKind::ec_p384:  return Alg::ES384;
    case KeyKind::ed25519:  return Alg::EdDSA;
    case KeyKind::secret:   return Alg::HS256;
    default:                return Alg::none_or_unknown;
    }
}

const char *kind_name(KeyKind kind)
{
    switch (kind) {
    case KeyKind::rsa:      return "an RSA key";
    case KeyKind::ec_p256:  return "an EC P-256 key";
    case KeyKind::ec_p384:  return "an EC P-384 key";
    case KeyKind::ed25519:  return "an Ed25519 key";
    case KeyKind::secret:   return "an HMAC secret";
    default:                return "an unsupported key";
    }
}

/* RFC 7518 3.2: a secret at least as long as the hash output */
size_t min_secret_len(Alg alg)
{
    switch (alg) {
    case Alg::HS384:  return 48;
    case Alg::HS512:  return 64;
    default:          return 32;
    }
}

KeyKind pkey_kind(EVP_PKEY *pkey)
{
    if (EVP_PKEY_is_a(pkey, "RSA")) {
        return KeyKind::rsa;
    }

    if (EVP_PKEY_is_a(pkey, "ED25519")) {
        return KeyKind::ed25519;
    }

    if (EVP_PKEY_is_a(pkey, "EC")) {
        char    group[64];
        size_t  len = 0;

        if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME,
                                           group, sizeof(group), &len) != 1)
        {
            return KeyKind::unsupported;
        }

        if (std::strcmp(group, "prime256v1") == 0) {
            return KeyKind::ec_p256;
        }

        if (std::strcmp(group, "secp384r1") == 0) {
            return KeyKind::ec_p384;
        }
    }

    /* RSA-PSS keys with restrictions, other curves, DSA, X25519, ... */
    return KeyKind::unsupported;
}


struct PkeyFree {
    void operator()(EVP_PKEY *p) const { EVP_PKEY_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

struct PkeyCtxFree {
    void operator()(EVP_PKEY_CTX *p) const { EVP_PKEY_CTX_free(p); }
};
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree>;

struct BioFree {
    void operator()(BIO *p) const { BIO_free(p); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

struct X509Free {
    void operator()(X509 *p) const { X509_free(p); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;

struct BnFree {
    void operator()(BIGNUM *p) const { BN_free(p); }
};
using BnPtr = std::unique_ptr<BIGNUM, BnFree>;

struct ParamBldFree {
    void operator()(OSSL_PARAM_BLD *p) const { OSSL_PARAM_BLD_free(p); }
};
using ParamBldPtr = std::unique_ptr<OSSL_PARAM_BLD, ParamBldFree>;

struct ParamFree {
    void operator()(OSSL_PARAM *p) const { OSSL_PARAM_free(p); }
};
using ParamPtr = std::unique_ptr<OSSL_PARAM, ParamFree>;


/*
 * Checks what OpenSSL can check of a public key (an EC point on its
 * curve, an RSA exponent and modulus that make sense), and the RSA size
 * rules.  Returns nullptr when fine, else why not.
 */
const char *pkey_problem(EVP_PKEY *pkey, KeyKind kind)
{
    if (kind == KeyKind::rsa) {
        int bits = EVP_PKEY_get_bits(pkey);

        if (bits < min_rsa_bits) {
            return "an RSA key shorter than 2048 bits";
        }
        if (bits > max_rsa_bits) {
            return "an RSA key longer than 16384 bits";
        }
    }

    PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey, nullptr));

    if (!ctx || EVP_PKEY_public_check(ctx.get()) != 1) {
        return "an invalid public key";
    }

    return nullptr;
}


/*
 * Makes the Key for a public key: fetches its digest once.  On failure
 * returns nullptr with *error set; pkey is taken over either way.
 */
std::unique_ptr<KeySet::Key> make_pkey_key(PkeyPtr pkey, Alg alg,
                                           std::string *error)
{
    std::unique_ptr<KeySet::Key> key(new KeySet::Key);

    key->alg = alg;

    const char *digest = alg_digest_name(alg);

    if (digest != nullptr) {
        key->md = EVP_MD_fetch(nullptr, digest, nullptr);
        if (key->md == nullptr) {
            *error = "OpenSSL has no digest for this algorithm";
            return nullptr;
        }
    }

    key->pkey = pkey.release();
    return key;
}


std::unique_ptr<KeySet::Key> make_secret_key(const unsigned char *p,
                                             size_t n, Alg alg,
                                             std::string *error)
{
    std::unique_ptr<KeySet::Key> key(new KeySet::Key);

    key->alg = alg;

    EVP_MAC *mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);

    if (mac != nullptr) {
        key->mac = EVP_MAC_CTX_new(mac);
        EVP_MAC_free(mac);          /* the context holds its own reference */
    }

    OSSL_PARAM params[2];

    params[0] = OSSL_PARAM_construct_utf8_string(
        OSSL_MAC_PARAM_DIGEST, const_cast<char *>(alg_digest_name(alg)), 0);
    params[1] = OSSL_PARAM_construct_end();

    if (key->mac == nullptr || EVP_MAC_init(key->mac, p, n, params) != 1) {
        *error = "OpenSSL has no HMAC for this algorithm";
        return nullptr;
    }

    return key;
}


/* a decoded secret, wiped on every way out */
struct WipedBytes {
    std::string bytes;

    ~WipedBytes()
    {
        if (!bytes.empty()) {
            OPENSSL_cleanse(&bytes[0], bytes.size());
        }
    }
};


/* strict base64url of a JWK member into bytes */
bool decode_member(const json::Document &doc, size_t node,
                   std::string *out)
{
    if (node == json::Document::npos
        || doc.node(node).type != json::Type::string)
    {
        return false;
    }

    std::string text;
    if (!doc.string_value(node, &text)) {
        throw std::bad_alloc();
    }

    out->resize(base64url_decoded_size(text.size()));

    size_t len = 0;
    if (!base64url_decode(reinterpret_cast<const unsigned char *>(
                              text.data()),
                          text.size(),
                          reinterpret_cast<unsigned char *>(&(*out)[0]),
                          &len))
    {
        return false;
    }

    out->resize(len);
    return true;
}


bool string_member(const json::Document &doc, size_t obj, const char *name,
                   size_t *node)
{
    *node = doc.member(obj, name);
    return *node != json::Document::npos
           && doc.node(*node).type == json::Type::string;
}


/*
 * The outcome of reading one JWK.  A set published by an identity provider
 * may hold keys that are not for us: encryption keys ("use" other than
 * "sig", "key_ops" without "verify", an "alg" such as RSA-OAEP), and key
 * types or curves this module does not support (RFC 7517 5: ignore what is
 * not understood).  Those are skipped.  A key meant for us that cannot be
 * read exactly is a mistake in the file and refuses it whole: loading the
 * rest would only make tokens fail later, far from the cause.
 */
enum class JwkResult : uint8_t {
    taken,
    skipped,            /* not a signing key we can use: ignored */
    refused,            /* malformed: the whole file is refused */
};


class JwkReader {
public:
    JwkReader(const json::Document &doc, size_t obj, Alg bind)
        : doc_(doc), obj_(obj), bind_(bind) {}

    JwkResult read(std::unique_ptr<KeySet::Key> *out, std::string *why);

private:
    JwkResult rsa(PkeyPtr *pkey, std::string *why);
    JwkResult ec(PkeyPtr *pkey, KeyKind *kind, std::string *why);
    JwkResult okp(PkeyPtr *pkey, std::string *why);

    PkeyPtr from_params(const char *type, OSSL_PARAM_BLD *bld);

    bool has(const char *name) const
    {
        return doc_.member(obj_, name) != json::Document::npos;
    }

    bool string_is(size_t node, const char *s) const
    {
        return doc_.string_equals(node,
                                  reinterpret_cast<const unsigned char *>(s),
                                  std::strlen(s));
    }

    const json::Document  &doc_;
    size_t                 obj_;
    Alg                    bind_;
};


JwkResult JwkReader::read(std::unique_ptr<KeySet::Key> *out,
                          std::string *why)
{
    size_t node;

    /* RFC 7517 4.2, 4.3: only keys meant for verifying signatures */
    node = doc_.member(obj_, "use");
    if (node != json::Document::npos) {
        if (doc_.node(node).type != json::Type::string) {
            *why = "\"use\" is not a string";
            return JwkResult::refused;
        }
        if (!string_is(node, "sig")) {
            return JwkResult::skipped;
        }
    }

    node = doc_.member(obj_, "key_ops");
    if (node != json::Document::npos) {
        const json::Node &ops = doc_.node(node);
        bool verify = false;

        if (ops.type != json::Type::array) {
            *why = "\"key_ops\" is not an array";
            return JwkResult::refused;
        }

        size_t c = node + 1;
        for (uint32_t k = 0; k < ops.count; k++, c = doc_.node(c).next) {
            if (doc_.node(c).type != json::Type::string) {
                *why = "\"key_ops\" holds a non-string";
                return JwkResult::refused;
            }
            verify = verify || string_is(c, "verify");
        }

        if (!verify) {
            return JwkResult::skipped;
        }
    }

    size_t kty;
    if (!string_member(doc_, obj_, "kty", &kty)) {
        *why = "no \"kty\" string";
        return JwkResult::refused;
    }

    /* the key's own "alg": one we do not know is not a signing alg of ours */
    Alg  jwk_alg = Alg::none_or_unknown;
    node = doc_.member(obj_, "alg");
    if (node != json::Document::npos) {
        std::string name;

        if (doc_.node(node).type != json::Type::string) {
            *why = "\"alg\" is not a string";
            return JwkResult::refused;
        }
        if (!doc_.string_value(node, &name)) {
            throw std::bad_alloc();
        }

        jwk_alg = alg_from_name(
            reinterpret_cast<const unsigned char *>(name.data()), name.size());

        if (name == "none") {
            *why = "its \"alg\" is none, which is never accepted";
            return JwkResult::refused;
        }

        if (jwk_alg == Alg::none_or_unknown) {
            return JwkResult::skipped;  /* e.g. RSA-OAEP: not for signing */
        }
    }

    std::unique_ptr<KeySet::Key>  key;
    KeyKind                       kind;
    PkeyPtr                       pkey;
    WipedBytes                    secret;
    JwkResult                     r;

    if (string_is(kty, "RSA")) {
        kind = KeyKind::rsa;
        r = rsa(&pkey, why);

    } else if (string_is(kty, "EC")) {
        r = ec(&pkey, &kind, why);

    } else if (string_is(kty, "OKP")) {
        kind = KeyKind::ed25519;
        r = okp(&pkey, why);

    } else if (string_is(kty, "oct")) {
        kind = KeyKind::secret;
        r = decode_member(doc_, doc_.member(obj_, "k"), &secret.bytes)
            ? JwkResult::taken : JwkResult::refused;
        if (r == JwkResult::refused) {
            *why = "no valid base64url \"k\"";
        }

    } else {
        return JwkResult::skipped;      /* RFC 7517 5: ignore unknown kty */
    }

    if (r != JwkResult::taken) {
        return r;
    }

    /* the algorithm: alg= of the directive, else the key's, else its type */
    Alg alg = bind_ != Alg::none_or_unknown ? bind_
              : jwk_alg != Alg::none_or_unknown ? jwk_alg
              : default_alg(kind);

    if (jwk_alg != Alg::none_or_unknown && jwk_alg != alg) {
        *why = std::string("its \"alg\" ") + alg_name(jwk_alg)
               + " conflicts with alg=" + alg_name(alg);
        return JwkResult::refused;
    }

    if (!alg_fits(kind, alg)) {
        *why = std::string(kind_name(kind)) + " cannot verify "
               + alg_name(alg);
        return JwkResult::refused;
    }

    if (kind == KeyKind::secret) {
        if (secret.bytes.size() < min_secret_len(alg)) {
            *why = std::string("an HMAC secret shorter than ")
                   + std::to_string(min_secret_len(alg)) + " bytes for "
                   + alg_name(alg);
            return JwkResult::refused;
        }

        key = make_secret_key(
            reinterpret_cast<const unsigned char *>(secret.bytes.data()),
            secret.bytes.size(), alg, why);

    } else {
        key = make_pkey_key(std::move(pkey), alg, why);
    }

    if (!key) {
        return JwkResult::refused;
    }

    node = doc_.member(obj_, "kid");
    if (node != json::Document::npos) {
        if (doc_.node(node).type != json::Type::string) {
            *why = "\"kid\" is not a string";
            return JwkResult::refused;
        }
        if (!doc_.string_value(node, &key->kid)) {
            throw std::bad_alloc();
        }
        key->has_kid = true;
    }

    *out = std::move(key);
    return JwkResult::taken;
}


PkeyPtr JwkReader::from_params(const char *type, OSSL_PARAM_BLD *bld)
{
    ParamPtr    params(OSSL_PARAM_BLD_to_param(bld));
    PkeyCtxPtr  ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
    EVP_PKEY   *pkey = nullptr;

    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1
        || EVP_PKEY_fromdata(ctx.get(), &pkey, EVP_PKEY_PUBLIC_KEY,
                             params.get()) != 1)
    {
        return nullptr;
    }

    return PkeyPtr(pkey);
}


JwkResult JwkReader::rsa(PkeyPtr *pkey, std::string *why)
{
    /* a set that carries private members is a private key: refuse it */
    static const char *const private_members[] = {
        "d", "p", "q", "dp", "dq", "qi", "oth",
    };

    for (const char *name : private_members) {
        if (has(name)) {
            *why = "an RSA private key (publish only \"n\" and \"e\")";
            return JwkResult::refused;
        }
    }

    std::string n, e;

    if (!decode_member(doc_, doc_.member(obj_, "n"), &n)
        || !decode_member(doc_, doc_.member(obj_, "e"), &e))
    {
        *why = "an RSA key without valid base64url \"n\" and \"e\"";
        return JwkResult::refused;
    }

    if (n.size() > max_rsa_bits / 8 + 1 || e.empty() || e.size() > 8) {
        *why = "an RSA key with an impossible \"n\" or \"e\"";
        return JwkResult::refused;
    }

    BnPtr bn_n(BN_bin2bn(reinterpret_cast<const unsigned char *>(n.data()),
                         static_cast<int>(n.size()), nullptr));
    BnPtr bn_e(BN_bin2bn(reinterpret_cast<const unsigned char *>(e.data()),
                         static_cast<int>(e.size()), nullptr));
    ParamBldPtr bld(OSSL_PARAM_BLD_new());

    if (!bn_n || !bn_e || !bld
        || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N,
                                  bn_n.get()) != 1
        || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E,
                                  bn_e.get()) != 1)
    {
        throw std::bad_alloc();
    }

    *pkey = from_params("RSA", bld.get());
    if (!*pkey) {
        *why = "an RSA key OpenSSL does not take";
        return JwkResult::refused;
    }

    const char *problem = pkey_problem(pkey->get(), KeyKind::rsa);
    if (problem != nullptr) {
        *why = problem;
        return JwkResult::refused;
    }

    return JwkResult::taken;
}


JwkResult JwkReader::ec(PkeyPtr *pkey, KeyKind *kind, std::string *why)
{
    size_t       crv;
    const char  *group;
    size_t       coord_len;

    if (!string_member(doc_, obj_, "crv", &crv)) {
        *why = "an EC key without a \"crv\" string";
        return JwkResult::refused;
    }

    if (string_is(crv, "P-256")) {
        *kind = KeyKind::ec_p256;
        group = "prime256v1";
        coord_len = 32;

    } else if (string_is(crv, "P-384")) {
        *kind = KeyKind::ec_p384;
        group = "secp384r1";
        coord_len = 48;

    } else {
        return JwkResult::skipped;      /* P-521, secp256k1: not ours */
    }

    if (has("d")) {
        *why = "an EC private key (publish only \"x\" and \"y\")";
        return JwkResult::refused;
    }

    std::string x, y;

    /* RFC 7518 6.2.1.2: coordinates have the full length of the curve */
    if (!decode_member(doc_, doc_.member(obj_, "x"), &x)
        || !decode_member(doc_, doc_.member(obj_, "y"), &y)
        || x.size() != coord_len || y.size() != coord_len)
    {
        *why = "an EC key without valid \"x\" and \"y\" for its curve";
        return JwkResult::refused;
    }

    std::string point = "\x04" + x + y;       /* uncompressed, SEC 1 */
    ParamBldPtr bld(OSSL_PARAM_BLD_new());

    if (!bld
        || OSSL_PARAM_BLD_push_utf8_string(bld.get(),
                                           OSSL_PKEY_PARAM_GROUP_NAME,
                                           group, 0) != 1
        || OSSL_PARAM_BLD_push_octet_string(bld.get(),
                                            OSSL_PKEY_PARAM_PUB_KEY,
                                            point.data(), point.size()) != 1)
    {
        throw std::bad_alloc();
    }

    *pkey = from_params("EC", bld.get());

    if (!*pkey || pkey_problem(pkey->get(), *kind) != nullptr) {
        *why = "an EC key whose point is not on its curve";
        return JwkResult::refused;
    }

    return JwkResult::taken;
}


JwkResult JwkReader::okp(PkeyPtr *pkey, std::string *why)
{
    size_t crv;

    if (!string_member(doc_, obj_, "crv", &crv)) {
        *why = "an OKP key without a \"crv\" string";
        return JwkResult::refused;
    }

    if (!string_is(crv, "Ed25519")) {
        return JwkResult::skipped;      /* Ed448, X25519 (not signing) */
    }

    if (has("d")) {
        *why = "an Ed25519 private key (publish only \"x\")";
        return JwkResult::refused;
    }

    std::string x;

    if (!decode_member(doc_, doc_.member(obj_, "x"), &x) || x.size() != 32) {
        *why = "an Ed25519 key without a valid 32-byte \"x\"";
        return JwkResult::refused;
    }

    ParamBldPtr bld(OSSL_PARAM_BLD_new());

    if (!bld
        || OSSL_PARAM_BLD_push_octet_string(bld.get(),
                                            OSSL_PKEY_PARAM_PUB_KEY,
                                            x.data(), x.size()) != 1)
    {
        throw std::bad_alloc();
    }

    *pkey = from_params("ED25519", bld.get());

    if (!*pkey || pkey_problem(pkey->get(), KeyKind::ed25519) != nullptr) {
        *why = "an Ed25519 key OpenSSL does not take";
        return JwkResult::refused;
    }

    return JwkResult::taken;
}


/* the label of each "-----BEGIN <label>-----" line, in order */
std::vector<std::string> pem_labels(const unsigned char *p, size_t n)
{
    static const char begin[] = "-----BEGIN ";
    const size_t      begin_len = sizeof(begin) - 1;

    std::vector<std::string> labels;

    for (size_t i = 0; i + begin_len <= n; i++) {
        if (std::memcmp(p + i, begin, begin_len) != 0) {
            continue;
        }

        size_t start = i + begin_len;
        size_t end = start;

        while (end < n && p[end] != '-' && p[end] != '\n') {
            end++;
        }

        labels.emplace_back(reinterpret_cast<const char *>(p + start),
                            end - start);
        i = end;
    }

    return labels;
}


/*
 * Reads the one public key of a PEM text: a "PUBLIC KEY" (SPKI) or the
 * key of a "CERTIFICATE" (only its key is used: neither its validity nor
 * its issuer mean anything for a configured key).
 */
PkeyPtr read_pem_pkey(const unsigned char *p, size_t n, std::string *error)
{
    std::vector<std::string> labels = pem_labels(p, n);

    for (const std::string &label : labels) {
        if (label.find("PRIVATE KEY") != std::string::npos) {
            *error = "holds a private key; give its public key "
                     "(openssl pkey -pubout)";
            return nullptr;
        }
    }

    if (labels.empty()) {
        *error = "holds no PEM block";
        return nullptr;
    }

    if (labels.size() > 1) {
        *error = "holds more than one PEM block; give one public key or "
                 "one certificate";
        return nullptr;
    }

    BioPtr bio(BIO_new_mem_buf(p, static_cast<int>(n)));
    if (!bio) {
        throw std::bad_alloc();
    }

    if (labels[0] == "PUBLIC KEY") {
        PkeyPtr pkey(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr,
                                         nullptr));
        if (!pkey) {
            *error = "holds a \"PUBLIC KEY\" OpenSSL cannot read";
        }
        return pkey;
    }

    if (labels[0] == "CERTIFICATE") {
        X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
        PkeyPtr pkey(cert ? X509_get_pubkey(cert.get()) : nullptr);

        if (!pkey) {
            *error = "holds a \"CERTIFICATE\" OpenSSL cannot read";
        }
        return pkey;
    }

    if (labels[0] == "RSA PUBLIC KEY") {
        *error = "holds an \"RSA PUBLIC KEY\" (PKCS #1); convert it to a "
                 "\"PUBLIC KEY\" (openssl rsa -RSAPublicKey_in -pubout)";
        return nullptr;
    }

    /* the label goes into a log line: only when it is plain and short */
    bool plain = labels[0].size() <= 40;
    for (char c : labels[0]) {
        plain = plain && ((c >= 'A' && c <= 'Z') || c == ' ');
    }

    *error = (plain ? "holds a \"" + labels[0] + "\" block"
                    : std::string("holds an unknown PEM block"))
             + ", not a \"PUBLIC KEY\" or a \"CERTIFICATE\"";
    return nullptr;
}

} // namespace


KeySet::Key::~Key()
{
    EVP_PKEY_free(pkey);
    EVP_MAC_CTX_free(mac);
    EVP_MD_free(md);
}


KeySet::KeySet() = default;
KeySet::~KeySet() = default;


size_t KeySet::size() const
{
    return keys_.size();
}


bool KeySet::add_secret(const unsigned char *p, size_t n, Slice kid, Alg alg,
                        std::string *error)
{
    try {
        error->clear();

        if (alg == Alg::none_or_unknown) {
            alg = Alg::HS256;
        }

        if (alg_family(alg) != AlgFamily::hmac) {
            *error = std::string("a secret cannot verify ") + alg_name(alg);
            return false;
        }

        if (n < min_secret_len(alg)) {
            *error = "the secret is shorter than "
                     + std::to_string(min_secret_len(alg)) + " bytes, "
                     "the least " + alg_name(alg) + " allows";
            return false;
        }

        if (n > max_key_file_len) {
            *error = "the secret is longer than 1 MB";
            return false;
        }

        std::unique_ptr<Key> key = make_secret_key(p, n, alg, error);

        if (key && kid.len > 0) {
            key->has_kid = true;
            key->kid.assign(reinterpret_cast<const char *>(kid.data),
                            kid.len);
        }

        ERR_clear_error();

        if (!key) {
            return false;
        }

        keys_.push_back(std::move(key));
        return true;

    } catch (const std::bad_alloc &) {
        ERR_clear_error();
        *error = "out of memory";
        return false;
    }
}


bool KeySet::add_pem(const unsigned char *p, size_t n, Alg alg,
                     std::string *error)
{
    try {
        error->clear();

        if (n > max_key_file_len) {
            *error = "is larger than 1 MB";
            return false;
        }

        PkeyPtr pkey = read_pem_pkey(p, n, error);
        ERR_clear_error();

        if (!pkey) {
            return false;
        }

        KeyKind kind = pkey_kind(pkey.get());

        if (kind == KeyKind::unsupported) {
            *error = "holds a key type that is not RSA, EC P-256, "
                     "EC P-384 or Ed25519";
            return false;
        }

        if (alg == Alg::none_or_unknown) {
            alg = default_alg(kind);
        }

        if (!alg_fits(kind, alg)) {
            *error = std::string("holds ") + kind_name(kind)
                     + ", which cannot verify " + alg_name(alg);
            return false;
        }

        const char *problem = pkey_problem(pkey.get(), kind);
        ERR_clear_error();

        if (problem != nullptr) {
            *error = std::string("holds ") + problem;
            return false;
        }

        std::unique_ptr<Key> key = make_pkey_key(std::move(pkey), alg, error);
        ERR_clear_error();

        if (!key) {
            return false;
        }

        keys_.push_back(std::move(key));
        return true;

    } catch (const std::bad_alloc &) {
        ERR_clear_error();
        *error = "out of memory";
        return false;
    }
}


bool KeySet::add_jwks(const unsigned char *p, size_t n, Alg alg,
                      std::string *error)
{
    try {
        error->clear();

        if (n > max_key_file_len) {
            *error = "is larger than 1 MB";
            return false;
        }

        if (alg != Alg::none_or_unknown && alg_family(alg) == AlgFamily::none) {
            *error = "alg= names no supported algorithm";
            return false;
        }

        json::Document doc;
        json::Error    e = doc.parse(p, n);

        if (e == json::Error::no_memory) {
            throw std::bad_alloc();
        }

        if (e != json::Error::ok) {
            *error = std::string("is not a valid JSON text (")
                     + json::error_name(e) + ")";
            return false;
        }

        size_t set = doc.member(0, "keys");

        if (set == json::Document::npos
            || doc.node(set).type != json::Type::array)
        {
            *error = "is not a JWK set: no \"keys\" array";
            return false;
        }

        std::vector<std::unique_ptr<Key>> taken;
        size_t c = set + 1;

        for (uint32_t k = 0; k < doc.node(set).count;
             k++, c = doc.node(c).next)
        {
            std::string why;

            if (doc.node(c).type != json::Type::object) {
                why = "not an object";

            } else {
                std::unique_ptr<Key> key;
                JwkResult r = JwkReader(doc, c, alg).read(&key, &why);

                ERR_clear_error();

                if (r == JwkResult::taken) {
                    taken.push_back(std::move(key));
                    continue;
                }

                if (r == JwkResult::skipped) {
                    continue;
                }
            }

            *error = "key " + std::to_string(k + 1) + " of the set: " + why;
            return false;
        }

        if (taken.empty()) {
            *error = "holds no key this module can verify signatures with";
            return false;
        }

        keys_.reserve(keys_.size() + taken.size());

        for (auto &key : taken) {
            keys_.push_back(std::move(key));
        }

        return true;

    } catch (const std::bad_alloc &) {
        ERR_clear_error();
        *error = "out of memory";
        return false;
    }
}

} // namespace jwt
} // namespace sse
