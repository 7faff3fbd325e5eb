/*
 * libFuzzer target: EventStreamParser.
 *
 * Input: byte 0 picks where the body is split in two feeds (so states that
 * cross a feed boundary are reached: CRLF, BOM, UTF-8, field names), byte
 * 1 picks max_event, the rest is the body.
 *
 * Checks:
 *   - every dispatched event is valid UTF-8 and within max_event, its type
 *     has no line break and its data no CR;
 *   - the body in one feed, in two feeds and byte by byte gives the same
 *     events and status;
 *   - events that parsed fine, encoded again, parse back to themselves.
 */

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "sse_event_stream.h"
#include "sse_wire.h"

#include "fuzz_check.h"

namespace {

using sse::EventStreamParser;
using sse::Slice;
using Status = EventStreamParser::Status;

struct Event {
    std::string  type;
    std::string  data;

    bool operator==(const Event &o) const {
        return type == o.type && data == o.data;
    }
};

struct Collector {
    size_t              max_event;
    std::vector<Event>  events;
};

bool has_byte(Slice s, unsigned char c)
{
    return s.len && std::memchr(s.data, c, s.len) != nullptr;
}

bool collect(void *ctx, Slice type, Slice data)
{
    Collector *c = static_cast<Collector *>(ctx);

    CHECK(sse::utf8_valid(type.data, type.len));
    CHECK(sse::utf8_valid(data.data, data.len));
    CHECK(type.len + data.len <= c->max_event);
    CHECK(!has_byte(type, '\r') && !has_byte(type, '\n'));
    CHECK(!has_byte(data, '\r'));

    c->events.push_back(Event{
        std::string(reinterpret_cast<const char *>(type.data), type.len),
        std::string(reinterpret_cast<const char *>(data.data), data.len) });

    return true;
}

struct Result {
    Status              status;
    std::vector<Event>  events;
};

/* feeds the body in pieces of the given sizes (the last takes the rest) */
Result parse(const unsigned char *p, size_t n, size_t max_event,
    const std::vector<size_t> &pieces)
{
    EventStreamParser  parser(max_event);
    Collector          c{ max_event, {} };
    Status             status = Status::ok;
    size_t             done = 0;

    for (size_t piece : pieces) {
        size_t len = piece < n - done ? piece : n - done;

        status = parser.feed(p + done, len, collect, &c);
        done += len;

        if (status != Status::ok) {
            break;
        }
    }

    if (status == Status::ok) {
        status = parser.feed(p + done, n - done, collect, &c);
    }

    if (status == Status::ok) {
        status = parser.finish(collect, &c);
    }

    CHECK(parser.events() == c.events.size());

    return Result{ status, c.events };
}

void check_same(const Result &a, const Result &b)
{
    CHECK(a.status == b.status);
    CHECK(a.events == b.events);
}

Slice slice(const std::string &s)
{
    return Slice{ reinterpret_cast<const unsigned char *>(s.data()),
                  s.size() };
}

/* the parsed events, written out by the encoder, read back the same */
void check_reencoded(const std::vector<Event> &events, size_t max_event)
{
    static const std::string  id_text = "1-1";
    std::string               stream;

    for (const Event &e : events) {
        Slice  id = slice(id_text);
        size_t size = sse::encoded_size(id, slice(e.type), slice(e.data));
        size_t at = stream.size();

        stream.resize(at + size);
        CHECK(sse::encode(reinterpret_cast<unsigned char *>(&stream[at]), id,
                          slice(e.type), slice(e.data)) == size);
    }

    Result again = parse(reinterpret_cast<const unsigned char *>(
                             stream.data()),
                         stream.size(), max_event, {});

    CHECK(again.status == Status::ok);
    CHECK(again.events == events);
}

} // namespace


extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) {
        return 0;
    }

    const unsigned char *body = data + 2;
    size_t               n = size - 2;
    size_t               split = data[0] * n / 255;
    size_t               max_event = static_cast<size_t>(data[1]) * 2;

    Result whole = parse(body, n, max_event, {});

    check_same(whole, parse(body, n, max_event, { split }));
    check_same(whole, parse(body, n, max_event, std::vector<size_t>(n, 1)));

    if (whole.status == Status::ok) {
        check_reencoded(whole.events, max_event);
    }

    return 0;
}
