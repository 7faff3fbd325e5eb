// Incremental client-side parsers: an HTTP/1.1 response (status line,
// headers, then a body with Content-Length, chunked coding or until close)
// and a text/event-stream body (WHATWG rules).
//
// Both take input in whatever pieces recv() returns and keep only the state
// needed to resume: per connection that is a few integers plus a partial
// line, which matters with tens of thousands of connections per process.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "util.h"

namespace bench {

class HttpResponseReader {
public:
    enum class Status { kNeedMore, kComplete, kError };

    // Consumes bytes of the response, handing body bytes to on_body(const
    // char*, size_t).  Returns kComplete once the response is over (the
    // bytes after it, if any, are left unread: *used tells how many were
    // consumed) and kError on malformed input.
    template <class OnBody>
    Status feed(const char* p, size_t n, size_t* used, OnBody&& on_body);

    // The peer closed the connection: completes a body that runs until close.
    Status on_eof() { return state_ == State::kUntilClose ? Status::kComplete : Status::kError; }

    bool headers_done() const { return state_ != State::kHead; }
    int status() const { return status_; }
    bool keep_alive() const { return keep_alive_; }
    void reset() { *this = HttpResponseReader(); }

private:
    enum class State { kHead, kLength, kUntilClose, kChunkSize, kChunkExt, kChunkData,
                       kChunkDataEnd, kTrailer, kDone };
    static constexpr size_t kMaxHead = 16 * 1024;

    bool parse_head();
    template <class OnBody>
    size_t feed_body(const char* p, size_t n, OnBody& on_body);

    State state_ = State::kHead;
    std::string head_;
    int status_ = 0;
    bool keep_alive_ = true;
    uint64_t remaining_ = 0;     // of a Content-Length body or of a chunk
    size_t trailer_line_ = 0;    // bytes in the current trailer line
    bool error_ = false;
};

template <class OnBody>
HttpResponseReader::Status HttpResponseReader::feed(const char* p, size_t n, size_t* used,
                                                    OnBody&& on_body) {
    size_t off = 0;
    if (state_ == State::kHead) {
        // Headers arrive in one segment nearly always; copy them only until
        // the blank line is seen.
        size_t keep = head_.size();
        head_.append(p, n);
        size_t end = head_.find("\r\n\r\n");
        if (end == std::string::npos) {
            *used = n;
            return head_.size() > kMaxHead ? Status::kError : Status::kNeedMore;
        }
        off = end + 4 - keep;
        head_.resize(end + 2);
        if (!parse_head()) return Status::kError;
        std::string().swap(head_);
    }
    off += feed_body(p + off, n - off, on_body);
    *used = off;
    if (error_) return Status::kError;
    return state_ == State::kDone ? Status::kComplete : Status::kNeedMore;
}

inline bool HttpResponseReader::parse_head() {
    std::string_view head(head_);
    size_t eol = head.find("\r\n");
    std::string_view line = head.substr(0, eol);
    // "HTTP/1.1 200 OK"
    if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." ||
        !parse_int(line.substr(9, 3), status_))
        return false;
    keep_alive_ = line[7] == '1';

    bool chunked = false;
    bool has_length = false;
    for (size_t pos = eol + 2; pos < head.size();) {
        size_t next = head.find("\r\n", pos);
        std::string_view h = head.substr(pos, next - pos);
        pos = next + 2;
        size_t colon = h.find(':');
        if (colon == std::string_view::npos) return false;
        std::string_view name = h.substr(0, colon);
        std::string_view value = h.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
        while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
        if (iequals(name, "content-length")) {
            if (!parse_int(value, remaining_)) return false;
            has_length = true;
        } else if (iequals(name, "transfer-encoding")) {
            chunked = iequals(value, "chunked");
        } else if (iequals(name, "connection")) {
            if (iequals(value, "close")) keep_alive_ = false;
            if (iequals(value, "keep-alive")) keep_alive_ = true;
        }
    }
    bool no_body = status_ == 204 || status_ == 304 || (status_ >= 100 && status_ < 200);
    if (no_body)
        state_ = State::kDone;
    else if (chunked)
        state_ = State::kChunkSize;
    else if (has_length)
        state_ = remaining_ ? State::kLength : State::kDone;
    else {
        state_ = State::kUntilClose;
        keep_alive_ = false;
    }
    return true;
}

template <class OnBody>
size_t HttpResponseReader::feed_body(const char* p, size_t n, OnBody& on_body) {
    size_t i = 0;
    while (i < n && state_ != State::kDone && !error_) {
        switch (state_) {
        case State::kUntilClose:
            on_body(p + i, n - i);
            i = n;
            break;
        case State::kLength:
        case State::kChunkData: {
            size_t take = size_t(std::min<uint64_t>(remaining_, n - i));
            on_body(p + i, take);
            i += take;
            remaining_ -= take;
            if (remaining_ == 0)
                state_ = state_ == State::kLength ? State::kDone : State::kChunkDataEnd;
            break;
        }
        case State::kChunkSize: {
            char c = p[i++];
            int digit = c >= '0' && c <= '9'   ? c - '0'
                        : c >= 'a' && c <= 'f' ? c - 'a' + 10
                        : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                               : -1;
            if (digit >= 0) {
                if (remaining_ >> 56) error_ = true;
                remaining_ = remaining_ * 16 + uint64_t(digit);
            } else if (c == '\r' || c == ';' || c == ' ') {
                state_ = State::kChunkExt;
            } else if (c == '\n') {
                state_ = remaining_ ? State::kChunkData : State::kTrailer;
            } else {
                error_ = true;
            }
            break;
        }
        case State::kChunkExt:  // extensions are ignored up to the LF
            if (p[i++] == '\n') state_ = remaining_ ? State::kChunkData : State::kTrailer;
            break;
        case State::kChunkDataEnd:  // the CRLF after chunk data
            if (p[i] == '\n') state_ = State::kChunkSize;
            else if (p[i] != '\r') error_ = true;
            i++;
            break;
        case State::kTrailer:  // lines up to an empty one end the message
            if (p[i] == '\n') {
                if (trailer_line_ == 0) state_ = State::kDone;
                trailer_line_ = 0;
            } else if (p[i] != '\r') {
                trailer_line_++;
            }
            i++;
            break;
        case State::kHead:
        case State::kDone:
            break;
        }
    }
    return i;
}

// One parsed server-sent event.
struct SseEvent {
    std::string_view type;  // empty for the default "message"
    std::string_view data;
    std::string_view id;    // the stream's last event id after this event
};

class SseParser {
public:
    // Consumes body bytes; calls on_event(const SseEvent&) for every event
    // dispatched by them.
    template <class OnEvent>
    void feed(const char* p, size_t n, OnEvent&& on_event);

    const std::string& last_id() const { return id_; }

private:
    template <class OnEvent>
    void on_line(std::string_view line, OnEvent& on_event);

    std::string line_;   // a line not yet ended, carried to the next read
    std::string data_;   // data of the event being built
    std::string type_;
    std::string id_;
    bool has_data_ = false;
    bool skip_lf_ = false;  // the last line ended with CR; an LF next belongs to it
};

template <class OnEvent>
void SseParser::feed(const char* p, size_t n, OnEvent&& on_event) {
    const char* end = p + n;
    if (skip_lf_ && p < end && *p == '\n') p++;
    skip_lf_ = false;
    while (p < end) {
        const char* eol = p;
        while (eol < end && *eol != '\n' && *eol != '\r') eol++;
        if (eol == end) {
            line_.append(p, size_t(end - p));
            return;
        }
        if (line_.empty()) {
            on_line(std::string_view(p, size_t(eol - p)), on_event);
        } else {
            line_.append(p, size_t(eol - p));
            on_line(line_, on_event);
            line_.clear();
        }
        p = eol + 1;
        if (*eol == '\r') {
            if (p == end) skip_lf_ = true;
            else if (*p == '\n') p++;
        }
    }
}

template <class OnEvent>
void SseParser::on_line(std::string_view line, OnEvent& on_event) {
    if (line.empty()) {
        if (has_data_) {
            on_event(SseEvent{type_, data_, id_});
        }
        data_.clear();
        type_.clear();
        has_data_ = false;
        return;
    }
    if (line.front() == ':') return;  // a comment: ":ok", heartbeats
    size_t colon = line.find(':');
    std::string_view field = line.substr(0, colon);
    std::string_view value;
    if (colon != std::string_view::npos) {
        value = line.substr(colon + 1);
        if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    }
    if (field == "data") {
        if (has_data_) data_ += '\n';
        data_.append(value);
        has_data_ = true;
    } else if (field == "id") {
        if (value.find('\0') == std::string_view::npos) id_.assign(value);
    } else if (field == "event") {
        type_.assign(value);
    }
}

}  // namespace bench
