/*
 * Token verification: sse::jwt::verify() with keys made in the test, the
 * published RFC examples as known answers, and the attacks a hostile
 * client would try (alg none, algorithm confusion, unknown kid, every
 * flipped bit, every truncation, non-canonical base64url).
 */

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sse_base64url.h"
#include "sse_json.h"
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

const char hs_secret[] = "0123456789abcdef0123456789abcdef0123456789abcdef"
                         "0123456789abcdef";       /* 64 bytes */

std::string claims_json(const std::string &extra = "")
{
    std::string c = "{\"sub\":\"42\",\"exp\":" + std::to_string(now + 600)
                    + ",\"sse\":{\"subscribe\":[\"user:42:*\"]}";
    if (!extra.empty()) {
        c += "," + extra;
    }
    return c + "}";
}

Options options()
{
    Options opt;
    opt.now = now;
    return opt;
}

Status check(const KeySet &keys, const std::string &token,
             const Options &opt = options(), Claims *out = nullptr)
{
    Claims claims;
    return sse::jwt::verify(keys, slice(token), opt, out ? out : &claims);
}

/* keys made once for the whole test binary: RSA generation is slow */
struct Keys {
    Pkey rsa = make_rsa(2048);
    Pkey rsa2 = make_rsa(2048);
    Pkey p256 = make_ec("P-256");
    Pkey p384 = make_ec("P-384");
    Pkey ed = make_ed25519();
    Pkey ed2 = make_ed25519();
};

const Keys &keys()
{
    static Keys k;
    return k;
}

EVP_PKEY *private_key_for(Alg alg)
{
    switch (alg) {
    case Alg::ES256: return keys().p256.get();
    case Alg::ES384: return keys().p384.get();
    case Alg::EdDSA: return keys().ed.get();
    default:         return keys().rsa.get();
    }
}

bool is_hmac(Alg alg)
{
    return alg == Alg::HS256 || alg == Alg::HS384 || alg == Alg::HS512;
}

/* a KeySet holding the one key that verifies alg, bound to alg */
void add_key_for(KeySet *set, Alg alg, const std::string &kid = "")
{
    std::string error;

    if (is_hmac(alg)) {
        ASSERT_TRUE(set->add_secret(bytes(hs_secret), sizeof(hs_secret) - 1,
                                    slice(kid), alg, &error))
            << error;
        return;
    }

    std::string pem = public_pem(private_key_for(alg));

    if (kid.empty()) {
        ASSERT_TRUE(set->add_pem(bytes(pem), pem.size(), alg, &error))
            << error;
        return;
    }

    std::string jwks = "{\"keys\":[{" + jwk_members(private_key_for(alg))
                       + ",\"kid\":\"" + kid + "\"}]}";
    ASSERT_TRUE(set->add_jwks(bytes(jwks), jwks.size(), alg, &error))
        << error;
}

std::string token_for(Alg alg, const std::string &payload = claims_json(),
                      const std::string &kid = "")
{
    return sign_raw(alg, private_key_for(alg), hs_secret,
                    header_for(alg, kid), payload);
}

const Alg all_algs[] = {
    Alg::HS256, Alg::HS384, Alg::HS512,
    Alg::RS256, Alg::RS384, Alg::RS512,
    Alg::PS256, Alg::PS384, Alg::PS512,
    Alg::ES256, Alg::ES384,
    Alg::EdDSA,
};

} // namespace


/* RFC 7515 appendix A.1: the published HS256 example, as a known answer */
TEST(JwtKnownAnswer, Rfc7515HS256)
{
    const std::string jwks =
        "{\"keys\":[{\"kty\":\"oct\",\"k\":\"AyM1SysPpbyDfgZld3umj1qzKObwVMko"
        "qQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow\"}]}";
    const std::string token =
        "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
        ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt"
        "cGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
        ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

    KeySet       set;
    std::string  error;
    ASSERT_TRUE(set.add_jwks(bytes(jwks), jwks.size(), Alg::none_or_unknown,
                             &error)) << error;

    Options opt;
    opt.now = 1300819379;
    opt.leeway = 0;

    Claims claims;
    ASSERT_EQ(check(set, token, opt, &claims), Status::ok);
    EXPECT_EQ(claims.exp, 1300819380);
    EXPECT_FALSE(claims.has_sub);

    const char name[] = "http://example.com/is_root";
    const std::string *root = claims.claim(
        reinterpret_cast<const unsigned char *>(name), sizeof(name) - 1);
    ASSERT_NE(root, nullptr);
    EXPECT_EQ(*root, "true");
    const std::string *iss = claims.claim(
        reinterpret_cast<const unsigned char *>("iss"), 3);
    ASSERT_NE(iss, nullptr);
    EXPECT_EQ(*iss, "joe");

    opt.now = 1300819380;
    EXPECT_EQ(check(set, token, opt), Status::expired);

    std::string bad = token;
    bad[bad.size() - 2] = bad[bad.size() - 2] == 'X' ? 'Y' : 'X';
    opt.now = 1300819379;
    EXPECT_EQ(check(set, bad, opt), Status::bad_signature);
}


/*
 * RFC 8037 appendix A.4: the published Ed25519 example.  Its payload is
 * not a claims object, so the signature is checked directly, and verify()
 * must get past the signature and stop at the claims.
 */
TEST(JwtKnownAnswer, Rfc8037Ed25519)
{
    const std::string jwks =
        "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\","
        "\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}]}";
    const std::string input =
        "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
    const std::string sig_b64 =
        "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5Bh"
        "VsPt9g7sVvpAr_MuM0KAg";

    KeySet       set;
    std::string  error;
    ASSERT_TRUE(set.add_jwks(bytes(jwks), jwks.size(), Alg::none_or_unknown,
                             &error)) << error;
    ASSERT_EQ(set.size(), 1u);
    EXPECT_EQ(set.keys()[0]->alg, Alg::EdDSA);

    std::string sig(64, '\0');
    size_t      len = 0;
    ASSERT_TRUE(sse::base64url_decode(bytes(sig_b64), sig_b64.size(),
                                      reinterpret_cast<unsigned char *>(
                                          &sig[0]), &len));
    ASSERT_EQ(len, 64u);

    EXPECT_TRUE(sse::jwt::signature_valid(*set.keys()[0], slice(input),
                                          slice(sig)));
    EXPECT_EQ(check(set, input + "." + sig_b64), Status::malformed);

    sig[10] ^= 1;
    EXPECT_FALSE(sse::jwt::signature_valid(*set.keys()[0], slice(input),
                                           slice(sig)));
    EXPECT_EQ(check(set, input + "." + b64(sig)), Status::bad_signature);
}


TEST(Jwt, EveryAlgorithmVerifies)
{
    for (Alg alg : all_algs) {
        SCOPED_TRACE(sse::jwt::alg_name(alg));

        KeySet set;
        add_key_for(&set, alg);

        Claims claims;
        ASSERT_EQ(check(set, token_for(alg), options(), &claims), Status::ok);
        EXPECT_EQ(claims.exp, now + 600);
        EXPECT_TRUE(claims.has_sub);
        EXPECT_EQ(claims.sub, "42");
        EXPECT_TRUE(claims.has_subscribe);
        EXPECT_FALSE(claims.has_publish);
        ASSERT_EQ(claims.subscribe.size(), 1u);
        EXPECT_EQ(claims.subscribe[0], "user:42:*");
    }
}


TEST(Jwt, KeyOfAnotherAlgorithmNeverVerifies)
{
    for (Alg key_alg : all_algs) {
        KeySet set;
        add_key_for(&set, key_alg);

        for (Alg alg : all_algs) {
            if (alg == key_alg) {
                continue;
            }
            SCOPED_TRACE(std::string(sse::jwt::alg_name(key_alg)) + " key, "
                         + sse::jwt::alg_name(alg) + " token");
            EXPECT_EQ(check(set, token_for(alg)), Status::no_key);
        }
    }
}


TEST(Jwt, Patterns)
{
    auto m = [](const char *p, const char *c) {
        return sse::jwt::pattern_matches(
            { reinterpret_cast<const unsigned char *>(p), strlen(p) },
            { reinterpret_cast<const unsigned char *>(c), strlen(c) });
    };

    EXPECT_TRUE(m("news", "news"));
    EXPECT_FALSE(m("news", "news2"));
    EXPECT_FALSE(m("news", "new"));
    EXPECT_TRUE(m("user:42:*", "user:42:a"));
    EXPECT_TRUE(m("user:42:*", "user:42:"));
    EXPECT_FALSE(m("user:42:*", "user:42"));
    EXPECT_FALSE(m("user:42:*", "user:420:a"));
    EXPECT_TRUE(m("*", "anything"));
    EXPECT_TRUE(m("*", "*"));
    EXPECT_TRUE(m("a*b", "a*b"));           /* '*' not last: a literal */
    EXPECT_FALSE(m("a*b", "axb"));
    EXPECT_TRUE(m("a*b*", "a*bc"));
    EXPECT_FALSE(m("a*b*", "axbc"));
    EXPECT_TRUE(m("**", "*"));
    EXPECT_FALSE(m("**", "x"));
    EXPECT_FALSE(m("", "x"));

    std::vector<std::string> list = { "a", "user:7:*" };
    const char ch[] = "user:7:x";
    EXPECT_TRUE(sse::jwt::patterns_allow(
        list, { reinterpret_cast<const unsigned char *>(ch), 8 }));
    EXPECT_FALSE(sse::jwt::patterns_allow(
        list, { reinterpret_cast<const unsigned char *>("b"), 1 }));
    EXPECT_FALSE(sse::jwt::patterns_allow(
        {}, { reinterpret_cast<const unsigned char *>("b"), 1 }));
}


/* alg "none" and its spellings, unknown algs, a missing alg */
TEST(JwtAttack, AlgNone)
{
    KeySet set;
    add_key_for(&set, Alg::HS256);

    const std::string payload = b64(claims_json());
    const std::string signed_hs = token_for(Alg::HS256);
    const std::string hs_sig = signed_hs.substr(signed_hs.rfind('.'));

    for (const char *alg : { "none", "None", "NONE", "nOnE", "hs256", "HS256 ",
                             "", "RS1", "ES512", "HS1024", "PS", "EdDSA\\u0000" })
    {
        SCOPED_TRACE(alg);
        std::string header = b64(std::string("{\"alg\":\"") + alg + "\"}");

        EXPECT_EQ(check(set, header + "." + payload + "."), Status::bad_alg);
        EXPECT_EQ(check(set, header + "." + payload + hs_sig),
                  Status::bad_alg);
    }

    /* no alg, or not a string: not a JWS header at all */
    for (const char *header : { "{}", "{\"alg\":null}", "{\"alg\":256}",
                                "{\"alg\":[\"HS256\"]}", "{\"typ\":\"JWT\"}",
                                "[\"HS256\"]", "\"HS256\"" })
    {
        SCOPED_TRACE(header);
        EXPECT_EQ(check(set, b64(header) + "." + payload + hs_sig),
                  Status::malformed);
    }
}


/*
 * Algorithm confusion (the libjwt RS256 -> HS256 trap): the RSA public
 * key's PEM bytes, which anyone may have, used as an HMAC secret must not
 * verify, because that key is bound to RS256; and a secret never verifies
 * a token whose header names an asymmetric algorithm.
 */
TEST(JwtAttack, AlgorithmConfusion)
{
    const std::string pem = public_pem(keys().rsa.get());
    std::string       error;

    KeySet rsa_set;
    ASSERT_TRUE(rsa_set.add_pem(bytes(pem), pem.size(), Alg::none_or_unknown,
                                &error)) << error;
    ASSERT_EQ(rsa_set.keys()[0]->alg, Alg::RS256);

    for (Alg alg : { Alg::HS256, Alg::HS384, Alg::HS512 }) {
        std::string forged = sign_raw(alg, nullptr, pem, header_for(alg),
                                      claims_json());
        EXPECT_EQ(check(rsa_set, forged), Status::no_key);
    }

    /* the same through a JWKS with a kid: the kid's key is RS256 */
    std::string jwks = "{\"keys\":[{" + jwk_members(keys().rsa.get())
                       + ",\"kid\":\"r1\"}]}";
    KeySet kid_set;
    ASSERT_TRUE(kid_set.add_jwks(bytes(jwks), jwks.size(),
                                 Alg::none_or_unknown, &error)) << error;

    std::string forged = sign_raw(Alg::HS256, nullptr, pem,
                                  header_for(Alg::HS256, "r1"),
                                  claims_json());
    EXPECT_EQ(check(kid_set, forged), Status::bad_alg);
    EXPECT_EQ(check(kid_set, token_for(Alg::RS256, claims_json(), "r1")),
              Status::ok);

    /* a secret never verifies an RS256 token, even one "signed" with it */
    KeySet secret_set;
    add_key_for(&secret_set, Alg::HS256, "s1");
    std::string input = b64(header_for(Alg::RS256, "s1")) + "."
                        + b64(claims_json());
    std::string mac = hmac("SHA256", hs_secret, input);
    EXPECT_EQ(check(secret_set, input + "." + b64(mac)), Status::bad_alg);
    input = b64(header_for(Alg::RS256)) + "." + b64(claims_json());
    mac = hmac("SHA256", hs_secret, input);
    EXPECT_EQ(check(secret_set, input + "." + b64(mac)), Status::no_key);

    /* an EC key with an ES384 header: bound to ES256, so no key */
    KeySet ec_set;
    add_key_for(&ec_set, Alg::ES256);
    std::string es384 = sign_raw(Alg::ES384, keys().p384.get(), "",
                                 header_for(Alg::ES384), claims_json());
    EXPECT_EQ(check(ec_set, es384), Status::no_key);
}


TEST(JwtAttack, KidSelectsOnlyAmongConfiguredKeys)
{
    KeySet set;
    add_key_for(&set, Alg::ES256, "ec1");
    add_key_for(&set, Alg::HS256, "hs1");
    add_key_for(&set, Alg::EdDSA, "ed1");

    EXPECT_EQ(check(set, token_for(Alg::ES256, claims_json(), "ec1")),
              Status::ok);
    EXPECT_EQ(check(set, token_for(Alg::HS256, claims_json(), "hs1")),
              Status::ok);
    EXPECT_EQ(check(set, token_for(Alg::EdDSA, claims_json(), "ed1")),
              Status::ok);

    /* a kid no key has; a kid that differs in case or length */
    for (const char *kid : { "ec2", "EC1", "ec", "ec1 ", "x" }) {
        EXPECT_EQ(check(set, token_for(Alg::ES256, claims_json(), kid)),
                  Status::unknown_kid) << kid;
    }

    /* the right alg with another key's kid */
    EXPECT_EQ(check(set, token_for(Alg::ES256, claims_json(), "hs1")),
              Status::bad_alg);

    /* without a kid, any key bound to the alg */
    EXPECT_EQ(check(set, token_for(Alg::ES256)), Status::ok);
    EXPECT_EQ(check(set, token_for(Alg::RS256)), Status::no_key);

    /* kid must be a string */
    std::string input = b64("{\"alg\":\"HS256\",\"kid\":1}") + "."
                        + b64(claims_json());
    EXPECT_EQ(check(set, input + "." + b64(hmac("SHA256", hs_secret, input))),
              Status::malformed);

    /* an embedded key, or where to fetch one, is never used */
    Pkey attacker = make_ec("P-256");
    std::string header = "{\"alg\":\"ES256\",\"jwk\":{"
                         + jwk_members(attacker.get())
                         + "},\"jku\":\"https://evil.example/k\","
                           "\"x5u\":\"https://evil.example/c\"}";
    std::string forged = sign_raw(Alg::ES256, attacker.get(), "", header,
                                  claims_json());
    EXPECT_EQ(check(set, forged), Status::bad_signature);
    std::string honest = sign_raw(Alg::ES256, keys().p256.get(), "", header,
                                  claims_json());
    EXPECT_EQ(check(set, honest), Status::ok);
}


/* SPEC: without a kid, at most the first four keys of the alg are tried */
TEST(JwtAttack, AtMostFourKeysWithoutKid)
{
    std::string error;

    for (size_t position = 1; position <= 6; position++) {
        KeySet set;

        for (size_t i = 1; i <= 6; i++) {
            std::string secret = i == position
                                 ? std::string(hs_secret)
                                 : std::string(40, char('a' + i));
            ASSERT_TRUE(set.add_secret(bytes(secret), secret.size(),
                                       { nullptr, 0 }, Alg::HS256, &error));
        }

        EXPECT_EQ(check(set, token_for(Alg::HS256)),
                  position <= 4 ? Status::ok : Status::bad_signature)
            << "right key at position " << position;
    }

    /* keys of other algs do not count against the four */
    KeySet set;
    for (int i = 0; i < 5; i++) {
        add_key_for(&set, Alg::EdDSA);
    }
    add_key_for(&set, Alg::HS256);
    EXPECT_EQ(check(set, token_for(Alg::HS256)), Status::ok);
}


TEST(JwtAttack, CritIsRefused)
{
    KeySet set;
    add_key_for(&set, Alg::HS256);

    for (const char *header :
         { "{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}",
           "{\"alg\":\"HS256\",\"b64\":false,\"crit\":[\"b64\"]}",
           "{\"alg\":\"HS256\",\"crit\":[]}" })
    {
        std::string token = sign_raw(Alg::HS256, nullptr, hs_secret, header,
                                     claims_json());
        EXPECT_EQ(check(set, token), Status::malformed) << header;
    }
}


TEST(JwtAttack, EveryFlippedBitFails)
{
    for (Alg alg : all_algs) {
        SCOPED_TRACE(sse::jwt::alg_name(alg));

        KeySet set;
        add_key_for(&set, alg);

        const std::string token = token_for(alg);
        ASSERT_EQ(check(set, token), Status::ok);

        size_t accepted = 0;
        for (size_t i = 0; i < token.size(); i++) {
            for (int bit = 0; bit < 8; bit++) {
                std::string bad = token;
                bad[i] = static_cast<char>(bad[i] ^ (1 << bit));
                accepted += check(set, bad) == Status::ok;
            }
        }
        EXPECT_EQ(accepted, 0u);
    }
}


TEST(JwtAttack, EveryTruncationFails)
{
    for (Alg alg : { Alg::HS256, Alg::RS256, Alg::PS256, Alg::ES256,
                     Alg::ES384, Alg::EdDSA })
    {
        SCOPED_TRACE(sse::jwt::alg_name(alg));

        KeySet set;
        add_key_for(&set, alg);

        const std::string token = token_for(alg);
        for (size_t n = 0; n < token.size(); n++) {
            EXPECT_NE(check(set, token.substr(0, n)), Status::ok) << n;
            EXPECT_NE(check(set, token.substr(token.size() - n)), Status::ok)
                << n;
        }

        /* and anything appended */
        for (const std::string &tail : { std::string("A"), std::string("AA"),
                                         std::string("."), std::string("="),
                                         std::string(" "), std::string("\n"),
                                         std::string(1, '\0') })
        {
            EXPECT_NE(check(set, token + tail), Status::ok) << tail;
        }
    }
}


TEST(JwtAttack, NonCanonicalBase64Refused)
{
    KeySet set;
    add_key_for(&set, Alg::HS256);

    const std::string token = token_for(Alg::HS256);
    const size_t dot1 = token.find('.');
    const size_t dot2 = token.rfind('.');

    /* '=' padding after any part */
    for (size_t at : { dot1, dot2, token.size() }) {
        for (const char *pad : { "=", "==", "===" }) {
            std::string bad = token;
            bad.insert(at, pad);
            EXPECT_EQ(check(set, bad), Status::malformed) << bad;
        }
    }

    /* the standard alphabet's '+' and '/' for '-' and '_' */
    std::string probe;
    for (int i = 0; probe.empty() || (probe.find('-') == std::string::npos
                                      && probe.find('_') == std::string::npos);
         i++)
    {
        probe = token_for(Alg::HS256,
                          claims_json("\"n\":" + std::to_string(i)));
    }

    size_t replaced = 0;
    for (size_t i = 0; i < probe.size(); i++) {
        if (probe[i] == '-' || probe[i] == '_') {
            std::string bad = probe;
            bad[i] = probe[i] == '-' ? '+' : '/';
            EXPECT_EQ(check(set, bad), Status::malformed) << bad;
            replaced++;
        }
    }
    EXPECT_GT(replaced, 0u);

    /* white space, and a part of impossible length */
    EXPECT_EQ(check(set, " " + token), Status::malformed);
    EXPECT_EQ(check(set, token.substr(0, dot1) + "\n" + token.substr(dot1)),
              Status::malformed);
    EXPECT_EQ(check(set, token.substr(0, dot2) + ".A"), Status::malformed);

    /* structure: parts */
    EXPECT_EQ(check(set, ""), Status::malformed);
    EXPECT_EQ(check(set, "."), Status::malformed);
    EXPECT_EQ(check(set, ".."), Status::malformed);
    EXPECT_EQ(check(set, "..."), Status::malformed);
    EXPECT_EQ(check(set, token.substr(0, dot2)), Status::malformed);
    EXPECT_EQ(check(set, token + ".x"), Status::malformed);
    EXPECT_EQ(check(set, token.substr(0, dot1) + ".." + token.substr(dot1)),
              Status::malformed);
}


/* JWS ECDSA signatures are r || s of exactly 64 / 96 bytes; DER is not */
TEST(JwtAttack, EcdsaSignatureForm)
{
    for (Alg alg : { Alg::ES256, Alg::ES384 }) {
        SCOPED_TRACE(sse::jwt::alg_name(alg));

        KeySet set;
        add_key_for(&set, alg);

        const std::string token = token_for(alg);
        const size_t dot2 = token.rfind('.');
        const std::string input = token.substr(0, dot2);
        std::string raw(96, '\0');
        size_t len = 0;
        std::string sig_b64 = token.substr(dot2 + 1);
        ASSERT_TRUE(sse::base64url_decode(bytes(sig_b64), sig_b64.size(),
                        reinterpret_cast<unsigned char *>(&raw[0]), &len));
        raw.resize(len);
        ASSERT_EQ(len, alg == Alg::ES256 ? 64u : 96u);

        /* the same signature in DER, as OpenSSL would give it */
        ECDSA_SIG *es = ECDSA_SIG_new();
        ECDSA_SIG_set0(es, BN_bin2bn(bytes(raw), int(len / 2), nullptr),
                       BN_bin2bn(bytes(raw) + len / 2, int(len / 2), nullptr));
        unsigned char *der = nullptr;
        int der_len = i2d_ECDSA_SIG(es, &der);
        ECDSA_SIG_free(es);
        std::string der_sig(reinterpret_cast<char *>(der), size_t(der_len));
        OPENSSL_free(der);

        EXPECT_EQ(check(set, input + "." + b64(der_sig)),
                  Status::bad_signature);

        /* one byte more or less, either end; zero-padded; empty */
        EXPECT_EQ(check(set, input + "." + b64(raw.substr(1))),
                  Status::bad_signature);
        EXPECT_EQ(check(set, input + "." + b64(raw.substr(0, len - 1))),
                  Status::bad_signature);
        EXPECT_EQ(check(set, input + "." + b64(std::string(1, '\0') + raw)),
                  Status::bad_signature);
        EXPECT_EQ(check(set, input + "." + b64(raw + std::string(1, '\0'))),
                  Status::bad_signature);
        EXPECT_EQ(check(set, input + "."), Status::bad_signature);
        EXPECT_EQ(check(set, input + "." + b64(std::string(len, '\0'))),
                  Status::bad_signature);

        /* r and s swapped */
        EXPECT_EQ(check(set, input + "." + b64(raw.substr(len / 2)
                                               + raw.substr(0, len / 2))),
                  Status::bad_signature);
    }
}


/* RSA signatures are exactly as long as the modulus */
TEST(JwtAttack, RsaSignatureLength)
{
    KeySet set;
    add_key_for(&set, Alg::RS256);

    const std::string token = token_for(Alg::RS256);
    const size_t dot2 = token.rfind('.');
    std::string sig(512, '\0');
    size_t len = 0;
    std::string sig_b64 = token.substr(dot2 + 1);
    ASSERT_TRUE(sse::base64url_decode(bytes(sig_b64), sig_b64.size(),
                    reinterpret_cast<unsigned char *>(&sig[0]), &len));
    sig.resize(len);
    ASSERT_EQ(len, 256u);

    const std::string input = token.substr(0, dot2);
    EXPECT_EQ(check(set, input + "." + b64(std::string(1, '\0') + sig)),
              Status::bad_signature);
    EXPECT_EQ(check(set, input + "." + b64(sig.substr(1))),
              Status::bad_signature);
    EXPECT_EQ(check(set, input + "."), Status::bad_signature);
}


TEST(JwtAttack, HugeTokens)
{
    KeySet set;
    add_key_for(&set, Alg::HS256);

    /*
     * Pad a claim, and a header member, until the token is exactly
     * max_token_len bytes (base64url skips some lengths, hence both).
     */
    auto padded = [&](size_t header_pad, size_t claim_pad) {
        return sign_raw(Alg::HS256, nullptr, hs_secret,
                        "{\"alg\":\"HS256\",\"h\":\""
                        + std::string(header_pad, 'h') + "\"}",
                        claims_json("\"pad\":\"" + std::string(claim_pad, 'x')
                                    + "\""));
    };

    const size_t max = sse::jwt::max_token_len;
    const size_t start = (max - padded(0, 0).size()) * 3 / 4 - 8;
    bool exact = false;

    for (size_t h = 0; h < 3 && !exact; h++) {
        for (size_t pad = start; pad < start + 16 && !exact; pad++) {
            std::string token = padded(h, pad);

            if (token.size() == max) {
                exact = true;
                EXPECT_EQ(check(set, token), Status::ok);

                /* one byte more in the claim: one letter or two more */
                std::string longer = padded(h, pad + 1);
                ASSERT_GT(longer.size(), max);
                EXPECT_EQ(check(set, longer), Status::malformed);
            }
        }
    }
    EXPECT_TRUE(exact);

    std::string token;
    token = token_for(Alg::HS256, claims_json("\"pad\":\""
                                              + std::string(64 * 1024, 'x')
                                              + "\""));
    EXPECT_EQ(check(set, token), Status::malformed);

    /* a header of thousands of members, and 16 KB of nothing */
    std::string header = "{\"alg\":\"HS256\"";
    for (int i = 0; header.size() < 11000; i++) {
        header += ",\"h" + std::to_string(i) + "\":[0]";
    }
    header += "}";
    token = sign_raw(Alg::HS256, nullptr, hs_secret, header, claims_json());
    EXPECT_EQ(check(set, token), Status::ok);
    EXPECT_EQ(check(set, std::string(sse::jwt::max_token_len, 'A')),
              Status::malformed);
    EXPECT_EQ(check(set, std::string(sse::jwt::max_token_len, '.')),
              Status::malformed);
}


TEST(JwtClaims, DuplicateKeysAndDepth)
{
    KeySet set;
    add_key_for(&set, Alg::HS256);

    const std::string exp = std::to_string(now + 600);

    /* a duplicate in the claims: which exp would count? neither */
    EXPECT_EQ(check(set, token_for(Alg::HS256,
                                   "{\"exp\":" + exp + ",\"exp\":1}")),
              Status::malformed);
    EXPECT_EQ(check(set, token_for(Alg::HS256,
                                   "{\"sub\":\"a\",\"exp\":" + exp
                                   + ",\"sub\":\"b\"}")),
              Status::malformed);
    EXPECT_EQ(check(set, token_for(Alg::HS256,
                                   "{\"exp\":" + exp
                                   + ",\"sse\":{\"subscribe\":[\"a\"],"
                                     "\"subscribe\":[\"*\"]}}")),
              Status::malformed);

    /* and in the header */
    std::string token = sign_raw(Alg::HS256, nullptr, hs_secret,
                                 "{\"alg\":\"HS256\",\"alg\":\"none\"}",
                                 claims_json());
    EXPECT_EQ(check(set, token), Status::malformed);

    /* depth: the claims object is level 1 */
    auto deep = [&](size_t levels) {
        std::string v = "1";
        for (size_t i = 0; i < levels; i++) {
            v = "[" + v + "]";
        }
        return token_for(Alg::HS256, claims_json("\"deep\":" + v));
    };
    EXPECT_EQ(check(set, deep(31)), Status::ok);
    EXPECT_EQ(check(set, deep(32)), Status::malformed);
    EXPECT_EQ(check(set, deep(1000)), Status::malformed);
}


TEST(JwtClaims, ExpIsRequiredAndANumber)
{
    KeySet set;
    add_key_for(&set, Alg::HS256);

    const std::string exp = std::to_string(now + 600);

    for (const std::string &claims :
         { std::string("{}"), std::string("{\"sub\":\"a\"}"),
           "{\"exp\":\"" + exp + "\"}", std::string("{\"exp\":null}"),
           std::string("{\"exp\":true}"), "{\"exp\":[" + exp + "]}",
           "{\"exp\":{\"v\":" + exp + "}}",
           "{\"exp\":" + exp + ",\"nbf\":\"0\"}",
           "{\"exp\":" + exp + ",\"iat\":null}",
           "{\"exp\":" + exp + ",\"sub\":42}",
           "{\"exp\":" + exp + ",\"sse\":[]}",
           "{\"exp\":" + exp + ",\"sse\":\"*\"}",
           "{\"exp\":" + exp + ",\"sse\":{\"subscribe\":\"*\"}}",
           "{\"exp\":" + exp + ",\"sse\":{\"publish\":[1]}}",
           "{\"exp\":" + exp + ",\"sse\":{\"publish\":[\"a\",null]}}",
           "{\"exp\":" + exp + ",\"sse\":{\"subscribe\":[[\"a\"]]}}",
           "[{\"exp\":" + exp + "}]", exp, std::string("\"x\"") })
    {
        EXPECT_EQ(check(set, token_for(Alg::HS256, claims)),
                  Status::malformed) << claims;
    }

    /* a fraction is allowed and floored; exponents too */
    Claims claims;
    ASSERT_EQ(check(set, token_for(Alg::HS256, "{\"exp\":" + exp + ".75}"),
                    options(), &claims), Status::ok);
    EXPECT_EQ(claims.exp, now + 600);
    ASSERT_EQ(check(set, token_for(Alg::HS256, "{\"exp\":1.7000006e9}"),
                    options(), &claims), Status::ok);
    EXPECT_EQ(claims.exp, 1700000600);
    ASSERT_EQ(check(set, token_for(Alg::HS256, "{\"exp\":1e300}"),
                    options(), &claims), Status::ok);
    EXPECT_EQ(claims.exp, sse::json::max_number_floor);
    EXPECT_EQ(check(set, token_for(Alg::HS256, "{\"exp\":-1e300}")),
              Status::expired);

    /* unknown claims, and an sse claim with neither role, are fine */
    ASSERT_EQ(check(set, token_for(Alg::HS256,
                                   "{\"exp\":" + exp + ",\"sse\":{},"
                                   "\"x\":{\"y\":[1,2,{}]}}"),
                    options(), &claims), Status::ok);
    EXPECT_FALSE(claims.has_subscribe);
    EXPECT_FALSE(claims.has_publish);
    EXPECT_FALSE(claims.has_sub);
}


TEST(JwtClaims, TimeEdges)
{
    KeySet set;
    add_key_for(&set, Alg::HS256);

    auto at = [&](const std::string &claims, int64_t leeway) {
        Options opt = options();
        opt.leeway = leeway;
        return check(set, token_for(Alg::HS256, claims), opt);
    };
    auto num = [](int64_t v) { return std::to_string(v); };

    /* exp: valid before exp + leeway (RFC 7519 4.1.4), not at it */
    EXPECT_EQ(at("{\"exp\":" + num(now + 1) + "}", 0), Status::ok);
    EXPECT_EQ(at("{\"exp\":" + num(now) + "}", 0), Status::expired);
    EXPECT_EQ(at("{\"exp\":" + num(now) + ".001}", 0), Status::ok);
    EXPECT_EQ(at("{\"exp\":" + num(now - 1) + ".999}", 0), Status::expired);
    EXPECT_EQ(at("{\"exp\":" + num(now - 29) + "}", 30), Status::ok);
    EXPECT_EQ(at("{\"exp\":" + num(now - 30) + "}", 30), Status::expired);
    EXPECT_EQ(at("{\"exp\":" + num(now - 31) + ".999}", 30), Status::expired);
    EXPECT_EQ(at("{\"exp\":" + num(now - 30) + ".001}", 30), Status::ok);
    EXPECT_EQ(at("{\"exp\":" + num(now - 30) + "e0}", 30), Status::expired);

    const std::string exp = "\"exp\":" + num(now + 600);

    /* nbf and iat: refused once more than leeway in the future */
    for (const char *claim : { "nbf", "iat" }) {
        SCOPED_TRACE(claim);
        auto with = [&](int64_t v, const char *frac = "") {
            return "{" + exp + ",\"" + claim + "\":" + num(v) + frac + "}";
        };
        EXPECT_EQ(at(with(now), 0), Status::ok);
        EXPECT_EQ(at(with(now + 1), 0), Status::not_yet_valid);
        EXPECT_EQ(at(with(now - 1, ".5"), 0), Status::ok);
        EXPECT_EQ(at(with(now, ".5"), 0), Status::not_yet_valid);
        EXPECT_EQ(at(with(now + 30), 30), Status::ok);
        EXPECT_EQ(at(with(now + 29, ".9"), 30), Status::ok);
        EXPECT_EQ(at(with(now + 30, ".1"), 30), Status::not_yet_valid);
        EXPECT_EQ(at(with(now + 31), 30), Status::not_yet_valid);
        EXPECT_EQ(at(with(now - 100000), 0), Status::ok);
        EXPECT_EQ(at(with(0), 0), Status::ok);
        EXPECT_EQ(at(with(-5), 0), Status::ok);
    }

    /* huge values and a huge leeway do not overflow into acceptance */
    EXPECT_EQ(at("{\"exp\":-9223372036854775808}", INT64_MAX),
              Status::expired);     /* -2^62 + a leeway clamped to 2^60 */
    EXPECT_EQ(at("{\"exp\":" + num(now - 1000) + "}", INT64_MAX),
              Status::ok);
    EXPECT_EQ(at("{\"exp\":-1e30}", 0), Status::expired);
    EXPECT_EQ(at("{" + exp + ",\"nbf\":1e30}", INT64_MAX),
              Status::not_yet_valid);
    EXPECT_EQ(at("{\"exp\":" + num(now - 1) + "}", -100), Status::expired);
    EXPECT_EQ(at("{\"exp\":" + num(now + 1) + "}", -100), Status::ok);
}


TEST(JwtClaims, IssuerAndAudience)
{
    KeySet set;
    add_key_for(&set, Alg::HS256);

    auto run = [&](const std::string &extra, const char *iss,
                   const char *aud) {
        Options opt = options();
        if (iss) {
            opt.issuer = { reinterpret_cast<const unsigned char *>(iss),
                           strlen(iss) };
        }
        if (aud) {
            opt.audience = { reinterpret_cast<const unsigned char *>(aud),
                             strlen(aud) };
        }
        return check(set, token_for(Alg::HS256, claims_json(extra)), opt);
    };

    const char *iss = "https://auth.example";

    EXPECT_EQ(run("\"iss\":\"https://auth.example\"", iss, nullptr),
              Status::ok);
    EXPECT_EQ(run("\"iss\":\"https:\\/\\/auth.example\"", iss, nullptr),
              Status::ok);
    EXPECT_EQ(run("\"iss\":\"https://auth.example/\"", iss, nullptr),
              Status::bad_issuer);
    EXPECT_EQ(run("\"iss\":\"https://auth.exampl\"", iss, nullptr),
              Status::bad_issuer);
    EXPECT_EQ(run("\"iss\":\"HTTPS://auth.example\"", iss, nullptr),
              Status::bad_issuer);
    EXPECT_EQ(run("", iss, nullptr), Status::bad_issuer);
    EXPECT_EQ(run("\"iss\":[\"https://auth.example\"]", iss, nullptr),
              Status::bad_issuer);
    EXPECT_EQ(run("\"iss\":\"anyone\"", nullptr, nullptr), Status::ok);

    EXPECT_EQ(run("\"aud\":\"sse\"", nullptr, "sse"), Status::ok);
    EXPECT_EQ(run("\"aud\":[\"web\",\"sse\"]", nullptr, "sse"), Status::ok);
    EXPECT_EQ(run("\"aud\":[1,{},\"sse\"]", nullptr, "sse"), Status::ok);
    EXPECT_EQ(run("\"aud\":[\"web\"]", nullptr, "sse"), Status::bad_audience);
    EXPECT_EQ(run("\"aud\":[]", nullptr, "sse"), Status::bad_audience);
    EXPECT_EQ(run("\"aud\":\"sse2\"", nullptr, "sse"), Status::bad_audience);
    EXPECT_EQ(run("\"aud\":[\"sse2\",\"ss\"]", nullptr, "sse"),
              Status::bad_audience);
    EXPECT_EQ(run("\"aud\":[[\"sse\"]]", nullptr, "sse"),
              Status::bad_audience);
    EXPECT_EQ(run("", nullptr, "sse"), Status::bad_audience);
    EXPECT_EQ(run("\"aud\":1", nullptr, "sse"), Status::bad_audience);

    EXPECT_EQ(run("\"iss\":\"https://auth.example\",\"aud\":\"sse\"", iss,
                  "sse"), Status::ok);
    EXPECT_EQ(run("\"iss\":\"x\",\"aud\":\"sse\"", iss, "sse"),
              Status::bad_issuer);
}


TEST(JwtClaims, EveryClaimAsText)
{
    KeySet set;
    add_key_for(&set, Alg::HS256);

    Claims claims;
    ASSERT_EQ(check(set, token_for(Alg::HS256,
                  "{ \"sub\" : \"u\\u00e9\", \"exp\": " + std::to_string(now)
                  + ".5 ,\"n\":-1.5e3,\"t\":true,\"z\":null,"
                    "\"o\":{\"a\": [1, \"x\"]},\"sse\":{\"publish\":[\"a*\","
                    "\"b\"],\"subscribe\":[]}}"),
                    options(), &claims), Status::ok);

    EXPECT_EQ(claims.sub, "u\xc3\xa9");
    EXPECT_EQ(claims.exp, now);
    EXPECT_TRUE(claims.has_publish);
    EXPECT_TRUE(claims.has_subscribe);
    EXPECT_TRUE(claims.subscribe.empty());
    ASSERT_EQ(claims.publish.size(), 2u);
    EXPECT_EQ(claims.publish[0], "a*");

    std::vector<std::pair<std::string, std::string>> expected = {
        { "sub", "u\xc3\xa9" }, { "exp", std::to_string(now) + ".5" },
        { "n", "-1.5e3" }, { "t", "true" }, { "z", "null" },
        { "o", "{\"a\": [1, \"x\"]}" },
        { "sse", "{\"publish\":[\"a*\",\"b\"],\"subscribe\":[]}" },
    };
    EXPECT_EQ(claims.all, expected);

    auto claim = [&](const char *name) {
        return claims.claim(reinterpret_cast<const unsigned char *>(name),
                            strlen(name));
    };
    ASSERT_NE(claim("o"), nullptr);
    EXPECT_EQ(*claim("o"), "{\"a\": [1, \"x\"]}");
    EXPECT_EQ(claim("missing"), nullptr);
    EXPECT_EQ(claim("su"), nullptr);
    EXPECT_EQ(claims.claim(nullptr, 0), nullptr);

    /* a refused token leaves claims as they were */
    Claims untouched;
    untouched.sub = "before";
    EXPECT_EQ(check(set, token_for(Alg::HS256, "{\"exp\":1}"), options(),
                    &untouched), Status::expired);
    EXPECT_EQ(untouched.sub, "before");
    EXPECT_TRUE(untouched.all.empty());
}


TEST(Jwt, StatusAndAlgNames)
{
    for (Alg alg : all_algs) {
        const char *name = sse::jwt::alg_name(alg);
        EXPECT_EQ(sse::jwt::alg_from_name(
                      reinterpret_cast<const unsigned char *>(name),
                      strlen(name)), alg);
    }
    EXPECT_STREQ(sse::jwt::alg_name(Alg::none_or_unknown), "?");
    EXPECT_EQ(sse::jwt::alg_from_name(
                  reinterpret_cast<const unsigned char *>("HS2560"), 6),
              Alg::none_or_unknown);
    EXPECT_EQ(sse::jwt::alg_from_name(
                  reinterpret_cast<const unsigned char *>("HS256"), 4),
              Alg::none_or_unknown);

    EXPECT_STREQ(sse::jwt::status_name(Status::expired), "expired");
    EXPECT_STREQ(sse::jwt::status_name(Status::bad_signature),
                 "bad_signature");
    EXPECT_STREQ(sse::jwt::status_name(Status::no_memory), "no_memory");
}


TEST(Jwt, TokenDigest)
{
    unsigned char d1[32], d2[32];
    const std::string a = "a.b.c", b = "a.b.d";

    ASSERT_TRUE(sse::jwt::token_digest(slice(a), d1));
    ASSERT_TRUE(sse::jwt::token_digest(slice(b), d2));
    EXPECT_NE(memcmp(d1, d2, 32), 0);

    /* SHA-256("abc"), FIPS 180-2 */
    const unsigned char abc[32] = {
        0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
        0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
        0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad,
    };
    ASSERT_TRUE(sse::jwt::token_digest(slice(std::string("abc")), d1));
    EXPECT_EQ(memcmp(d1, abc, 32), 0);
}


/*
 * signature_known_valid (a shared cache vouches for the signature): the
 * signature is not checked, everything else still is.
 */
TEST(JwtKnownValid, SkipsOnlyTheSignature)
{
    KeySet set;
    add_key_for(&set, Alg::ES256);

    std::string good = token_for(Alg::ES256);
    std::string forged = good.substr(0, good.rfind('.') + 1)
                         + std::string(86, 'A');

    Options known = options();
    known.signature_known_valid = true;

    EXPECT_EQ(check(set, forged), Status::bad_signature);
    EXPECT_EQ(check(set, forged, known), Status::ok);

    /* the claims and the times are checked as always */
    Options later = known;
    later.now = now + 600 + 31;
    EXPECT_EQ(check(set, good, later), Status::expired);

    Options other_aud = known;
    other_aud.audience = slice("someone-else");
    EXPECT_EQ(check(set, good, other_aud), Status::bad_audience);

    /* so are the form and the algorithm's binding to a configured key */
    EXPECT_EQ(check(set, token_for(Alg::HS256), known), Status::no_key);
    EXPECT_EQ(check(set, good.substr(1), known), Status::malformed);
}
