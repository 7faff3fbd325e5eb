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
    opt.now = 1300819380;
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

    opt.now = 1300819381;
    EXPECT_EQ(check(set, token, opt), Status::expired);

    std::string bad = token;
    bad[bad.size() - 2] = bad[bad.size() - 2] == 'X' ? 'Y' : 'X';
    opt.now = 1300819380;
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
