/*
 * Channel ids and channel lists: valid_channel_id(), parse_channel_list().
 */

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sse_wire.h"

using sse::ListError;
using sse::Slice;

namespace {

const unsigned char *bytes(const std::string &s)
{
    return reinterpret_cast<const unsigned char *>(s.data());
}

bool valid_id(const std::string &s)
{
    return sse::valid_channel_id(bytes(s), s.size());
}

struct ListResult {
    int                       rc;
    std::vector<std::string>  ids;
};

ListResult parse_list(const std::string &s,
    size_t max_out = sse::max_channels_per_stream)
{
    std::vector<Slice> out(max_out + 1, Slice{ nullptr, 0 });
    ListResult         result;

    result.rc = sse::parse_channel_list(bytes(s), s.size(), out.data(),
                                        max_out);

    for (int i = 0; i < result.rc; i++) {
        const Slice &id = out[static_cast<size_t>(i)];

        /* slices must point into the input */
        EXPECT_GE(id.data, bytes(s));
        EXPECT_LE(id.data + id.len, bytes(s) + s.size());

        result.ids.emplace_back(reinterpret_cast<const char *>(id.data),
                                id.len);
    }

    /* nothing past the ids reported may be written */
    EXPECT_EQ(out[max_out].data, nullptr);

    return result;
}

int rc(ListError e)
{
    return static_cast<int>(e);
}

/* n distinct ids "c0 c1 ..." joined by sep */
std::string numbered_ids(size_t n, const std::string &sep = " ")
{
    std::string s;

    for (size_t i = 0; i < n; i++) {
        if (i) {
            s += sep;
        }
        s += "c" + std::to_string(i);
    }

    return s;
}

} // namespace


TEST(ValidChannelId, AcceptsPrintableAscii)
{
    EXPECT_TRUE(valid_id("news"));
    EXPECT_TRUE(valid_id("a"));
    EXPECT_TRUE(valid_id("user:42/feed.v1-x_y~z"));
    EXPECT_TRUE(valid_id("!"));             /* 0x21, the lowest allowed */
    EXPECT_TRUE(valid_id("~"));             /* 0x7e, the highest allowed */
    EXPECT_TRUE(valid_id("\"#$%&'()*+-./;<=>?@[\\]^_`{|}"));
}

TEST(ValidChannelId, RejectsEmptyAndSeparators)
{
    EXPECT_FALSE(valid_id(""));
    EXPECT_FALSE(valid_id("a b"));
    EXPECT_FALSE(valid_id("a,b"));
    EXPECT_FALSE(valid_id(","));
    EXPECT_FALSE(valid_id(" "));
}

TEST(ValidChannelId, RejectsControlAndNonAscii)
{
    EXPECT_FALSE(valid_id("a\tb"));
    EXPECT_FALSE(valid_id("a\nb"));
    EXPECT_FALSE(valid_id("a\rb"));
    EXPECT_FALSE(valid_id(std::string("a\0b", 3)));
    EXPECT_FALSE(valid_id("a\x7f"));
    EXPECT_FALSE(valid_id("caf\xc3\xa9"));
    EXPECT_FALSE(valid_id("\xff"));
}

TEST(ValidChannelId, LengthLimit)
{
    EXPECT_TRUE(valid_id(std::string(255, 'x')));
    EXPECT_FALSE(valid_id(std::string(256, 'x')));
}


TEST(ChannelList, SingleId)
{
    ListResult r = parse_list("news");

    ASSERT_EQ(r.rc, 1);
    EXPECT_EQ(r.ids[0], "news");
}

TEST(ChannelList, SpacesAndCommas)
{
    ListResult r = parse_list("a b,c");

    ASSERT_EQ(r.rc, 3);
    EXPECT_EQ(r.ids, (std::vector<std::string>{ "a", "b", "c" }));
}

TEST(ChannelList, RunsOfSeparatorsAndEdges)
{
    ListResult r = parse_list(" ,, a ,,b , ");

    ASSERT_EQ(r.rc, 2);
    EXPECT_EQ(r.ids, (std::vector<std::string>{ "a", "b" }));

    r = parse_list(",a,");
    ASSERT_EQ(r.rc, 1);
    EXPECT_EQ(r.ids[0], "a");

    r = parse_list("a , b");
    ASSERT_EQ(r.rc, 2);
    EXPECT_EQ(r.ids, (std::vector<std::string>{ "a", "b" }));
}

TEST(ChannelList, Empty)
{
    EXPECT_EQ(parse_list("").rc, rc(ListError::empty));
    EXPECT_EQ(parse_list(" ").rc, rc(ListError::empty));
    EXPECT_EQ(parse_list(",").rc, rc(ListError::empty));
    EXPECT_EQ(parse_list(" ,, , ").rc, rc(ListError::empty));
}

TEST(ChannelList, TabIsNotASeparator)
{
    EXPECT_EQ(parse_list("a\tb").rc, rc(ListError::bad_id));
    EXPECT_EQ(parse_list("\ta").rc, rc(ListError::bad_id));
    EXPECT_EQ(parse_list("a\t").rc, rc(ListError::bad_id));
}

TEST(ChannelList, BadBytes)
{
    EXPECT_EQ(parse_list("a\nb").rc, rc(ListError::bad_id));
    EXPECT_EQ(parse_list("a\rb").rc, rc(ListError::bad_id));
    EXPECT_EQ(parse_list(std::string("a\0", 2)).rc, rc(ListError::bad_id));
    EXPECT_EQ(parse_list("a\x7f").rc, rc(ListError::bad_id));
    EXPECT_EQ(parse_list("caf\xc3\xa9").rc, rc(ListError::bad_id));
    EXPECT_EQ(parse_list("ok \x80").rc, rc(ListError::bad_id));
    EXPECT_EQ(parse_list("\xff").rc, rc(ListError::bad_id));
}

TEST(ChannelList, IdLength)
{
    std::string longest(255, 'x');
    ListResult  r = parse_list("a " + longest + ",b");

    ASSERT_EQ(r.rc, 3);
    EXPECT_EQ(r.ids[1], longest);

    EXPECT_EQ(parse_list("a " + std::string(256, 'x') + ",b").rc,
              rc(ListError::bad_id));
    EXPECT_EQ(parse_list(std::string(256, 'x')).rc, rc(ListError::bad_id));
}

TEST(ChannelList, SixtyFourIdsFit)
{
    ListResult r = parse_list(numbered_ids(64));

    ASSERT_EQ(r.rc, 64);
    EXPECT_EQ(r.ids.front(), "c0");
    EXPECT_EQ(r.ids.back(), "c63");

    EXPECT_EQ(parse_list(numbered_ids(64, ",")).rc, 64);
    EXPECT_EQ(parse_list(numbered_ids(64, " , ")).rc, 64);
}

TEST(ChannelList, SixtyFiveIdsAreTooMany)
{
    EXPECT_EQ(parse_list(numbered_ids(65)).rc, rc(ListError::too_many));
    EXPECT_EQ(parse_list(numbered_ids(65, ",")).rc, rc(ListError::too_many));
    EXPECT_EQ(parse_list(numbered_ids(1000)).rc, rc(ListError::too_many));
}

TEST(ChannelList, MaxOutIsHonoured)
{
    EXPECT_EQ(parse_list("a b c", 3).rc, 3);
    EXPECT_EQ(parse_list("a b c", 2).rc, rc(ListError::too_many));
    EXPECT_EQ(parse_list("a", 0).rc, rc(ListError::too_many));
    EXPECT_EQ(parse_list("", 0).rc, rc(ListError::empty));
}

TEST(ChannelList, DuplicatesDroppedFirstKept)
{
    std::string s = "a,b,a b";
    Slice       out[4];

    ASSERT_EQ(sse::parse_channel_list(bytes(s), s.size(), out, 4), 2);
    EXPECT_EQ(out[0].data, bytes(s));           /* the first "a" */
    EXPECT_EQ(out[1].data, bytes(s) + 2);       /* the first "b" */

    ListResult r = parse_list("x x x x");
    ASSERT_EQ(r.rc, 1);
    EXPECT_EQ(r.ids[0], "x");

    /* "a" and "ab" share a prefix but are different ids */
    r = parse_list("a ab a abc ab");
    EXPECT_EQ(r.ids, (std::vector<std::string>{ "a", "ab", "abc" }));
}

TEST(ChannelList, DuplicatesDoNotCountTowardsTheLimit)
{
    /* 64 distinct ids, each listed twice: 128 entries, still fits */
    std::string s = numbered_ids(64) + " " + numbered_ids(64, ",");

    EXPECT_EQ(parse_list(s).rc, 64);
    EXPECT_EQ(parse_list(s + " c64").rc, rc(ListError::too_many));
}

TEST(ChannelList, BadIdWinsOverTooMany)
{
    EXPECT_EQ(parse_list(numbered_ids(65) + " bad\tid").rc,
              rc(ListError::bad_id));
    EXPECT_EQ(parse_list(numbered_ids(65) + " " + std::string(256, 'y')).rc,
              rc(ListError::bad_id));
}

TEST(ChannelList, EveryParsedIdIsValid)
{
    ListResult r = parse_list("!x ~y \"q\" a:b/c");

    ASSERT_EQ(r.rc, 4);
    EXPECT_EQ(r.ids, (std::vector<std::string>{ "!x", "~y", "\"q\"", "a:b/c" }));
    for (const std::string &id : r.ids) {
        EXPECT_TRUE(valid_id(id)) << id;
    }
}
