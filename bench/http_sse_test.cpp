// Checks of the load generator's incremental parsers (bench/http_sse.h):
// a response must parse the same whether it arrives whole or split at every
// possible byte, since recv() may cut it anywhere.  And of its event
// payloads (bench/payload.h): what a publisher writes, a subscriber reads
// back.  Run by `make bench-tools`.

#include <cstdio>
#include <string>
#include <vector>

#include "http_sse.h"
#include "payload.h"

namespace {

using bench::HttpResponseReader;
using bench::SseEvent;
using bench::SseParser;

int failures = 0;

void check(bool ok, const char* what, const std::string& detail = "") {
    if (ok) return;
    failures++;
    std::fprintf(stderr, "FAIL: %s %s\n", what, detail.c_str());
}

struct Parsed {
    HttpResponseReader::Status status = HttpResponseReader::Status::kNeedMore;
    int code = 0;
    std::vector<std::string> events;  // "type|data|id"
    size_t leftover = 0;              // bytes after the response
};

// Feeds `input` in pieces of at most `step` bytes.
Parsed parse(const std::string& input, size_t step) {
    Parsed out;
    HttpResponseReader http;
    SseParser sse;
    size_t pos = 0;
    while (pos < input.size()) {
        size_t n = std::min(step, input.size() - pos);
        size_t used = 0;
        auto st = http.feed(input.data() + pos, n, &used, [&](const char* p, size_t len) {
            sse.feed(p, len, [&](const SseEvent& ev) {
                out.events.push_back(std::string(ev.type) + "|" + std::string(ev.data) + "|" +
                                     std::string(ev.id));
            });
        });
        pos += used;
        out.status = st;
        if (st != HttpResponseReader::Status::kNeedMore) break;
    }
    if (out.status == HttpResponseReader::Status::kNeedMore && pos == input.size())
        out.status = http.on_eof();
    out.code = http.status();
    out.leftover = input.size() - pos;
    return out;
}

// Every split gives the same events and status as the whole.
void check_all_splits(const char* name, const std::string& input, size_t events,
                      HttpResponseReader::Status status, size_t leftover = 0) {
    Parsed whole = parse(input, input.size());
    check(whole.events.size() == events, name, "event count " + std::to_string(whole.events.size()));
    check(whole.status == status, name, "status");
    if (status != HttpResponseReader::Status::kError)  // where it stops is then moot
        check(whole.leftover == leftover, name, "leftover " + std::to_string(whole.leftover));
    for (size_t step = 1; step < input.size(); step++) {
        Parsed part = parse(input, step);
        check(part.events == whole.events, name, "split " + std::to_string(step));
        check(part.status == whole.status, name, "status at split " + std::to_string(step));
    }
}

std::string chunk(const std::string& s) {
    char head[32];
    std::snprintf(head, sizeof head, "%zx\r\n", s.size());
    return head + s + "\r\n";
}

// Both payload shapes carry seq and time back; a token is short JSON text.
void check_payloads() {
    using bench::PayloadKind;
    uint64_t seq = 0, ns = 0;
    std::string padded = bench::make_payload(PayloadKind::kPadded, 12, 345678, 64, 3);
    check(padded.size() == 64, "padded size", std::to_string(padded.size()));
    check(bench::parse_payload(padded, seq, ns) && seq == 12 && ns == 345678, "padded round trip");

    size_t shortest = SIZE_MAX, longest = 0;
    for (uint64_t i = 1; i <= 5000; i++) {
        // a monotonic clock of a host up for a day to a year: 14 to 17 digits
        uint64_t t = 86'400'000'000'000ull + i * 6'311'520'000'000ull;
        std::string tok = bench::make_payload(PayloadKind::kToken, i, t, 64, uint32_t(i % 977));
        shortest = std::min(shortest, tok.size());
        longest = std::max(longest, tok.size());
        check(tok.front() == '{' && tok.back() == '}' && tok.find("\"tok\":\"") != std::string::npos,
              "token is JSON", tok);
        check(bench::parse_payload(tok, seq, ns) && seq == i && ns == t, "token round trip", tok);
    }
    check(shortest >= 20 && longest <= 60, "token sizes 20-60 bytes",
          std::to_string(shortest) + ".." + std::to_string(longest));
    check(shortest != longest, "tokens differ in size");

    for (const char* bad : {"", "{}", "{\"i\":,\"t\":5}", "{\"i\":1}", "x y", "1"})
        check(!bench::parse_payload(bad, seq, ns), "bad payload refused", bad);
}

}  // namespace

int main() {
    check_payloads();

    using Status = HttpResponseReader::Status;
    const std::string head =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";

    std::string chunked = head + chunk(":ok\n\n") + chunk("id: a-1\ndata: 1 100\n\n") +
                          chunk("id: a-2\nevent: reset\ndata: {\"x\":1}\n\n") +
                          chunk("data: two\r\ndata: lines\r\n\r\n") + "0\r\n\r\n" + "NEXT";
    check_all_splits("chunked", chunked, 3, Status::kComplete, 4);
    Parsed p = parse(chunked, chunked.size());
    check(p.code == 200, "status code");
    check(p.events.size() == 3 && p.events[0] == "|1 100|a-1", "first event", p.events[0]);
    check(p.events.size() == 3 && p.events[1] == "reset|{\"x\":1}|a-2", "typed event");
    check(p.events.size() == 3 && p.events[2] == "|two\nlines|a-2", "CRLF lines, id kept");

    // a chunk boundary inside a line, CR line ends split from their LF
    std::string split_lines = head + chunk("da") + chunk("ta: 7 1\r") + chunk("\n\r") +
                              chunk("\n") + "0\r\n\r\n";
    check_all_splits("split lines", split_lines, 1, Status::kComplete);

    std::string until_close = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"
                              "data: 1 5\n\ndata: 2 6\n\n";
    check_all_splits("until close", until_close, 2, Status::kComplete);

    std::string reply = "HTTP/1.1 201 Created\r\nContent-Length: 5\r\n\r\n{...}NEXT";
    check_all_splits("content-length", reply, 0, Status::kComplete, 4);

    check_all_splits("no body", "HTTP/1.1 204 No Content\r\n\r\n", 0, Status::kComplete);
    check_all_splits("garbage", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                     0, Status::kError);

    if (failures) return 1;
    std::puts("http_sse_test: ok");
    return 0;
}
