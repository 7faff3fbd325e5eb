/*
 * Event encoding: encoded_size(), encode(), encode_id_line().
 */

#include <gtest/gtest.h>

#include <ctime>
#include <string>
#include <vector>

#include "sse_wire.h"

using sse::Slice;

namespace {

Slice slice(const std::string &s)
{
    return Slice{ reinterpret_cast<const unsigned char *>(s.data()),
                  s.size() };
}

/* encodes, checking the size is exact and nothing is written past it */
std::string encode(const std::string &id, const std::string &type,
    const std::string &data)
{
    size_t size = sse::encoded_size(slice(id), slice(type), slice(data));

    std::vector<unsigned char> out(size + 1, 0xa5);
    size_t len = sse::encode(out.data(), slice(id), slice(type), slice(data));

    EXPECT_EQ(len, size);
    EXPECT_EQ(out[size], 0xa5);

    return std::string(reinterpret_cast<const char *>(out.data()), len);
}

std::string data_only(const std::string &data)
{
    return encode("", "", data);
}

} // namespace


TEST(Encode, DataOnly)
{
    EXPECT_EQ(data_only("hello"), "data: hello\n\n");
}

TEST(Encode, EmptyDataIsOneEmptyLine)
{
    EXPECT_EQ(data_only(""), "data: \n\n");
}

TEST(Encode, IdAndType)
{
    EXPECT_EQ(encode("k2f9x0a1-17", "chunk", "x"),
              "id: k2f9x0a1-17\nevent: chunk\ndata: x\n\n");
    EXPECT_EQ(encode("1-1", "", "x"), "id: 1-1\ndata: x\n\n");
    EXPECT_EQ(encode("", "chunk", "x"), "event: chunk\ndata: x\n\n");
    EXPECT_EQ(encode("1-1", "chunk", ""), "id: 1-1\nevent: chunk\ndata: \n\n");
}

TEST(Encode, EveryLineBreakKind)
{
    EXPECT_EQ(data_only("a\nb"), "data: a\ndata: b\n\n");
    EXPECT_EQ(data_only("a\rb"), "data: a\ndata: b\n\n");
    EXPECT_EQ(data_only("a\r\nb"), "data: a\ndata: b\n\n");
    EXPECT_EQ(data_only("a\r\nb\rc\nd"),
              "data: a\ndata: b\ndata: c\ndata: d\n\n");
}

TEST(Encode, EmptyLines)
{
    EXPECT_EQ(data_only("\n"), "data: \ndata: \n\n");
    EXPECT_EQ(data_only("\r\n"), "data: \ndata: \n\n");
    EXPECT_EQ(data_only("\r"), "data: \ndata: \n\n");
    EXPECT_EQ(data_only("a\n\nb"), "data: a\ndata: \ndata: b\n\n");
    /* CR CR LF is a CR, then a CRLF: two breaks */
    EXPECT_EQ(data_only("a\r\r\nb"), "data: a\ndata: \ndata: b\n\n");
    /* LF CR is two breaks too */
    EXPECT_EQ(data_only("a\n\rb"), "data: a\ndata: \ndata: b\n\n");
}

TEST(Encode, TrailingLineBreaks)
{
    EXPECT_EQ(data_only("a\n"), "data: a\ndata: \n\n");
    EXPECT_EQ(data_only("a\r"), "data: a\ndata: \n\n");
    EXPECT_EQ(data_only("a\r\n"), "data: a\ndata: \n\n");
    EXPECT_EQ(data_only("a\n\r"), "data: a\ndata: \ndata: \n\n");
}

TEST(Encode, DataThatLooksLikeFields)
{
    EXPECT_EQ(data_only("data: x\nid: 3\n: c"),
              "data: data: x\ndata: id: 3\ndata: : c\n\n");
    EXPECT_EQ(data_only(" lead"), "data:  lead\n\n");
}

TEST(Encode, BytesCopiedThrough)
{
    std::string data("caf\xc3\xa9\0\t", 7);

    EXPECT_EQ(data_only(data), "data: " + data + "\n\n");
}

TEST(Encode, IdLine)
{
    std::string    id = "abc-1.def-2";
    unsigned char  out[64];

    ASSERT_EQ(sse::id_line_size(id.size()), 16u);

    size_t len = sse::encode_id_line(out, slice(id));
    EXPECT_EQ(len, sse::id_line_size(id.size()));
    EXPECT_EQ(std::string(reinterpret_cast<char *>(out), len),
              "id: abc-1.def-2\n");
}

TEST(Encode, LargeData)
{
    std::string data;

    for (int i = 0; i < 1000; i++) {
        data += std::string(static_cast<size_t>(i % 7), 'x');
        data += (i % 3 == 0) ? "\r\n" : (i % 3 == 1) ? "\r" : "\n";
    }

    std::string out = data_only(data);
    EXPECT_EQ(out.find('\r'), std::string::npos);
    EXPECT_EQ(out.substr(out.size() - 2), "\n\n");
}

namespace {

/* the WHATWG line rule, byte by byte: what encode() must produce */
std::string reference_encoding(const std::string &data)
{
    std::string out = "data: ";

    for (size_t i = 0; i < data.size(); i++) {
        if (data[i] == '\r' || data[i] == '\n') {
            if (data[i] == '\r' && i + 1 < data.size() && data[i + 1] == '\n') {
                i++;
            }
            out += "\ndata: ";
            continue;
        }
        out += data[i];
    }

    return out + "\n\n";
}

} // namespace

TEST(Encode, MatchesByteByByteSplitting)
{
    const char     alphabet[] = { 'a', '\r', '\n', 'b', '\r' };
    unsigned long  x = 12345;

    for (int round = 0; round < 2000; round++) {
        std::string data;
        size_t      len = static_cast<size_t>(round % 40);

        for (size_t i = 0; i < len; i++) {
            x = x * 6364136223846793005UL + 1442695040888963407UL;
            data += alphabet[(x >> 33) % sizeof(alphabet)];
        }

        ASSERT_EQ(data_only(data), reference_encoding(data)) << round;
    }
}

TEST(Encode, ManyLoneCarriageReturnsStayLinear)
{
    /*
     * 1 MB of lone CRs and an LF at the very end: a search for the next
     * LF from every line's start would scan ~5 * 10^11 bytes (minutes);
     * remembered, it is one pass (~30 ms).  CPU time, not wall time, with
     * a margin of more than 50x: a busy machine does not fail it.
     */
    std::string data(1 << 20, '\r');
    data += '\n';

    std::clock_t start = std::clock();
    std::string out = data_only(data);
    double cpu_s = static_cast<double>(std::clock() - start) / CLOCKS_PER_SEC;

    EXPECT_EQ(out.size(), ((1u << 20) + 1) * 7 + 1);
    EXPECT_LT(cpu_s, 2.0);
}
