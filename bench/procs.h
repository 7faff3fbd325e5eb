// Running one workload in several processes.
//
// A process may hold at most RLIMIT_NOFILE descriptors (about 20000 here), so
// a hundred thousand connections need several client processes.  Each child
// streams snapshots of its report (a trivially copyable struct) through a
// pipe; the parent merges the latest snapshot of every child.
#pragma once

#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <memory>
#include <type_traits>
#include <vector>

#include "util.h"

namespace bench {

// Set by SIGTERM/SIGINT: the workload stops and reports what it has.
inline volatile sig_atomic_t g_stop = 0;

inline void install_stop_handler() {
    struct sigaction sa{};
    sa.sa_handler = [](int) { g_stop = 1; };
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: epoll_wait returns at once
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
    signal(SIGPIPE, SIG_IGN);
}

inline bool write_full(int fd, const void* buf, size_t n) {
    const char* p = static_cast<const char*>(buf);
    while (n > 0) {
        ssize_t w = ::write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w;
        n -= size_t(w);
    }
    return true;
}

inline bool read_full(int fd, void* buf, size_t n) {
    char* p = static_cast<char*>(buf);
    while (n > 0) {
        ssize_t r = ::read(fd, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        p += r;
        n -= size_t(r);
    }
    return true;
}

// The child's end of the pipe.
template <class Report>
class ReportSink {
public:
    explicit ReportSink(int fd) : fd_(fd) {}
    void send(const Report& r, bool final) {
        uint32_t flag = final;
        if (!write_full(fd_, &flag, sizeof flag) || !write_full(fd_, &r, sizeof r)) _exit(3);
    }

private:
    int fd_;
};

// A group of child processes running one workload.  A stop signal to the
// parent is passed on to the children, which then send their final reports;
// children die with the parent.
template <class Report>
class ChildGroup {
    static_assert(std::is_trivially_copyable_v<Report>);

public:
    // Forks `procs` children, each running work(child_index, sink).
    template <class Work>
    ChildGroup(int procs, Work&& work) : children_(static_cast<size_t>(procs)) {
        pid_t parent = getpid();
        std::fflush(nullptr);  // or buffered output would be written twice
        for (int i = 0; i < procs; i++) {
            int fds[2];
            if (pipe2(fds, O_CLOEXEC) != 0) die("pipe2: %s", std::strerror(errno));
            pid_t pid = fork();
            if (pid < 0) die("fork: %s", std::strerror(errno));
            if (pid == 0) {
                ::close(fds[0]);
                prctl(PR_SET_PDEATHSIG, SIGTERM);
                if (getppid() != parent) _exit(1);
                for (auto& c : children_) c.pipe.reset();
                ReportSink<Report> sink(fds[1]);
                work(i, sink);
                std::fflush(nullptr);
                _exit(0);
            }
            ::close(fds[1]);
            children_[size_t(i)].pid = pid;
            children_[size_t(i)].pipe.reset(fds[0]);
        }
    }
    ChildGroup(const ChildGroup&) = delete;
    ChildGroup& operator=(const ChildGroup&) = delete;
    ~ChildGroup() { stop(); }

    // Merges the children's snapshots until each sent its final report, and
    // returns the merge of those.  on_update(const Report&) sees every merge.
    template <class OnUpdate>
    std::unique_ptr<Report> collect(OnUpdate&& on_update) {
        auto merged = std::make_unique<Report>();
        bool forwarded = false;
        for (;;) {
            if (g_stop && !forwarded) {
                signal_all(SIGTERM);
                forwarded = true;
            }
            std::vector<pollfd> pfds;
            std::vector<Child*> polled;
            for (auto& c : children_) {
                if (c.final) continue;
                pfds.push_back(pollfd{c.pipe.get(), POLLIN, 0});
                polled.push_back(&c);
            }
            if (pfds.empty()) return merged;
            if (poll(pfds.data(), pfds.size(), 200) <= 0) continue;
            for (size_t k = 0; k < pfds.size(); k++)
                if (pfds[k].revents) receive(*polled[k]);
            *merged = Report();
            for (auto& c : children_) merged->merge(*c.latest);
            on_update(*merged);
        }
    }

    // Ends the children (they may be holding connections open) and reaps them.
    void stop() {
        signal_all(SIGTERM);
        for (auto& c : children_) {
            if (c.pid > 0) waitpid(c.pid, nullptr, 0);
            c.pid = -1;
        }
    }

private:
    struct Child {
        pid_t pid = -1;
        Fd pipe;
        std::unique_ptr<Report> latest = std::make_unique<Report>();
        bool final = false;
    };

    void receive(Child& c) {
        uint32_t flag = 0;
        if (!read_full(c.pipe.get(), &flag, sizeof flag) ||
            !read_full(c.pipe.get(), c.latest.get(), sizeof(Report))) {
            std::fprintf(stderr, "loadgen: child %d died without a final report\n", int(c.pid));
            c.final = true;  // keep its last snapshot
            return;
        }
        c.final = flag != 0;
    }

    void signal_all(int sig) {
        for (auto& c : children_)
            if (c.pid > 0) kill(c.pid, sig);
    }

    std::vector<Child> children_;
};

// Sleeps until a stop signal or the deadline (CLOCK_MONOTONIC ns).
inline void wait_for_stop(uint64_t deadline) {
    while (!g_stop && mono_ns() < deadline) usleep(20 * 1000);
}

}  // namespace bench
