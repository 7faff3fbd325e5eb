/*
 * JSON string escaping: json_escaped_size(), json_escape().
 */

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sse_wire.h"

namespace {

std::string escape(const std::string &s)
{
    sse::Slice in = { reinterpret_cast<const unsigned char *>(s.data()),
                      s.size() };
    size_t     size = sse::json_escaped_size(in);

    /* a guard byte catches writes past the computed size */
    std::vector<unsigned char> out(size + 1, 0xa5);
    size_t                     len = sse::json_escape(out.data(), in);

    EXPECT_EQ(len, size);
    EXPECT_EQ(out[size], 0xa5);

    return std::string(reinterpret_cast<const char *>(out.data()), len);
}

} // namespace


TEST(JsonEscape, PlainTextIsCopied)
{
    EXPECT_EQ(escape(""), "");
    EXPECT_EQ(escape("news"), "news");
    EXPECT_EQ(escape("a/b <c> 'd'"), "a/b <c> 'd'");
    EXPECT_EQ(escape("\x7f"), "\x7f");
}

TEST(JsonEscape, QuoteAndBackslash)
{
    EXPECT_EQ(escape("say \"hi\""), "say \\\"hi\\\"");
    EXPECT_EQ(escape("a\\b"), "a\\\\b");
    EXPECT_EQ(escape("\\\""), "\\\\\\\"");
}

TEST(JsonEscape, ShortControlEscapes)
{
    EXPECT_EQ(escape("a\nb"), "a\\nb");
    EXPECT_EQ(escape("a\rb"), "a\\rb");
    EXPECT_EQ(escape("a\tb"), "a\\tb");
}

TEST(JsonEscape, OtherControlBytes)
{
    EXPECT_EQ(escape(std::string("\0", 1)), "\\u0000");
    EXPECT_EQ(escape("\x01"), "\\u0001");
    EXPECT_EQ(escape("\x08\x0c"), "\\u0008\\u000c");
    EXPECT_EQ(escape("\x1b[0m"), "\\u001b[0m");
    EXPECT_EQ(escape("\x1f"), "\\u001f");
    EXPECT_EQ(escape(" "), " ");
}

TEST(JsonEscape, Utf8AndOtherBytesPassThrough)
{
    std::string text = "caf\xc3\xa9 \xf0\x9f\x98\x80";

    EXPECT_EQ(escape(text), text);
    EXPECT_EQ(escape("\xff\x80"), "\xff\x80");
}

TEST(JsonEscape, EveryByteSizeIsExact)
{
    std::string all;

    for (int c = 0; c < 256; c++) {
        all.push_back(static_cast<char>(c));
    }

    /*
     * Five bytes get a two byte escape (\n \r \t \" \\), the other 29
     * control bytes a six byte \u00XX: one and five bytes more each.
     */
    std::string out = escape(all);
    EXPECT_EQ(out.size(), 256u + 5 * 1 + 29 * 5);
}
