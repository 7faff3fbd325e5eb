/*
 * The shared-memory store's own Idempotency-Key policy, beyond the
 * contract: a publish stays published when its answer cannot be kept,
 * and says so in the log.
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

} // namespace sse_test
