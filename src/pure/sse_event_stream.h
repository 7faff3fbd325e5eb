/*
 * Incremental parser for text/event-stream request bodies (publishing).
 *
 * Follows the WHATWG "event stream interpretation" rules: lines end with
 * CRLF, LF or CR (a CRLF split across two feeds is one line end); a line
 * starting with ':' is a comment; "name: value" drops one space after the
 * colon; a line without a colon is a field with an empty value; fields
 * "event" and "data" are used, "id", "retry" and unknown fields are
 * ignored (ids are assigned by the module).  A blank line dispatches the
 * event if at least one data line was seen (an event without data is
 * dropped, as browsers drop it); the data is the data lines joined by LF.
 * A leading UTF-8 BOM at the very start of the stream is skipped.
 *
 * The parser holds only the current, incomplete line and event.  Limits
 * are enforced while bytes arrive so a hostile body can never make it grow
 * past max_event bytes (type + data).
 *
 * No nginx, no exceptions escape: allocation failure is reported as
 * Status::no_memory.
 */

#ifndef SSE_EVENT_STREAM_H
#define SSE_EVENT_STREAM_H

#include <cstddef>
#include <string>

#include "sse_wire.h"

namespace sse {

class EventStreamParser {
public:
    enum class Status {
        ok = 0,
        too_large,      /* an event's type + data passed max_event */
        bad_utf8,       /* a dispatched event's type or data is not UTF-8 */
        no_memory,
    };

    /* called for every complete event; return false to stop parsing */
    using Sink = bool (*)(void *ctx, Slice type, Slice data);

    explicit EventStreamParser(size_t max_event) : max_event_(max_event) {}

    /*
     * Feeds the next part of the body.  Events completed by it are passed
     * to sink in order.  After an error status the parser must not be fed
     * again.  If the sink returns false, parsing stops and feed() returns
     * Status::ok with stopped() true.
     */
    Status feed(const unsigned char *p, size_t n, Sink sink, void *ctx);

    /*
     * The body ended cleanly.  An event that has data lines but no final
     * blank line is dispatched (publishers often omit the last blank line);
     * a partial line counts as a complete one.
     */
    Status finish(Sink sink, void *ctx);

    bool stopped() const { return stopped_; }

    /* events dispatched so far */
    size_t events() const { return events_; }

private:
    /* where the parser is within the current line */
    enum class LineState {
        start,          /* nothing of the line seen yet */
        name,           /* reading the field name (into name_) */
        value_start,    /* just after the colon: one space is dropped */
        value,          /* appending the value to target_ */
        skip,           /* comment or ignored field: dropped up to the EOL */
    };

    /* the longest field name the parser uses ("event") */
    static constexpr size_t max_name_len = 5;

    Status consume(const unsigned char *p, size_t n, Sink sink, void *ctx);
    Status start(const unsigned char *p, size_t n, size_t *skipped,
        Sink sink, void *ctx);
    Status end_of_line(Sink sink, void *ctx);
    Status end_of_name();
    bool name_is(const char *field) const;
    Status begin_value(std::string *target);
    Status append_value(const unsigned char *p, size_t n);
    bool fits(size_t more) const;
    Status dispatch(Sink sink, void *ctx);
    Status fail(Status status);

    size_t         max_event_;
    std::string    type_;
    std::string    data_;
    std::string   *target_ = nullptr;   /* type_ or data_ while in a value */
    unsigned char  name_[max_name_len];
    size_t         name_len_ = 0;       /* max_name_len + 1: longer */
    LineState      state_ = LineState::start;
    bool           have_data_ = false;
    bool           last_cr_ = false;    /* the last line ended with a CR */
    bool           started_ = false;    /* past a possible BOM */
    size_t         bom_matched_ = 0;    /* BOM bytes seen while !started_ */
    bool           stopped_ = false;
    Status         error_ = Status::ok; /* sticky: set by fail() */
    size_t         events_ = 0;
};

} // namespace sse

#endif /* SSE_EVENT_STREAM_H */
