/*
 * libFuzzer target: token verification and key loading (sse_jwt.h), and
 * the strict JSON and base64url underneath (sse_json.h, sse_base64url.h).
 *
 * The first input byte picks what the rest is fed to:
 *   0  verify() as a token, against a fixed KeySet (an HS256 secret and
 *      RSA, EC P-256 and Ed25519 public keys, all with and without kid);
 *   1  KeySet::add_jwks(), with an alg= from the first byte too;
 *   2  KeySet::add_pem(), likewise;
 *   3  verify() of the rest as the claims of a token this target signs
 *      with the HS256 secret, so the fuzzer gets past the signature;
 *   4  the same with the rest as the header, over fixed claims;
 *   5  json::Document::parse() and base64url_decode().
 *
 * Checks:
 *   - every status is a defined one, and verify() is deterministic;
 *   - a verified token has three parts, at most max_token_len bytes, an
 *     "exp" claim, and patterns that match themselves;
 *   - tokens the target signs fail only for what their claims or header
 *     say, never for their signature unless the header chose another key;
 *   - a key file is taken whole or not at all, with a printable error,
 *     and every key it gives is bound to the alg= asked for, if any;
 *   - the JSON nodes stay inside the text, strings decode to valid UTF-8,
 *     each member is found by its name, numbers floor within the clamp;
 *   - base64url accepts only canonical text: decode then encode gives the
 *     input back.
 *
 * The fixed public keys come from key pairs made once for this target and
 * thrown away; the seeds in fuzz/corpus/jwt/ were signed with them.
 */

#include <openssl/evp.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "sse_base64url.h"
#include "sse_json.h"
#include "sse_jwt.h"
#include "sse_jwt_key.h"

#include "fuzz_check.h"

namespace {

using sse::Slice;
using sse::jwt::Alg;
using sse::jwt::Claims;
using sse::jwt::KeySet;
using sse::jwt::Options;
using sse::jwt::Status;

const char secret[] = "fuzzing-secret-fuzzing-secret-32";

const char jwks[] =
    "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"9WtfJllk54f9ktlxKsMR8Hq87O8m"
    "U_HpzWX4QWAU5FH0yUntqvzTik1GUpfkfRIs9kbFlcaVNvLZv1hyM8pZeX34ol2P"
    "2eppMBS7C-X0PjJpL00lX1EV6ntftZ8OW38Bq1lnsCv4rzKPLwpB57RWLGIO5xTR"
    "PvyL4iwust3AcCHjL4yu7aLPGDTbxBq7ASxcHjpqjbiGwLp39rF0MbMcas4Rhhd5"
    "nUuMz5gvgNf9hCLiSq6rlKzoQzokiAldHRccZ68AlAkBQEoGpeZkd8Q5Byzz88Yq"
    "MgW0LUIDi8H7xkvK_fJjuD0BdXoDYv5HzNKT3WrOH6irkP5GKdTn3ITwHQ\",\"e"
    "\":\"AQAB\",\"kid\":\"rsa\"},{\"kty\":\"EC\",\"crv\":\"P-256\","
    "\"x\":\"gbF5kKMp9VE1djXOvvfMNv38NbRRCXAwUb-sLLpQoww\",\"y\":\"rkB"
    "0BjHCzcgCeKfqMLRQnz_LBXoc3CDZXEuCIgHhJ6w\",\"kid\":\"ec\"},{\"kt"
    "y\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"QJ9XsppH4ks8f8U9HeAq7wbf"
    "cY6m1VWDNUAgbN9ENiQ\",\"kid\":\"ed\"}]}";

const char fixed_claims[] =
    "{\"sub\":\"42\",\"exp\":1700000600,\"iss\":\"https://issuer.example\","
    "\"aud\":\"sse\",\"sse\":{\"subscribe\":[\"user:42:*\"]}}";

const unsigned char *bytes(const char *s)
{
    return reinterpret_cast<const unsigned char *>(s);
}

Slice slice(const std::string &s)
{
    return { reinterpret_cast<const unsigned char *>(s.data()), s.size() };
}

const KeySet &fixed_keys()
{
    static KeySet *keys = [] {
        KeySet       *k = new KeySet;
        std::string   error;
        const char    kid[] = "hs";

        CHECK(k->add_jwks(bytes(jwks), sizeof(jwks) - 1,
                          Alg::none_or_unknown, &error));
        CHECK(k->add_secret(bytes(secret), sizeof(secret) - 1,
                            { bytes(kid), 2 }, Alg::HS256, &error));
        CHECK(k->add_secret(bytes(secret), sizeof(secret) - 1,
                            { nullptr, 0 }, Alg::HS256, &error));
        CHECK(k->size() == 5);
        return k;
    }();

    return *keys;
}

Options options()
{
    static const char issuer[] = "https://issuer.example";
    static const char audience[] = "sse";

    Options opt;
    opt.now = 1700000000;
    opt.leeway = 30;
    opt.issuer = { bytes(issuer), sizeof(issuer) - 1 };
    opt.audience = { bytes(audience), sizeof(audience) - 1 };
    return opt;
}

std::string encode(const std::string &in)
{
    std::string out(sse::base64url_encoded_size(in.size()), '\0');
    size_t      len = sse::base64url_encode(
        reinterpret_cast<unsigned char *>(&out[0]),
        reinterpret_cast<const unsigned char *>(in.data()), in.size());

    CHECK(len == out.size());
    return out;
}

void check_patterns(const std::vector<std::string> &patterns)
{
    for (const std::string &p : patterns) {
        CHECK(sse::jwt::pattern_matches(slice(p), slice(p)));
        CHECK(sse::jwt::patterns_allow(patterns, slice(p)));
    }
}

Status check_verify(Slice token)
{
    Claims claims;
    Status status = sse::jwt::verify(fixed_keys(), token, options(), &claims);

    CHECK(status <= Status::no_memory);

    Claims again;
    CHECK(sse::jwt::verify(fixed_keys(), token, options(), &again) == status);

    if (status != Status::ok) {
        CHECK(claims.all.empty());
        return status;
    }

    CHECK(token.len <= sse::jwt::max_token_len);

    size_t dots = 0;
    for (size_t i = 0; i < token.len; i++) {
        dots += token.data[i] == '.';
    }
    CHECK(dots == 2);

    const std::string *exp = claims.claim(bytes("exp"), 3);
    CHECK(exp != nullptr);
    CHECK(claims.has_sub == (claims.claim(bytes("sub"), 3) != nullptr));
    if (claims.has_sub) {
        CHECK(*claims.claim(bytes("sub"), 3) == claims.sub);
    }
    CHECK(claims.exp + options().leeway >= options().now);

    check_patterns(claims.subscribe);
    check_patterns(claims.publish);

    return status;
}

std::string hs256(const std::string &header, const std::string &claims)
{
    std::string    input = encode(header) + "." + encode(claims);
    unsigned char  mac[EVP_MAX_MD_SIZE];
    size_t         len = 0;

    CHECK(EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, secret,
                    sizeof(secret) - 1, bytes(input.c_str()), input.size(),
                    mac, sizeof(mac), &len) != nullptr);

    return input + "." + encode(std::string(reinterpret_cast<char *>(mac),
                                            len));
}

void check_signed_claims(const std::string &claims)
{
    Status status = check_verify(slice(hs256("{\"alg\":\"HS256\"}", claims)));

    if (sse::base64url_encoded_size(claims.size()) + 70
        > sse::jwt::max_token_len)
    {
        return;     /* maybe too large: anything but ok goes */
    }

    CHECK(status == Status::ok || status == Status::malformed
          || status == Status::expired || status == Status::not_yet_valid
          || status == Status::bad_issuer || status == Status::bad_audience
          || status == Status::no_memory);

    /* past the signature, only well-formed claims get further */
    if (status != Status::malformed && status != Status::no_memory) {
        sse::json::Document doc;
        CHECK(doc.parse(bytes(claims.c_str()), claims.size())
              == sse::json::Error::ok);
        CHECK(doc.node(0).type == sse::json::Type::object);
        size_t exp = doc.member(0, "exp");
        CHECK(exp != sse::json::Document::npos);
        CHECK(doc.node(exp).type == sse::json::Type::number);
    }
}

void check_signed_header(const std::string &header)
{
    Status status = check_verify(slice(hs256(header, fixed_claims)));

    sse::json::Document doc;

    if (doc.parse(bytes(header.c_str()), header.size())
            != sse::json::Error::ok
        || doc.node(0).type != sse::json::Type::object)
    {
        CHECK(status != Status::ok);
        return;
    }

    if (status == Status::ok) {
        CHECK(doc.member(0, "crit") == sse::json::Document::npos);
    }

    /*
     * A header that names HS256 and either no kid or the secret's kid was
     * signed with the right key: whatever else it says, the signature
     * must not be what fails.
     */
    size_t alg = doc.member(0, "alg");
    size_t kid = doc.member(0, "kid");

    if (alg != sse::json::Document::npos
        && doc.string_equals(alg, bytes("HS256"), 5)
        && (kid == sse::json::Document::npos
            || doc.string_equals(kid, bytes("hs"), 2))
        && header.size() < 8192)
    {
        CHECK(status != Status::bad_signature && status != Status::no_key
              && status != Status::unknown_kid && status != Status::bad_alg);
    }
}


void check_key_file(const uint8_t *data, size_t size, bool as_jwks,
                    Alg bind)
{
    KeySet      set;
    std::string error;

    bool ok = as_jwks ? set.add_jwks(data, size, bind, &error)
                      : set.add_pem(data, size, bind, &error);

    CHECK(ok == error.empty());
    CHECK(ok == (set.size() > 0));

    for (char c : error) {
        CHECK(c >= 0x20 && c < 0x7f);
    }

    for (const auto &key : set.keys()) {
        CHECK(key->alg != Alg::none_or_unknown);
        CHECK(bind == Alg::none_or_unknown || key->alg == bind);
    }
}

void check_json(const uint8_t *data, size_t size)
{
    sse::json::Document doc;
    sse::json::Error    e = doc.parse(data, size);

    if (e != sse::json::Error::ok) {
        CHECK(doc.nodes().empty());
        return;
    }

    const auto &nodes = doc.nodes();
    CHECK(!nodes.empty());
    CHECK(nodes[0].next == nodes.size());

    for (size_t i = 0; i < nodes.size(); i++) {
        const sse::json::Node &n = nodes[i];

        CHECK(n.len > 0 && n.start + n.len <= size);
        CHECK(n.next > i && n.next <= nodes.size());

        if (n.type == sse::json::Type::string) {
            std::string s;
            CHECK(doc.string_value(i, &s));
            CHECK(sse::utf8_valid(bytes(s.c_str()), s.size()));
            CHECK(doc.string_equals(i, bytes(s.c_str()), s.size()));
        }

        if (n.type == sse::json::Type::number) {
            int64_t v = sse::json::number_floor(doc.raw(i));
            CHECK(v >= -sse::json::max_number_floor
                  && v <= sse::json::max_number_floor);
        }

        if (n.type == sse::json::Type::object) {
            size_t c = i + 1;
            for (uint32_t k = 0; k < n.count; k++) {
                std::string name;
                CHECK(doc.string_value(c, &name));
                CHECK(doc.member(i, bytes(name.c_str()), name.size())
                      == c + 1);
                c = nodes[c + 1].next;
            }
            CHECK(c == n.next);
        }

        if (n.type == sse::json::Type::array) {
            size_t c = i + 1;
            for (uint32_t k = 0; k < n.count; k++) {
                c = nodes[c].next;
            }
            CHECK(c == n.next);
        }
    }
}

void check_base64url(const uint8_t *data, size_t size)
{
    std::string out(sse::base64url_decoded_size(size) + 1, '\0');
    size_t      len = 0;

    if (!sse::base64url_decode(data, size,
                               reinterpret_cast<unsigned char *>(&out[0]),
                               &len))
    {
        return;
    }

    CHECK(len == sse::base64url_decoded_size(size));
    out.resize(len);

    std::string again = encode(out);
    CHECK(again.size() == size);
    CHECK(size == 0 || std::memcmp(again.data(), data, size) == 0);
}

} // namespace


extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }

    uint8_t mode = data[0] % 6;

    /* for key files: the alg= of the directive, none (0) in most seeds */
    Alg bind = static_cast<Alg>(data[0] / 6 % (uint8_t(Alg::EdDSA) + 1));

    data++;
    size--;

    std::string rest(reinterpret_cast<const char *>(data), size);

    switch (mode) {
    case 0:
        check_verify({ data, size });
        break;
    case 1:
        check_key_file(data, size, true, bind);
        break;
    case 2:
        check_key_file(data, size, false, bind);
        break;
    case 3:
        check_signed_claims(rest);
        break;
    case 4:
        check_signed_header(rest);
        break;
    default:
        check_json(data, size);
        check_base64url(data, size);
        break;
    }

    return 0;
}
