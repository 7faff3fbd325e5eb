/*
 * EventStreamParser reports allocation failure as Status::no_memory rather
 * than letting std::bad_alloc escape into nginx.
 *
 * The global operator new is replaced for the whole test binary; it only
 * fails while a test asks it to.
 */

#include <gtest/gtest.h>

#include <cstdlib>
#include <new>
#include <string>

#include "sse_event_stream.h"

namespace {

bool fail_allocations = false;

struct FailAllocations {
    FailAllocations() { fail_allocations = true; }
    ~FailAllocations() { fail_allocations = false; }
};

bool ignore_event(void *, sse::Slice, sse::Slice)
{
    return true;
}

} // namespace


/*
 * Out of line, so that the compiler does not see new and free() meet in one
 * function and warn about a mismatch that, for a replaced operator new
 * built on malloc(), is none.
 */
__attribute__((noinline)) void *operator new(size_t size)
{
    if (fail_allocations) {
        throw std::bad_alloc();
    }

    void *p = std::malloc(size ? size : 1);
    if (p == nullptr) {
        throw std::bad_alloc();
    }

    return p;
}

__attribute__((noinline)) void operator delete(void *p) noexcept
{
    std::free(p);
}

__attribute__((noinline)) void operator delete(void *p, size_t) noexcept
{
    std::free(p);
}


using Status = sse::EventStreamParser::Status;

TEST(AllocFailure, FeedReportsNoMemory)
{
    sse::EventStreamParser  parser(1 << 20);
    std::string             body = "data: " + std::string(200, 'x') + "\n\n";
    Status                  status;

    {
        FailAllocations failing;
        status = parser.feed(reinterpret_cast<const unsigned char *>(
                                 body.data()),
                             body.size(), ignore_event, nullptr);
    }

    EXPECT_EQ(status, Status::no_memory);

    /* and the parser stays failed */
    EXPECT_EQ(parser.feed(reinterpret_cast<const unsigned char *>(body.data()),
                          body.size(), ignore_event, nullptr),
              Status::no_memory);
    EXPECT_EQ(parser.finish(ignore_event, nullptr), Status::no_memory);
}

TEST(AllocFailure, FinishReportsNoMemory)
{
    /*
     * A last line "data" without a line end joins the data with an LF only
     * when finish() completes it.  That LF needs memory whenever the data
     * already fills its string; over a range of sizes, some certainly do.
     */
    int  failed = 0;

    for (size_t n = 1; n <= 64; n++) {
        sse::EventStreamParser  parser(1 << 20);
        std::string             body = "data: " + std::string(n, 'x')
                                       + "\ndata";
        Status                  status;

        ASSERT_EQ(parser.feed(reinterpret_cast<const unsigned char *>(
                                  body.data()),
                              body.size(), ignore_event, nullptr),
                  Status::ok);

        {
            FailAllocations failing;
            status = parser.finish(ignore_event, nullptr);
        }

        if (status == Status::no_memory) {
            failed++;
            EXPECT_EQ(parser.finish(ignore_event, nullptr), Status::no_memory);
        } else {
            EXPECT_EQ(status, Status::ok) << n;
        }
    }

    EXPECT_GT(failed, 0);
}

TEST(AllocFailure, NoAllocationWithoutData)
{
    /* comments and ignored fields are never buffered */
    sse::EventStreamParser  parser(1 << 20);
    std::string             body = ": " + std::string(5000, 'c') + "\nid: "
                                   + std::string(5000, 'i') + "\n\n";
    Status                  status;

    {
        FailAllocations failing;
        status = parser.feed(reinterpret_cast<const unsigned char *>(
                                 body.data()),
                             body.size(), ignore_event, nullptr);
        if (status == Status::ok) {
            status = parser.finish(ignore_event, nullptr);
        }
    }

    EXPECT_EQ(status, Status::ok);
}
