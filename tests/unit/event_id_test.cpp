/*
 * The event id codec: format_u64(), format_id(), parse_id().
 */

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "sse_wire.h"

using sse::Position;

namespace {

constexpr uint64_t u64_max = UINT64_MAX;

const std::string max_epoch = "3w5e11264sgsf";          /* 2^64-1 in base 36 */
const std::string max_seq = "18446744073709551615";     /* 2^64-1 */

std::string format(const std::vector<Position> &pos)
{
    std::vector<unsigned char> out(sse::max_id_len + 1, 0xa5);
    size_t len = sse::format_id(out.data(), pos.data(), pos.size());

    EXPECT_LE(len, sse::max_id_len);
    EXPECT_EQ(out[len], 0xa5);

    return std::string(reinterpret_cast<const char *>(out.data()), len);
}

struct Parsed {
    int                    rc;
    std::vector<Position>  pos;
};

Parsed parse(const std::string &s,
    size_t max_out = sse::max_channels_per_stream)
{
    Parsed  result;
    auto    p = reinterpret_cast<const unsigned char *>(s.data());

    result.pos.resize(max_out + 1, Position{ 0xdead, 0xbeef });
    result.rc = sse::parse_id(p, s.size(), result.pos.data(), max_out);

    /* never a write past max_out */
    EXPECT_EQ(result.pos[max_out].epoch, 0xdeadu);

    result.pos.resize(result.rc > 0 ? static_cast<size_t>(result.rc) : 0);
    return result;
}

bool same(const Position &a, const Position &b)
{
    return a.epoch == b.epoch && a.seq == b.seq;
}

/* "<e>-<s>" n times joined with '.', epochs 1, 2, 3 ... */
std::string many_positions(size_t n)
{
    std::vector<Position> pos;

    for (size_t i = 0; i < n; i++) {
        pos.push_back(Position{ i + 1, i * 1000 });
    }

    return format(pos);
}

} // namespace


TEST(FormatU64, Values)
{
    unsigned char out[21];

    EXPECT_EQ(std::string(reinterpret_cast<char *>(out),
                          sse::format_u64(out, 0)), "0");
    EXPECT_EQ(std::string(reinterpret_cast<char *>(out),
                          sse::format_u64(out, 7)), "7");
    EXPECT_EQ(std::string(reinterpret_cast<char *>(out),
                          sse::format_u64(out, 1000)), "1000");
    EXPECT_EQ(std::string(reinterpret_cast<char *>(out),
                          sse::format_u64(out, u64_max)), max_seq);
}

TEST(FormatId, SinglePosition)
{
    EXPECT_EQ(format({ { 1, 0 } }), "1-0");
    EXPECT_EQ(format({ { 35, 1 } }), "z-1");
    EXPECT_EQ(format({ { 36, 17 } }), "10-17");
    EXPECT_EQ(format({ { 1572560495785ull, 17 } }), "k2f9x0a1-17");
}

TEST(FormatId, Maximum)
{
    std::string s = format({ { u64_max, u64_max } });

    EXPECT_EQ(s, max_epoch + "-" + max_seq);
    EXPECT_EQ(s.size(), sse::max_position_len);
}

TEST(FormatId, SeveralPositions)
{
    EXPECT_EQ(format({ { 1572560495785ull, 17 }, { 1572560495795ull, 0 } }),
              "k2f9x0a1-17.k2f9x0ab-0");
    EXPECT_EQ(format({}), "");
}

TEST(FormatId, SixtyFourMaximalPositionsFit)
{
    std::vector<Position> pos(sse::max_channels_per_stream,
                              Position{ u64_max, u64_max });

    EXPECT_EQ(format(pos).size(),
              64 * sse::max_position_len + 63);
}


TEST(ParseId, SinglePosition)
{
    Parsed r = parse("k2f9x0a1-17");

    ASSERT_EQ(r.rc, 1);
    EXPECT_EQ(r.pos[0].epoch, 1572560495785ull);
    EXPECT_EQ(r.pos[0].seq, 17u);

    r = parse("1-0");
    ASSERT_EQ(r.rc, 1);
    EXPECT_EQ(r.pos[0].epoch, 1u);
    EXPECT_EQ(r.pos[0].seq, 0u);
}

TEST(ParseId, Maximum)
{
    Parsed r = parse(max_epoch + "-" + max_seq);

    ASSERT_EQ(r.rc, 1);
    EXPECT_EQ(r.pos[0].epoch, u64_max);
    EXPECT_EQ(r.pos[0].seq, u64_max);
}

TEST(ParseId, Overflow)
{
    EXPECT_EQ(parse("3w5e11264sgsg-1").rc, -1);         /* 2^64 */
    EXPECT_EQ(parse("zzzzzzzzzzzzz-1").rc, -1);
    EXPECT_EQ(parse("1-18446744073709551616").rc, -1);  /* 2^64 */
    EXPECT_EQ(parse("1-99999999999999999999").rc, -1);
    EXPECT_EQ(parse("1-100000000000000000000").rc, -1); /* 21 digits */
    EXPECT_EQ(parse("1zzzzzzzzzzzzz-1").rc, -1);        /* 14 digits */
}

TEST(ParseId, EpochZero)
{
    EXPECT_EQ(parse("0-1").rc, -1);
    EXPECT_EQ(parse("0-0").rc, -1);
    EXPECT_EQ(parse("1-1.0-1").rc, -1);
}

TEST(ParseId, LeadingZeros)
{
    EXPECT_EQ(parse("1-0").rc, 1);
    EXPECT_EQ(parse("1-00").rc, -1);
    EXPECT_EQ(parse("1-01").rc, -1);
    EXPECT_EQ(parse("01-1").rc, -1);
    EXPECT_EQ(parse("00-1").rc, -1);
    EXPECT_EQ(parse("1-10").rc, 1);
    EXPECT_EQ(parse("10-1").rc, 1);
}

TEST(ParseId, SixtyFourPositions)
{
    Parsed r = parse(many_positions(64));

    ASSERT_EQ(r.rc, 64);
    EXPECT_EQ(r.pos[63].epoch, 64u);
    EXPECT_EQ(r.pos[63].seq, 63000u);

    std::vector<Position> max(64, Position{ u64_max, u64_max });
    EXPECT_EQ(parse(format(max)).rc, 64);
}

TEST(ParseId, SixtyFivePositions)
{
    EXPECT_EQ(parse(many_positions(65)).rc, -1);
    EXPECT_EQ(parse(many_positions(65), 65).rc, 65);
}

TEST(ParseId, MaxOutIsHonoured)
{
    EXPECT_EQ(parse("a-1.b-2", 2).rc, 2);
    EXPECT_EQ(parse("a-1.b-2", 1).rc, -1);
    EXPECT_EQ(parse("a-1", 0).rc, -1);
}

TEST(ParseId, SurroundingSpacesAndTabs)
{
    Parsed r = parse(" \t k2f9x0a1-17 \t ");

    ASSERT_EQ(r.rc, 1);
    EXPECT_EQ(r.pos[0].seq, 17u);

    EXPECT_EQ(parse("  a-1.b-2\t").rc, 2);
}

TEST(ParseId, Empty)
{
    EXPECT_EQ(parse("").rc, -1);
    EXPECT_EQ(parse(" ").rc, -1);
    EXPECT_EQ(parse(" \t\t ").rc, -1);
}

TEST(ParseId, Junk)
{
    const char *junk[] = {
        "a", "a-", "-1", "-", "a--1", "a-+1", "a-1-2", "a-1x", "a -1",
        "A-1", "K2F9X0A1-17", "a-1.", ".a-1", "a-1..b-2", "a-1.b",
        "a-1 .b-2", "a-1. b-2", "a - 1", "a- 1", "a-1\t.b-2", "a_1", "a:1",
        "a-1,b-2", "a-1;", "+a-1", "a-0x1", "a-1e3", "\xc3\xa9-1",
        "a-1\n", "\na-1", "a-1\r", "a-\t1", "null", "undefined",
    };

    for (const char *s : junk) {
        EXPECT_EQ(parse(s).rc, -1) << "id: " << s;
    }

    EXPECT_EQ(parse(std::string("a-1\0", 4)).rc, -1);
    EXPECT_EQ(parse(std::string("\0a-1", 4)).rc, -1);
}

TEST(ParseId, RoundTrip)
{
    std::vector<std::vector<Position>> cases = {
        { { 1, 0 } },
        { { 1, 1 } },
        { { 35, 9 }, { 36, 10 } },
        { { u64_max, u64_max } },
        { { u64_max, 0 }, { 1, u64_max }, { 1572560495785ull, 17 } },
        { { 0xffffffffull, 4294967296ull } },
    };

    for (const std::vector<Position> &pos : cases) {
        std::string text = format(pos);
        Parsed      r = parse(text);

        ASSERT_EQ(r.rc, static_cast<int>(pos.size())) << text;

        for (size_t i = 0; i < pos.size(); i++) {
            EXPECT_TRUE(same(r.pos[i], pos[i])) << text;
        }

        /* one position, one text: formatting again gives the same id */
        EXPECT_EQ(format(r.pos), text);
    }
}
