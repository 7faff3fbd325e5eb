/*
 * The shared-memory store's own Idempotency-Key policy, beyond the
 * contract: a publish stays published when its answer cannot be kept,
 * and says so in the log; a publish refused part way is kept with its
 * refusal.
 */

#include "shm_harness.h"


namespace sse_test {

class ShmIdempotency : public StoreContract<ShmHarness> {};


/*
 * A zone full of events, none of them a record: a keyed publish whose
 * record needs a whole page (its channel ids are long) still publishes;
 * its answer is not kept (counted as dropped, logged at warn), so its
 * repeat publishes again.
 */
TEST_F(ShmIdempotency, APublishWithNoRoomForItsRecordStillPublishes)
{
    ngx_http_sse_limits_t  l = limits();

    l.history = 1000;
    restart(l, 256 * 1024);

    for (int i = 0; i < 1000; i++) {
        ASSERT_EQ(publish({ "fill" }, { std::string(2000, 'f') })->rc,
                  NGX_OK);

        if (figures().evicted) {
            break;
        }
    }

    ASSERT_GT(figures().evicted, 0u) << "the zone never filled up";

    std::vector<std::string>  ids;

    for (int i = 0; i < 12; i++) {
        ids.push_back(std::string(250, 'a' + i));
    }

    std::string  key(255, 'k');

    auto first = publish(ids, { "x" }, key);

    ASSERT_EQ(first->rc, NGX_OK);
    EXPECT_EQ(first->published[11], 1u);
    EXPECT_EQ(figures().idempotency_records, 0u);
    EXPECT_EQ(figures().idempotency_dropped, 1u);
    EXPECT_NE(last_log_line().find("no room to remember an "
                                   "Idempotency-Key"),
              std::string::npos) << last_log_line();

    auto again = publish(ids, { "x" }, key);

    EXPECT_EQ(again->rc, NGX_OK);
    EXPECT_EQ(again->repeated, 0u);
    EXPECT_EQ(again->last[0].seq, 2u);
}


/*
 * A keyed publish the zone runs out of room for part way (its second
 * event can never fit) keeps its first event, and its answer is kept
 * with the refusal: the repeat answers the same, stores nothing, so the
 * event that went in is never published twice.
 */
TEST_F(ShmIdempotency, APublishRefusedPartWayIsKeptWithItsRefusal)
{
    restart(limits(), 256 * 1024);

    std::string  huge(300 * 1024, 'h');

    auto first = publish({ "a", "b" }, { "x", huge }, "part");

    ASSERT_EQ(first->rc, NGX_HTTP_SSE_ZONE_FULL);
    EXPECT_EQ(first->repeated, 0u);
    EXPECT_EQ(first->published[0], 1u);
    EXPECT_EQ(first->published[1], 0u);
    EXPECT_EQ(figures().idempotency_records, 1u);

    auto again = publish({ "a", "b" }, { "x", huge }, "part");

    EXPECT_EQ(again->rc, NGX_HTTP_SSE_ZONE_FULL);
    EXPECT_EQ(again->repeated, 1u);
    EXPECT_EQ(again->published[0], 1u);
    EXPECT_EQ(again->published[1], 0u);
    EXPECT_EQ(again->last[0].seq, first->last[0].seq);
    EXPECT_EQ(info("a").events, 1u);
    EXPECT_EQ(figures().idempotent_replays, 1u);

    /* refused before anything was stored: not kept, the retry publishes */

    auto whole = publish({ "c" }, { huge }, "whole");

    EXPECT_EQ(whole->rc, NGX_HTTP_SSE_ZONE_FULL);
    EXPECT_EQ(figures().idempotency_records, 1u);

    auto retry = publish({ "c" }, { "y" }, "whole");

    EXPECT_EQ(retry->rc, NGX_OK);
    EXPECT_EQ(retry->repeated, 0u);
}

} // namespace sse_test
