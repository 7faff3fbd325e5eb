/*
 * EventStreamParser: the WHATWG event stream interpretation of publish
 * bodies, its limits, and how it copes with bodies split anywhere.
 */

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sse_event_stream.h"

using sse::EventStreamParser;
using sse::Slice;
using Status = EventStreamParser::Status;

namespace {

struct Event {
    std::string  type;
    std::string  data;

    bool operator==(const Event &o) const {
        return type == o.type && data == o.data;
    }
};

std::ostream &operator<<(std::ostream &os, const Event &e)
{
    return os << "{type=\"" << e.type << "\" data=\"" << e.data << "\"}";
}

const char *status_name(Status s)
{
    switch (s) {
    case Status::ok:        return "ok";
    case Status::too_large: return "too_large";
    case Status::bad_utf8:  return "bad_utf8";
    case Status::no_memory: return "no_memory";
    }
    return "?";
}

struct ParseRun {
    Status              status = Status::ok;
    std::vector<Event>  events;
    bool                stopped = false;
};

struct Collector {
    std::vector<Event>  events;
    size_t              stop_after = SIZE_MAX;
};

bool collect(void *ctx, Slice type, Slice data)
{
    Collector *c = static_cast<Collector *>(ctx);

    c->events.push_back(Event{
        std::string(reinterpret_cast<const char *>(type.data), type.len),
        std::string(reinterpret_cast<const char *>(data.data), data.len) });

    return c->events.size() < c->stop_after;
}

Status feed(EventStreamParser &parser, const std::string &s, Collector &c)
{
    return parser.feed(reinterpret_cast<const unsigned char *>(s.data()),
                       s.size(), collect, &c);
}

/* feeds the chunks in turn, then finishes the body if all went well */
ParseRun parse_chunks(const std::vector<std::string> &chunks, size_t max_event,
    bool finish = true)
{
    EventStreamParser  parser(max_event);
    Collector          c;
    ParseRun           run;

    for (const std::string &chunk : chunks) {
        run.status = feed(parser, chunk, c);
        if (run.status != Status::ok) {
            break;
        }
    }

    if (run.status == Status::ok && finish) {
        run.status = parser.finish(collect, &c);
    }

    EXPECT_EQ(parser.events(), c.events.size());

    run.events = c.events;
    run.stopped = parser.stopped();
    return run;
}

void expect_same(const ParseRun &a, const ParseRun &b, const std::string &how)
{
    EXPECT_EQ(status_name(a.status), status_name(b.status)) << how;
    EXPECT_EQ(a.events, b.events) << how;
}

/*
 * Parses the body in one piece, and checks that every other way of
 * splitting it (in two anywhere, in three for short bodies, byte by byte)
 * gives the same events and status.
 */
ParseRun parse(const std::string &body, size_t max_event = 1 << 20)
{
    ParseRun whole = parse_chunks({ body }, max_event);

    for (size_t i = 0; i <= body.size(); i++) {
        expect_same(whole,
                    parse_chunks({ body.substr(0, i), body.substr(i) },
                                 max_event),
                    "split at " + std::to_string(i));
    }

    if (body.size() <= 48) {
        for (size_t i = 0; i <= body.size(); i++) {
            for (size_t j = i; j <= body.size(); j++) {
                expect_same(whole,
                            parse_chunks({ body.substr(0, i),
                                           body.substr(i, j - i),
                                           body.substr(j) }, max_event),
                            "split at " + std::to_string(i) + ", "
                                + std::to_string(j));
            }
        }
    }

    std::vector<std::string> bytes;
    for (char c : body) {
        bytes.emplace_back(1, c);
    }
    expect_same(whole, parse_chunks(bytes, max_event), "byte by byte");

    return whole;
}

using Events = std::vector<Event>;

} // namespace


TEST(EventStream, OneEvent)
{
    ParseRun r = parse("data: hello\n\n");

    EXPECT_EQ(r.status, Status::ok);
    EXPECT_EQ(r.events, (Events{ { "", "hello" } }));
}

TEST(EventStream, OneSpaceAfterColonIsDropped)
{
    EXPECT_EQ(parse("data:hello\n\n").events, (Events{ { "", "hello" } }));
    EXPECT_EQ(parse("data:  two\n\n").events, (Events{ { "", " two" } }));
    EXPECT_EQ(parse("data: \n\n").events, (Events{ { "", "" } }));
    EXPECT_EQ(parse("data:\t x\n\n").events, (Events{ { "", "\t x" } }));
    EXPECT_EQ(parse("event:  t\ndata: x\n\n").events,
              (Events{ { " t", "x" } }));
}

TEST(EventStream, ColonsInValue)
{
    EXPECT_EQ(parse("data: a:b: c\n\n").events, (Events{ { "", "a:b: c" } }));
    EXPECT_EQ(parse("data::x\n\n").events, (Events{ { "", ":x" } }));
}

TEST(EventStream, EventType)
{
    EXPECT_EQ(parse("event: chunk\ndata: x\n\n").events,
              (Events{ { "chunk", "x" } }));
    /* the order of fields does not matter */
    EXPECT_EQ(parse("data: x\nevent: chunk\n\n").events,
              (Events{ { "chunk", "x" } }));
}

TEST(EventStream, LaterTypeReplacesEarlier)
{
    EXPECT_EQ(parse("event: a\nevent: b\ndata: x\n\n").events,
              (Events{ { "b", "x" } }));
    EXPECT_EQ(parse("event: a\nevent\ndata: x\n\n").events,
              (Events{ { "", "x" } }));
    EXPECT_EQ(parse("event: a\nevent:\ndata: x\n\n").events,
              (Events{ { "", "x" } }));
}

TEST(EventStream, DataLinesJoinedWithLf)
{
    EXPECT_EQ(parse("data: a\ndata: b\ndata: c\n\n").events,
              (Events{ { "", "a\nb\nc" } }));
    EXPECT_EQ(parse("data: a\ndata:\ndata: c\n\n").events,
              (Events{ { "", "a\n\nc" } }));
    EXPECT_EQ(parse("data: a\ndata\n\n").events,
              (Events{ { "", "a\n" } }));
}

TEST(EventStream, FieldWithoutColonHasEmptyValue)
{
    EXPECT_EQ(parse("data\n\n").events, (Events{ { "", "" } }));
    EXPECT_EQ(parse("data\ndata\n\n").events, (Events{ { "", "\n" } }));
    EXPECT_EQ(parse("event\ndata: x\n\n").events, (Events{ { "", "x" } }));
}

TEST(EventStream, LineEndings)
{
    Events two = { { "", "a\nb" }, { "t", "c" } };

    EXPECT_EQ(parse("data: a\ndata: b\n\nevent: t\ndata: c\n\n").events, two);
    EXPECT_EQ(parse("data: a\r\ndata: b\r\n\r\nevent: t\r\ndata: c\r\n\r\n")
                  .events, two);
    EXPECT_EQ(parse("data: a\rdata: b\r\revent: t\rdata: c\r\r").events, two);
    EXPECT_EQ(parse("data: a\rdata: b\r\n\nevent: t\ndata: c\r\r\n").events,
              two);
}

TEST(EventStream, CrThenLfAcrossFeedsIsOneLineEnd)
{
    /* if the LF were a second line end, "a" would be dispatched alone */
    ParseRun r = parse_chunks({ "data: a\r", "\ndata: b\r", "\n\r", "\n" },
                              100);

    EXPECT_EQ(r.status, Status::ok);
    EXPECT_EQ(r.events, (Events{ { "", "a\nb" } }));
}

TEST(EventStream, CrCrIsABlankLine)
{
    EXPECT_EQ(parse("data: a\r\rdata: b\r\r").events,
              (Events{ { "", "a" }, { "", "b" } }));
    /* LF CR is two line ends as well */
    EXPECT_EQ(parse("data: a\n\rdata: b\n\r").events,
              (Events{ { "", "a" }, { "", "b" } }));
}

TEST(EventStream, Comments)
{
    EXPECT_EQ(parse(": hello\n\n").events, Events{});
    EXPECT_EQ(parse(":\n:\n\n").events, Events{});
    EXPECT_EQ(parse("data: a\n: in between\ndata: b\n\n").events,
              (Events{ { "", "a\nb" } }));
    /* a comment is not UTF-8 checked, and does not end the event */
    EXPECT_EQ(parse(": \xff\xfe\ndata: x\n\n").events,
              (Events{ { "", "x" } }));
}

TEST(EventStream, IgnoredFields)
{
    EXPECT_EQ(parse("id: 5\nretry: 100\nfoo: bar\ndata: x\n\n").events,
              (Events{ { "", "x" } }));
    EXPECT_EQ(parse("id: \xff\ndata: x\nid\n\n").events,
              (Events{ { "", "x" } }));
    /* an event with only ignored fields is not dispatched */
    EXPECT_EQ(parse("id: 5\nretry: 1\n\n").events, Events{});
}

TEST(EventStream, FieldNamesAreExact)
{
    EXPECT_EQ(parse("Data: x\n\n").events, Events{});
    EXPECT_EQ(parse("DATA: x\n\n").events, Events{});
    EXPECT_EQ(parse("dat: x\n\n").events, Events{});
    EXPECT_EQ(parse("datax: x\n\n").events, Events{});
    EXPECT_EQ(parse("data : x\n\n").events, Events{});
    EXPECT_EQ(parse(" data: x\n\n").events, Events{});
    EXPECT_EQ(parse("datadata: x\n\n").events, Events{});
    EXPECT_EQ(parse("eventdata: x\n\n").events, Events{});
    EXPECT_EQ(parse("events: t\ndata: x\n\n").events, (Events{ { "", "x" } }));
    EXPECT_EQ(parse("Event: t\ndata: x\n\n").events, (Events{ { "", "x" } }));
}

TEST(EventStream, EventWithoutDataIsDropped)
{
    EXPECT_EQ(parse("event: t\n\n").events, Events{});
    /* and its type does not leak into the next event */
    EXPECT_EQ(parse("event: t\n\ndata: x\n\n").events,
              (Events{ { "", "x" } }));
}

TEST(EventStream, BlankLinesAlone)
{
    EXPECT_EQ(parse("").events, Events{});
    EXPECT_EQ(parse("\n\n\n").events, Events{});
    EXPECT_EQ(parse("\r\n\r\n").events, Events{});
    EXPECT_EQ(parse("\n\ndata: x\n\n\n\n").events, (Events{ { "", "x" } }));
}

TEST(EventStream, SeveralEvents)
{
    ParseRun r = parse("event: a\ndata: 1\n\n"
                       "data: 2\n\n"
                       "event: c\ndata: 3\n\n");

    EXPECT_EQ(r.events, (Events{ { "a", "1" }, { "", "2" }, { "c", "3" } }));
}

TEST(EventStream, FinishDispatchesLastEvent)
{
    EXPECT_EQ(parse("data: x").events, (Events{ { "", "x" } }));
    EXPECT_EQ(parse("data: x\n").events, (Events{ { "", "x" } }));
    EXPECT_EQ(parse("data: x\r").events, (Events{ { "", "x" } }));
    EXPECT_EQ(parse("data: x\r\n").events, (Events{ { "", "x" } }));
    EXPECT_EQ(parse("event: t\ndata: x").events, (Events{ { "t", "x" } }));
    EXPECT_EQ(parse("data: x\nevent: t").events, (Events{ { "t", "x" } }));
    EXPECT_EQ(parse("data").events, (Events{ { "", "" } }));
    EXPECT_EQ(parse("data: a\n\ndata: b").events,
              (Events{ { "", "a" }, { "", "b" } }));
}

TEST(EventStream, FinishDropsEventWithoutData)
{
    EXPECT_EQ(parse("event: t").events, Events{});
    EXPECT_EQ(parse("event: t\n").events, Events{});
    EXPECT_EQ(parse(": comment").events, Events{});
    EXPECT_EQ(parse("data: x\n\n: trailing").events, (Events{ { "", "x" } }));
}

TEST(EventStream, NothingWithoutFinish)
{
    ParseRun r = parse_chunks({ "data: x\n" }, 100, false);

    EXPECT_EQ(r.status, Status::ok);
    EXPECT_EQ(r.events, Events{});
}

TEST(EventStream, EventsLeaveAsSoonAsComplete)
{
    EventStreamParser  parser(100);
    Collector          c;

    ASSERT_EQ(feed(parser, "data: a\n", c), Status::ok);
    EXPECT_EQ(c.events.size(), 0u);
    ASSERT_EQ(feed(parser, "\nda", c), Status::ok);
    EXPECT_EQ(c.events.size(), 1u);
    ASSERT_EQ(feed(parser, "ta: b\n\n", c), Status::ok);
    EXPECT_EQ(c.events.size(), 2u);
    ASSERT_EQ(parser.finish(collect, &c), Status::ok);
    EXPECT_EQ(c.events, (Events{ { "", "a" }, { "", "b" } }));
    EXPECT_EQ(parser.events(), 2u);
}


TEST(EventStream, BomAtStartIsSkipped)
{
    EXPECT_EQ(parse("\xef\xbb\xbf" "data: x\n\n").events,
              (Events{ { "", "x" } }));
    EXPECT_EQ(parse("\xef\xbb\xbf" "\n" "data: x\n\n").events,
              (Events{ { "", "x" } }));
}

TEST(EventStream, BomSplitAcrossFeeds)
{
    ParseRun r = parse_chunks({ "\xef", "\xbb", "\xbf", "data: x\n\n" }, 100);

    EXPECT_EQ(r.status, Status::ok);
    EXPECT_EQ(r.events, (Events{ { "", "x" } }));

    r = parse_chunks({ "", "\xef", "", "\xbb\xbf" "da", "ta: x\n\n" }, 100);
    EXPECT_EQ(r.events, (Events{ { "", "x" } }));
}

TEST(EventStream, BomOnlyAtTheVeryStart)
{
    /* later, the BOM bytes are part of a field name: an unknown field */
    EXPECT_EQ(parse("data: x\n\n\xef\xbb\xbf" "data: y\n\n").events,
              (Events{ { "", "x" } }));
    EXPECT_EQ(parse("\xef\xbb\xbf\xef\xbb\xbf" "data: x\n\n").events,
              Events{});
    EXPECT_EQ(parse("\n\xef\xbb\xbf" "data: x\n\n").events, Events{});
    /* and in a value, they are just text */
    EXPECT_EQ(parse("data: \xef\xbb\xbf\n\n").events,
              (Events{ { "", "\xef\xbb\xbf" } }));
}

TEST(EventStream, PartialBomIsText)
{
    /* "\xef\xbb" + "data" is an unknown field name */
    ParseRun r = parse("\xef\xbb" "data: x\n\ndata: y\n\n");
    EXPECT_EQ(r.status, Status::ok);
    EXPECT_EQ(r.events, (Events{ { "", "y" } }));

    r = parse("\xef" "data: x\n\n");
    EXPECT_EQ(r.events, Events{});

    /* a lone start of a BOM that does not continue */
    r = parse("\xef\n" "data: x\n\n");
    EXPECT_EQ(r.events, (Events{ { "", "x" } }));
}

TEST(EventStream, BodyThatIsOnlyABom)
{
    EXPECT_EQ(parse("\xef\xbb\xbf").status, Status::ok);
    EXPECT_EQ(parse("\xef\xbb").status, Status::ok);
    EXPECT_EQ(parse("\xef").status, Status::ok);
    EXPECT_EQ(parse("\xef\xbb\xbf").events, Events{});
}


TEST(EventStream, Utf8SplitAcrossFeeds)
{
    ParseRun r = parse_chunks({ "data: caf\xc3", "\xa9 \xf0\x9f",
                                "\x98\x80\n\n" }, 100);

    EXPECT_EQ(r.status, Status::ok);
    EXPECT_EQ(r.events, (Events{ { "", "caf\xc3\xa9 \xf0\x9f\x98\x80" } }));

    EXPECT_EQ(parse("event: \xc3\xa9t\xc3\xa9\ndata: \xe2\x82\xac\n\n").events,
              (Events{ { "\xc3\xa9t\xc3\xa9", "\xe2\x82\xac" } }));
}

TEST(EventStream, BadUtf8InData)
{
    ParseRun r = parse("data: ok\n\ndata: \xff\n\ndata: never\n\n");

    EXPECT_EQ(r.status, Status::bad_utf8);
    EXPECT_EQ(r.events, (Events{ { "", "ok" } }));

    EXPECT_EQ(parse("data: \xed\xa0\x80\n\n").status, Status::bad_utf8);
    EXPECT_EQ(parse("data: \xc0\x80\n\n").status, Status::bad_utf8);
}

TEST(EventStream, BadUtf8InType)
{
    EXPECT_EQ(parse("event: \xc3\ndata: x\n\n").status, Status::bad_utf8);
}

TEST(EventStream, TruncatedUtf8AtLineEnd)
{
    /* the LF cannot complete the character */
    EXPECT_EQ(parse("data: \xc3\ndata: \xa9\n\n").status, Status::bad_utf8);
    EXPECT_EQ(parse("data: \xc3").status, Status::bad_utf8);
}

TEST(EventStream, BadUtf8InDroppedEventIsIgnored)
{
    /* never dispatched, so never checked */
    EXPECT_EQ(parse("event: \xff\n\ndata: x\n\n").status, Status::ok);
}

TEST(EventStream, ErrorIsSticky)
{
    EventStreamParser  parser(100);
    Collector          c;

    EXPECT_EQ(feed(parser, "data: \xff\n\n", c), Status::bad_utf8);
    EXPECT_EQ(feed(parser, "data: x\n\n", c), Status::bad_utf8);
    EXPECT_EQ(parser.finish(collect, &c), Status::bad_utf8);
    EXPECT_EQ(c.events.size(), 0u);
}


TEST(EventStream, SizeLimitOnData)
{
    EXPECT_EQ(parse("data: 12345\n\n", 5).events, (Events{ { "", "12345" } }));
    EXPECT_EQ(parse("data: 123456\n\n", 5).status, Status::too_large);
}

TEST(EventStream, SizeLimitCountsJoiningLf)
{
    EXPECT_EQ(parse("data: 12\ndata: 34\n\n", 5).events,
              (Events{ { "", "12\n34" } }));
    EXPECT_EQ(parse("data: 12\ndata: 345\n\n", 5).status, Status::too_large);
    EXPECT_EQ(parse("data: 12345\ndata\n\n", 5).status, Status::too_large);
}

TEST(EventStream, SizeLimitOnTypeAndData)
{
    EXPECT_EQ(parse("event: abc\ndata: de\n\n", 5).events,
              (Events{ { "abc", "de" } }));
    EXPECT_EQ(parse("event: abcd\ndata: de\n\n", 5).status,
              Status::too_large);
    EXPECT_EQ(parse("data: de\nevent: abcd\n\n", 5).status,
              Status::too_large);
    EXPECT_EQ(parse("event: abcdef\n\n", 5).status, Status::too_large);
}

TEST(EventStream, SizeLimitIsPerEvent)
{
    ParseRun r = parse("data: 12345\n\n"
                       "data: 67890\n\n"
                       "event: abcde\ndata\n\n", 5);

    EXPECT_EQ(r.status, Status::ok);
    EXPECT_EQ(r.events.size(), 3u);
}

TEST(EventStream, SizeLimitZero)
{
    EXPECT_EQ(parse("data\n\n", 0).events, (Events{ { "", "" } }));
    EXPECT_EQ(parse("data:\n\n", 0).events, (Events{ { "", "" } }));
    EXPECT_EQ(parse("data: \n\n", 0).events, (Events{ { "", "" } }));
    EXPECT_EQ(parse("data\ndata\n\n", 0).status, Status::too_large);
    EXPECT_EQ(parse("data: x\n\n", 0).status, Status::too_large);
}

TEST(EventStream, TooLargeKnownBeforeLineEnds)
{
    EventStreamParser  parser(5);
    Collector          c;

    EXPECT_EQ(feed(parser, "data: a\n\n", c), Status::ok);
    EXPECT_EQ(feed(parser, "data: 12345", c), Status::ok);
    EXPECT_EQ(feed(parser, "6", c), Status::too_large);
    EXPECT_EQ(c.events, (Events{ { "", "a" } }));
    /* sticky, like every error */
    EXPECT_EQ(feed(parser, "\n\n", c), Status::too_large);
    EXPECT_EQ(parser.finish(collect, &c), Status::too_large);
}

TEST(EventStream, EndlessLinesCostNothing)
{
    /* comments, ignored fields and unknown names are not buffered */
    std::string megabyte(1 << 20, 'x');

    for (const char *start : { ":", "id: ", "retry:", "x", "dataa" }) {
        EventStreamParser  parser(16);
        Collector          c;

        ASSERT_EQ(feed(parser, start, c), Status::ok);

        for (int i = 0; i < 16; i++) {
            ASSERT_EQ(feed(parser, megabyte, c), Status::ok) << start;
        }

        ASSERT_EQ(feed(parser, "\ndata: end\n\n", c), Status::ok);
        EXPECT_EQ(c.events, (Events{ { "", "end" } }));
    }
}

TEST(EventStream, EndlessDataLineIsTooLarge)
{
    EventStreamParser  parser(1000);
    Collector          c;
    std::string        chunk(100, 'x');
    Status             status = Status::ok;
    int                fed = 0;

    ASSERT_EQ(feed(parser, "data: ", c), Status::ok);

    while (status == Status::ok && fed < 1000) {
        status = feed(parser, chunk, c);
        fed++;
    }

    EXPECT_EQ(status, Status::too_large);
    EXPECT_EQ(fed, 11);
}


TEST(EventStream, SinkStopsParsing)
{
    EventStreamParser  parser(100);
    Collector          c;

    c.stop_after = 1;

    EXPECT_EQ(feed(parser, "data: a\n\ndata: b\n\n", c), Status::ok);
    EXPECT_TRUE(parser.stopped());
    EXPECT_EQ(c.events, (Events{ { "", "a" } }));
    EXPECT_EQ(parser.events(), 1u);

    /* further input is ignored, not an error */
    EXPECT_EQ(feed(parser, "data: c\n\n", c), Status::ok);
    EXPECT_EQ(parser.finish(collect, &c), Status::ok);
    EXPECT_EQ(c.events.size(), 1u);
}

TEST(EventStream, SinkStopsAtFinish)
{
    EventStreamParser  parser(100);
    Collector          c;

    c.stop_after = 1;

    EXPECT_EQ(feed(parser, "data: a", c), Status::ok);
    EXPECT_FALSE(parser.stopped());
    EXPECT_EQ(parser.finish(collect, &c), Status::ok);
    EXPECT_TRUE(parser.stopped());
    EXPECT_EQ(c.events, (Events{ { "", "a" } }));
}

TEST(EventStream, NotStoppedNormally)
{
    EventStreamParser  parser(100);
    Collector          c;

    EXPECT_EQ(feed(parser, "data: a\n\n", c), Status::ok);
    EXPECT_FALSE(parser.stopped());
    EXPECT_EQ(parser.events(), 1u);
}

TEST(EventStream, EmptyFeeds)
{
    ParseRun r = parse_chunks({ "", "data: x", "", "\n", "", "\n", "" }, 100);

    EXPECT_EQ(r.status, Status::ok);
    EXPECT_EQ(r.events, (Events{ { "", "x" } }));

    EventStreamParser  parser(100);
    Collector          c;
    EXPECT_EQ(parser.feed(nullptr, 0, collect, &c), Status::ok);
    EXPECT_EQ(parser.finish(collect, &c), Status::ok);
}

TEST(EventStream, NulBytesAreData)
{
    std::string body("data: a\0b\n\n", 11);

    EXPECT_EQ(parse(body).events, (Events{ { "", std::string("a\0b", 3) } }));
}
