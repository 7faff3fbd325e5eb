/*
 * What the encoder writes, the event stream parser reads back: the type as
 * it was, the data with every CR, LF and CRLF turned into LF.  This is the
 * path of a published event through the module and into an EventSource.
 */

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sse_event_stream.h"
#include "sse_wire.h"

using sse::EventStreamParser;
using sse::Slice;

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

Slice slice(const std::string &s)
{
    return Slice{ reinterpret_cast<const unsigned char *>(s.data()),
                  s.size() };
}

std::string encode(const std::string &id, const Event &e)
{
    std::string out(sse::encoded_size(slice(id), slice(e.type), slice(e.data)),
                    '\0');
    size_t len = sse::encode(reinterpret_cast<unsigned char *>(&out[0]),
                             slice(id), slice(e.type), slice(e.data));

    EXPECT_EQ(len, out.size());
    return out;
}

/* what a reader of the stream sees as the data */
std::string normalized(const std::string &data)
{
    std::string out;

    for (size_t i = 0; i < data.size(); i++) {
        if (data[i] == '\r') {
            out += '\n';
            if (i + 1 < data.size() && data[i + 1] == '\n') {
                i++;
            }
        } else {
            out += data[i];
        }
    }

    return out;
}

bool collect(void *ctx, Slice type, Slice data)
{
    static_cast<std::vector<Event> *>(ctx)->push_back(Event{
        std::string(reinterpret_cast<const char *>(type.data), type.len),
        std::string(reinterpret_cast<const char *>(data.data), data.len) });
    return true;
}

std::vector<Event> parse_split(const std::string &stream, size_t at)
{
    EventStreamParser   parser(1 << 20);
    std::vector<Event>  events;
    auto                p = reinterpret_cast<const unsigned char *>(
                                stream.data());

    EXPECT_EQ(parser.feed(p, at, collect, &events),
              EventStreamParser::Status::ok);
    EXPECT_EQ(parser.feed(p + at, stream.size() - at, collect, &events),
              EventStreamParser::Status::ok);
    EXPECT_EQ(parser.finish(collect, &events), EventStreamParser::Status::ok);

    return events;
}

const std::vector<std::string> sample_data = {
    "",
    "x",
    "hello world",
    "\n",
    "\r",
    "\r\n",
    "trailing newline\n",
    "trailing cr\r",
    "trailing crlf\r\n",
    "\nleading newline",
    "a\nb",
    "a\rb",
    "a\r\nb",
    "mixed\r\nline\rbreaks\nhere\r\n\r\n\n\r",
    "\r\r\n\n\r",
    "a\n\rb",
    " leading space",
    "  two spaces",
    ":looks like a comment",
    "data: looks like a field\nevent: x\nid: 1",
    "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
    std::string("nul\0byte", 8),
    "\xef\xbb\xbf" "bom in data",
    "tab\there",
};

const std::vector<std::string> sample_types = {
    "", "chunk", " spaced", "a:b", "\xc3\xa9v\xc3\xa9nement",
};

} // namespace


TEST(RoundTrip, EveryDataAndType)
{
    for (const std::string &type : sample_types) {
        for (const std::string &data : sample_data) {
            std::string stream = encode("k2f9x0a1-17", Event{ type, data });
            Event       expected{ type, normalized(data) };

            for (size_t at = 0; at <= stream.size(); at++) {
                std::vector<Event> events = parse_split(stream, at);

                ASSERT_EQ(events.size(), 1u) << stream;
                EXPECT_EQ(events[0], expected) << "split at " << at;
            }
        }
    }
}

TEST(RoundTrip, ConcatenatedEventsSplitAnywhere)
{
    std::string         stream;
    std::vector<Event>  expected;
    size_t              seq = 0;

    for (const std::string &data : sample_data) {
        const std::string &type = sample_types[seq % sample_types.size()];
        std::string        id = "1-" + std::to_string(++seq);

        stream += encode(id, Event{ type, data });
        expected.push_back(Event{ type, normalized(data) });
    }

    for (size_t at = 0; at <= stream.size(); at++) {
        EXPECT_EQ(parse_split(stream, at), expected) << "split at " << at;
    }
}

TEST(RoundTrip, EmptyDataIsAnEvent)
{
    std::string stream = encode("", Event{ "", "" });

    EXPECT_EQ(stream, "data: \n\n");
    EXPECT_EQ(parse_split(stream, 0), (std::vector<Event>{ { "", "" } }));
}

TEST(RoundTrip, TrailingNewlineSurvives)
{
    std::vector<Event> events = parse_split(encode("", Event{ "", "a\n" }), 3);

    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].data, "a\n");
}
