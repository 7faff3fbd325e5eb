// Small POSIX helpers shared by the load generator and the floor server.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>

namespace bench {

// CLOCK_MONOTONIC is shared by every process on the host, so a timestamp
// taken by a publisher can be compared with one taken by a subscriber.
inline uint64_t mono_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

[[noreturn]] inline void die(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    std::vfprintf(stderr, fmt, ap);
    va_end(ap);
    std::fputc('\n', stderr);
    std::exit(2);
}

inline void set_nonblocking(int fd) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        die("fcntl(O_NONBLOCK): %s", std::strerror(errno));
}

// Raises the soft open-files limit to the hard one (the most an unprivileged
// process may take) and returns it.
inline size_t raise_nofile_limit() {
    rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        die("getrlimit: %s", std::strerror(errno));
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            die("setrlimit: %s", std::strerror(errno));
    }
    return size_t(rl.rlim_cur);
}

// Parses a whole decimal number; false on anything else.
template <class Int>
bool parse_int(std::string_view s, Int& out) {
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && end == s.data() + s.size() && !s.empty();
}

inline bool parse_double(const char* s, double& out) {
    char* end = nullptr;
    out = std::strtod(s, &end);
    return end != s && *end == '\0';
}

// "a.b.c.d:port" -> sockaddr_in.
inline bool parse_ipv4_endpoint(std::string_view s, sockaddr_in& out) {
    size_t colon = s.rfind(':');
    if (colon == std::string_view::npos) return false;
    std::string host(s.substr(0, colon));
    uint16_t port = 0;
    if (!parse_int(s.substr(colon + 1), port) || port == 0) return false;
    std::memset(&out, 0, sizeof out);
    out.sin_family = AF_INET;
    out.sin_port = htons(port);
    return inet_pton(AF_INET, host.c_str(), &out.sin_addr) == 1;
}

inline bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); i++) {
        if (std::tolower(static_cast<unsigned char>(a[i])) !=
            std::tolower(static_cast<unsigned char>(b[i])))
            return false;
    }
    return true;
}

// Owns one file descriptor.
class Fd {
public:
    Fd() = default;
    explicit Fd(int fd) : fd_(fd) {}
    Fd(Fd&& o) noexcept : fd_(o.release()) {}
    Fd& operator=(Fd&& o) noexcept {
        if (this != &o) reset(o.release());
        return *this;
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() { reset(); }

    int get() const { return fd_; }
    bool valid() const { return fd_ >= 0; }
    int release() {
        int fd = fd_;
        fd_ = -1;
        return fd;
    }
    void reset(int fd = -1) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = fd;
    }

private:
    int fd_ = -1;
};

// A thin epoll wrapper whose events carry a pointer to their handler.
class Epoll {
public:
    Epoll() : fd_(epoll_create1(EPOLL_CLOEXEC)) {
        if (!fd_.valid()) die("epoll_create1: %s", std::strerror(errno));
    }
    void add(int fd, uint32_t events, void* ptr) { ctl(EPOLL_CTL_ADD, fd, events, ptr); }
    void modify(int fd, uint32_t events, void* ptr) { ctl(EPOLL_CTL_MOD, fd, events, ptr); }
    // Closing a descriptor removes it from the set; this is for the rare
    // descriptor that stays open (one shared with other processes).
    void remove(int fd) { epoll_ctl(fd_.get(), EPOLL_CTL_DEL, fd, nullptr); }

    // Returns the number of ready events; 0 on timeout or on a signal.
    int wait(epoll_event* events, int max, int timeout_ms) {
        int n = epoll_wait(fd_.get(), events, max, timeout_ms);
        if (n < 0 && errno != EINTR) die("epoll_wait: %s", std::strerror(errno));
        return n < 0 ? 0 : n;
    }

    // The same with a timeout in nanoseconds (epoll_pwait2): a paced sender
    // whose next send is due in less than a millisecond sleeps until then
    // instead of polling with a zero timeout, which would spin a core the
    // servers and the other clients under measurement need.  A kernel
    // without epoll_pwait2 gets the timeout rounded up to a millisecond.
    int wait_ns(epoll_event* events, int max, uint64_t timeout_ns) {
        if (pwait2_) {
            timespec ts{time_t(timeout_ns / 1'000'000'000), long(timeout_ns % 1'000'000'000)};
            int n = epoll_pwait2(fd_.get(), events, max, &ts, nullptr);
            if (n >= 0 || errno == EINTR) return n < 0 ? 0 : n;
            if (errno != ENOSYS) die("epoll_pwait2: %s", std::strerror(errno));
            pwait2_ = false;
        }
        return wait(events, max, int((timeout_ns + 999'999) / 1'000'000));
    }

private:
    bool pwait2_ = true;

    void ctl(int op, int fd, uint32_t events, void* ptr) {
        epoll_event ev{};
        ev.events = events;
        ev.data.ptr = ptr;
        if (epoll_ctl(fd_.get(), op, fd, &ev) != 0)
            die("epoll_ctl(%d): %s", fd, std::strerror(errno));
    }

    Fd fd_;
};

}  // namespace bench
