/*
 * log_escape(): what clients send, made safe for one log line.
 */

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sse_wire.h"

namespace {

std::string escape(const std::string &s, size_t cap = sse::max_log_value)
{
    sse::Slice in = { reinterpret_cast<const unsigned char *>(s.data()),
                      s.size() };

    /* a guard byte catches writes past out_cap */
    std::vector<unsigned char> out(cap + 1, 0xa5);
    size_t                     len = sse::log_escape(out.data(), cap, in);

    EXPECT_LE(len, cap);
    EXPECT_EQ(out[cap], 0xa5);

    return std::string(reinterpret_cast<const char *>(out.data()), len);
}

} // namespace


TEST(LogEscape, PrintableAsciiIsCopied)
{
    EXPECT_EQ(escape(""), "");
    EXPECT_EQ(escape("news,sport a-b_c/d~"), "news,sport a-b_c/d~");
}


TEST(LogEscape, ControlsQuotesAndHighBytesBecomeHex)
{
    EXPECT_EQ(escape("x\r\n2026/01/01 [emerg] F"),
              "x\\x0d\\x0a2026/01/01 [emerg] F");
    EXPECT_EQ(escape("\x1b[31mred"), "\\x1b[31mred");
    EXPECT_EQ(escape(std::string("a\0b", 3)), "a\\x00b");
    EXPECT_EQ(escape("\x7f\x80\xff"), "\\x7f\\x80\\xff");
    EXPECT_EQ(escape("\"q\" \\"), "\\x22q\\x22 \\x5c");
    EXPECT_EQ(escape("\t"), "\\x09");
}


TEST(LogEscape, ExactFitIsNotCut)
{
    EXPECT_EQ(escape("abcdefgh", 8), "abcdefgh");
    EXPECT_EQ(escape("ab\n", 6), "ab\\x0a");
}


TEST(LogEscape, LongValuesAreCutAtWholeEscapes)
{
    EXPECT_EQ(escape("abcdefghi", 8), "abcde...");
    /* "\x0a" would not fit whole before the "...": it is left out */
    EXPECT_EQ(escape("abc\ndefgh", 8), "abc...");
    /* 63 whole "\x0a" and "...": 255 of the 256 bytes */
    EXPECT_EQ(escape(std::string(100000, '\n')).size(), 63 * 4 + 3u);

    std::string cut = escape(std::string(100000, 'z'));
    EXPECT_EQ(cut.size(), sse::max_log_value);
    EXPECT_EQ(cut.substr(cut.size() - 3), "...");
}


TEST(LogEscape, OutputNeverHoldsAnUnsafeByte)
{
    std::string all;
    for (int c = 0; c < 256; c++) {
        all.push_back(static_cast<char>(c));
    }

    for (size_t cap = 4; cap < 1100; cap += 7) {
        std::string e = escape(all, cap);
        for (unsigned char c : e) {
            EXPECT_TRUE(c >= 0x20 && c < 0x7f && c != '"') << cap;
        }
    }
}
