/*
 * The strict JSON parser (sse_json.h) and strict base64url
 * (sse_base64url.h): what they accept, what they refuse, and that what
 * they give back is exact.
 */

#include <gtest/gtest.h>

#include <string>

#include "sse_base64url.h"
#include "sse_json.h"

using sse::json::Document;
using sse::json::Error;
using sse::json::Type;

namespace {

/* a document's nodes point into its text: keep the last one alive */
std::string kept_text;

Error parse(const std::string &text, Document *doc = nullptr)
{
    Document local;
    Document *d = doc ? doc : &local;
    kept_text = text;
    return d->parse(
        reinterpret_cast<const unsigned char *>(kept_text.data()),
        kept_text.size());
}

std::string string_of(const Document &doc, size_t node)
{
    std::string s;
    EXPECT_TRUE(doc.string_value(node, &s));
    return s;
}

std::string nested(size_t depth, const char *open, const char *close,
                   const char *inner = "")
{
    std::string s;
    for (size_t i = 0; i < depth; i++) {
        s += open;
    }
    s += inner;
    for (size_t i = 0; i < depth; i++) {
        s += close;
    }
    return s;
}

int64_t floor_of(const std::string &number)
{
    Document doc;
    EXPECT_EQ(parse(number, &doc), Error::ok) << number;
    EXPECT_EQ(doc.node(0).type, Type::number);
    return sse::json::number_floor(doc.raw(0));
}

} // namespace


TEST(JsonParse, Scalars)
{
    Document doc;

    ASSERT_EQ(parse(" true ", &doc), Error::ok);
    EXPECT_EQ(doc.node(0).type, Type::boolean);
    EXPECT_TRUE(doc.node(0).truth);

    ASSERT_EQ(parse("false", &doc), Error::ok);
    EXPECT_FALSE(doc.node(0).truth);

    ASSERT_EQ(parse("null", &doc), Error::ok);
    EXPECT_EQ(doc.node(0).type, Type::null);

    for (const char *n : { "0", "-0", "1", "-1", "12.5", "1e3", "1E+3",
                           "1e-3", "-0.0e0", "123456789012345678901234" })
    {
        ASSERT_EQ(parse(n, &doc), Error::ok) << n;
        EXPECT_EQ(doc.node(0).type, Type::number);
        EXPECT_EQ(doc.raw(0).len, strlen(n));
    }
}


TEST(JsonParse, RefusesBadScalars)
{
    for (const char *bad : { "", " ", "tru", "truex", "nul", "True", "01",
                             "-", "+1", ".5", "1.", "1e", "1e+", "0x10",
                             "NaN", "Infinity", "-Infinity", "1 2", "'a'",
                             "\"a", "\"a\" x", "{} {}", "[] ]" })
    {
        EXPECT_EQ(parse(bad), Error::syntax) << "'" << bad << "'";
    }
}


TEST(JsonParse, ObjectsAndArrays)
{
    Document doc;

    ASSERT_EQ(parse("{ \"a\" : [1, {\"b\":null}, \"x\"], \"c\":{} }", &doc),
              Error::ok);

    const sse::json::Node &root = doc.node(0);
    EXPECT_EQ(root.type, Type::object);
    EXPECT_EQ(root.count, 2u);
    EXPECT_EQ(root.next, doc.nodes().size());

    size_t a = doc.member(0, "a");
    ASSERT_NE(a, Document::npos);
    EXPECT_EQ(doc.node(a).type, Type::array);
    EXPECT_EQ(doc.node(a).count, 3u);

    /* walk the items through next */
    size_t item = a + 1;
    EXPECT_EQ(doc.node(item).type, Type::number);
    item = doc.node(item).next;
    EXPECT_EQ(doc.node(item).type, Type::object);
    EXPECT_NE(doc.member(item, "b"), Document::npos);
    item = doc.node(item).next;
    EXPECT_EQ(string_of(doc, item), "x");
    EXPECT_EQ(doc.node(item).next, doc.member(0, "c") - 1);

    size_t c = doc.member(0, "c");
    ASSERT_NE(c, Document::npos);
    EXPECT_EQ(doc.node(c).type, Type::object);
    EXPECT_EQ(doc.node(c).count, 0u);
    EXPECT_EQ(doc.member(0, "b"), Document::npos);   /* not at the top */
    EXPECT_EQ(doc.member(a, "x"), Document::npos);   /* not an object */

    std::string raw(reinterpret_cast<const char *>(doc.raw(a).data),
                    doc.raw(a).len);
    EXPECT_EQ(raw, "[1, {\"b\":null}, \"x\"]");
}


TEST(JsonParse, RefusesBadStructure)
{
    for (const char *bad : { "{", "}", "[", "]", "{\"a\"}", "{\"a\":}",
                             "{\"a\":1,}", "[1,]", "[,1]", "{a:1}",
                             "{\"a\" 1}", "[1 2]", "{\"a\":1 \"b\":2}",
                             "{1:2}", "[}", "{]" })
    {
        EXPECT_EQ(parse(bad), Error::syntax) << bad;
    }
}


TEST(JsonParse, DuplicateKeysRefused)
{
    EXPECT_EQ(parse("{\"a\":1,\"a\":2}"), Error::duplicate_key);
    EXPECT_EQ(parse("{\"a\":1,\"b\":2,\"a\":1}"), Error::duplicate_key);
    /* the same name written two ways is the same name */
    EXPECT_EQ(parse("{\"a\":1,\"\\u0061\":2}"), Error::duplicate_key);
    EXPECT_EQ(parse("{\"x\":{\"a\":1,\"a\":1}}"), Error::duplicate_key);
    EXPECT_EQ(parse("[{\"a\":1},{\"a\":1}]"), Error::ok);
    EXPECT_EQ(parse("{\"a\":{\"a\":1}}"), Error::ok);
    EXPECT_EQ(parse("{\"a\":1,\"A\":2,\"a \":3}"), Error::ok);

    /* many distinct names, then one repeated at the end */
    std::string big = "{";
    for (int i = 0; i < 3000; i++) {
        big += "\"k" + std::to_string(i) + "\":0,";
    }
    EXPECT_EQ(parse(big + "\"z\":0}"), Error::ok);
    EXPECT_EQ(parse(big + "\"k1234\":0}"), Error::duplicate_key);
}


TEST(JsonParse, DepthLimit)
{
    EXPECT_EQ(parse(nested(32, "[", "]")), Error::ok);
    EXPECT_EQ(parse(nested(33, "[", "]")), Error::too_deep);
    EXPECT_EQ(parse(nested(32, "{\"a\":", "}", "1")), Error::ok);
    EXPECT_EQ(parse(nested(33, "{\"a\":", "}", "1")), Error::too_deep);
    EXPECT_EQ(parse(nested(31, "[", "]", "{\"a\":1}")), Error::ok);
    EXPECT_EQ(parse(nested(32, "[", "]", "{\"a\":1}")), Error::too_deep);
    /* deep and unterminated: refused without running off the stack */
    EXPECT_EQ(parse(std::string(100000, '[')), Error::too_deep);
}


TEST(JsonParse, StringEscapes)
{
    Document doc;

    ASSERT_EQ(parse("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"", &doc), Error::ok);
    EXPECT_EQ(string_of(doc, 0), "a\"b\\c/d\b\f\n\r\t");

    ASSERT_EQ(parse("\"\\u0041\\u00e9\\u20AC\\ud83d\\ude00\"", &doc),
              Error::ok);
    EXPECT_EQ(string_of(doc, 0), "A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");

    ASSERT_EQ(parse("\"\\u0000\"", &doc), Error::ok);
    EXPECT_EQ(string_of(doc, 0), std::string(1, '\0'));

    ASSERT_EQ(parse("\"\\uDBFF\\uDFFF\"", &doc), Error::ok);
    EXPECT_EQ(string_of(doc, 0), "\xf4\x8f\xbf\xbf");

    /* raw UTF-8 passes through */
    ASSERT_EQ(parse("\"h\xc3\xa9llo \xf0\x9f\x98\x80\"", &doc), Error::ok);
    EXPECT_EQ(string_of(doc, 0), "h\xc3\xa9llo \xf0\x9f\x98\x80");

    std::string s = "\xc3\xa9";
    ASSERT_EQ(parse("\"\\u00e9\"", &doc), Error::ok);
    EXPECT_TRUE(doc.string_equals(0,
        reinterpret_cast<const unsigned char *>(s.data()), s.size()));
    EXPECT_FALSE(doc.string_equals(0,
        reinterpret_cast<const unsigned char *>(s.data()), 1));
}


TEST(JsonParse, RefusesBadStrings)
{
    /* lone surrogates, either half, anywhere */
    for (const char *bad : { "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800x\"",
                             "\"\\ud800\\u0041\"", "\"\\ud800\\ud800\"",
                             "\"\\udfff\\ud800\"", "\"a\\ud83d\"" })
    {
        EXPECT_EQ(parse(bad), Error::bad_string) << bad;
    }

    /* invalid UTF-8: overlong, surrogate, stray continuation, truncated */
    for (const char *bad : { "\"\xc0\xaf\"", "\"\xed\xa0\x80\"", "\"\x80\"",
                             "\"\xe2\x82\"", "\"\xf5\x80\x80\x80\"",
                             "\"\xff\"" })
    {
        EXPECT_EQ(parse(bad), Error::bad_string) << bad;
    }

    /* raw control bytes */
    EXPECT_EQ(parse("\"a\nb\""), Error::bad_string);
    EXPECT_EQ(parse("\"a\tb\""), Error::bad_string);
    EXPECT_EQ(parse(std::string("\"a\0b\"", 5)), Error::bad_string);

    /* bad escapes */
    for (const char *bad : { "\"\\x\"", "\"\\u12\"", "\"\\u12G4\"",
                             "\"\\\"", "\"\\", "\"\\U0041\"", "\"\\'\"" })
    {
        EXPECT_EQ(parse(bad), Error::syntax) << bad;
    }

    /* an invalid name is as bad as an invalid value */
    EXPECT_EQ(parse("{\"\xff\":1}"), Error::bad_string);
}


TEST(JsonParse, NumberFloor)
{
    EXPECT_EQ(floor_of("0"), 0);
    EXPECT_EQ(floor_of("-0"), 0);
    EXPECT_EQ(floor_of("1700000000"), 1700000000);
    EXPECT_EQ(floor_of("1700000000.999"), 1700000000);
    EXPECT_EQ(floor_of("-1.5"), -2);
    EXPECT_EQ(floor_of("-2"), -2);
    EXPECT_EQ(floor_of("-2.0"), -2);
    EXPECT_EQ(floor_of("1.7e9"), 1700000000);
    EXPECT_EQ(floor_of("17e8"), 1700000000);
    EXPECT_EQ(floor_of("170000000000e-2"), 1700000000);
    EXPECT_EQ(floor_of("1700000000123e-3"), 1700000000);
    EXPECT_EQ(floor_of("0.5"), 0);
    EXPECT_EQ(floor_of("-0.5"), -1);
    EXPECT_EQ(floor_of("5e-400"), 0);
    EXPECT_EQ(floor_of("-5e-400"), -1);
    EXPECT_EQ(floor_of("0e999999999999999"), 0);
    EXPECT_EQ(floor_of("0.000"), 0);

    const int64_t max = sse::json::max_number_floor;
    EXPECT_EQ(floor_of("1e400"), max);
    EXPECT_EQ(floor_of("-1e400"), -max);
    EXPECT_EQ(floor_of("99999999999999999999999"), max);
    EXPECT_EQ(floor_of("9223372036854775807"), max);
    EXPECT_EQ(floor_of("4611686018427387903"), max - 1);
    EXPECT_EQ(floor_of("4611686018427387904"), max);
    EXPECT_EQ(floor_of("-4611686018427387904.5"), -max);
    EXPECT_EQ(floor_of("1e18"), 1000000000000000000);
    EXPECT_EQ(floor_of("0.000000000000000000001e21"), 1);
    EXPECT_EQ(floor_of("1234567890123456789012345e-16"), 123456789);
}


TEST(JsonParse, NumberCeil)
{
    auto ceil_of = [](const std::string &number) {
        Document doc;
        EXPECT_EQ(parse(number, &doc), Error::ok) << number;
        return sse::json::number_ceil(doc.raw(0));
    };
    const int64_t max = sse::json::max_number_floor;

    EXPECT_EQ(ceil_of("0"), 0);
    EXPECT_EQ(ceil_of("7"), 7);
    EXPECT_EQ(ceil_of("7.0"), 7);
    EXPECT_EQ(ceil_of("7.01"), 8);
    EXPECT_EQ(ceil_of("-7.01"), -7);
    EXPECT_EQ(ceil_of("-0.5"), 0);
    EXPECT_EQ(ceil_of("0.5"), 1);
    EXPECT_EQ(ceil_of("5e-400"), 1);
    EXPECT_EQ(ceil_of("1e400"), max);
    EXPECT_EQ(ceil_of("-1e400"), -max);
    EXPECT_EQ(ceil_of("4611686018427387903.5"), max);
    EXPECT_EQ(ceil_of("-4611686018427387904.5"), -max);
}


TEST(JsonParse, TrailingAndLeadingSpace)
{
    EXPECT_EQ(parse(" \t\r\n{} \t\r\n"), Error::ok);
    EXPECT_EQ(parse("{}\v"), Error::syntax);
    EXPECT_EQ(parse("\xef\xbb\xbf{}"), Error::syntax);     /* no BOM */
    EXPECT_EQ(parse(std::string("{}\0", 3)), Error::syntax);
}


/* base64url */

namespace {

bool decode(const std::string &in, std::string *out)
{
    out->assign(sse::base64url_decoded_size(in.size()), '\0');
    size_t len = 0;
    bool ok = sse::base64url_decode(
        reinterpret_cast<const unsigned char *>(in.data()), in.size(),
        reinterpret_cast<unsigned char *>(&(*out)[0]), &len);
    if (ok) {
        EXPECT_EQ(len, out->size());
        out->resize(len);
    }
    return ok;
}

std::string encode(const std::string &in)
{
    std::string out(sse::base64url_encoded_size(in.size()), '\0');
    size_t len = sse::base64url_encode(
        reinterpret_cast<unsigned char *>(&out[0]),
        reinterpret_cast<const unsigned char *>(in.data()), in.size());
    EXPECT_EQ(len, out.size());
    return out;
}

} // namespace


TEST(Base64url, Rfc4648Vectors)
{
    const char *const vectors[][2] = {
        { "", "" }, { "f", "Zg" }, { "fo", "Zm8" }, { "foo", "Zm9v" },
        { "foob", "Zm9vYg" }, { "fooba", "Zm9vYmE" }, { "foobar", "Zm9vYmFy" },
    };

    for (const auto &v : vectors) {
        std::string out;
        EXPECT_EQ(encode(v[0]), v[1]);
        ASSERT_TRUE(decode(v[1], &out)) << v[1];
        EXPECT_EQ(out, v[0]);
    }

    std::string out;
    ASSERT_TRUE(decode("-_-_", &out));
    EXPECT_EQ(out, "\xfb\xff\xbf");
    EXPECT_EQ(encode("\xfb\xff\xbf"), "-_-_");
}


TEST(Base64url, EveryByteRoundTrips)
{
    std::string all;
    for (int i = 0; i < 256; i++) {
        all += static_cast<char>(i);
    }

    for (size_t n = 0; n <= all.size(); n++) {
        std::string in = all.substr(256 - n) + all.substr(0, n % 7);
        std::string out;
        ASSERT_TRUE(decode(encode(in), &out));
        EXPECT_EQ(out, in);
    }
}


TEST(Base64url, RefusesNonCanonical)
{
    std::string out;

    /* padding, the other alphabet, white space, bytes outside */
    for (const char *bad : { "Zg==", "Zg=", "Zm8=", "Zm9v====", "+/+/",
                             "ab+c", "ab/c", "Zm9 v", "Zm9v\n", " Zm9v",
                             "Zm\x80v", "Zm9v.", "Zm9v%3D" })
    {
        EXPECT_FALSE(decode(bad, &out)) << bad;
    }

    /* a length no encoding has */
    EXPECT_FALSE(decode("Z", &out));
    EXPECT_FALSE(decode("Zm9vY", &out));

    /* unused low bits set: "Zg" is "f", "Zh".."Zv" would be "f" too */
    EXPECT_TRUE(decode("Zg", &out));
    for (const char *bad : { "Zh", "Zi", "Zv", "Zx", "Z_" }) {
        EXPECT_FALSE(decode(bad, &out)) << bad;
    }
    EXPECT_TRUE(decode("Zm8", &out));
    EXPECT_FALSE(decode("Zm9", &out));
    EXPECT_FALSE(decode("Zm-", &out));

    /* every letter in every position of a 2- and 3-letter tail */
    const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    int accepted2 = 0, accepted3 = 0;
    for (int i = 0; i < 64; i++) {
        std::string two = std::string("A") + alphabet[i];
        std::string three = std::string("AA") + alphabet[i];
        accepted2 += decode(two, &out);
        accepted3 += decode(three, &out);
    }
    EXPECT_EQ(accepted2, 4);    /* low 4 bits zero: 64 / 16 */
    EXPECT_EQ(accepted3, 16);   /* low 2 bits zero: 64 / 4 */
}
