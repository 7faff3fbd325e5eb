/*
 * Incremental text/event-stream parser (see sse_event_stream.h).
 *
 * The parser never buffers a whole line.  It reads the field name into a
 * few bytes of its own, then either appends the value straight to the
 * event being built (fields "data" and "event") or drops the rest of the
 * line (comments, "id", "retry", unknown fields).  So the only memory that
 * grows with the input is the event itself, and that is checked against
 * max_event before every append: a body that never ends a line, or sends
 * an endless comment, costs nothing.
 *
 * The size of an event is the size of its type plus its data, the data
 * counted as its lines joined with LF.  It is checked against the event as
 * it stands while it is being read: an event whose type and data ever pass
 * max_event is too large, even if a later "event:" line would have made
 * its type shorter again.
 */

#include "sse_event_stream.h"

#include <cstring>
#include <new>

namespace sse {

namespace {

const unsigned char utf8_bom[] = { 0xef, 0xbb, 0xbf };

bool is_eol(unsigned char c)
{
    return c == '\r' || c == '\n';
}

/* the first CR or LF in [p, end), or end */
const unsigned char *find_eol(const unsigned char *p, const unsigned char *end)
{
    while (p < end && !is_eol(*p)) {
        p++;
    }
    return p;
}

} // namespace


EventStreamParser::Status
EventStreamParser::feed(const unsigned char *p, size_t n, Sink sink, void *ctx)
{
    if (error_ != Status::ok) {
        return error_;
    }

    if (stopped_) {
        return Status::ok;
    }

    try {
        size_t skipped = 0;

        if (!started_) {
            Status status = start(p, n, &skipped, sink, ctx);

            if (status != Status::ok || stopped_ || !started_) {
                return status;
            }
        }

        return consume(p + skipped, n - skipped, sink, ctx);

    } catch (const std::bad_alloc &) {
        return fail(Status::no_memory);
    }
}


EventStreamParser::Status
EventStreamParser::finish(Sink sink, void *ctx)
{
    if (error_ != Status::ok) {
        return error_;
    }

    if (stopped_) {
        return Status::ok;
    }

    try {
        Status status;

        if (!started_) {
            /* a body that is only the start of a BOM: those bytes are text */
            started_ = true;

            status = consume(utf8_bom, bom_matched_, sink, ctx);
            if (status != Status::ok || stopped_) {
                return status;
            }
        }

        /* a last line without its line end still counts */
        if (state_ != LineState::start) {
            status = end_of_line(sink, ctx);
            if (status != Status::ok) {
                return fail(status);
            }
        }

        /* the blank line that should end the last event is often left out */
        status = dispatch(sink, ctx);
        if (status != Status::ok) {
            return fail(status);
        }

        return Status::ok;

    } catch (const std::bad_alloc &) {
        return fail(Status::no_memory);
    }
}


/*
 * Skips a UTF-8 BOM at the very start of the stream.  It may arrive split
 * across feeds, so the bytes matched so far are counted in bom_matched_;
 * if the stream turns out not to start with a BOM, those bytes were text
 * and are parsed after all.  *skipped is the number of bytes of p used up.
 */
EventStreamParser::Status
EventStreamParser::start(const unsigned char *p, size_t n, size_t *skipped,
    Sink sink, void *ctx)
{
    size_t i = 0;

    while (i < n && bom_matched_ < sizeof(utf8_bom)) {
        if (p[i] != utf8_bom[bom_matched_]) {
            break;
        }
        bom_matched_++;
        i++;
    }

    *skipped = i;

    if (bom_matched_ == sizeof(utf8_bom)) {
        started_ = true;
        return Status::ok;
    }

    if (i == n) {
        return Status::ok;      /* still a possible BOM: wait for more */
    }

    /* not a BOM: the bytes held back are the start of the first line */
    started_ = true;

    return consume(utf8_bom, bom_matched_, sink, ctx);
}


EventStreamParser::Status
EventStreamParser::consume(const unsigned char *p, size_t n, Sink sink,
    void *ctx)
{
    const unsigned char *end = p + n;
    Status               status;

    while (p < end) {
        unsigned char c = *p;

        if (last_cr_) {
            last_cr_ = false;

            if (c == '\n') {
                p++;            /* the LF of a CRLF, maybe from another feed */
                continue;
            }
        }

        if (is_eol(c)) {
            p++;
            last_cr_ = (c == '\r');

            status = end_of_line(sink, ctx);
            if (status != Status::ok) {
                return fail(status);
            }

            if (stopped_) {
                return Status::ok;
            }

            continue;
        }

        switch (state_) {

        case LineState::start:
            if (c == ':') {
                state_ = LineState::skip;       /* a comment */
                p++;
            } else {
                state_ = LineState::name;
                name_len_ = 0;
            }
            break;

        case LineState::name:
            p++;

            if (c == ':') {
                status = end_of_name();
                if (status != Status::ok) {
                    return fail(status);
                }
                break;
            }

            /* no field we use is longer: remember only that it is */
            if (name_len_ < max_name_len) {
                name_[name_len_++] = c;
            } else {
                name_len_ = max_name_len + 1;
            }
            break;

        case LineState::value_start:
            state_ = LineState::value;
            if (c == ' ') {
                p++;
            }
            break;

        case LineState::value: {
            const unsigned char *eol = find_eol(p, end);

            status = append_value(p, static_cast<size_t>(eol - p));
            if (status != Status::ok) {
                return fail(status);
            }

            p = eol;
            break;
        }

        case LineState::skip:
            p = find_eol(p, end);
            break;
        }
    }

    return Status::ok;
}


/* a CR or LF ended the current line */
EventStreamParser::Status
EventStreamParser::end_of_line(Sink sink, void *ctx)
{
    LineState  state = state_;
    Status     status = Status::ok;

    state_ = LineState::start;
    target_ = nullptr;

    switch (state) {

    case LineState::start:
        return dispatch(sink, ctx);     /* a blank line */

    case LineState::name:
        /* a line without a colon is a field with an empty value */
        status = end_of_name();
        state_ = LineState::start;
        target_ = nullptr;
        break;

    case LineState::value_start:
    case LineState::value:
    case LineState::skip:
        break;
    }

    return status;
}


/* the field name is complete: decide what the value is for */
EventStreamParser::Status
EventStreamParser::end_of_name()
{
    if (name_is("data")) {
        return begin_value(&data_);
    }

    if (name_is("event")) {
        return begin_value(&type_);
    }

    state_ = LineState::skip;           /* id, retry, unknown */
    return Status::ok;
}


bool
EventStreamParser::name_is(const char *field) const
{
    size_t len = std::strlen(field);

    return name_len_ == len && std::memcmp(name_, field, len) == 0;
}


EventStreamParser::Status
EventStreamParser::begin_value(std::string *target)
{
    state_ = LineState::value_start;
    target_ = target;

    if (target == &type_) {
        type_.clear();                  /* a later type replaces an earlier */
        return Status::ok;
    }

    if (have_data_) {
        /* data lines are joined with LF */
        if (!fits(1)) {
            return Status::too_large;
        }
        data_.push_back('\n');
    }

    have_data_ = true;

    return Status::ok;
}


EventStreamParser::Status
EventStreamParser::append_value(const unsigned char *p, size_t n)
{
    if (!fits(n)) {
        return Status::too_large;
    }

    target_->append(reinterpret_cast<const char *>(p), n);

    return Status::ok;
}


/* whether the event can grow by n more bytes */
bool
EventStreamParser::fits(size_t more) const
{
    size_t size = type_.size() + data_.size();

    return size <= max_event_ && more <= max_event_ - size;
}


/*
 * Ends the current event: passes it to the sink if it has data, and starts
 * a new, empty one either way (as browsers do, a type without data is
 * forgotten).
 */
EventStreamParser::Status
EventStreamParser::dispatch(Sink sink, void *ctx)
{
    if (!have_data_) {
        type_.clear();
        return Status::ok;
    }

    Slice type = { reinterpret_cast<const unsigned char *>(type_.data()),
                   type_.size() };
    Slice data = { reinterpret_cast<const unsigned char *>(data_.data()),
                   data_.size() };

    /* checked only now, as a character may be split across feeds */
    if (!utf8_valid(type.data, type.len) || !utf8_valid(data.data, data.len)) {
        return Status::bad_utf8;
    }

    events_++;

    bool go_on = sink(ctx, type, data);

    /* clear() keeps the capacity, which max_event already bounds */
    type_.clear();
    data_.clear();
    have_data_ = false;

    if (!go_on) {
        stopped_ = true;
    }

    return Status::ok;
}


/* an error ends the parse: later calls report it again */
EventStreamParser::Status
EventStreamParser::fail(Status status)
{
    error_ = status;
    return status;
}

} // namespace sse
