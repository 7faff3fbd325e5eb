// floor: the least a Server-Sent Events fan-out server can do, as a yardstick.
//
//   floor --listen 127.0.0.1:PORT [--workers N] [--pid-file FILE]
//
//   GET  /sub/<channel>   200, chunked text/event-stream; ":ok" at once, then
//                         every event published to the channel
//   POST /pub/<channel>   (or PUT) the body is the data of one event; 201
//
// No history, no ids, no heartbeats, no limits beyond a 64 KB body: the frame
// of an event ("data: ..." lines, chunk-encoded) is built once per publish and
// then written with one write() per subscriber.  Streams use HTTP/1.1 chunked
// coding, the wire format nginx produces, so clients do the same work for
// every server measured.
//
// N worker processes share the port through SO_REUSEPORT, as nginx's workers
// do, so both use the same cores.  A channel's subscribers may sit in any
// worker: the worker that takes a publish delivers to its own subscribers and
// passes the frame to every other worker over a SOCK_SEQPACKET socket, one
// message per event and worker, and each of them delivers it locally.

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <deque>
#include <fstream>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "util.h"

namespace bench {
namespace {

constexpr size_t kMaxBody = 64 * 1024;
constexpr size_t kMaxHead = 8 * 1024;
constexpr size_t kMaxPending = 4 * 1024 * 1024;  // unsent bytes before a subscriber is dropped
// A frame is at most 7 bytes ("data: \n") per body byte, plus its chunk size.
constexpr size_t kPeerMessageMax = kMaxBody * 8 + 512;

struct Options {
    sockaddr_in listen{};
    int workers = 2;
    std::string pid_file;
};

class Handler {
public:
    virtual void on_ready(uint32_t events) = 0;

protected:
    ~Handler() = default;
};

class Worker;

// A client connection: a publisher sending requests, or a subscriber.
class Conn final : public Handler {
public:
    Conn(Worker& w, int fd) : worker_(w), fd_(fd) {}
    void on_ready(uint32_t events) override;

    int fd() const { return fd_.get(); }
    void close_socket() { fd_.reset(); }
    // Writes one frame (or queues it behind unsent bytes); false when the
    // subscriber has to go.
    bool write_frame(std::string_view frame);

    std::string channel;  // set for a subscriber
    size_t slot = 0;      // its index in the channel's subscriber list
    bool subscriber = false;
    bool dead = false;    // to be closed once the fan-out loop is over
    bool closed = false;  // closed, and deleted after the current batch of events

private:
    void read_input();
    bool handle_request();
    bool flush();
    bool send_all(std::string_view bytes);

    Worker& worker_;
    Fd fd_;
    std::string in_;
    std::string pending_;  // bytes a full socket buffer did not take
};

class Listener final : public Handler {
public:
    Listener(Worker& w, int fd) : worker_(w), fd_(fd) {}
    void on_ready(uint32_t) override;
    int fd() const { return fd_.get(); }

private:
    Worker& worker_;
    Fd fd_;
};

// The sending side towards one other worker.
class PeerLink final : public Handler {
public:
    PeerLink(Worker& w, int fd) : worker_(w), fd_(fd) {}
    void send(std::string message);
    void on_ready(uint32_t) override;

private:
    bool try_send(const std::string& message);

    Worker& worker_;
    int fd_;  // shared by every worker that sends to that peer: never closed here
    std::deque<std::string> queue_;
};

// The receiving side: frames other workers took publishes for.
class Inbox final : public Handler {
public:
    Inbox(Worker& w, int fd) : worker_(w), fd_(fd), buf_(new char[kPeerMessageMax]) {}
    void on_ready(uint32_t) override;
    int fd() const { return fd_.get(); }

private:
    Worker& worker_;
    Fd fd_;
    std::unique_ptr<char[]> buf_;
};

class Worker {
public:
    Worker(int listen_fd, int inbox_fd, const std::vector<int>& peer_fds);
    [[noreturn]] void run();

    Epoll& epoll() { return epoll_; }
    void accept_from(int listen_fd);
    void subscribe(Conn& c, std::string_view channel);
    void publish(std::string_view channel, std::string_view data);
    void deliver(std::string_view channel, std::string_view frame);
    void close(Conn& c);

private:
    Epoll epoll_;
    Listener listener_;
    Inbox inbox_;
    std::vector<std::unique_ptr<PeerLink>> peers_;
    std::unordered_map<std::string, std::vector<Conn*>> channels_;
    std::vector<Conn*> dead_;
    // Closed connections live until the end of the batch of events that may
    // still name them.
    std::vector<std::unique_ptr<Conn>> closed_;
};

// ------------------------------------------------------------ event frames

// "data: <line>\n" per line of the event and a blank line, as one chunk of
// the chunked transfer coding.
std::string make_frame(std::string_view data) {
    std::string event;
    event.reserve(data.size() + 16);
    size_t start = 0;
    for (;;) {
        size_t eol = data.find('\n', start);
        std::string_view line = data.substr(start, eol == std::string_view::npos ? eol : eol - start);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        event.append("data: ").append(line).append("\n");
        if (eol == std::string_view::npos) break;
        start = eol + 1;
    }
    event += '\n';
    char size[32];
    int n = std::snprintf(size, sizeof size, "%zx\r\n", event.size());
    return std::string(size, size_t(n)) + event + "\r\n";
}

// A message to a peer worker: channel length (1 byte), channel, frame.
std::string make_peer_message(std::string_view channel, std::string_view frame) {
    std::string m;
    m.reserve(1 + channel.size() + frame.size());
    m += char(channel.size());
    m.append(channel).append(frame);
    return m;
}

// ------------------------------------------------------------ connections

void Conn::on_ready(uint32_t events) {
    if (closed) return;
    if (events & EPOLLOUT) {
        if (!flush()) {
            worker_.close(*this);
            return;
        }
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) read_input();
}

void Conn::read_input() {
    char buf[16 * 1024];
    for (;;) {
        ssize_t n = ::read(fd_.get(), buf, sizeof buf);
        if (n < 0 && errno == EAGAIN) break;
        if (n <= 0) {
            worker_.close(*this);
            return;
        }
        if (!subscriber) in_.append(buf, size_t(n));  // a subscriber has nothing more to say
    }
    while (!subscriber && handle_request()) {
    }
    if (dead) worker_.close(*this);
}

// Handles the first complete request in in_; false when there is none (or
// the connection is being closed).
bool Conn::handle_request() {
    size_t head_end = in_.find("\r\n\r\n");
    if (head_end == std::string::npos) {
        if (in_.size() > kMaxHead) dead = true;
        return false;
    }
    std::string_view head(in_.data(), head_end + 2);
    size_t sp1 = head.find(' '), sp2 = head.find(' ', sp1 + 1);
    if (sp1 == std::string_view::npos || sp2 == std::string_view::npos) {
        dead = true;
        return false;
    }
    std::string_view method = head.substr(0, sp1);
    std::string_view path = head.substr(sp1 + 1, sp2 - sp1 - 1);

    size_t body_len = 0;
    bool close_after = false;
    for (size_t pos = head.find("\r\n") + 2; pos < head.size();) {
        size_t eol = head.find("\r\n", pos);
        std::string_view line = head.substr(pos, eol - pos);
        pos = eol + 2;
        size_t colon = line.find(':');
        if (colon == std::string_view::npos) continue;
        std::string_view name = line.substr(0, colon), value = line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
        if (iequals(name, "content-length") && !parse_int(value, body_len)) body_len = ~size_t(0);
        if (iequals(name, "connection") && iequals(value, "close")) close_after = true;
        if (iequals(name, "transfer-encoding")) body_len = ~size_t(0);  // not supported
    }
    if (body_len > kMaxBody) {
        send_all("HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        dead = true;
        return false;
    }
    size_t total = head_end + 4 + body_len;
    if (in_.size() < total) return false;  // the body is still arriving
    std::string_view body(in_.data() + head_end + 4, body_len);

    // /sub/<channel> or /pub/<channel>; a channel fits the peer messages' length byte
    std::string_view route = path.substr(0, 5), name = path.substr(std::min<size_t>(5, path.size()));
    bool valid = !name.empty() && name.size() <= 255;
    if (method == "GET" && route == "/sub/" && valid) {
        worker_.subscribe(*this, name);
        in_.clear();
        return false;
    }
    if ((method == "POST" || method == "PUT") && route == "/pub/" && valid) {
        // The reply waits for the local fan-out, as in a server that
        // delivers synchronously; the other workers deliver in parallel.
        worker_.publish(name, body);
        send_all("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
    } else {
        send_all("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    }
    in_.erase(0, total);
    if (close_after) dead = true;
    return !dead;
}

bool Conn::write_frame(std::string_view frame) {
    if (!pending_.empty()) {
        if (pending_.size() + frame.size() > kMaxPending) return false;
        pending_.append(frame);
        return true;
    }
    return send_all(frame);
}

// Writes bytes with one write(); keeps what the socket did not take.
bool Conn::send_all(std::string_view bytes) {
    ssize_t n = ::write(fd_.get(), bytes.data(), bytes.size());
    if (n < 0 && errno != EAGAIN) return false;
    size_t sent = n < 0 ? 0 : size_t(n);
    if (sent < bytes.size()) {
        pending_.assign(bytes.substr(sent));
        worker_.epoll().modify(fd_.get(), EPOLLIN | EPOLLRDHUP | EPOLLOUT, this);
    }
    return true;
}

bool Conn::flush() {
    if (pending_.empty()) return true;
    ssize_t n = ::write(fd_.get(), pending_.data(), pending_.size());
    if (n < 0) return errno == EAGAIN;
    pending_.erase(0, size_t(n));
    if (pending_.empty()) worker_.epoll().modify(fd_.get(), EPOLLIN | EPOLLRDHUP, this);
    return true;
}

void Listener::on_ready(uint32_t) { worker_.accept_from(fd_.get()); }

// ------------------------------------------------------------ peers

void PeerLink::send(std::string message) {
    if (queue_.empty() && try_send(message)) return;
    if (queue_.empty()) worker_.epoll().add(fd_, EPOLLOUT, this);
    queue_.push_back(std::move(message));
}

bool PeerLink::try_send(const std::string& message) {
    ssize_t n = ::send(fd_, message.data(), message.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN) die("floor: peer send: %s", std::strerror(errno));
    return n >= 0;
}

void PeerLink::on_ready(uint32_t) {
    while (!queue_.empty() && try_send(queue_.front())) queue_.pop_front();
    if (queue_.empty()) worker_.epoll().remove(fd_);
}

void Inbox::on_ready(uint32_t) {
    for (;;) {
        ssize_t n = ::recv(fd_.get(), buf_.get(), kPeerMessageMax, MSG_DONTWAIT);
        if (n < 0 && errno == EAGAIN) return;
        if (n <= 0) die("floor: inbox: %s", n ? std::strerror(errno) : "closed");
        size_t len = static_cast<unsigned char>(buf_[0]);
        if (size_t(n) < 1 + len) die("floor: short peer message");
        worker_.deliver(std::string_view(buf_.get() + 1, len),
                        std::string_view(buf_.get() + 1 + len, size_t(n) - 1 - len));
    }
}

// ------------------------------------------------------------ worker

Worker::Worker(int listen_fd, int inbox_fd, const std::vector<int>& peer_fds)
    : listener_(*this, listen_fd), inbox_(*this, inbox_fd) {
    for (int fd : peer_fds) peers_.push_back(std::make_unique<PeerLink>(*this, fd));
    epoll_.add(listener_.fd(), EPOLLIN, &listener_);
    epoll_.add(inbox_.fd(), EPOLLIN, &inbox_);
}

void Worker::run() {
    epoll_event events[512];
    for (;;) {
        int n = epoll_.wait(events, 512, -1);
        for (int i = 0; i < n; i++) static_cast<Handler*>(events[i].data.ptr)->on_ready(events[i].events);
        closed_.clear();
    }
}

void Worker::accept_from(int listen_fd) {
    for (;;) {
        int fd = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE)
                std::fprintf(stderr, "floor: accept: %s\n", std::strerror(errno));
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        auto* c = new Conn(*this, fd);
        epoll_.add(fd, EPOLLIN | EPOLLRDHUP, c);
    }
}

void Worker::subscribe(Conn& c, std::string_view channel) {
    static constexpr std::string_view kHead =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
        "4\r\n:ok\n\r\n";
    c.subscriber = true;
    c.channel.assign(channel);
    auto& subs = channels_[c.channel];
    c.slot = subs.size();
    subs.push_back(&c);
    if (!c.write_frame(kHead)) c.dead = true;
}

void Worker::publish(std::string_view channel, std::string_view data) {
    std::string frame = make_frame(data);
    deliver(channel, frame);
    if (peers_.empty()) return;
    std::string message = make_peer_message(channel, frame);
    for (auto& p : peers_) p->send(message);
}

void Worker::deliver(std::string_view channel, std::string_view frame) {
    auto it = channels_.find(std::string(channel));
    if (it == channels_.end()) return;
    for (Conn* c : it->second) {
        if (!c->dead && !c->write_frame(frame)) {
            c->dead = true;
            dead_.push_back(c);
        }
    }
    // Closing changes the subscriber list, so it waits for the loop's end.
    std::vector<Conn*> dead;
    dead.swap(dead_);
    for (Conn* c : dead) close(*c);
}

void Worker::close(Conn& c) {
    if (c.closed) return;
    if (c.subscriber) {
        auto it = channels_.find(c.channel);
        auto& subs = it->second;
        subs[c.slot] = subs.back();
        subs[c.slot]->slot = c.slot;
        subs.pop_back();
        if (subs.empty()) channels_.erase(it);
    }
    c.close_socket();  // which also takes it out of the epoll set
    c.closed = true;
    closed_.emplace_back(&c);
}

// ------------------------------------------------------------ processes

Options parse_options(int argc, char** argv) {
    Options o;
    bool have_listen = false;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string_view name = argv[i];
        const char* v = argv[i + 1];
        if (name == "--listen") have_listen = parse_ipv4_endpoint(v, o.listen);
        else if (name == "--workers") {
            if (!parse_int(std::string_view(v), o.workers) || o.workers < 1) die("bad --workers");
        } else if (name == "--pid-file") o.pid_file = v;
        else die("unknown option %s", argv[i]);
    }
    if (!have_listen || argc % 2 == 0)
        die("usage: floor --listen IP:PORT [--workers N] [--pid-file FILE]");
    return o;
}

int make_listener(const sockaddr_in& addr) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 || listen(fd, 4096) != 0)
        die("floor: bind/listen: %s", std::strerror(errno));
    return fd;
}

// Worker i reads inbox[i].first; the others write to inbox[i].second.
[[noreturn]] void worker_main(int i, std::vector<int>& listeners,
                              std::vector<std::pair<int, int>>& inbox) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    signal(SIGPIPE, SIG_IGN);
    raise_nofile_limit();
    std::vector<int> peers;
    for (size_t k = 0; k < inbox.size(); k++) {
        if (int(k) == i) {
            ::close(inbox[k].second);
            continue;
        }
        ::close(inbox[k].first);
        set_nonblocking(inbox[k].second);
        peers.push_back(inbox[k].second);
    }
    for (size_t k = 0; k < listeners.size(); k++)
        if (int(k) != i) ::close(listeners[k]);
    Worker(listeners[size_t(i)], inbox[size_t(i)].first, peers).run();
}

volatile sig_atomic_t g_stop = 0;

int run(const Options& o) {
    std::vector<int> listeners;
    std::vector<std::pair<int, int>> inbox;
    for (int i = 0; i < o.workers; i++) {
        listeners.push_back(make_listener(o.listen));
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
            die("socketpair: %s", std::strerror(errno));
        int size = 4 * 1024 * 1024;
        setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
        inbox.emplace_back(sv[0], sv[1]);
    }
    std::vector<pid_t> pids;
    for (int i = 0; i < o.workers; i++) {
        pid_t pid = fork();
        if (pid < 0) die("fork: %s", std::strerror(errno));
        if (pid == 0) worker_main(i, listeners, inbox);
        pids.push_back(pid);
    }
    for (int fd : listeners) ::close(fd);
    for (auto& [r, w] : inbox) ::close(r), ::close(w);

    if (!o.pid_file.empty()) std::ofstream(o.pid_file) << getpid() << '\n';
    struct sigaction sa{};
    sa.sa_handler = [](int) { g_stop = 1; };
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
    // Runs until told to stop, or until a worker dies (which is a bug).
    int status = 0;
    pid_t died = -1;
    while (!g_stop && (died = waitpid(-1, &status, 0)) < 0 && errno == EINTR) {
    }
    if (!g_stop) std::fprintf(stderr, "floor: worker %d exited (status %d)\n", int(died), status);
    for (pid_t pid : pids) kill(pid, SIGKILL);
    while (waitpid(-1, nullptr, 0) > 0) {
    }
    if (!o.pid_file.empty()) std::remove(o.pid_file.c_str());
    return g_stop ? 0 : 1;
}

}  // namespace
}  // namespace bench

int main(int argc, char** argv) { return bench::run(bench::parse_options(argc, argv)); }
