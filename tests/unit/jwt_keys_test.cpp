/*
 * KeySet: loading keys from JWKS, PEM and secrets, each bound to one
 * algorithm; malformed input refuses the whole file and adds nothing;
 * errors never carry key material.
 */

#include <gtest/gtest.h>

#include <openssl/x509.h>

#include <string>

#include "sse_jwt.h"
#include "sse_jwt_key.h"

#include "jwt_test_util.h"

using sse::jwt::Alg;
using sse::jwt::Claims;
using sse::jwt::KeySet;
using sse::jwt::Options;
using sse::jwt::Status;

using namespace jwt_test;

namespace {

constexpr int64_t now = 1700000000;

const std::string payload = "{\"exp\":" + std::to_string(now + 60) + "}";

struct Keys {
    Pkey rsa = make_rsa(2048);
    Pkey rsa_short = make_rsa(1024);
    Pkey p256 = make_ec("P-256");
    Pkey p384 = make_ec("P-384");
    Pkey p521 = make_ec("P-521");
    Pkey ed = make_ed25519();
};

const Keys &keys()
{
    static Keys k;
    return k;
}

const std::string secret32(32, 's');
const std::string secret64 = std::string(32, 's') + std::string(32, 't');

bool jwks(KeySet *set, const std::string &text, std::string *error,
          Alg alg = Alg::none_or_unknown)
{
    return set->add_jwks(bytes(text), text.size(), alg, error);
}

bool pem(KeySet *set, const std::string &text, std::string *error,
         Alg alg = Alg::none_or_unknown)
{
    return set->add_pem(bytes(text), text.size(), alg, error);
}

std::string set_of(const std::string &members)
{
    return "{\"keys\":[" + members + "]}";
}

std::string jwk(EVP_PKEY *key, const std::string &extra = "")
{
    return "{" + jwk_members(key) + (extra.empty() ? "" : "," + extra) + "}";
}

std::string oct(const std::string &secret, const std::string &extra = "")
{
    return "{\"kty\":\"oct\",\"k\":\"" + b64(secret) + "\""
           + (extra.empty() ? "" : "," + extra) + "}";
}

Status check(const KeySet &set, const std::string &token)
{
    Options opt;
    opt.now = now;
    Claims claims;
    return sse::jwt::verify(set, slice(token), opt, &claims);
}

std::string token(Alg alg, EVP_PKEY *key, const std::string &kid = "",
                  const std::string &secret = "")
{
    return sign_raw(alg, key, secret, header_for(alg, kid), payload);
}

std::string certificate(EVP_PKEY *key)
{
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), -60);     /* expired: no matter */
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char *>("t"),
                               -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509_set_pubkey(x, key);
    X509_sign(x, key, EVP_PKEY_is_a(key, "ED25519") ? nullptr : EVP_sha256());

    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(bio, x);
    char *data = nullptr;
    long len = BIO_get_mem_data(bio, &data);
    std::string text(data, size_t(len));
    BIO_free(bio);
    X509_free(x);
    return text;
}

} // namespace


TEST(JwtKeys, JwksWithEveryKeyType)
{
    KeySet       set;
    std::string  error;

    ASSERT_TRUE(jwks(&set, set_of(
        jwk(keys().rsa.get(), "\"kid\":\"rsa\",\"use\":\"sig\"") + ","
        + jwk(keys().rsa.get(), "\"kid\":\"pss\",\"alg\":\"PS384\"") + ","
        + jwk(keys().p256.get(), "\"kid\":\"p256\"") + ","
        + jwk(keys().p384.get(), "\"kid\":\"p384\",\"key_ops\":[\"verify\"]")
        + "," + jwk(keys().ed.get(), "\"kid\":\"ed\"") + ","
        + oct(secret64, "\"kid\":\"hs\",\"alg\":\"HS512\"")), &error))
        << error;

    ASSERT_EQ(set.size(), 6u);
    const Alg bound[] = { Alg::RS256, Alg::PS384, Alg::ES256, Alg::ES384,
                          Alg::EdDSA, Alg::HS512 };
    for (size_t i = 0; i < 6; i++) {
        EXPECT_EQ(set.keys()[i]->alg, bound[i]) << i;
        EXPECT_TRUE(set.keys()[i]->has_kid);
    }

    EXPECT_EQ(check(set, token(Alg::RS256, keys().rsa.get(), "rsa")),
              Status::ok);
    EXPECT_EQ(check(set, token(Alg::PS384, keys().rsa.get(), "pss")),
              Status::ok);
    EXPECT_EQ(check(set, token(Alg::RS256, keys().rsa.get(), "pss")),
              Status::bad_alg);
    EXPECT_EQ(check(set, token(Alg::ES256, keys().p256.get(), "p256")),
              Status::ok);
    EXPECT_EQ(check(set, token(Alg::ES384, keys().p384.get(), "p384")),
              Status::ok);
    EXPECT_EQ(check(set, token(Alg::EdDSA, keys().ed.get(), "ed")),
              Status::ok);
    EXPECT_EQ(check(set, token(Alg::HS512, nullptr, "hs", secret64)),
              Status::ok);
    EXPECT_EQ(check(set, token(Alg::HS256, nullptr, "hs", secret64)),
              Status::bad_alg);

    /* no kid: by alg */
    EXPECT_EQ(check(set, token(Alg::ES384, keys().p384.get())), Status::ok);
    EXPECT_EQ(check(set, token(Alg::PS256, keys().rsa.get())), Status::no_key);
}


TEST(JwtKeys, JwksBindingByDirective)
{
    std::string error;

    KeySet pss;
    ASSERT_TRUE(jwks(&pss, set_of(jwk(keys().rsa.get())), &error, Alg::PS512))
        << error;
    EXPECT_EQ(pss.keys()[0]->alg, Alg::PS512);
    EXPECT_EQ(check(pss, token(Alg::PS512, keys().rsa.get())), Status::ok);
    EXPECT_EQ(check(pss, token(Alg::RS256, keys().rsa.get())), Status::no_key);

    /* a key that cannot do the directive's alg refuses the file */
    KeySet set;
    EXPECT_FALSE(jwks(&set, set_of(jwk(keys().rsa.get()) + ","
                                   + jwk(keys().p256.get())),
                      &error, Alg::RS256));
    EXPECT_NE(error.find("RS256"), std::string::npos) << error;
    EXPECT_EQ(set.size(), 0u);

    EXPECT_FALSE(jwks(&set, set_of(oct(secret32)), &error, Alg::ES256));
    EXPECT_FALSE(jwks(&set, set_of(jwk(keys().p256.get())), &error,
                      Alg::ES384));
    EXPECT_FALSE(jwks(&set, set_of(jwk(keys().ed.get())), &error,
                      Alg::HS256));

    /* the key's own alg conflicting with the directive's */
    EXPECT_FALSE(jwks(&set, set_of(jwk(keys().rsa.get(),
                                       "\"alg\":\"RS384\"")),
                      &error, Alg::RS256));
    EXPECT_NE(error.find("conflicts"), std::string::npos) << error;

    /* a key's own alg it cannot do */
    EXPECT_FALSE(jwks(&set, set_of(jwk(keys().rsa.get(),
                                       "\"alg\":\"ES256\"")), &error));
    EXPECT_FALSE(jwks(&set, set_of(jwk(keys().p256.get(),
                                       "\"alg\":\"ES384\"")), &error));
    EXPECT_FALSE(jwks(&set, set_of(oct(secret32, "\"alg\":\"RS256\"")),
                      &error));
    EXPECT_FALSE(jwks(&set, set_of(jwk(keys().rsa.get(),
                                       "\"alg\":\"none\"")), &error));
    EXPECT_EQ(set.size(), 0u);
}


TEST(JwtKeys, JwksSkipsKeysNotForVerifying)
{
    KeySet       set;
    std::string  error;

    ASSERT_TRUE(jwks(&set, set_of(
        jwk(keys().rsa.get(), "\"use\":\"enc\"") + ","
        + jwk(keys().rsa.get(), "\"key_ops\":[\"encrypt\",\"wrapKey\"]") + ","
        + jwk(keys().rsa.get(), "\"key_ops\":[]") + ","
        + jwk(keys().rsa.get(), "\"alg\":\"RSA-OAEP\"") + ","
        + jwk(keys().p521.get()) + ","
        + "{\"kty\":\"OKP\",\"crv\":\"X25519\",\"x\":\"" + b64(std::string(32, 'x')) + "\"},"
        + "{\"kty\":\"XYZ\",\"kid\":\"x\"},"
        + jwk(keys().p256.get(), "\"key_ops\":[\"sign\",\"verify\"]")),
        &error)) << error;

    ASSERT_EQ(set.size(), 1u);
    EXPECT_EQ(set.keys()[0]->alg, Alg::ES256);

    /* a set of nothing usable is an error */
    for (const std::string &text :
         { set_of(""), set_of(jwk(keys().rsa.get(), "\"use\":\"enc\"")),
           set_of("{\"kty\":\"XYZ\"}"), set_of(jwk(keys().p521.get())) })
    {
        KeySet empty;
        EXPECT_FALSE(jwks(&empty, text, &error)) << text;
        EXPECT_FALSE(error.empty());
        EXPECT_EQ(empty.size(), 0u);
    }
}


TEST(JwtKeys, JwksMalformedRefusesTheWholeFile)
{
    const std::string good = jwk(keys().p256.get()) + ",";
    const std::string x32 = b64(std::string(32, '\1'));
    const std::string x48 = b64(std::string(48, '\1'));
    const std::string n = b64(bn_param(keys().rsa.get(),
                                       OSSL_PKEY_PARAM_RSA_N));

    /* a point on P-256 given as P-384, and the other way round */
    std::string p256_as_384 = jwk(keys().p256.get());
    p256_as_384.replace(p256_as_384.find("P-256"), 5, "P-384");
    std::string p384_as_256 = jwk(keys().p384.get());
    p384_as_256.replace(p384_as_256.find("P-384"), 5, "P-256");

    /* a valid x with the y of another point: not on the curve */
    std::string off_curve = "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\""
        + b64(bn_param(keys().p256.get(), OSSL_PKEY_PARAM_EC_PUB_X, 32))
        + "\",\"y\":\""
        + b64(bn_param(keys().p256.get(), OSSL_PKEY_PARAM_EC_PUB_X, 32))
        + "\"}";

    const std::string cases[] = {
        "",                                     /* not JSON */
        "{\"keys\":[",
        "{\"keys\":{}}",
        "{\"kty\":\"EC\"}",                     /* a JWK, not a set */
        "[]",
        "{\"keys\":[1]}",
        "{\"keys\":[],\"keys\":[]}",            /* duplicate */
        set_of(good + "{\"kty\":\"RSA\",\"n\":\"" + n + "\"}"),      /* no e */
        set_of(good + "{\"kty\":\"RSA\",\"e\":\"AQAB\"}"),           /* no n */
        set_of(good + "{\"kty\":\"RSA\",\"n\":\"" + n + "=\",\"e\":\"AQAB\"}"),
        set_of(good + "{\"kty\":\"RSA\",\"n\":\"" + n + "\",\"e\":\"AQA+\"}"),
        set_of(good + "{\"kty\":\"RSA\",\"n\":\"" + n + "\",\"e\":1}"),
        set_of(good + "{\"kty\":\"RSA\",\"n\":\"" + n + "\",\"e\":\"\"}"),
        set_of(good + "{\"kty\":\"RSA\",\"n\":\"" + n + "\",\"e\":\"AA\"}"),
        set_of(good + jwk(keys().rsa_short.get())),          /* 1024 bits */
        set_of(good + jwk(keys().rsa.get(), "\"d\":\"AQAB\"")),
        set_of(good + "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAA\","
                      "\"y\":\"AAAA\"}"),
        set_of(good + "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" + x32
               + "\",\"y\":\"" + x32 + "\"}"),
        set_of(good + "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" + x48
               + "\",\"y\":\"" + x48 + "\"}"),
        set_of(good + "{\"kty\":\"EC\",\"x\":\"" + x32 + "\",\"y\":\"" + x32
               + "\"}"),                                      /* no crv */
        set_of(good + p256_as_384),
        set_of(good + p384_as_256),
        set_of(good + off_curve),
        set_of(good + jwk(keys().p256.get(), "\"d\":\"" + x32 + "\"")),
        set_of(good + "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"" + x48
               + "\"}"),
        set_of(good + "{\"kty\":\"OKP\",\"crv\":\"Ed25519\"}"),
        set_of(good + jwk(keys().ed.get(), "\"d\":\"" + x32 + "\"")),
        set_of(good + oct(std::string(31, 'k'))),             /* short */
        set_of(good + oct(std::string(47, 'k'), "\"alg\":\"HS384\"")),
        set_of(good + oct(secret32, "\"alg\":\"HS512\"")),
        set_of(good + "{\"kty\":\"oct\"}"),
        set_of(good + "{\"kty\":\"oct\",\"k\":\"a+b/\"}"),
        set_of(good + "{\"k\":\"" + b64(secret32) + "\"}"),   /* no kty */
        set_of(good + "{\"kty\":7}"),
        set_of(good + jwk(keys().p256.get(), "\"kid\":7")),
        set_of(good + jwk(keys().p256.get(), "\"use\":1")),
        set_of(good + jwk(keys().p256.get(), "\"alg\":[\"ES256\"]")),
        set_of(good + jwk(keys().p256.get(), "\"key_ops\":\"verify\"")),
        set_of(good + jwk(keys().p256.get(), "\"key_ops\":[\"verify\",1]")),
        set_of(good + jwk(keys().p256.get(), "\"kid\":\"a\",\"kid\":\"b\"")),
    };

    for (const std::string &text : cases) {
        KeySet       set;
        std::string  error;

        /* something already in the set stays, nothing is added */
        ASSERT_TRUE(set.add_secret(bytes(secret32), secret32.size(),
                                   { nullptr, 0 }, Alg::HS256, &error));
        EXPECT_FALSE(jwks(&set, text, &error)) << text;
        EXPECT_FALSE(error.empty()) << text;
        EXPECT_EQ(set.size(), 1u) << text;

        /* the reason says nothing of the key material */
        EXPECT_EQ(error.find(n.substr(0, 16)), std::string::npos) << error;
        EXPECT_EQ(error.find(x32.substr(0, 16)), std::string::npos) << error;
    }
}


TEST(JwtKeys, PemPublicKeysAndCertificates)
{
    struct Case { EVP_PKEY *key; Alg alg; };
    const Case cases[] = {
        { keys().rsa.get(), Alg::RS256 }, { keys().p256.get(), Alg::ES256 },
        { keys().p384.get(), Alg::ES384 }, { keys().ed.get(), Alg::EdDSA },
    };

    for (const Case &c : cases) {
        SCOPED_TRACE(sse::jwt::alg_name(c.alg));

        for (const std::string &text : { public_pem(c.key),
                                         certificate(c.key) })
        {
            KeySet       set;
            std::string  error;

            ASSERT_TRUE(pem(&set, text, &error)) << error;
            ASSERT_EQ(set.size(), 1u);
            EXPECT_EQ(set.keys()[0]->alg, c.alg);
            EXPECT_FALSE(set.keys()[0]->has_kid);
            EXPECT_EQ(check(set, token(c.alg, c.key)), Status::ok);

            /* a token with a kid finds no key: a PEM key has none */
            EXPECT_EQ(check(set, token(c.alg, c.key, "k")),
                      Status::unknown_kid);
        }
    }

    /* text around the block, as "openssl x509 -text" leaves it, is fine */
    KeySet       set;
    std::string  error;
    ASSERT_TRUE(pem(&set, "Subject: CN=t\n" + public_pem(keys().p256.get())
                          + "\ntrailing words\n", &error)) << error;

    /* the RSA key bound by the directive */
    for (Alg alg : { Alg::RS384, Alg::RS512, Alg::PS256, Alg::PS384,
                     Alg::PS512 })
    {
        KeySet rsa;
        ASSERT_TRUE(pem(&rsa, public_pem(keys().rsa.get()), &error, alg))
            << error;
        EXPECT_EQ(check(rsa, token(alg, keys().rsa.get())), Status::ok);
        EXPECT_EQ(check(rsa, token(Alg::RS256, keys().rsa.get())),
                  Status::no_key);
    }
}


TEST(JwtKeys, PemRefusals)
{
    const std::string rsa = public_pem(keys().rsa.get());
    const std::string two = rsa + public_pem(keys().p256.get());

    struct Case {
        std::string  text;
        Alg          alg;
        const char  *says;
    };

    const Case cases[] = {
        { private_pem(keys().rsa.get()), Alg::none_or_unknown, "private" },
        { private_pem(keys().p256.get()), Alg::none_or_unknown, "private" },
        { private_pem(keys().ed.get()), Alg::none_or_unknown, "private" },
        /* a public key with its private key after it */
        { rsa + private_pem(keys().rsa.get()), Alg::none_or_unknown,
          "private" },
        { "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
          Alg::none_or_unknown, "private" },
        { "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n"
          "-----END ENCRYPTED PRIVATE KEY-----\n", Alg::none_or_unknown,
          "private" },
        { two, Alg::none_or_unknown, "more than one" },
        { "", Alg::none_or_unknown, "no PEM" },
        { "just words", Alg::none_or_unknown, "no PEM" },
        { "-----BEGIN PUBLIC KEY-----\nnot base64 at all\n"
          "-----END PUBLIC KEY-----\n", Alg::none_or_unknown, "PUBLIC KEY" },
        { rsa.substr(0, rsa.size() / 2), Alg::none_or_unknown, "PUBLIC KEY" },
        { "-----BEGIN RSA PUBLIC KEY-----\nAAAA\n-----END RSA PUBLIC KEY-----\n",
          Alg::none_or_unknown, "RSA PUBLIC KEY" },
        { public_pem(keys().rsa_short.get()), Alg::none_or_unknown, "2048" },
        { certificate(keys().rsa_short.get()), Alg::none_or_unknown, "2048" },
        { public_pem(keys().p521.get()), Alg::none_or_unknown,
          "not RSA, EC P-256, EC P-384 or Ed25519" },
        { rsa, Alg::HS256, "HS256" },
        { rsa, Alg::ES256, "ES256" },
        { rsa, Alg::EdDSA, "EdDSA" },
        { public_pem(keys().p256.get()), Alg::RS256, "RS256" },
        { public_pem(keys().p256.get()), Alg::ES384, "ES384" },
        { public_pem(keys().p384.get()), Alg::ES256, "ES256" },
        { public_pem(keys().ed.get()), Alg::ES256, "ES256" },
    };

    for (const Case &c : cases) {
        KeySet       set;
        std::string  error;

        EXPECT_FALSE(pem(&set, c.text, &error, c.alg)) << c.says;
        EXPECT_NE(error.find(c.says), std::string::npos)
            << "'" << error << "' should say '" << c.says << "'";
        EXPECT_EQ(set.size(), 0u);
    }
}


TEST(JwtKeys, Secrets)
{
    struct Case { Alg alg; size_t min; };
    const Case cases[] = {
        { Alg::HS256, 32 }, { Alg::HS384, 48 }, { Alg::HS512, 64 },
        { Alg::none_or_unknown, 32 },
    };

    for (const Case &c : cases) {
        KeySet       set;
        std::string  error;
        std::string  secret(c.min, '\x01');

        EXPECT_FALSE(set.add_secret(bytes(secret), c.min - 1, { nullptr, 0 },
                                    c.alg, &error));
        EXPECT_NE(error.find(std::to_string(c.min)), std::string::npos)
            << error;
        EXPECT_FALSE(set.add_secret(bytes(secret), 0, { nullptr, 0 }, c.alg,
                                    &error));
        ASSERT_TRUE(set.add_secret(bytes(secret), c.min, { nullptr, 0 },
                                   c.alg, &error)) << error;
        ASSERT_EQ(set.size(), 1u);

        Alg alg = c.alg == Alg::none_or_unknown ? Alg::HS256 : c.alg;
        EXPECT_EQ(set.keys()[0]->alg, alg);
        EXPECT_EQ(check(set, token(alg, nullptr, "", secret)), Status::ok);
    }

    /* the bytes exactly: a trailing newline is part of the secret */
    KeySet       set;
    std::string  error;
    const std::string with_newline = secret32 + "\n";
    ASSERT_TRUE(set.add_secret(bytes(with_newline), with_newline.size(),
                               { nullptr, 0 }, Alg::HS256, &error));
    EXPECT_EQ(check(set, token(Alg::HS256, nullptr, "", with_newline)),
              Status::ok);
    EXPECT_EQ(check(set, token(Alg::HS256, nullptr, "", secret32)),
              Status::bad_signature);

    /* a kid */
    const std::string kid = "k1";
    ASSERT_TRUE(set.add_secret(bytes(secret32), secret32.size(), slice(kid),
                               Alg::HS256, &error));
    EXPECT_TRUE(set.keys()[1]->has_kid);
    EXPECT_EQ(set.keys()[1]->kid, "k1");
    EXPECT_EQ(check(set, token(Alg::HS256, nullptr, "k1", secret32)),
              Status::ok);

    /* not an HMAC algorithm */
    for (Alg alg : { Alg::RS256, Alg::ES256, Alg::EdDSA, Alg::PS512 }) {
        EXPECT_FALSE(set.add_secret(bytes(secret64), secret64.size(),
                                    { nullptr, 0 }, alg, &error));
        EXPECT_NE(error.find(sse::jwt::alg_name(alg)), std::string::npos);
    }
    EXPECT_EQ(set.size(), 2u);
}


/* rotation: keys from several files live side by side */
TEST(JwtKeys, SeveralFilesAtOnce)
{
    KeySet       set;
    std::string  error;
    Pkey         next = make_ec("P-256");

    ASSERT_TRUE(jwks(&set, set_of(jwk(keys().p256.get(), "\"kid\":\"old\"")),
                     &error));
    ASSERT_TRUE(jwks(&set, set_of(jwk(next.get(), "\"kid\":\"new\"")),
                     &error));
    ASSERT_TRUE(pem(&set, public_pem(keys().ed.get()), &error));
    ASSERT_TRUE(set.add_secret(bytes(secret32), secret32.size(),
                               { nullptr, 0 }, Alg::HS256, &error));
    EXPECT_EQ(set.size(), 4u);

    EXPECT_EQ(check(set, token(Alg::ES256, keys().p256.get(), "old")),
              Status::ok);
    EXPECT_EQ(check(set, token(Alg::ES256, next.get(), "new")), Status::ok);
    EXPECT_EQ(check(set, token(Alg::ES256, next.get(), "old")),
              Status::bad_signature);
    EXPECT_EQ(check(set, token(Alg::ES256, next.get())), Status::ok);
    EXPECT_EQ(check(set, token(Alg::EdDSA, keys().ed.get())), Status::ok);
    EXPECT_EQ(check(set, token(Alg::HS256, nullptr, "", secret32)),
              Status::ok);
}
