/*
 * Where a shared event block pays: the fan-out's two ways of handing one
 * event to N subscribers, timed in the sending thread only.
 *
 *   copy   the event is copied into each stream's own buffer (between a
 *          chunk header and the chunk's CRLF), then one send() per stream
 *   block  the event is copied once into a counted block; each stream
 *          sends its chunk header, the block and the CRLF with one writev()
 *
 * N TCP connections on the loopback; the receivers are drained between
 * events, outside the timed part.  Prints the sender's CPU time per
 * delivery for each event size, and the gain of the block.
 *
 *   g++ -O2 -o /tmp/block-threshold bench/block-threshold.cpp
 *   /tmp/block-threshold [subscribers] [events]
 */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

double
thread_cpu()
{
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

void
drain(std::vector<int> &rd, size_t want)
{
    static char buf[1 << 17];

    for (int fd : rd) {
        size_t got = 0;
        while (got < want) {
            ssize_t n = recv(fd, buf, sizeof(buf), 0);
            if (n <= 0) {
                perror("recv");
                exit(1);
            }
            got += n;
        }
    }
}

} // namespace


int
main(int argc, char **argv)
{
    int nsubs = argc > 1 ? atoi(argv[1]) : 500;
    int nevents = argc > 2 ? atoi(argv[2]) : 40;
    const size_t sizes[] = { 256, 1024, 2048, 4096, 8192, 16384, 65536 };

    int ls = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa {};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(ls, (sockaddr *) &sa, sizeof(sa));
    socklen_t sl = sizeof(sa);
    getsockname(ls, (sockaddr *) &sa, &sl);
    listen(ls, 4096);

    std::vector<int> wr, rd;
    for (int i = 0; i < nsubs; i++) {
        int c = socket(AF_INET, SOCK_STREAM, 0);
        int big = 1 << 20, one = 1;
        setsockopt(c, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
        if (connect(c, (sockaddr *) &sa, sizeof(sa)) != 0) {
            perror("connect");
            return 1;
        }
        int s = accept(ls, nullptr, nullptr);
        setsockopt(s, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
        setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        wr.push_back(s);
        rd.push_back(c);
    }

    printf("%d subscribers, %d events per size; sender CPU per delivery\n",
           nsubs, nevents);
    printf("%8s %12s %12s %8s\n", "size", "copy ns", "block ns", "gain");

    for (size_t size : sizes) {
        std::vector<char> event(size, 'x');
        const char head[] = "4000\r\n";
        const size_t hlen = 6;
        size_t chunk = hlen + size + 2;
        std::vector<std::vector<char>> own(nsubs,
                                           std::vector<char>(chunk + 64));
        double t[2] = { 0, 0 };

        /* the two ways alternate event by event: the machine's drift
         * (other load) falls on both alike; the first round warms up */
        for (int e = -2; e < nevents; e++) {
            for (int mode = 0; mode < 2; mode++) {
                double t0 = thread_cpu();

                if (mode == 0) {
                    for (int i = 0; i < nsubs; i++) {
                        char *p = own[i].data();
                        memcpy(p, head, hlen);
                        memcpy(p + hlen, event.data(), size);
                        memcpy(p + hlen + size, "\r\n", 2);
                        if (send(wr[i], p, chunk, 0) != (ssize_t) chunk) {
                            perror("send");
                            return 1;
                        }
                    }

                } else {
                    char *block = (char *) malloc(size);
                    memcpy(block, event.data(), size);
                    for (int i = 0; i < nsubs; i++) {
                        iovec iov[3] = {
                            { (void *) head, hlen },
                            { block, size },
                            { (void *) "\r\n", 2 } };
                        if (writev(wr[i], iov, 3) != (ssize_t) chunk) {
                            perror("writev");
                            return 1;
                        }
                    }
                    free(block);
                }

                if (e >= 0) {
                    t[mode] += thread_cpu() - t0;
                }

                drain(rd, chunk);
            }
        }

        double per[2];
        for (int m = 0; m < 2; m++) {
            per[m] = t[m] * 1e9 / ((double) nsubs * nevents);
        }

        printf("%8zu %12.0f %12.0f %7.1f%%\n", size, per[0], per[1],
               (per[0] - per[1]) * 100 / per[0]);
    }

    return 0;
}
