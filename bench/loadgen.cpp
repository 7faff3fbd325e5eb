// loadgen: a load generator for Server-Sent Events hubs.
//
//   loadgen subscribe --url http://127.0.0.1:8080/sub/c{ch} --conns N [--channels C]
//                     [--expect E] [--procs P] [--src-ips S] [--timeout SEC]
//                     [--save-ids FILE] [--resume FILE] [--headers FILE]
//   loadgen hold      (subscribe with no events expected: holds until stopped)
//   loadgen publish   --url http://127.0.0.1:8080/pub/c{ch} [--channels C]
//                     [--publishers K] (--events E | --duration SEC) [--rate R]
//                     [--size BYTES] [--payload padded|token] [--stream 0|1]
//                     [--first-seq N] [--procs P]
//
// {ch} in a URL is replaced by a channel number: connection i subscribes to
// channel i % C; publisher k owns the channels c with c % K == k and sends to
// them in turn, one request at a time, so that events of one channel leave in
// order.  Every event's data carries its seq (counting from 1 per channel)
// and the CLOCK_MONOTONIC time it was sent at (bench/payload.h):
// subscribers detect loss, duplicates and reordering from seq and measure
// publish-to-receive latency from the time.
//
// Publishers first connect, then start their schedule together; with --rate
// their first events are spread evenly over one interval, not sent at once.
// --stream 1: each publisher (one per channel) holds one chunked
// `Content-Type: text/event-stream` POST open and writes each event into it
// as a `data:` event when it is due; the body ends after the last one.
//
// --headers FILE: request header lines ("Cookie: sse_token=..."), one per
// line; connection i sends line i % (number of lines), so that each client
// can carry a token of its own.
//
// Output: JSON lines on stdout.  A subscriber prints {"event":"established"}
// once every connection is up or has failed, then {"event":"report"} when
// every connection got its E events, on SIGTERM, or at --timeout.  It keeps
// its connections open after the report until SIGTERM or --timeout, so that
// the servers' CPU time can be read before they see the disconnects.

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <queue>
#include <sstream>
#include <vector>

#include "histogram.h"
#include "http_sse.h"
#include "payload.h"
#include "procs.h"
#include "util.h"

namespace bench {
namespace {

constexpr size_t kReadBuffer = 256 * 1024;
constexpr int kPollMs = 20;
constexpr uint64_t kSnapshotEveryNs = 100'000'000;

// ---------------------------------------------------------------- options

struct Options {
    std::string mode;
    std::string url;
    uint64_t conns = 1;
    uint32_t channels = 1;
    uint64_t expect = 0;        // events per subscriber; 0: hold until stopped
    int procs = 0;              // 0: as many as the open-files limit needs
    int src_ips = 1;            // source addresses 127.0.0.1 .. 127.0.0.N
    double timeout = 60;        // the most the whole run may take
    double connect_timeout = 15;
    int retries = 3;
    int max_inflight = 256;     // connections being set up at once, per process
    std::string save_ids, resume;
    std::string headers_file;
    std::vector<std::string> headers;  // from headers_file
    uint32_t publishers = 1;
    uint64_t events = 0;        // per channel
    uint64_t first_seq = 1;     // of every channel's first event
    double duration = 0;
    double rate = 0;            // requests per second over all publishers
    size_t size = 64;           // bytes of event data (padded payload)
    PayloadKind payload = PayloadKind::kPadded;
    bool stream = false;        // one chunked text/event-stream POST per channel
};

[[noreturn]] void usage() {
    die("usage: loadgen subscribe|hold|publish --url URL [options]\n"
        "  subscribe/hold: --conns N --channels C --expect E --procs P --src-ips S\n"
        "                  --timeout SEC --connect-timeout SEC --retries R\n"
        "                  --max-inflight N --save-ids FILE --resume FILE --headers FILE\n"
        "  publish:        --channels C --publishers K --events E | --duration SEC\n"
        "                  --rate R --size BYTES --payload padded|token --stream 0|1\n"
        "                  --first-seq N --procs P --timeout SEC --connect-timeout SEC");
}

Options parse_options(int argc, char** argv) {
    if (argc < 2) usage();
    Options o;
    o.mode = argv[1];
    if (o.mode != "subscribe" && o.mode != "hold" && o.mode != "publish") usage();
    for (int i = 2; i < argc; i++) {
        std::string_view name = argv[i];
        if (i + 1 >= argc) usage();
        const char* v = argv[++i];
        bool ok = true;
        if (name == "--url") o.url = v;
        else if (name == "--conns") ok = parse_int(v, o.conns);
        else if (name == "--channels") ok = parse_int(v, o.channels) && o.channels > 0;
        else if (name == "--expect") ok = parse_int(v, o.expect);
        else if (name == "--procs") ok = parse_int(v, o.procs);
        else if (name == "--src-ips") ok = parse_int(v, o.src_ips) && o.src_ips > 0 && o.src_ips < 255;
        else if (name == "--timeout") ok = parse_double(v, o.timeout);
        else if (name == "--connect-timeout") ok = parse_double(v, o.connect_timeout);
        else if (name == "--retries") ok = parse_int(v, o.retries);
        else if (name == "--max-inflight") ok = parse_int(v, o.max_inflight) && o.max_inflight > 0;
        else if (name == "--save-ids") o.save_ids = v;
        else if (name == "--resume") o.resume = v;
        else if (name == "--headers") o.headers_file = v;
        else if (name == "--publishers") ok = parse_int(v, o.publishers) && o.publishers > 0;
        else if (name == "--events") ok = parse_int(v, o.events);
        else if (name == "--duration") ok = parse_double(v, o.duration);
        else if (name == "--rate") ok = parse_double(v, o.rate);
        else if (name == "--size") ok = parse_int(v, o.size);
        else if (name == "--payload") {
            ok = std::string_view(v) == "padded" || std::string_view(v) == "token";
            o.payload = std::string_view(v) == "token" ? PayloadKind::kToken : PayloadKind::kPadded;
        } else if (name == "--stream") {
            int on = 0;
            ok = parse_int(v, on) && (on == 0 || on == 1);
            o.stream = on == 1;
        }
        else if (name == "--first-seq") ok = parse_int(v, o.first_seq) && o.first_seq > 0;
        else die("unknown option %s", argv[i - 1]);
        if (!ok) die("bad value for %s: %s", argv[i - 1], v);
    }
    if (o.url.empty()) usage();
    if (o.mode == "hold") o.expect = 0;
    if (!o.headers_file.empty()) {
        std::ifstream in(o.headers_file);
        if (!in) die("cannot read %s", o.headers_file.c_str());
        for (std::string line; std::getline(in, line);) {
            if (!line.empty() && line.back() == '\r') line.pop_back();
            if (line.find(':') == std::string::npos || line.find('\n') != std::string::npos)
                die("%s: not a header line: %s", o.headers_file.c_str(), line.c_str());
            o.headers.push_back(line);
        }
        if (o.headers.empty()) die("%s: no header lines", o.headers_file.c_str());
    }
    if (o.mode == "publish" && o.events == 0 && o.duration <= 0)
        die("publish needs --events or --duration");
    if (o.mode == "publish" && o.publishers > o.channels)
        die("--publishers must not exceed --channels: a channel has one publisher");
    if (o.mode == "publish" && o.stream && o.publishers != o.channels)
        die("--stream 1 needs --publishers equal to --channels: one POST per channel");
    if (o.mode == "publish" && o.stream && o.rate <= 0)
        die("--stream 1 needs --rate: events are written into the streams as they fall due");
    return o;
}

// ---------------------------------------------------------------- target

// "http://a.b.c.d:port/path{ch}rest": where to connect and what to ask for.
class Target {
public:
    explicit Target(const std::string& url) {
        std::string_view u = url;
        if (u.substr(0, 7) != "http://") die("only http:// URLs: %s", url.c_str());
        u.remove_prefix(7);
        size_t slash = u.find('/');
        if (slash == std::string_view::npos) die("URL without a path: %s", url.c_str());
        host_ = std::string(u.substr(0, slash));
        if (!parse_ipv4_endpoint(host_, addr_)) die("URL host must be ipv4:port: %s", url.c_str());
        std::string_view path = u.substr(slash);
        size_t mark = path.find("{ch}");
        prefix_ = std::string(path.substr(0, mark));
        if (mark != std::string_view::npos) suffix_ = std::string(path.substr(mark + 4));
        has_channel_ = mark != std::string_view::npos;
    }

    const sockaddr_in& addr() const { return addr_; }
    const std::string& host() const { return host_; }
    std::string path(uint32_t channel) const {
        return has_channel_ ? prefix_ + std::to_string(channel) + suffix_ : prefix_;
    }

private:
    sockaddr_in addr_{};
    std::string host_, prefix_, suffix_;
    bool has_channel_ = false;
};

// Starts a non-blocking connect from 127.0.0.<1 + src>.  The source port is
// picked at connect() (IP_BIND_ADDRESS_NO_PORT), per destination, so each
// source address offers the whole ephemeral range.  Returns -1 with errno.
int start_connect(const sockaddr_in& dst, int src) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in from{};
    from.sin_family = AF_INET;
    from.sin_addr.s_addr = htonl(INADDR_LOOPBACK + uint32_t(src));
    if (bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0 ||
        (connect(fd, reinterpret_cast<const sockaddr*>(&dst), sizeof dst) != 0 &&
         errno != EINPROGRESS)) {
        int err = errno;
        ::close(fd);
        errno = err;
        return -1;
    }
    return fd;
}

int socket_error(int fd) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    return err;
}

int default_procs(uint64_t conns, size_t nofile) {
    size_t per_proc = nofile > 1000 ? nofile - 500 : nofile / 2;
    return int(std::max<uint64_t>(1, (conns + per_proc - 1) / per_proc));
}

// ---------------------------------------------------------------- subscribe

struct SubReport {
    uint64_t conns = 0, established = 0, failed = 0, closed = 0, retries = 0, non_200 = 0;
    uint64_t events = 0, unique = 0, duplicates = 0, reordered = 0, gaps = 0, stale = 0;
    uint64_t bad_data = 0, resets = 0, complete = 0, lost = 0;
    uint64_t t_start = 0, t_all_established = 0, t_complete = 0;
    Histogram latency;     // publish -> receive, per event
    Histogram completion;  // start -> a connection has all its events

    void merge(const SubReport& o) {
        conns += o.conns, established += o.established, failed += o.failed;
        closed += o.closed, retries += o.retries, non_200 += o.non_200;
        events += o.events, unique += o.unique, duplicates += o.duplicates;
        reordered += o.reordered, gaps += o.gaps, stale += o.stale;
        bad_data += o.bad_data, resets += o.resets, complete += o.complete, lost += o.lost;
        t_start = t_start ? std::min(t_start, o.t_start) : o.t_start;
        t_all_established = std::max(t_all_established, o.t_all_established);
        t_complete = std::max(t_complete, o.t_complete);
        latency.merge(o.latency);
        completion.merge(o.completion);
    }
};

// The sequence numbers seen on one stream.  Events up to `base` were
// received before a resume; a bitmap of the later ones tells a duplicate
// from an event that arrives late after a gap.
class SeqTracker {
public:
    enum class Kind { kNext, kGap, kDuplicate, kReordered, kStale };

    void set_base(uint64_t base) { base_ = max_ = base; }
    uint64_t unique() const { return unique_; }
    uint64_t max() const { return max_; }

    Kind add(uint64_t seq) {
        if (seq <= base_) return Kind::kStale;
        uint64_t bit = seq - base_ - 1;
        if (bit < kMaxTracked) {
            if (bit / 64 >= seen_.size()) seen_.resize(bit / 64 + 1);
            uint64_t mask = uint64_t(1) << (bit % 64);
            if (seen_[bit / 64] & mask) return Kind::kDuplicate;
            seen_[bit / 64] |= mask;
        }
        unique_++;
        if (seq < max_) return Kind::kReordered;
        Kind k = seq == max_ + 1 ? Kind::kNext : Kind::kGap;
        max_ = seq;
        return k;
    }

private:
    static constexpr uint64_t kMaxTracked = 1u << 22;
    uint64_t base_ = 0, max_ = 0, unique_ = 0;
    std::vector<uint64_t> seen_;
};

struct SubConn {
    enum class State { kWaiting, kConnecting, kRequested, kStreaming, kClosed };

    uint64_t index = 0;
    State state = State::kWaiting;
    Fd fd;
    int attempts = 0;
    uint64_t deadline = 0;  // of the connect in progress, or of the retry wait
    bool complete = false;
    std::string resume_id;  // sent as Last-Event-ID
    HttpResponseReader http;
    SseParser sse;
    SeqTracker seq;
};

class Subscriber {
public:
    Subscriber(const Options& o, const Target& t, int child, uint64_t t_start)
        : opt_(o), target_(t), child_(child), buf_(new char[kReadBuffer]) {
        report_.t_start = t_start;
        for (uint64_t i = uint64_t(child); i < o.conns; i += uint64_t(procs())) {
            auto c = std::make_unique<SubConn>();
            c->index = i;
            conns_.push_back(std::move(c));
        }
        report_.conns = conns_.size();
        if (!o.resume.empty()) load_resume_ids();
        for (auto& c : conns_) waiting_.push_back(c.get());
    }

    void run(ReportSink<SubReport>& sink);

private:
    int procs() const { return opt_.procs; }
    uint64_t in_flight() const { return connecting_; }
    bool connect_phase_over() const { return report_.established + report_.failed == report_.conns; }
    bool finished() const;

    void load_resume_ids();
    void save_ids() const;
    void start_connects(uint64_t now);
    void send_request(SubConn& c);
    void on_io(SubConn& c, uint32_t events);
    void on_readable(SubConn& c);
    bool on_head(SubConn& c);
    void on_event(SubConn& c, const SseEvent& ev, uint64_t now);
    void fail(SubConn& c, uint64_t now);
    void end_stream(SubConn& c);
    void sweep(uint64_t now);
    void finalize();

    const Options& opt_;
    const Target& target_;
    int child_;
    std::unique_ptr<char[]> buf_;
    Epoll epoll_;
    std::vector<std::unique_ptr<SubConn>> conns_;
    std::deque<SubConn*> waiting_;  // to connect, in order; retries wait at the back
    uint64_t connecting_ = 0;
    SubReport report_;
};

void Subscriber::load_resume_ids() {
    std::ifstream in(opt_.resume);
    if (!in) die("cannot read %s", opt_.resume.c_str());
    std::map<uint64_t, SubConn*> mine;
    for (auto& c : conns_) mine[c->index] = c.get();
    uint64_t index, seq;
    std::string id;
    while (in >> index >> seq >> id) {
        auto it = mine.find(index);
        if (it == mine.end()) continue;
        it->second->resume_id = id;
        it->second->seq.set_base(seq);
    }
}

void Subscriber::save_ids() const {
    std::ofstream out(opt_.save_ids + "." + std::to_string(child_));
    for (auto& c : conns_) {
        const std::string& id = c->sse.last_id();
        if (!id.empty()) out << c->index << ' ' << c->seq.max() << ' ' << id << '\n';
    }
}

void Subscriber::start_connects(uint64_t now) {
    while (!waiting_.empty() && in_flight() < uint64_t(opt_.max_inflight)) {
        SubConn& c = *waiting_.front();
        if (c.deadline > now) break;  // a retry whose pause has not passed
        waiting_.pop_front();
        c.attempts++;
        int fd = start_connect(target_.addr(), int(c.index % uint64_t(opt_.src_ips)));
        if (fd < 0) {
            fail(c, now);
            continue;
        }
        c.fd.reset(fd);
        c.state = SubConn::State::kConnecting;
        c.deadline = now + uint64_t(opt_.connect_timeout * 1e9);
        connecting_++;
        epoll_.add(fd, EPOLLOUT | EPOLLIN | EPOLLRDHUP, &c);
    }
}

void Subscriber::send_request(SubConn& c) {
    std::string req = "GET " + target_.path(uint32_t(c.index % opt_.channels)) +
                      " HTTP/1.1\r\nHost: " + target_.host() +
                      "\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n";
    if (!c.resume_id.empty()) req += "Last-Event-ID: " + c.resume_id + "\r\n";
    if (!opt_.headers.empty()) req += opt_.headers[c.index % opt_.headers.size()] + "\r\n";
    req += "\r\n";
    // A fresh socket takes a small request whole.
    if (::send(c.fd.get(), req.data(), req.size(), MSG_NOSIGNAL) != ssize_t(req.size())) {
        fail(c, mono_ns());
        return;
    }
    c.state = SubConn::State::kRequested;
    epoll_.modify(c.fd.get(), EPOLLIN | EPOLLRDHUP, &c);
}

void Subscriber::on_io(SubConn& c, uint32_t events) {
    if (c.state == SubConn::State::kConnecting) {
        if (socket_error(c.fd.get()) != 0) {
            fail(c, mono_ns());
            return;
        }
        send_request(c);
        return;
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) on_readable(c);
}

void Subscriber::on_readable(SubConn& c) {
    ssize_t n = ::recv(c.fd.get(), buf_.get(), kReadBuffer, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    uint64_t now = mono_ns();
    if (n <= 0) {
        if (c.state == SubConn::State::kStreaming) {
            end_stream(c);
        } else {
            fail(c, now);
        }
        return;
    }
    const char* p = buf_.get();
    size_t left = size_t(n);
    while (left > 0 && c.state != SubConn::State::kClosed) {
        bool had_head = c.http.headers_done();
        size_t used = 0;
        auto st = c.http.feed(p, left, &used, [&](const char* b, size_t len) {
            c.sse.feed(b, len, [&](const SseEvent& ev) { on_event(c, ev, now); });
        });
        p += used;
        left -= used;
        if (!had_head && c.http.headers_done() && !on_head(c)) return;
        if (st == HttpResponseReader::Status::kError) {
            fail(c, now);
            return;
        }
        if (st == HttpResponseReader::Status::kComplete) {  // the stream is over
            end_stream(c);
            return;
        }
        if (used == 0) break;
    }
}

// The response headers arrived: the subscription is established or refused.
bool Subscriber::on_head(SubConn& c) {
    connecting_--;
    if (c.http.status() != 200) {
        report_.non_200++;
        report_.failed++;
        c.state = SubConn::State::kClosed;
        c.fd.reset();
        return false;
    }
    c.state = SubConn::State::kStreaming;
    report_.established++;
    if (connect_phase_over()) report_.t_all_established = mono_ns();
    return true;
}

void Subscriber::on_event(SubConn& c, const SseEvent& ev, uint64_t now) {
    report_.events++;
    if (ev.type == "reset") {  // the server says it could not resume exactly
        report_.resets++;
        return;
    }
    uint64_t seq = 0, sent = 0;
    if (!parse_payload(ev.data, seq, sent)) {
        report_.bad_data++;
        return;
    }
    switch (c.seq.add(seq)) {
    case SeqTracker::Kind::kNext: break;
    case SeqTracker::Kind::kGap: report_.gaps++; break;
    case SeqTracker::Kind::kReordered: report_.reordered++; break;
    case SeqTracker::Kind::kDuplicate: report_.duplicates++; return;
    case SeqTracker::Kind::kStale: report_.stale++; return;
    }
    report_.unique++;
    if (now > sent) report_.latency.record(now - sent);
    if (opt_.expect && !c.complete && c.seq.unique() >= opt_.expect) {
        c.complete = true;
        report_.complete++;
        report_.t_complete = now;
        report_.completion.record(now - report_.t_start);
    }
}

// A connection attempt failed: try again after a pause, or give up.
void Subscriber::fail(SubConn& c, uint64_t now) {
    if (c.state == SubConn::State::kConnecting || c.state == SubConn::State::kRequested)
        connecting_--;
    c.fd.reset();
    c.http.reset();
    if (c.attempts <= opt_.retries) {
        report_.retries++;
        c.state = SubConn::State::kWaiting;
        c.deadline = now + uint64_t(c.attempts) * 200'000'000u;
        waiting_.push_back(&c);
    } else {
        report_.failed++;
        c.state = SubConn::State::kClosed;
        if (connect_phase_over()) report_.t_all_established = now;
    }
}

// The server ended a stream.  Before it delivered every expected event (or
// at all, when holding) that counts against it.
void Subscriber::end_stream(SubConn& c) {
    if (!c.complete) report_.closed++;
    c.state = SubConn::State::kClosed;
    c.fd.reset();
}

// Gives up on connections that take too long to be set up.
void Subscriber::sweep(uint64_t now) {
    for (auto& c : conns_) {
        bool pending = c->state == SubConn::State::kConnecting ||
                       c->state == SubConn::State::kRequested;
        if (pending && c->deadline < now) fail(*c, now);
    }
}

bool Subscriber::finished() const {
    if (g_stop) return true;
    if (!connect_phase_over()) return false;
    if (opt_.expect == 0) return report_.established == 0 || report_.closed == report_.established;
    return report_.complete + report_.closed >= report_.established;
}

void Subscriber::finalize() {
    for (auto& c : conns_) {
        if (opt_.expect && c->http.status() == 200 && c->seq.unique() < opt_.expect)
            report_.lost += opt_.expect - c->seq.unique();
    }
    if (!opt_.save_ids.empty()) save_ids();
}

void Subscriber::run(ReportSink<SubReport>& sink) {
    uint64_t deadline = report_.t_start + uint64_t(opt_.timeout * 1e9);
    uint64_t next_snapshot = 0, next_sweep = 0;
    std::vector<epoll_event> events(1024);
    for (;;) {
        uint64_t now = mono_ns();
        if (finished() || now >= deadline) break;
        start_connects(now);
        if (now >= next_sweep) {
            sweep(now);
            next_sweep = now + 500'000'000u;
        }
        if (now >= next_snapshot) {
            sink.send(report_, false);
            next_snapshot = now + kSnapshotEveryNs;
        }
        int n = epoll_.wait(events.data(), int(events.size()), kPollMs);
        for (int i = 0; i < n; i++)
            on_io(*static_cast<SubConn*>(events[size_t(i)].data.ptr), events[size_t(i)].events);
    }
    finalize();
    sink.send(report_, true);
    wait_for_stop(deadline);
}

// r merges the latest snapshot of every child that sent one: until all
// have, r.conns is only theirs, so "established" waits for every connection
// asked for, not for every connection counted so far.
void print_sub_progress(const SubReport& r, uint64_t conns, bool* announced) {
    if (*announced || r.established + r.failed < conns || conns == 0) return;
    *announced = true;
    std::printf("{\"event\":\"established\",\"established\":%llu,\"failed\":%llu,"
                "\"seconds\":%.3f}\n",
                (unsigned long long)r.established, (unsigned long long)r.failed,
                double(r.t_all_established - r.t_start) / 1e9);
    std::fflush(stdout);
}

void print_sub_report(const Options& o, const SubReport& r) {
    std::printf(
        "{\"event\":\"report\",\"mode\":\"%s\",\"conns\":%llu,\"established\":%llu,"
        "\"failed\":%llu,\"non_200\":%llu,\"closed\":%llu,\"retries\":%llu,\"expect\":%llu,"
        "\"events\":%llu,\"unique\":%llu,\"duplicates\":%llu,\"reordered\":%llu,"
        "\"gaps\":%llu,\"stale\":%llu,\"lost\":%llu,\"bad_data\":%llu,\"resets\":%llu,"
        "\"complete\":%llu,\"t_start_ns\":%llu,\"t_all_established_ns\":%llu,"
        "\"t_complete_ns\":%llu,\"latency\":%s,\"completion\":%s,\"latency_cdf\":%s}\n",
        o.mode.c_str(), (unsigned long long)r.conns, (unsigned long long)r.established,
        (unsigned long long)r.failed, (unsigned long long)r.non_200,
        (unsigned long long)r.closed, (unsigned long long)r.retries,
        (unsigned long long)o.expect, (unsigned long long)r.events,
        (unsigned long long)r.unique, (unsigned long long)r.duplicates,
        (unsigned long long)r.reordered, (unsigned long long)r.gaps,
        (unsigned long long)r.stale, (unsigned long long)r.lost,
        (unsigned long long)r.bad_data, (unsigned long long)r.resets,
        (unsigned long long)r.complete, (unsigned long long)r.t_start,
        (unsigned long long)r.t_all_established, (unsigned long long)r.t_complete,
        r.latency.summary_json().c_str(), r.completion.summary_json().c_str(),
        r.latency.cdf_json().c_str());
    std::fflush(stdout);
}

// Concatenates the children's id files into the one asked for.
void merge_id_files(const Options& o) {
    std::ofstream out(o.save_ids);
    for (int k = 0; k < o.procs; k++) {
        std::string part = o.save_ids + "." + std::to_string(k);
        std::ifstream in(part);
        out << in.rdbuf();
        std::remove(part.c_str());
    }
}

int run_subscribe(const Options& o, const Target& target) {
    uint64_t t_start = mono_ns();
    bool announced = false;
    ChildGroup<SubReport> children(o.procs, [&](int child, ReportSink<SubReport>& sink) {
        raise_nofile_limit();
        Subscriber(o, target, child, t_start).run(sink);
    });
    auto report = children.collect([&](const SubReport& r) { print_sub_progress(r, o.conns, &announced); });
    if (!o.save_ids.empty()) merge_id_files(o);
    print_sub_report(o, *report);
    wait_for_stop(t_start + uint64_t(o.timeout * 1e9));
    children.stop();
    return 0;
}

// ---------------------------------------------------------------- publish

struct PubReport {
    static constexpr int kStatuses = 600;
    uint64_t requests = 0, errors = 0, reconnects = 0;
    uint64_t events = 0;        // sent: one per POST, or one per data: event of a stream
    uint64_t t_first = 0;       // the first event sent
    uint64_t t_last = 0;        // the last reply
    uint64_t t_last_event = 0;  // the last event sent
    uint64_t status[kStatuses] = {};
    Histogram latency;  // request -> response, of POSTs of one event

    void merge(const PubReport& o) {
        requests += o.requests, errors += o.errors, reconnects += o.reconnects;
        events += o.events;
        t_first = t_first ? std::min(t_first, o.t_first) : o.t_first;
        t_last = std::max(t_last, o.t_last);
        t_last_event = std::max(t_last_event, o.t_last_event);
        for (int i = 0; i < kStatuses; i++) status[i] += o.status[i];
        latency.merge(o.latency);
    }
};

struct PubConn {
    // kIdle: connected, waiting for the turn of its next event (with
    // --stream its request body is open meanwhile); kBusy: a request is
    // complete and waits for its reply.
    enum class State { kConnecting, kIdle, kBusy, kDone };

    State state = State::kConnecting;
    Fd fd;
    uint32_t index = 0;              // publisher number, over all processes
    std::vector<uint32_t> channels;  // owned: no other connection publishes to them
    size_t next = 0;                 // position in channels
    uint64_t round = 0;              // events sent to each owned channel so far
    uint64_t due = 0;                // with --rate: when the next event may leave
    uint64_t sent_at = 0;
    bool want_out = true;   // EPOLLOUT is in the registered events
    bool body_open = false; // --stream: the request head is sent, its body not ended
    std::string out;
    size_t out_off = 0;
    HttpResponseReader http;
};

class Publisher {
public:
    Publisher(const Options& o, const Target& t, int child)
        : opt_(o), target_(t), buf_(new char[kReadBuffer]) {
        for (uint32_t k = uint32_t(child); k < o.publishers; k += uint32_t(o.procs)) {
            auto c = std::make_unique<PubConn>();
            c->index = k;
            for (uint32_t ch = k; ch < o.channels; ch += o.publishers) c->channels.push_back(ch);
            conns_.push_back(std::move(c));
        }
        if (o.rate > 0) interval_ = uint64_t(1e9 * double(o.publishers) / o.rate);
    }

    void run(ReportSink<PubReport>& sink);

private:
    using Due = std::pair<uint64_t, PubConn*>;

    bool has_more(const PubConn& c, uint64_t now) const {
        if (g_stop || (stop_at_ && now >= stop_at_)) return false;
        return opt_.events == 0 || c.round < opt_.events;
    }
    void connect(PubConn& c);
    void on_connected(PubConn& c);
    void maybe_start_schedule(uint64_t now);
    void run_due(uint64_t now);
    void park(PubConn& c);
    void start_next(PubConn& c, uint64_t now);
    void put_event(PubConn& c);
    void end_body(PubConn& c);
    void finish(PubConn& c);
    bool flush(PubConn& c);
    void want_out(PubConn& c, bool on);
    void on_io(PubConn& c, uint32_t events);
    void on_readable(PubConn& c);
    void on_response(PubConn& c, uint64_t now);
    void on_error(PubConn& c);
    uint64_t wait_ns(uint64_t now) const;

    const Options& opt_;
    const Target& target_;
    std::unique_ptr<char[]> buf_;
    Epoll epoll_;
    std::vector<std::unique_ptr<PubConn>> conns_;
    // idle connections by the time of their next event (stale entries are
    // skipped: the connection's due no longer matches)
    std::priority_queue<Due, std::vector<Due>, std::greater<Due>> due_;
    uint64_t interval_ = 0;
    uint64_t stop_at_ = 0;
    uint64_t connect_deadline_ = 0;
    bool scheduled_ = false;
    size_t done_ = 0;
    PubReport report_;
};

void Publisher::connect(PubConn& c) {
    int fd = start_connect(target_.addr(), 0);
    if (fd < 0) {
        report_.errors++;
        finish(c);
        return;
    }
    c.fd.reset(fd);
    c.http.reset();
    c.state = PubConn::State::kConnecting;
    c.want_out = true;
    c.body_open = false;
    c.out.clear();
    c.out_off = 0;
    epoll_.add(fd, EPOLLOUT | EPOLLIN | EPOLLRDHUP, &c);
}

// With --stream the request head leaves at once: the POST is open before
// its first event, as an application opens it when an answer starts.
void Publisher::on_connected(PubConn& c) {
    c.state = PubConn::State::kIdle;
    want_out(c, false);
    if (opt_.stream) {
        c.out = "POST " + target_.path(c.channels[0]) + " HTTP/1.1\r\nHost: " + target_.host() +
                "\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
        c.out_off = 0;
        c.body_open = true;
        if (!flush(c)) return;
    }
    start_next(c, mono_ns());
}

// The schedule starts when every connection is up (or the connect timeout
// passed), so that connection set-up neither delays events nor bunches
// them; the first events of the publishers are spread over one interval.
void Publisher::maybe_start_schedule(uint64_t now) {
    if (scheduled_) return;
    bool connecting = std::any_of(conns_.begin(), conns_.end(), [](const auto& c) {
        return c->state == PubConn::State::kConnecting;
    });
    if (connecting && now < connect_deadline_) return;
    scheduled_ = true;
    if (opt_.duration > 0) stop_at_ = now + uint64_t(opt_.duration * 1e9);
    for (auto& c : conns_) {
        c->due = now + interval_ * c->index / opt_.publishers;
        if (c->state == PubConn::State::kIdle) start_next(*c, now);
    }
}

void Publisher::run_due(uint64_t now) {
    while (!due_.empty() && due_.top().first <= now) {
        auto [at, c] = due_.top();
        due_.pop();
        if (c->state == PubConn::State::kIdle && c->fd.valid() && c->due == at)
            start_next(*c, now);
    }
}

void Publisher::park(PubConn& c) {
    c.state = PubConn::State::kIdle;
    due_.push({c.due, &c});
}

void Publisher::finish(PubConn& c) {
    if (c.state != PubConn::State::kDone) done_++;
    c.state = PubConn::State::kDone;
    c.fd.reset();
    c.body_open = false;
}

// Sends the connection's next event, or parks it until its turn (--rate)
// or for good (no more events; a stream then ends its body).
void Publisher::start_next(PubConn& c, uint64_t now) {
    for (;;) {
        if (!scheduled_) {
            c.state = PubConn::State::kIdle;
            return;
        }
        if (!has_more(c, now)) {
            if (c.body_open) end_body(c);
            else finish(c);
            return;
        }
        if (c.due > now) {
            park(c);
            return;
        }
        // A late event delays the schedule: catching up would send a burst,
        // and --rate is there to space events out.
        if (interval_) c.due = std::max(c.due + interval_, now);
        put_event(c);
        if (!opt_.stream) {
            c.state = PubConn::State::kBusy;
            flush(c);
            return;
        }
        if (!flush(c)) return;
        now = mono_ns();
    }
}

// The next event into the connection's output: a POST of its own, or one
// chunk of the open stream holding one `data:` event.
void Publisher::put_event(PubConn& c) {
    uint32_t channel = c.channels[c.next];
    c.sent_at = mono_ns();
    std::string data =
        make_payload(opt_.payload, opt_.first_seq + c.round, c.sent_at, opt_.size, channel);
    if (opt_.stream) {
        std::string event = "data: " + data + "\n\n";
        char head[24];
        std::snprintf(head, sizeof head, "%zx\r\n", event.size());
        c.out += head + event + "\r\n";
    } else {
        c.out = "POST " + target_.path(channel) + " HTTP/1.1\r\nHost: " + target_.host() +
                "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(data.size()) +
                "\r\n\r\n" + data;
        c.out_off = 0;
    }
    if (++c.next == c.channels.size()) {
        c.next = 0;
        c.round++;
    }
    report_.events++;
    if (!report_.t_first) report_.t_first = c.sent_at;
    report_.t_last_event = c.sent_at;
}

void Publisher::end_body(PubConn& c) {
    c.out += "0\r\n\r\n";
    c.body_open = false;
    c.state = PubConn::State::kBusy;
    c.sent_at = mono_ns();
    flush(c);
}

// Writes what is pending; false when the connection failed (and was
// started over or given up by on_error).
bool Publisher::flush(PubConn& c) {
    while (c.out_off < c.out.size()) {
        ssize_t w = ::send(c.fd.get(), c.out.data() + c.out_off, c.out.size() - c.out_off,
                           MSG_NOSIGNAL);
        if (w < 0 && errno == EAGAIN) {
            want_out(c, true);
            return true;
        }
        if (w <= 0) {
            on_error(c);
            return false;
        }
        c.out_off += size_t(w);
    }
    c.out.clear();
    c.out_off = 0;
    want_out(c, false);
    return true;
}

void Publisher::want_out(PubConn& c, bool on) {
    if (c.want_out == on) return;
    c.want_out = on;
    epoll_.modify(c.fd.get(), EPOLLIN | EPOLLRDHUP | (on ? EPOLLOUT : 0u), &c);
}

void Publisher::on_io(PubConn& c, uint32_t events) {
    if (c.state == PubConn::State::kDone) return;
    if (c.state == PubConn::State::kConnecting) {
        if (socket_error(c.fd.get()) != 0) on_error(c);
        else on_connected(c);
        return;
    }
    if ((events & EPOLLOUT) && c.out_off < c.out.size() && !flush(c)) return;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) on_readable(c);
}

void Publisher::on_readable(PubConn& c) {
    // An idle keep-alive connection that becomes readable was closed by the
    // server; an open stream may be answered before its end (a refusal).
    if (c.state != PubConn::State::kBusy && !c.body_open) {
        on_error(c);
        return;
    }
    ssize_t n = ::recv(c.fd.get(), buf_.get(), kReadBuffer, 0);
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) {
        on_error(c);
        return;
    }
    size_t used = 0;
    auto st = c.http.feed(buf_.get(), size_t(n), &used, [](const char*, size_t) {});
    if (st == HttpResponseReader::Status::kError) on_error(c);
    else if (st == HttpResponseReader::Status::kComplete) on_response(c, mono_ns());
}

void Publisher::on_response(PubConn& c, uint64_t now) {
    report_.requests++;
    report_.t_last = now;
    int code = c.http.status();
    report_.status[code > 0 && code < PubReport::kStatuses ? code : 0]++;
    if (opt_.stream) {
        // One POST per stream.  Answered before its body ended, it was
        // refused: the events not sent are missed by the subscribers, and
        // the reply's status is counted.
        finish(c);
        return;
    }
    report_.latency.record(now - c.sent_at);
    bool keep = c.http.keep_alive();
    c.http.reset();
    if (!keep) {
        c.fd.reset();
        report_.reconnects++;
        if (has_more(c, now)) connect(c);
        else finish(c);
        return;
    }
    start_next(c, now);
}

// The request in flight (with --stream, the rest of the open body) is lost
// and counted; the connection starts over.
void Publisher::on_error(PubConn& c) {
    report_.errors++;
    c.fd.reset();
    c.http.reset();
    c.body_open = false;
    if (report_.errors > 1000 || !has_more(c, mono_ns())) {
        finish(c);
        return;
    }
    report_.reconnects++;
    connect(c);
}

uint64_t Publisher::wait_ns(uint64_t now) const {
    uint64_t soonest = now + uint64_t(kPollMs) * 1'000'000;
    if (!due_.empty()) soonest = std::min(soonest, due_.top().first);
    return soonest > now ? soonest - now : 0;
}

void Publisher::run(ReportSink<PubReport>& sink) {
    uint64_t start = mono_ns();
    uint64_t deadline = start + uint64_t(opt_.timeout * 1e9);
    connect_deadline_ = start + uint64_t(opt_.connect_timeout * 1e9);
    for (auto& c : conns_) connect(*c);
    std::vector<epoll_event> events(1024);
    uint64_t next_snapshot = 0;
    for (;;) {
        uint64_t now = mono_ns();
        maybe_start_schedule(now);
        run_due(now);
        if (done_ == conns_.size() || now >= deadline) break;
        if (now >= next_snapshot) {
            sink.send(report_, false);
            next_snapshot = now + kSnapshotEveryNs;
        }
        int n = epoll_.wait_ns(events.data(), int(events.size()), wait_ns(now));
        for (int i = 0; i < n; i++)
            on_io(*static_cast<PubConn*>(events[size_t(i)].data.ptr), events[size_t(i)].events);
    }
    sink.send(report_, true);
}

void print_pub_report(const PubReport& r) {
    double seconds = r.t_last > r.t_first ? double(r.t_last - r.t_first) / 1e9 : 0;
    double event_seconds = r.t_last_event > r.t_first ? double(r.t_last_event - r.t_first) / 1e9 : 0;
    std::ostringstream status;
    uint64_t ok = 0;  // 2xx replies: only these are publishes; rps counts them alone
    for (int i = 0; i < PubReport::kStatuses; i++) {
        if (!r.status[i]) continue;
        if (i >= 200 && i < 300) ok += r.status[i];
        status << (status.tellp() > 0 ? "," : "") << '"' << i << "\":" << r.status[i];
    }
    std::printf("{\"event\":\"report\",\"mode\":\"publish\",\"requests\":%llu,\"ok\":%llu,"
                "\"errors\":%llu,\"reconnects\":%llu,\"seconds\":%.6f,\"rps\":%.1f,"
                "\"events\":%llu,\"events_per_s\":%.1f,"
                "\"status\":{%s},\"t_first_ns\":%llu,\"t_last_ns\":%llu,\"latency\":%s}\n",
                (unsigned long long)r.requests, (unsigned long long)ok,
                (unsigned long long)r.errors, (unsigned long long)r.reconnects, seconds,
                seconds > 0 ? double(ok) / seconds : 0.0, (unsigned long long)r.events,
                event_seconds > 0 ? double(r.events) / event_seconds : 0.0,
                status.str().c_str(), (unsigned long long)r.t_first,
                (unsigned long long)r.t_last, r.latency.summary_json().c_str());
    std::fflush(stdout);
}

int run_publish(const Options& o, const Target& target) {
    ChildGroup<PubReport> children(o.procs, [&](int child, ReportSink<PubReport>& sink) {
        raise_nofile_limit();
        Publisher(o, target, child).run(sink);
    });
    auto report = children.collect([](const PubReport&) {});
    print_pub_report(*report);
    return report->errors ? 1 : 0;
}

}  // namespace
}  // namespace bench

int main(int argc, char** argv) {
    using namespace bench;
    Options o = parse_options(argc, argv);
    Target target(o.url);
    install_stop_handler();
    size_t nofile = raise_nofile_limit();
    if (o.mode == "publish") {
        if (o.procs <= 0) o.procs = 1;
        o.procs = std::min<int>(o.procs, int(o.publishers));
        return run_publish(o, target);
    }
    if (o.procs <= 0) o.procs = default_procs(o.conns, nofile);
    if (o.conns / uint64_t(o.procs) + 64 > nofile)
        die("%llu connections need more than %d processes (open files limit %zu)",
            (unsigned long long)o.conns, o.procs, nofile);
    return run_subscribe(o, target);
}
