// soak_client: one soak run against ngx_http_sse_module, watching the
// memory of the nginx workers while it goes.
//
//   soak_client --addr 127.0.0.1:PORT --channel NAME --subscribers N
//               --events E [--batch B] [--window W] [--deadline SEC]
//               [--pids P1,P2,...] [--interval SEC] [--max-growth-kb K]
//               [--samples FILE] [--summary FILE] [--label TEXT]
//
// What it does, in one single-threaded epoll loop:
//  1. opens N subscriber streams to GET /sub/NAME and waits until the
//     channel (GET /pub/NAME) counts all N;
//  2. publishes events 1..E to POST /pub/NAME over one keep-alive
//     connection, B events per request as a text/event-stream body
//     ("data: <seq>\n\n" each), as fast as it can, but never more than W
//     events ahead of the slowest subscriber (so that the module's
//     sse_max_pending limit, which would rightly drop a subscriber that
//     falls that far behind, is not what gets measured);
//  3. checks that every subscriber gets every event exactly once, in
//     order: the data of its k-th event must be k and the event's id must
//     end in "-k" (docs/protocol.md: <epoch>-<seq>, the channel is fresh);
//     a stream the server ends early is resumed with Last-Event-ID, and
//     counted;
//  4. samples RSS and PSS of the given worker pids every --interval
//     seconds, and also exactly when 10% of all deliveries are in and at
//     the end; fails if a worker's RSS grew by more than --max-growth-kb
//     between those two points, or if a worker went away.
//
// Exit status: 0 all checks passed, 1 a check failed, 2 bad usage or setup.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

// ------------------------------------------------------------------ basics

[[noreturn]] void die(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    std::fputs("soak_client: ", stderr);
    std::vfprintf(stderr, fmt, ap);
    va_end(ap);
    std::fputc('\n', stderr);
    std::exit(2);
}

double now_s() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}

template <class Int>
bool parse_uint(std::string_view s, Int& out) {
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return !s.empty() && ec == std::errc() && end == s.data() + s.size();
}

struct Options {
    sockaddr_in addr{};
    std::string host;          // "127.0.0.1:PORT", for the Host header
    std::string channel;
    uint64_t subscribers = 1;
    uint64_t events = 0;       // per subscriber
    uint64_t batch = 1000;     // events per POST
    uint64_t window = 4000;    // events published ahead of the slowest subscriber
    double deadline = 300;     // seconds for the whole run
    double interval = 1;       // seconds between memory samples
    long max_growth_kb = 2048;
    std::vector<int> pids;
    std::string samples, summary, label;
};

[[noreturn]] void usage() {
    die("usage: soak_client --addr IP:PORT --channel NAME --subscribers N --events E\n"
        "       [--batch B] [--window W] [--deadline SEC] [--pids P1,P2]\n"
        "       [--interval SEC] [--max-growth-kb K] [--samples FILE]\n"
        "       [--summary FILE] [--label TEXT]");
}

Options parse_options(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc) usage();
        std::string_view name = argv[i];
        std::string value = argv[i + 1];
        bool ok = true;
        if (name == "--addr") {
            size_t colon = value.rfind(':');
            uint16_t port = 0;
            ok = colon != std::string::npos &&
                 parse_uint(std::string_view(value).substr(colon + 1), port) &&
                 inet_pton(AF_INET, value.substr(0, colon).c_str(), &o.addr.sin_addr) == 1;
            o.addr.sin_family = AF_INET;
            o.addr.sin_port = htons(port);
            o.host = value;
        } else if (name == "--channel") {
            o.channel = value;
        } else if (name == "--subscribers") {
            ok = parse_uint(value, o.subscribers) && o.subscribers > 0;
        } else if (name == "--events") {
            ok = parse_uint(value, o.events) && o.events > 0;
        } else if (name == "--batch") {
            ok = parse_uint(value, o.batch) && o.batch > 0;
        } else if (name == "--window") {
            ok = parse_uint(value, o.window);
        } else if (name == "--deadline") {
            o.deadline = std::atof(value.c_str());
            ok = o.deadline > 0;
        } else if (name == "--interval") {
            o.interval = std::atof(value.c_str());
            ok = o.interval > 0;
        } else if (name == "--max-growth-kb") {
            ok = parse_uint(value, o.max_growth_kb);
        } else if (name == "--pids") {
            std::stringstream ss(value);
            for (std::string p; std::getline(ss, p, ',');) {
                int pid = 0;
                ok = ok && parse_uint(p, pid) && pid > 0;
                o.pids.push_back(pid);
            }
        } else if (name == "--samples") {
            o.samples = value;
        } else if (name == "--summary") {
            o.summary = value;
        } else if (name == "--label") {
            o.label = value;
        } else {
            die("unknown option %s", argv[i]);
        }
        if (!ok) die("bad value for %s: %s", argv[i], value.c_str());
    }
    if (o.host.empty() || o.channel.empty() || o.events == 0) usage();
    if (o.window < o.batch) die("--window must be at least --batch");
    if (o.label.empty()) o.label = o.channel;
    return o;
}

// A non-blocking TCP connection to the server, connect started.
int open_connection(const sockaddr_in& addr) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket: %s", std::strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 &&
        errno != EINPROGRESS)
        die("connect: %s", std::strerror(errno));
    return fd;
}

// One blocking GET with Connection: close; returns the status line and
// body (the parsing is only good for the module's small JSON replies).
std::string http_get(const Options& o, const std::string& path) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, reinterpret_cast<const sockaddr*>(&o.addr), sizeof o.addr) != 0)
        die("GET %s: connect: %s", path.c_str(), std::strerror(errno));
    std::string req = "GET " + path + " HTTP/1.1\r\nHost: " + o.host +
                      "\r\nConnection: close\r\n\r\n";
    if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) != ssize_t(req.size()))
        die("GET %s: send: %s", path.c_str(), std::strerror(errno));
    std::string resp;
    char buf[4096];
    for (ssize_t n; (n = recv(fd, buf, sizeof buf, 0)) > 0;) resp.append(buf, size_t(n));
    close(fd);
    return resp;
}

// ------------------------------------------------------------------ HTTP

// An incremental HTTP/1.1 response reader: the head, then a body with
// Content-Length or chunked coding, handed on in the pieces it arrives in.
class HttpReader {
public:
    // Consumes input; body bytes go to on_body(std::string_view).  Returns
    // false on a malformed response.
    template <class OnBody>
    bool feed(std::string_view in, OnBody&& on_body);

    bool head_done() const { return state_ != State::kHead; }
    bool done() const { return state_ == State::kDone; }
    int status() const { return status_; }
    bool chunked() const { return chunked_; }
    bool event_stream() const { return event_stream_; }

private:
    enum class State { kHead, kLength, kSize, kSizeLine, kData, kDataEnd, kTrailer, kDone };

    bool parse_head();

    State state_ = State::kHead;
    std::string head_;
    int status_ = 0;
    bool chunked_ = false, event_stream_ = false;
    uint64_t left_ = 0;  // of the body or of the current chunk
};

bool HttpReader::parse_head() {
    // "HTTP/1.1 200 OK\r\n" then headers; only three of them matter here
    if (head_.compare(0, 9, "HTTP/1.1 ") != 0 || head_.size() < 12 ||
        !parse_uint(std::string_view(head_).substr(9, 3), status_))
        return false;
    std::string lower(head_);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return char(std::tolower(c)); });
    chunked_ = lower.find("\r\ntransfer-encoding: chunked\r\n") != std::string::npos;
    event_stream_ = lower.find("\r\ncontent-type: text/event-stream") != std::string::npos;
    size_t cl = lower.find("\r\ncontent-length: ");
    if (chunked_) {
        state_ = State::kSize;
    } else if (cl != std::string::npos) {
        size_t start = cl + 18, end = lower.find("\r\n", start);
        if (!parse_uint(std::string_view(lower).substr(start, end - start), left_)) return false;
        state_ = left_ ? State::kLength : State::kDone;
    } else {
        return false;  // a body until close: never sent by the module
    }
    head_.clear();
    return true;
}

template <class OnBody>
bool HttpReader::feed(std::string_view in, OnBody&& on_body) {
    size_t i = 0;
    if (state_ == State::kHead) {
        size_t had = head_.size();
        head_.append(in);
        size_t end = head_.find("\r\n\r\n");
        if (end == std::string::npos) return head_.size() < 16384;
        i = end + 4 - had;
        head_.resize(end + 2);
        if (!parse_head()) return false;
    }
    while (i < in.size()) {
        char c = in[i];
        switch (state_) {
        case State::kLength:
        case State::kData: {
            size_t take = size_t(std::min<uint64_t>(left_, in.size() - i));
            on_body(in.substr(i, take));
            i += take;
            left_ -= take;
            if (left_ == 0) state_ = state_ == State::kLength ? State::kDone : State::kDataEnd;
            break;
        }
        case State::kSize:  // hex digits, then anything up to LF
            i++;
            if (std::isxdigit(static_cast<unsigned char>(c))) {
                if (left_ >> 56) return false;
                left_ = left_ * 16 + uint64_t(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
            } else if (c == '\n') {
                state_ = left_ ? State::kData : State::kTrailer;
            } else {
                state_ = State::kSizeLine;
            }
            break;
        case State::kSizeLine:
            i++;
            if (c == '\n') state_ = left_ ? State::kData : State::kTrailer;
            break;
        case State::kDataEnd:  // the CRLF after a chunk's data
            i++;
            if (c == '\n') state_ = State::kSize;
            else if (c != '\r') return false;
            break;
        case State::kTrailer:  // the last chunk: no trailers are expected
            i++;
            if (c == '\n') state_ = State::kDone;
            break;
        case State::kHead:
        case State::kDone:
            return false;  // bytes after the response
        }
    }
    return true;
}

// ------------------------------------------------------------------ SSE

// The text/event-stream reader: lines in, events out (WHATWG rules, the
// parts the module uses: data, id, event fields and comments).
class SseReader {
public:
    // on_event(std::string_view type, std::string_view data, const std::string& id)
    template <class OnEvent>
    void feed(std::string_view in, OnEvent&& on_event) {
        while (!in.empty()) {
            size_t eol = in.find('\n');
            if (eol == std::string_view::npos) {
                partial_.append(in);
                return;
            }
            if (partial_.empty()) {
                line(in.substr(0, eol), on_event);
            } else {
                partial_.append(in.substr(0, eol));
                line(partial_, on_event);
                partial_.clear();
            }
            in.remove_prefix(eol + 1);
        }
    }

    const std::string& last_id() const { return id_; }

private:
    template <class OnEvent>
    void line(std::string_view l, OnEvent& on_event) {
        if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
        if (l.empty()) {  // the end of an event
            if (has_data_) on_event(std::string_view(type_), std::string_view(data_), id_);
            data_.clear();
            type_.clear();
            has_data_ = false;
            return;
        }
        if (l.front() == ':') return;  // ":ok", heartbeats
        size_t colon = l.find(':');
        std::string_view field = l.substr(0, colon), value;
        if (colon != std::string_view::npos) {
            value = l.substr(colon + 1);
            if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
        }
        if (field == "data") {
            if (has_data_) data_ += '\n';
            data_.append(value);
            has_data_ = true;
        } else if (field == "id") {
            id_.assign(value);
        } else if (field == "event") {
            type_.assign(value);
        }
    }

    std::string partial_, data_, type_, id_;
    bool has_data_ = false;
};

// ------------------------------------------------------------------ memory

// One process's memory, in kB: VmRSS (and how much of it is anonymous and
// shared memory, i.e. the zone) from /proc/PID/status, Pss from smaps_rollup.
struct Mem {
    long rss = -1, anon = -1, shmem = -1, pss = -1;
};

long proc_field(const std::string& file, const char* name) {
    std::ifstream in(file);
    size_t len = std::strlen(name);
    for (std::string l; std::getline(in, l);)
        if (l.compare(0, len, name) == 0) return std::atol(l.c_str() + len);
    return -1;
}

Mem read_mem(int pid) {
    std::string dir = "/proc/" + std::to_string(pid);
    Mem m;
    m.rss = proc_field(dir + "/status", "VmRSS:");
    m.anon = proc_field(dir + "/status", "RssAnon:");
    m.shmem = proc_field(dir + "/status", "RssShmem:");
    m.pss = proc_field(dir + "/smaps_rollup", "Pss:");
    return m;
}

struct Sample {
    double t;               // seconds since publishing started
    uint64_t published, delivered;
    std::vector<Mem> mem;   // per pid
    long rss_sum() const {
        long s = 0;
        for (auto& m : mem) s += m.rss;
        return s;
    }
    long pss_sum() const {
        long s = 0;
        for (auto& m : mem) s += m.pss;
        return s;
    }
};

// ------------------------------------------------------------------ the run

struct Sub {
    int fd = -1;
    HttpReader http;
    SseReader sse;
    uint64_t received = 0;   // events 1..received arrived, in order
    uint64_t resumes = 0;
    bool requested = false;  // the GET went out
    bool streaming = false;  // a 200 head came back
};

struct Pub {
    int fd = -1;
    bool connected = false, busy = false;
    std::string out;         // request bytes not yet sent
    size_t out_off = 0;
    HttpReader http;
    std::string reply;
    uint64_t sent = 0;       // events handed to the server
    uint64_t requests = 0;
};

class Run {
public:
    explicit Run(const Options& o) : o_(o), subs_(o.subscribers) {
        epfd_ = epoll_create1(EPOLL_CLOEXEC);
        if (epfd_ < 0) die("epoll_create1: %s", std::strerror(errno));
    }

    int execute();

private:
    void fail(const char* fmt, ...) __attribute__((format(printf, 2, 3)));
    void watch(int fd, uint32_t events, uint64_t tag, int op = EPOLL_CTL_ADD);
    void subscribe(size_t i);
    void send_request(size_t i);
    void on_sub(size_t i);
    void on_sub_event(size_t i, std::string_view type, std::string_view data, const std::string& id);
    void sub_ended(size_t i);
    void publish_next();
    void on_pub(uint32_t events);
    void pub_flush();
    uint64_t slowest() const;
    void poll(int timeout_ms);
    void sample();
    bool wait_for_subscribers();
    void write_samples() const;
    std::string check_growth();
    int report();

    static constexpr uint64_t kPubTag = ~uint64_t(0);

    const Options& o_;
    int epfd_ = -1;
    std::vector<Sub> subs_;
    Pub pub_;
    uint64_t established_ = 0, delivered_ = 0, complete_ = 0, resumes_ = 0;
    double t0_ = 0, t_end_ = 0;
    std::vector<Sample> samples_;
    int s10_ = -1, s_end_ = -1;   // indexes of the 10% and end samples
    std::vector<std::string> errors_;
    std::unique_ptr<char[]> buf_{new char[1 << 16]};
};

void Run::fail(const char* fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (errors_.size() < 20) errors_.push_back(msg);
}

void Run::watch(int fd, uint32_t events, uint64_t tag, int op) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = tag;
    if (epoll_ctl(epfd_, op, fd, &ev) != 0) die("epoll_ctl: %s", std::strerror(errno));
}

// (Re)opens subscriber i; the request goes out once it is connected.
void Run::subscribe(size_t i) {
    Sub& s = subs_[i];
    s.fd = open_connection(o_.addr);
    s.http = HttpReader();
    s.requested = s.streaming = false;
    watch(s.fd, EPOLLOUT, i);
}

// Connected (or failed to): sends the GET, resuming after a drop from the
// last event id, and from then on waits for input only.
void Run::send_request(size_t i) {
    Sub& s = subs_[i];
    std::string req = "GET /sub/" + o_.channel + " HTTP/1.1\r\nHost: " + o_.host +
                      "\r\nAccept: text/event-stream\r\n";
    if (!s.sse.last_id().empty()) req += "Last-Event-ID: " + s.sse.last_id() + "\r\n";
    req += "\r\n";
    // a fresh socket takes a small request whole
    if (send(s.fd, req.data(), req.size(), MSG_NOSIGNAL) != ssize_t(req.size())) {
        fail("subscriber %zu: cannot send the request: %s", i, std::strerror(errno));
        return;
    }
    s.requested = true;
    watch(s.fd, EPOLLIN | EPOLLRDHUP, i, EPOLL_CTL_MOD);
}

void Run::on_sub(size_t i) {
    Sub& s = subs_[i];
    ssize_t n = recv(s.fd, buf_.get(), 1 << 16, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
        sub_ended(i);
        return;
    }
    bool had_head = s.http.head_done();
    bool ok = s.http.feed(std::string_view(buf_.get(), size_t(n)), [&](std::string_view body) {
        s.sse.feed(body, [&](std::string_view type, std::string_view data, const std::string& id) {
            on_sub_event(i, type, data, id);
        });
    });
    if (!ok) {
        fail("subscriber %zu: malformed HTTP response", i);
        return;
    }
    if (!had_head && s.http.head_done()) {
        if (s.http.status() != 200 || !s.http.chunked() || !s.http.event_stream()) {
            fail("subscriber %zu: status %d (chunked: %d, text/event-stream: %d)", i,
                 s.http.status(), s.http.chunked(), s.http.event_stream());
            return;
        }
        if (!s.streaming && s.resumes == 0) established_++;
        s.streaming = true;
    }
    if (s.http.done()) sub_ended(i);
}

void Run::on_sub_event(size_t i, std::string_view type, std::string_view data,
                       const std::string& id) {
    Sub& s = subs_[i];
    uint64_t want = s.received + 1, got = 0;
    if (!type.empty()) {
        fail("subscriber %zu: unexpected '%.*s' event after event %" PRIu64 ": %.*s", i,
             int(type.size()), type.data(), s.received, int(std::min<size_t>(data.size(), 200)),
             data.data());
        return;
    }
    if (!parse_uint(data, got) || got != want) {
        fail("subscriber %zu: expected event %" PRIu64 ", got data '%.*s'%s", i, want,
             int(std::min<size_t>(data.size(), 40)), data.data(),
             want > o_.events ? " (an extra event)" : "");
        return;
    }
    // the id is <epoch>-<seq> and, the channel being fresh, seq == data
    size_t dash = id.rfind('-');
    uint64_t id_seq = 0;
    if (dash == std::string::npos ||
        !parse_uint(std::string_view(id).substr(dash + 1), id_seq) || id_seq != got) {
        fail("subscriber %zu: event %" PRIu64 " has id '%s'", i, got, id.c_str());
        return;
    }
    s.received = got;
    delivered_++;
    if (got == o_.events) complete_++;
}

// The server ended a stream: resume it unless it was already complete.
void Run::sub_ended(size_t i) {
    Sub& s = subs_[i];
    close(s.fd);
    s.fd = -1;
    if (!s.streaming) {
        fail("subscriber %zu: connection closed before the response", i);
        return;
    }
    if (s.received < o_.events) {
        s.resumes++;
        resumes_++;
        subscribe(i);
    }
}

uint64_t Run::slowest() const {
    uint64_t m = ~uint64_t(0);
    for (auto& s : subs_) m = std::min(m, s.received);
    return m;
}

// Sends the next batch when the last reply is in and the window allows it.
void Run::publish_next() {
    if (!pub_.connected || pub_.busy || pub_.sent >= o_.events) return;
    uint64_t n = std::min(o_.batch, o_.events - pub_.sent);
    if (pub_.sent + n - slowest() > o_.window) return;
    std::string body;
    body.reserve(size_t(n) * 16);
    for (uint64_t seq = pub_.sent + 1; seq <= pub_.sent + n; seq++)
        body.append("data: ").append(std::to_string(seq)).append("\n\n");
    pub_.out = "POST /pub/" + o_.channel + " HTTP/1.1\r\nHost: " + o_.host +
               "\r\nContent-Type: text/event-stream\r\nContent-Length: " +
               std::to_string(body.size()) + "\r\n\r\n" + body;
    pub_.out_off = 0;
    pub_.sent += n;
    pub_.requests++;
    pub_.busy = true;
    pub_.http = HttpReader();
    pub_.reply.clear();
    pub_flush();
}

void Run::pub_flush() {
    while (pub_.out_off < pub_.out.size()) {
        ssize_t n = send(pub_.fd, pub_.out.data() + pub_.out_off, pub_.out.size() - pub_.out_off,
                         MSG_NOSIGNAL);
        if (n < 0 && errno == EAGAIN) break;
        if (n <= 0) {
            fail("publisher: send: %s", std::strerror(errno));
            return;
        }
        pub_.out_off += size_t(n);
    }
    uint32_t ev = EPOLLIN | (pub_.out_off < pub_.out.size() ? uint32_t(EPOLLOUT) : 0u);
    watch(pub_.fd, ev, kPubTag, EPOLL_CTL_MOD);
}

void Run::on_pub(uint32_t events) {
    if (!pub_.connected) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(pub_.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            fail("publisher: connect: %s", std::strerror(err));
            return;
        }
        pub_.connected = true;
        watch(pub_.fd, EPOLLIN, kPubTag, EPOLL_CTL_MOD);
        return;
    }
    if (events & EPOLLOUT) pub_flush();
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
    ssize_t n = recv(pub_.fd, buf_.get(), 1 << 16, 0);
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0 || !pub_.busy) {
        fail("publisher: connection closed by the server after %" PRIu64 " requests",
             pub_.requests);
        return;
    }
    if (!pub_.http.feed(std::string_view(buf_.get(), size_t(n)),
                        [&](std::string_view b) { pub_.reply.append(b); })) {
        fail("publisher: malformed reply");
        return;
    }
    if (!pub_.http.done()) return;
    // 201: published to connected subscribers (202 would mean none)
    if (pub_.http.status() != 201)
        fail("publisher: request %" PRIu64 " got %d: %.200s", pub_.requests, pub_.http.status(),
             pub_.reply.c_str());
    pub_.busy = false;
}

void Run::poll(int timeout_ms) {
    epoll_event evs[256];
    int n = epoll_wait(epfd_, evs, 256, timeout_ms);
    if (n < 0 && errno != EINTR) die("epoll_wait: %s", std::strerror(errno));
    for (int k = 0; k < n; k++) {
        uint64_t tag = evs[k].data.u64;
        if (tag == kPubTag) {
            on_pub(evs[k].events);
            continue;
        }
        Sub& s = subs_[tag];
        if (s.fd < 0) continue;
        if (s.requested) on_sub(size_t(tag));
        else send_request(size_t(tag));
    }
}

void Run::sample() {
    Sample s{now_s() - t0_, pub_.sent, delivered_, {}};
    for (int pid : o_.pids) {
        Mem m = read_mem(pid);
        if (m.rss < 0) fail("nginx worker %d is gone (crashed?)", pid);
        s.mem.push_back(m);
    }
    samples_.push_back(s);
}

// Until the channel counts every subscriber, a publish could miss some.
bool Run::wait_for_subscribers() {
    std::string want = "\"subscribers\":" + std::to_string(o_.subscribers) + ",";
    for (double until = now_s() + 10; now_s() < until;) {
        if (http_get(o_, "/pub/" + o_.channel).find(want) != std::string::npos) return true;
        poll(50);  // meanwhile read the streams' first bytes
    }
    return false;
}

int Run::execute() {
    double start = now_s(), deadline = start + o_.deadline;

    // 1. subscribers, at most 256 connecting at once, within 30 seconds
    size_t opened = 0;
    double connect_until = std::min(deadline, start + 30);
    while (established_ < o_.subscribers && errors_.empty()) {
        if (now_s() >= connect_until) {
            fail("only %" PRIu64 " of %" PRIu64 " subscribers got a 200 in 30s", established_,
                 o_.subscribers);
            break;
        }
        while (opened < subs_.size() && opened - established_ < 256) subscribe(opened++);
        poll(20);
    }
    if (errors_.empty() && !wait_for_subscribers())
        fail("the channel never counted %" PRIu64 " subscribers", o_.subscribers);
    double t_subscribed = now_s() - start;

    // 2. publish and receive, sampling memory as it goes
    pub_.fd = open_connection(o_.addr);
    watch(pub_.fd, EPOLLOUT, kPubTag);
    t0_ = now_s();
    if (errors_.empty()) sample();
    double next_sample = t0_ + o_.interval;
    uint64_t total = o_.events * o_.subscribers;
    while (errors_.empty() && complete_ < o_.subscribers) {
        double now = now_s();
        if (now >= deadline) {
            fail("deadline: %.0fs passed with %" PRIu64 " of %" PRIu64
                 " deliveries (published %" PRIu64 ", slowest subscriber at %" PRIu64 ")",
                 o_.deadline, delivered_, total, pub_.sent, slowest());
            break;
        }
        publish_next();
        poll(int(std::max(1.0, std::min(50.0, (next_sample - now) * 1000))));
        if (s10_ < 0 && delivered_ * 10 >= total) {
            sample();
            s10_ = int(samples_.size()) - 1;
        } else if (now_s() >= next_sample) {
            sample();
            next_sample += o_.interval;
        }
    }
    t_end_ = now_s();
    if (errors_.empty()) {
        sample();
        s_end_ = int(samples_.size()) - 1;
        // half a second more: anything arriving now is a duplicate
        for (double until = now_s() + 0.5; now_s() < until && errors_.empty();) poll(50);
    }
    std::printf("%s: %" PRIu64 " subscribers up in %.2fs\n", o_.label.c_str(), established_,
                t_subscribed);
    return report();
}

void Run::write_samples() const {
    std::ofstream out(o_.samples);
    out << "# t_s published delivered";
    for (int pid : o_.pids)
        out << " rss_kb_" << pid << " pss_kb_" << pid << " anon_kb_" << pid << " shmem_kb_" << pid;
    out << '\n';
    if (s10_ >= 0) out << "# t_10pct " << samples_[size_t(s10_)].t << '\n';
    for (auto& s : samples_) {
        out << s.t << ' ' << s.published << ' ' << s.delivered;
        for (auto& m : s.mem) out << ' ' << m.rss << ' ' << m.pss << ' ' << m.anon << ' ' << m.shmem;
        out << '\n';
    }
}

// Fails the run if a worker's RSS grew too much between the 10% point and
// the end; returns the growth per worker as "+12 / +0" (kB).
std::string Run::check_growth() {
    const Sample &a = samples_[size_t(s10_)], &b = samples_[size_t(s_end_)];
    std::string text;
    for (size_t k = 0; k < o_.pids.size(); k++) {
        long g = b.mem[k].rss - a.mem[k].rss;
        text += (k ? " / " : "") + std::string(g >= 0 ? "+" : "") + std::to_string(g);
        if (g > o_.max_growth_kb)
            fail("worker %d: RSS grew by %ld kB between the 10%% point (%ld kB) and the end "
                 "(%ld kB), more than %ld kB",
                 o_.pids[k], g, a.mem[k].rss, b.mem[k].rss, o_.max_growth_kb);
    }
    return text;
}

// Prints the figures and the verdict, writes the samples and appends one
// row to the summary table (run.sh prints its header).
int Run::report() {
    double secs = t_end_ - t0_;
    if (!o_.samples.empty()) write_samples();
    std::printf("%s: %" PRIu64 " events x %" PRIu64 " subscribers: %" PRIu64
                " deliveries in %.2fs (%.0f events/s published, %.0f deliveries/s), "
                "%" PRIu64 " requests, %" PRIu64 " resumes\n",
                o_.label.c_str(), o_.events, o_.subscribers, delivered_, secs,
                double(pub_.sent) / secs, double(delivered_) / secs, pub_.requests, resumes_);

    // memory: sums over the workers, kB; "-" where the run never got there
    std::string mem_cols = "| - | - | - | - | - | - ";
    if (!o_.pids.empty() && s10_ >= 0 && s_end_ >= 0) {
        std::string growth = check_growth();
        long max_rss = 0, max_pss = 0;
        for (auto& s : samples_) {
            max_rss = std::max(max_rss, s.rss_sum());
            max_pss = std::max(max_pss, s.pss_sum());
        }
        const Sample &s0 = samples_.front(), &a = samples_[size_t(s10_)],
                     &b = samples_[size_t(s_end_)];
        std::printf("%s: workers' RSS (sum, kB): start %ld, 10%% %ld, end %ld, max %ld; "
                    "PSS: %ld, %ld, %ld, max %ld; RSS growth 10%%->end per worker (kB): %s\n",
                    o_.label.c_str(), s0.rss_sum(), a.rss_sum(), b.rss_sum(), max_rss,
                    s0.pss_sum(), a.pss_sum(), b.pss_sum(), max_pss, growth.c_str());
        char cols[256];
        auto mb = [](long kb) { return double(kb) / 1024; };
        std::snprintf(cols, sizeof cols, "| %.1f | %.1f | %.1f | %.1f | %s | %.1f → %.1f ",
                      mb(s0.rss_sum()), mb(a.rss_sum()), mb(b.rss_sum()), mb(max_rss),
                      growth.c_str(), mb(a.pss_sum()), mb(b.pss_sum()));
        mem_cols = cols;
    }

    for (auto& e : errors_) std::printf("%s: FAIL: %s\n", o_.label.c_str(), e.c_str());
    if (errors_.empty())
        std::printf("%s: PASS: every subscriber got events 1..%" PRIu64
                    " exactly once, in order\n",
                    o_.label.c_str(), o_.events);
    if (!o_.summary.empty()) {
        std::FILE* f = std::fopen(o_.summary.c_str(), "a");
        if (!f) die("cannot write %s", o_.summary.c_str());
        std::fprintf(f,
                     "| %s | %" PRIu64 " × %" PRIu64 " | %" PRIu64 " | %.1f | %.0f | %.0f %s| %" PRIu64
                     " | %s |\n",
                     o_.label.c_str(), o_.subscribers, o_.events, delivered_, secs,
                     double(pub_.sent) / secs, double(delivered_) / secs, mem_cols.c_str(),
                     resumes_, errors_.empty() ? "PASS" : "FAIL");
        std::fclose(f);
    }
    return errors_.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    Options o = parse_options(argc, argv);
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    return Run(o).execute();
}
