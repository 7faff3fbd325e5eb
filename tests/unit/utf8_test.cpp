/*
 * Strict UTF-8 validation: utf8_valid().
 */

#include <gtest/gtest.h>

#include <string>

#include "sse_wire.h"

namespace {

bool valid(const std::string &s)
{
    return sse::utf8_valid(reinterpret_cast<const unsigned char *>(s.data()),
                           s.size());
}

} // namespace


TEST(Utf8, AsciiAndEmpty)
{
    EXPECT_TRUE(valid(""));
    EXPECT_TRUE(valid("hello, world"));
    EXPECT_TRUE(valid(std::string("nul\0inside", 10)));
    EXPECT_TRUE(valid("\x7f"));
}

TEST(Utf8, WellFormedSequences)
{
    EXPECT_TRUE(valid("caf\xc3\xa9"));              /* U+00E9 */
    EXPECT_TRUE(valid("\xe2\x82\xac"));             /* U+20AC */
    EXPECT_TRUE(valid("\xf0\x9f\x98\x80"));         /* U+1F600 */
    EXPECT_TRUE(valid("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z"));
}

TEST(Utf8, Boundaries)
{
    EXPECT_TRUE(valid("\xc2\x80"));                 /* U+0080 */
    EXPECT_TRUE(valid("\xdf\xbf"));                 /* U+07FF */
    EXPECT_TRUE(valid("\xe0\xa0\x80"));             /* U+0800 */
    EXPECT_TRUE(valid("\xed\x9f\xbf"));             /* U+D7FF */
    EXPECT_TRUE(valid("\xee\x80\x80"));             /* U+E000 */
    EXPECT_TRUE(valid("\xef\xbf\xbf"));             /* U+FFFF */
    EXPECT_TRUE(valid("\xf0\x90\x80\x80"));         /* U+10000 */
    EXPECT_TRUE(valid("\xf4\x8f\xbf\xbf"));         /* U+10FFFF */
}

TEST(Utf8, RejectsOverlongs)
{
    EXPECT_FALSE(valid("\xc0\x80"));
    EXPECT_FALSE(valid("\xc0\xaf"));
    EXPECT_FALSE(valid("\xc1\xbf"));
    EXPECT_FALSE(valid("\xe0\x80\x80"));
    EXPECT_FALSE(valid("\xe0\x9f\xbf"));
    EXPECT_FALSE(valid("\xf0\x80\x80\x80"));
    EXPECT_FALSE(valid("\xf0\x8f\xbf\xbf"));
}

TEST(Utf8, RejectsSurrogates)
{
    EXPECT_FALSE(valid("\xed\xa0\x80"));            /* U+D800 */
    EXPECT_FALSE(valid("\xed\xaf\xbf"));            /* U+DBFF */
    EXPECT_FALSE(valid("\xed\xb0\x80"));            /* U+DC00 */
    EXPECT_FALSE(valid("\xed\xbf\xbf"));            /* U+DFFF */
    /* an encoded surrogate pair (CESU-8) */
    EXPECT_FALSE(valid("\xed\xa0\xbd\xed\xb8\x80"));
}

TEST(Utf8, RejectsAboveMaximum)
{
    EXPECT_FALSE(valid("\xf4\x90\x80\x80"));        /* U+110000 */
    EXPECT_FALSE(valid("\xf5\x80\x80\x80"));
    EXPECT_FALSE(valid("\xf7\xbf\xbf\xbf"));
    EXPECT_FALSE(valid("\xf8\x88\x80\x80\x80"));
    EXPECT_FALSE(valid("\xfc\x84\x80\x80\x80\x80"));
    EXPECT_FALSE(valid("\xfe"));
    EXPECT_FALSE(valid("\xff"));
}

TEST(Utf8, RejectsStrayContinuation)
{
    EXPECT_FALSE(valid("\x80"));
    EXPECT_FALSE(valid("a\xbf"));
    EXPECT_FALSE(valid("\xc3\xa9\xa9"));
}

TEST(Utf8, RejectsTruncated)
{
    EXPECT_FALSE(valid("\xc3"));
    EXPECT_FALSE(valid("\xe2\x82"));
    EXPECT_FALSE(valid("\xe2"));
    EXPECT_FALSE(valid("\xf0\x9f\x98"));
    EXPECT_FALSE(valid("\xf0\x9f"));
    EXPECT_FALSE(valid("ok\xf0"));
}

TEST(Utf8, RejectsBadContinuation)
{
    EXPECT_FALSE(valid("\xc3\x28"));
    EXPECT_FALSE(valid("\xe2\x28\xa1"));
    EXPECT_FALSE(valid("\xe2\x82\x28"));
    EXPECT_FALSE(valid("\xf0\x9f\x98\x28"));
    EXPECT_FALSE(valid("\xf0\x28\x98\x80"));
    EXPECT_FALSE(valid("\xc3\xc3\xa9"));
}

TEST(Utf8, LengthIsRespected)
{
    /* the byte after n must not be read as a continuation */
    const unsigned char s[] = { 'a', 0xc3, 0xa9 };

    EXPECT_FALSE(sse::utf8_valid(s, 2));
    EXPECT_TRUE(sse::utf8_valid(s, 3));
    EXPECT_TRUE(sse::utf8_valid(s, 1));
    EXPECT_TRUE(sse::utf8_valid(nullptr, 0));
}
