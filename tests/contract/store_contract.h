/*
 * The contract every store must pass (src/store/ngx_http_sse_store.h), as a
 * typed GoogleTest suite.  A store instantiates it with a harness:
 *
 *   struct Harness {
 *       // a fresh store behind a zone, with these limits and this size;
 *       // this process attached to it as a worker
 *       ngx_http_sse_zone_t *start(const ngx_http_sse_limits_t &limits,
 *                                  size_t size);
 *       void stop();
 *       // runs the store's event loop until done() or a bounded time
 *       template <typename F> bool run_until(F done);
 *   };
 *
 *   INSTANTIATE_TYPED_TEST_SUITE_P(Shm, StoreContract, ShmHarness);
 *
 * The shm store answers at once (run_until only checks); a remote store
 * answers from its event loop.  Every operation goes through
 * zone->store; the tests never look into a zone.
 */

#ifndef SSE_TEST_STORE_CONTRACT_H
#define SSE_TEST_STORE_CONTRACT_H

#include "ngx_http_sse.h"
#include "nginx_double.h"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>


namespace sse_test {

struct Event {
    uint64_t     seq;
    std::string  wire;
};


/* a stream as the worker keeps one: enough for join, read, leave */
struct Stream {
    ngx_http_sse_sub_t                    sub;
    std::vector<ngx_http_sse_sub_chan_t>  chans;

    Stream(ngx_http_sse_zone_t *zone, size_t nchans, size_t max_pending)
        : chans(nchans)
    {
        std::memset(&sub, 0, sizeof(sub));
        std::memset(chans.data(), 0, nchans * sizeof(chans[0]));
        sub.zone = zone;
        sub.nchans = nchans;
        sub.chans = chans.data();
        sub.max_pending = max_pending;
    }
};


template <typename Harness>
class StoreContract : public ::testing::Test {
protected:
    Harness               harness;
    ngx_http_sse_zone_t  *zone = nullptr;
    std::vector<std::unique_ptr<Stream>>  streams;

    void SetUp() override { start(limits()); }

    void TearDown() override
    {
        for (auto &s : streams) {
            leave(*s);
        }

        streams.clear();
        harness.stop();
    }

    static ngx_http_sse_limits_t limits()
    {
        ngx_http_sse_limits_t  l;

        std::memset(&l, 0, sizeof(l));
        l.history = 100;
        l.history_ttl = 3600;
        l.channel_ttl = 3600;
        l.max_message = 64 * 1024;

        return l;
    }

    void start(const ngx_http_sse_limits_t &l, size_t size = 1024 * 1024)
    {
        zone = harness.start(l, size);
        ASSERT_NE(zone, nullptr);
    }

    void restart(const ngx_http_sse_limits_t &l, size_t size = 1024 * 1024)
    {
        for (auto &s : streams) {
            leave(*s);
        }

        streams.clear();
        harness.stop();
        start(l, size);
    }

    static void done(void *data) { *(bool *) data = true; }

    /* publishes events (data only) to channels, with an Idempotency-Key
     * if one is given; the op holds the answer */
    std::unique_ptr<ngx_http_sse_store_publish_t> publish(
        std::vector<std::string> ids, std::vector<std::string> datas,
        const std::string &key = "")
    {
        auto  op = std::make_unique<ngx_http_sse_store_publish_t>();
        bool  finished = false;

        std::memset(op.get(), 0, sizeof(*op));

        outs_.emplace_back(std::make_unique<PublishOuts>());
        op->published = outs_.back()->published;
        op->last = outs_.back()->last;
        op->subscribers = outs_.back()->subscribers;

        ids_ = std::move(ids);
        slices_.clear();
        for (auto &id : ids_) {
            slices_.push_back({ (const u_char *) id.data(), id.size() });
        }

        buf_.clear();
        events_.clear();
        for (auto &d : datas) {
            buf_ += d;
            events_.push_back({ 0, d.size() });
        }

        key_ = key;

        op->ids = slices_.data();
        op->nchans = slices_.size();
        op->buf = (u_char *) buf_.data();
        op->events = events_.data();
        op->nevents = events_.size();
        op->idempotency_key.data = (u_char *) key_.data();
        op->idempotency_key.len = key_.size();
        op->handler = done;
        op->data = &finished;

        ngx_int_t rc = zone->store->publish(zone, op.get());

        EXPECT_TRUE(rc == NGX_OK || rc == NGX_AGAIN);
        EXPECT_TRUE(harness.run_until([&] { return finished; }));

        return op;
    }

    std::unique_ptr<ngx_http_sse_store_query_t> query(
        std::vector<std::string> ids, bool remove)
    {
        auto  op = std::make_unique<ngx_http_sse_store_query_t>();
        bool  finished = false;

        std::memset(op.get(), 0, sizeof(*op));

        ids_ = std::move(ids);
        slices_.clear();
        for (auto &id : ids_) {
            slices_.push_back({ (const u_char *) id.data(), id.size() });
        }

        op->ids = slices_.data();
        op->nchans = slices_.size();
        op->handler = done;
        op->data = &finished;

        ngx_int_t rc = remove ? zone->store->remove(zone, op.get())
                              : zone->store->info(zone, op.get());

        EXPECT_TRUE(rc == NGX_OK || rc == NGX_AGAIN);
        EXPECT_TRUE(harness.run_until([&] { return finished; }));

        return op;
    }

    ngx_http_sse_channel_info_t info(const std::string &id)
    {
        return query({ id }, false)->channels[0];
    }

    /* joins a stream; have_id: 0 none, 1 positions, -1 unparsable */
    Stream &join(std::vector<std::string> ids, ngx_int_t have_id,
        std::vector<sse::Position> positions, ngx_int_t replay,
        ngx_http_sse_store_join_t *out, size_t max_pending = 65536)
    {
        bool  finished = false;

        streams.push_back(std::make_unique<Stream>(zone, ids.size(),
                                                   max_pending));
        Stream &s = *streams.back();

        join_ids_ = std::move(ids);
        join_slices_.clear();
        for (auto &id : join_ids_) {
            join_slices_.push_back({ (const u_char *) id.data(),
                                     id.size() });
        }

        join_positions_ = std::move(positions);
        join_resets_.push_back(std::make_unique<const char *[]>(
                                   join_ids_.size()));

        std::memset(out, 0, sizeof(*out));
        out->sub = &s.sub;
        out->ids = join_slices_.data();
        out->nchans = join_slices_.size();
        out->positions = join_positions_.empty() ? nullptr
                                                 : join_positions_.data();
        out->have_id = have_id;
        out->replay = replay;
        out->reset = join_resets_.back().get();
        out->handler = done;
        out->data = &finished;

        ngx_int_t rc = zone->store->join(zone, out);

        EXPECT_TRUE(rc == NGX_OK || rc == NGX_AGAIN);
        EXPECT_TRUE(harness.run_until([&] { return finished; }));

        return s;
    }

    /* what the worker does when a stream ends (ngx_http_sse_sub_leave) */
    void leave(Stream &s)
    {
        zone->store->leave(zone, &s.sub);

        for (auto &sc : s.chans) {
            if (sc.state == NGX_HTTP_SSE_SC_OUT) {
                continue;
            }

            ngx_queue_remove(&sc.link);
            sc.local->nsubs--;
            if (sc.state == NGX_HTTP_SSE_SC_BEHIND) {
                sc.local->nbehind--;
            }

            ngx_http_sse_local_put(sc.local);
            sc.local = nullptr;
            sc.state = NGX_HTTP_SSE_SC_OUT;
        }
    }

    static ngx_int_t sink(void *data, uint64_t seq, u_char *wire, size_t len,
        size_t id_len, uint64_t cum, ngx_msec_t)
    {
        auto *out = (std::vector<Event> *) data;

        out->push_back({ seq, std::string((char *) wire, len) });
        return NGX_OK;
    }

    /* reads one channel of a stream from a position */
    ngx_int_t read(ngx_http_sse_sub_chan_t &sc, sse::Position from,
        size_t budget, std::vector<Event> *out,
        ngx_http_sse_store_read_t *rd)
    {
        std::memset(rd, 0, sizeof(*rd));
        rd->local = sc.local;
        rd->from = from;
        rd->budget = budget;
        rd->sink = sink;
        rd->data = out;

        return zone->store->read(zone, rd);
    }

    static std::string data_of(const Event &e)
    {
        size_t  p = e.wire.find("data: ");

        if (p == std::string::npos) {
            return "";
        }

        return e.wire.substr(p + 6, e.wire.find('\n', p) - p - 6);
    }

    ngx_http_sse_figures_t figures()
    {
        ngx_http_sse_figures_t  f;

        std::memset(&f, 0, sizeof(f));
        zone->store->figures(zone, &f);

        return f;
    }

private:
    /* a publish's answers per channel: the op points into them */
    struct PublishOuts {
        ngx_uint_t     published[sse::max_channels_per_stream] = {};
        sse::Position  last[sse::max_channels_per_stream] = {};
        ngx_uint_t     subscribers[sse::max_channels_per_stream] = {};
    };

    std::vector<std::unique_ptr<PublishOuts>>  outs_;
    std::string                              key_;
    std::vector<std::string>                 ids_;
    std::vector<sse::Slice>                  slices_;
    std::string                              buf_;
    std::vector<ngx_http_sse_store_event_t>  events_;
    std::vector<std::string>                 join_ids_;
    std::vector<sse::Slice>                  join_slices_;
    std::vector<sse::Position>               join_positions_;
    std::vector<std::unique_ptr<const char *[]>>  join_resets_;
};

TYPED_TEST_SUITE_P(StoreContract);


/* ---- publish ------------------------------------------------------------- */

TYPED_TEST_P(StoreContract, PublishGivesIdsInOrder)
{
    auto op = this->publish({ "a" }, { "one", "two", "three" });

    ASSERT_EQ(op->rc, NGX_OK);
    EXPECT_EQ(op->published[0], 3u);
    EXPECT_EQ(op->last[0].seq, 3u);
    EXPECT_NE(op->last[0].epoch, 0u);

    auto next = this->publish({ "a" }, { "four" });

    ASSERT_EQ(next->rc, NGX_OK);
    EXPECT_EQ(next->published[0], 1u);
    EXPECT_EQ(next->last[0].seq, 4u);
    EXPECT_EQ(next->last[0].epoch, op->last[0].epoch);

    /* every channel counts on its own */
    auto b = this->publish({ "b", "a" }, { "x" });

    ASSERT_EQ(b->rc, NGX_OK);
    EXPECT_EQ(b->last[0].seq, 1u);
    EXPECT_EQ(b->last[1].seq, 5u);
}


TYPED_TEST_P(StoreContract, PublishCountsSubscribers)
{
    ngx_http_sse_store_join_t  j;

    auto op = this->publish({ "a" }, { "one" });
    EXPECT_EQ(op->subscribers[0], 0u);

    this->join({ "a" }, 0, {}, 0, &j);
    ASSERT_EQ(j.rc, NGX_OK);

    op = this->publish({ "a" }, { "two" });
    EXPECT_EQ(op->subscribers[0], 1u);
}


/*
 * A multi-channel publish that fails stores nothing after the channel
 * that failed, and what it stored is exactly what it reports.
 */
TYPED_TEST_P(StoreContract, MultiChannelPublishReportsExactlyWhatItStored)
{
    ngx_http_sse_limits_t  l = this->limits();

    l.max_channels = 1;
    this->restart(l);

    auto op = this->publish({ "a", "b" }, { "one", "two" });

    EXPECT_EQ(op->rc, NGX_HTTP_SSE_TOO_MANY);
    EXPECT_EQ(op->published[0], 2u);
    EXPECT_EQ(op->published[1], 0u);

    auto a = this->info("a");
    EXPECT_EQ(a.state, (ngx_uint_t) NGX_HTTP_SSE_CHANNEL_LIVE);
    EXPECT_EQ(a.events, 2u);
    EXPECT_EQ(a.last.seq, op->last[0].seq);

    EXPECT_EQ(this->info("b").state, (ngx_uint_t) NGX_HTTP_SSE_CHANNEL_NONE);
}


TYPED_TEST_P(StoreContract, FullZoneRefusesAndStoresNothing)
{
    ngx_http_sse_limits_t  l = this->limits();

    /* an event larger than the whole zone can never fit */
    l.max_message = 1024 * 1024;
    this->restart(l, 256 * 1024);

    auto op = this->publish({ "a", "b" },
                            { std::string(300 * 1024, 'x') });

    EXPECT_EQ(op->rc, NGX_HTTP_SSE_ZONE_FULL);
    EXPECT_EQ(op->published[0], 0u);
    EXPECT_EQ(op->published[1], 0u);
    EXPECT_EQ(this->info("a").events, 0u);
    EXPECT_EQ(this->info("b").state, (ngx_uint_t) NGX_HTTP_SSE_CHANNEL_NONE);

    /* and the zone still works */
    op = this->publish({ "a" }, { "small" });
    EXPECT_EQ(op->rc, NGX_OK);
    EXPECT_EQ(op->last[0].seq, 1u);
}


TYPED_TEST_P(StoreContract, HistoryKeepsTheNewestEvents)
{
    ngx_http_sse_limits_t      l = this->limits();
    ngx_http_sse_store_join_t  j;

    l.history = 3;
    this->restart(l);

    for (int i = 1; i <= 10; i++) {
        ASSERT_EQ(this->publish({ "a" }, { std::to_string(i) })->rc, NGX_OK);
    }

    auto a = this->info("a");
    EXPECT_EQ(a.events, 3u);
    EXPECT_EQ(a.last.seq, 10u);

    /* replay all: the three that are left, in order */
    Stream &s = this->join({ "a" }, 0, {}, NGX_HTTP_SSE_REPLAY_ALL, &j);
    ASSERT_EQ(j.rc, NGX_OK);
    EXPECT_EQ(s.chans[0].pos.seq, 7u);

    std::vector<Event>         got;
    ngx_http_sse_store_read_t  rd;

    EXPECT_EQ(this->read(s.chans[0], s.chans[0].pos, (size_t) -1, &got, &rd),
              NGX_OK);
    ASSERT_EQ(got.size(), 3u);
    EXPECT_EQ(this->data_of(got[0]), "8");
    EXPECT_EQ(this->data_of(got[2]), "10");
    EXPECT_TRUE(rd.caught_up);
}


TYPED_TEST_P(StoreContract, HistoryTtlExpiresEvents)
{
    ngx_http_sse_limits_t  l = this->limits();

    l.history_ttl = 10;
    this->restart(l);

    ASSERT_EQ(this->publish({ "a" }, { "old" })->rc, NGX_OK);
    advance_clock(11);
    ASSERT_EQ(this->publish({ "a" }, { "new" })->rc, NGX_OK);

    auto a = this->info("a");
    EXPECT_EQ(a.events, 1u);
    EXPECT_EQ(a.last.seq, 2u);
}


/* ---- Idempotency-Key ----------------------------------------------------- */

/*
 * A repeat of a keyed publish to the same channels stores nothing and
 * answers as the first did; another key, other channels, or the same
 * channels in another order are other requests.
 */
TYPED_TEST_P(StoreContract, IdempotencyKeyRepeatsTheAnswerAndStoresNothing)
{
    ngx_http_sse_store_join_t  j;

    this->join({ "a" }, 0, {}, 0, &j);
    ASSERT_EQ(j.rc, NGX_OK);

    auto first = this->publish({ "a", "b" }, { "1", "2" }, "k1");

    ASSERT_EQ(first->rc, NGX_OK);
    EXPECT_EQ(first->repeated, 0u);
    EXPECT_EQ(first->published[0], 2u);
    EXPECT_EQ(first->subscribers[0], 1u);
    EXPECT_EQ(first->subscribers[1], 0u);

    /* the subscriber leaves: the repeat still tells what the first saw */
    for (auto &s : this->streams) {
        this->leave(*s);
    }

    this->streams.clear();

    auto again = this->publish({ "a", "b" }, { "other", "data", "3" }, "k1");

    ASSERT_EQ(again->rc, NGX_OK);
    EXPECT_EQ(again->repeated, 1u);

    for (int i = 0; i < 2; i++) {
        EXPECT_EQ(again->published[i], first->published[i]);
        EXPECT_EQ(again->last[i].epoch, first->last[i].epoch);
        EXPECT_EQ(again->last[i].seq, first->last[i].seq);
        EXPECT_EQ(again->subscribers[i], first->subscribers[i]);
    }

    EXPECT_EQ(this->info("a").events, 2u);
    EXPECT_EQ(this->info("b").events, 2u);
    EXPECT_EQ(this->figures().idempotent_replays, 1u);

    auto other_key = this->publish({ "a", "b" }, { "4" }, "k2");
    EXPECT_EQ(other_key->repeated, 0u);
    EXPECT_EQ(other_key->last[0].seq, 3u);

    auto reordered = this->publish({ "b", "a" }, { "5" }, "k1");
    EXPECT_EQ(reordered->repeated, 0u);
    EXPECT_EQ(reordered->last[0].seq, 4u);    /* b */

    auto fewer = this->publish({ "a" }, { "6" }, "k1");
    EXPECT_EQ(fewer->repeated, 0u);
    EXPECT_EQ(fewer->last[0].seq, 5u);

    auto unkeyed = this->publish({ "a" }, { "7" });
    EXPECT_EQ(unkeyed->repeated, 0u);
    EXPECT_EQ(unkeyed->last[0].seq, 6u);

    EXPECT_EQ(this->figures().idempotent_replays, 1u);
    EXPECT_EQ(this->figures().idempotency_records, 4u);
}


TYPED_TEST_P(StoreContract, IdempotencyKeyIsKeptForHistoryTtl)
{
    ngx_http_sse_limits_t  l = this->limits();

    l.history_ttl = 10;
    this->restart(l);

    auto first = this->publish({ "a" }, { "1" }, "k");
    ASSERT_EQ(first->rc, NGX_OK);

    advance_clock(9);
    EXPECT_EQ(this->publish({ "a" }, { "1" }, "k")->repeated, 1u);

    advance_clock(2);
    auto later = this->publish({ "a" }, { "1" }, "k");
    EXPECT_EQ(later->repeated, 0u);
    EXPECT_EQ(later->last[0].seq, 2u);

    /* and the new publish is remembered in its turn */
    EXPECT_EQ(this->publish({ "a" }, { "1" }, "k")->repeated, 1u);
    EXPECT_EQ(this->figures().idempotency_records, 1u);
}


/*
 * A keyed publish that is refused is not remembered (its retry
 * publishes), and stores nothing on any of its channels.
 */
TYPED_TEST_P(StoreContract, IdempotencyKeyOfARefusedPublishIsNotKept)
{
    ngx_http_sse_limits_t  l = this->limits();

    l.max_channels = 1;
    this->restart(l);

    ASSERT_EQ(this->publish({ "a" }, { "1" })->rc, NGX_OK);

    auto refused = this->publish({ "a", "b" }, { "2" }, "k");
    EXPECT_EQ(refused->rc, NGX_HTTP_SSE_TOO_MANY);
    EXPECT_EQ(refused->repeated, 0u);
    EXPECT_EQ(refused->published[0], 0u);
    EXPECT_EQ(this->info("a").events, 1u);

    auto retry = this->publish({ "a" }, { "2" }, "k");
    EXPECT_EQ(retry->rc, NGX_OK);
    EXPECT_EQ(retry->repeated, 0u);
    EXPECT_EQ(retry->last[0].seq, 2u);
    EXPECT_EQ(this->figures().idempotency_records, 1u);
}


/*
 * Two keys are two keys even when a store's hash of them is the same:
 * keys whose crc32 collide (with the channel, as the shm store hashes
 * them) are found by a birthday search.
 */
TYPED_TEST_P(StoreContract, IdempotencyKeysWithOneHashAreTwoKeys)
{
    char                                       hex[17];
    std::mt19937_64                            gen(42);
    std::unordered_map<uint32_t, std::string>  seen;
    std::string                                k1, k2;

    /* keys that differ in many bits: CRC-32 never confuses a short burst */

    for (int i = 0; k1.empty() && i < 1000000; i++) {
        snprintf(hex, sizeof(hex), "%016llx", (unsigned long long) gen());

        std::string  key = hex;
        std::string  ident;

        ident += (char) 0;
        ident += (char) key.size();
        ident += key;
        ident += (char) 1;
        ident += "a";

        uint32_t  hash = ngx_crc32_long((u_char *) ident.data(),
                                        ident.size());

        auto it = seen.find(hash);
        if (it != seen.end()) {
            k1 = it->second;
            k2 = key;
        }

        seen.emplace(hash, key);
    }

    ASSERT_FALSE(k1.empty()) << "no crc32 collision found";

    auto one = this->publish({ "a" }, { "1" }, k1);
    auto two = this->publish({ "a" }, { "2" }, k2);

    EXPECT_EQ(one->last[0].seq, 1u);
    EXPECT_EQ(two->repeated, 0u);
    EXPECT_EQ(two->last[0].seq, 2u);

    EXPECT_EQ(this->publish({ "a" }, { "x" }, k1)->last[0].seq, 1u);
    EXPECT_EQ(this->publish({ "a" }, { "x" }, k2)->last[0].seq, 2u);
    EXPECT_EQ(this->info("a").events, 2u);
}


/* ---- join: the plan ------------------------------------------------------ */

TYPED_TEST_P(StoreContract, JoinWithoutIdReplaysWhatIsAsked)
{
    ngx_http_sse_store_join_t  j;

    this->publish({ "a" }, { "1", "2", "3", "4" });

    Stream &none = this->join({ "a" }, 0, {}, 0, &j);
    ASSERT_EQ(j.rc, NGX_OK);
    EXPECT_EQ(j.reset[0], nullptr);
    EXPECT_EQ(none.chans[0].pos.seq, 4u);
    EXPECT_EQ(none.chans[0].state, (unsigned) NGX_HTTP_SSE_SC_LIVE);

    Stream &two = this->join({ "a" }, 0, {}, 2, &j);
    ASSERT_EQ(j.rc, NGX_OK);
    EXPECT_EQ(two.chans[0].pos.seq, 2u);
    EXPECT_EQ(two.chans[0].state, (unsigned) NGX_HTTP_SSE_SC_BEHIND);

    /* a channel nobody published to yet is created */
    Stream &fresh = this->join({ "new" }, 0, {}, 10, &j);
    ASSERT_EQ(j.rc, NGX_OK);
    EXPECT_EQ(fresh.chans[0].pos.seq, 0u);
    EXPECT_EQ(this->info("new").state,
              (ngx_uint_t) NGX_HTTP_SSE_CHANNEL_LIVE);
}


TYPED_TEST_P(StoreContract, JoinAtAPositionResumesAfterIt)
{
    ngx_http_sse_store_join_t  j;

    auto op = this->publish({ "a" }, { "1", "2", "3" });
    sse::Position at = { op->last[0].epoch, 1 };

    Stream &s = this->join({ "a" }, 1, { at }, 0, &j);

    ASSERT_EQ(j.rc, NGX_OK);
    EXPECT_EQ(j.reset[0], nullptr);
    EXPECT_EQ(s.chans[0].pos.seq, 1u);
    EXPECT_EQ(s.chans[0].state, (unsigned) NGX_HTTP_SSE_SC_BEHIND);

    std::vector<Event>         got;
    ngx_http_sse_store_read_t  rd;

    EXPECT_EQ(this->read(s.chans[0], s.chans[0].pos, (size_t) -1, &got, &rd),
              NGX_OK);
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].seq, 2u);
    EXPECT_EQ(this->data_of(got[1]), "3");
}


TYPED_TEST_P(StoreContract, JoinPastHistoryIsAGap)
{
    ngx_http_sse_limits_t      l = this->limits();
    ngx_http_sse_store_join_t  j;

    l.history = 2;
    this->restart(l);

    auto op = this->publish({ "a" }, { "1", "2", "3", "4", "5" });
    sse::Position at = { op->last[0].epoch, 1 };

    Stream &s = this->join({ "a" }, 1, { at }, 0, &j);

    ASSERT_EQ(j.rc, NGX_OK);
    ASSERT_NE(j.reset[0], nullptr);
    EXPECT_STREQ(j.reset[0], "gap");
    EXPECT_EQ(s.chans[0].pos.seq, 3u);     /* from the oldest left */
}


TYPED_TEST_P(StoreContract, JoinWithAnUnknownIdIsReset)
{
    ngx_http_sse_store_join_t  j;

    auto op = this->publish({ "a" }, { "1", "2" });

    /* another epoch: the channel was deleted and made again, or lost */
    sse::Position other = { op->last[0].epoch + 1, 1 };
    this->join({ "a" }, 1, { other }, 0, &j);
    ASSERT_EQ(j.rc, NGX_OK);
    EXPECT_STREQ(j.reset[0], "unknown");

    /* a position the channel never reached */
    sse::Position ahead = { op->last[0].epoch, 9 };
    this->join({ "a" }, 1, { ahead }, 0, &j);
    ASSERT_EQ(j.rc, NGX_OK);
    EXPECT_STREQ(j.reset[0], "unknown");

    /* an id that does not parse */
    this->join({ "a" }, -1, {}, 0, &j);
    ASSERT_EQ(j.rc, NGX_OK);
    EXPECT_STREQ(j.reset[0], "unknown");
}


TYPED_TEST_P(StoreContract, JoinAfterDeleteIsRefusedAndRepublishIsANewEpoch)
{
    ngx_http_sse_store_join_t  j;

    auto op = this->publish({ "a" }, { "1" });

    auto del = this->query({ "a" }, true);
    EXPECT_EQ(del->channels[0].state,
              (ngx_uint_t) NGX_HTTP_SSE_CHANNEL_LIVE);

    this->join({ "a" }, 0, {}, 0, &j);
    EXPECT_EQ(j.rc, NGX_HTTP_SSE_DELETED);

    auto again = this->publish({ "a" }, { "2" });
    ASSERT_EQ(again->rc, NGX_OK);
    EXPECT_NE(again->last[0].epoch, op->last[0].epoch);
    EXPECT_EQ(again->last[0].seq, 1u);

    /* the old id is now from another epoch */
    this->join({ "a" }, 1, { op->last[0] }, 0, &j);
    ASSERT_EQ(j.rc, NGX_OK);
    EXPECT_STREQ(j.reset[0], "unknown");
}


TYPED_TEST_P(StoreContract, JoinRespectsMaxSubscribers)
{
    ngx_http_sse_limits_t      l = this->limits();
    ngx_http_sse_store_join_t  j;

    l.max_subscribers = 1;
    this->restart(l);

    this->join({ "a" }, 0, {}, 0, &j);
    EXPECT_EQ(j.rc, NGX_OK);

    this->join({ "b" }, 0, {}, 0, &j);
    EXPECT_EQ(j.rc, NGX_HTTP_SSE_TOO_MANY_SUBSCRIBERS);
}


/* ---- read: whole events within a budget ------------------------------------ */

TYPED_TEST_P(StoreContract, ReadStaysWithinItsBudget)
{
    ngx_http_sse_store_join_t  j;
    std::vector<std::string>   datas;

    for (int i = 0; i < 10; i++) {
        datas.push_back(std::string(100, 'a' + i));
    }

    this->publish({ "a" }, datas);

    Stream &s = this->join({ "a" }, 0, {}, NGX_HTTP_SSE_REPLAY_ALL, &j);
    ASSERT_EQ(j.rc, NGX_OK);

    sse::Position               from = s.chans[0].pos;
    std::vector<Event>          got;
    ngx_http_sse_store_read_t   rd;
    size_t                      one;

    /* a budget for two and a half events: two whole ones */
    EXPECT_EQ(this->read(s.chans[0], from, 300, &got, &rd), NGX_OK);
    ASSERT_EQ(got.size(), 2u);
    one = got[0].wire.size();
    EXPECT_GT(one, 100u);
    EXPECT_LE(rd.bytes, 300u);
    EXPECT_EQ(rd.bytes, got[0].wire.size() + got[1].wire.size());
    EXPECT_FALSE(rd.caught_up);
    EXPECT_EQ(got[0].wire.back(), '\n');
    EXPECT_EQ(this->data_of(got[1]), std::string(100, 'b'));

    /* on from there: the next ones, never one twice */
    from.seq = got.back().seq;
    got.clear();
    EXPECT_EQ(this->read(s.chans[0], from, 3 * one, &got, &rd), NGX_OK);
    ASSERT_EQ(got.size(), 3u);
    EXPECT_EQ(got[0].seq, 3u);

    /* a budget smaller than one event: that event alone */
    from.seq = got.back().seq;
    got.clear();
    EXPECT_EQ(this->read(s.chans[0], from, 10, &got, &rd), NGX_OK);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].seq, 6u);

    /* the rest, caught up */
    from.seq = got.back().seq;
    got.clear();
    EXPECT_EQ(this->read(s.chans[0], from, (size_t) -1, &got, &rd), NGX_OK);
    EXPECT_EQ(got.size(), 4u);
    EXPECT_TRUE(rd.caught_up);
}


TYPED_TEST_P(StoreContract, ReadStopsWhereTheSinkHasNoRoom)
{
    ngx_http_sse_store_join_t  j;

    this->publish({ "a" }, { "1", "2", "3" });

    Stream &s = this->join({ "a" }, 0, {}, NGX_HTTP_SSE_REPLAY_ALL, &j);

    struct Counter {
        static ngx_int_t one(void *data, uint64_t, u_char *, size_t, size_t,
            uint64_t, ngx_msec_t)
        {
            return (*(int *) data)++ ? NGX_DECLINED : NGX_OK;
        }
    };

    int                        calls = 0;
    ngx_http_sse_store_read_t  rd;

    std::memset(&rd, 0, sizeof(rd));
    rd.local = s.chans[0].local;
    rd.from = s.chans[0].pos;
    rd.budget = (size_t) -1;
    rd.sink = Counter::one;
    rd.data = &calls;

    EXPECT_EQ(this->zone->store->read(this->zone, &rd), NGX_OK);
    EXPECT_EQ(calls, 2);
    EXPECT_FALSE(rd.caught_up);
}


TYPED_TEST_P(StoreContract, ReadOfEventsGoneIsAGap)
{
    ngx_http_sse_limits_t      l = this->limits();
    ngx_http_sse_store_join_t  j;

    l.history = 2;
    l.history_ttl = 10;
    this->restart(l);

    auto op = this->publish({ "a" }, { "1", "2" });

    /* a stream behind by both, with no room to keep them for it */
    Stream &s = this->join({ "a" }, 0, {}, NGX_HTTP_SSE_REPLAY_ALL, &j, 0);
    ASSERT_EQ(j.rc, NGX_OK);

    advance_clock(11);
    this->publish({ "a" }, { "3" });       /* history_ttl took 1 and 2 */

    std::vector<Event>         got;
    ngx_http_sse_store_read_t  rd;
    sse::Position              from = { op->last[0].epoch, 0 };

    EXPECT_EQ(this->read(s.chans[0], from, (size_t) -1, &got, &rd),
              NGX_HTTP_SSE_PULL_GAP);
    EXPECT_TRUE(got.empty());
}


/* ---- delete ------------------------------------------------------------- */

TYPED_TEST_P(StoreContract, DeleteEndsReadersAfterWhatCameBefore)
{
    ngx_http_sse_store_join_t  j;

    this->publish({ "a" }, { "1" });

    Stream &s = this->join({ "a" }, 0, {}, NGX_HTTP_SSE_REPLAY_ALL, &j);
    ASSERT_EQ(j.rc, NGX_OK);

    this->publish({ "a" }, { "2" });

    auto del = this->query({ "a", "nothing" }, true);
    EXPECT_EQ(del->channels[0].state,
              (ngx_uint_t) NGX_HTTP_SSE_CHANNEL_LIVE);
    EXPECT_EQ(del->channels[0].subscribers, 1u);
    EXPECT_EQ(del->channels[1].state,
              (ngx_uint_t) NGX_HTTP_SSE_CHANNEL_NONE);

    /* the reader gets both events, then the end */
    std::vector<Event>         got;
    ngx_http_sse_store_read_t  rd;

    EXPECT_EQ(this->read(s.chans[0], s.chans[0].pos, (size_t) -1, &got, &rd),
              NGX_HTTP_SSE_PULL_END);
    EXPECT_EQ(got.size(), 2u);
    EXPECT_TRUE(rd.caught_up);

    /* the worker's batch says its streams end */
    ngx_http_sse_batch_t  batch;

    std::memset(&batch, 0, sizeof(batch));
    EXPECT_EQ(this->zone->store->collect(this->zone, &batch), NGX_OK);
    ASSERT_EQ(batch.ntouched, 1u);
    EXPECT_EQ(batch.touched[0]->ending,
              (ngx_uint_t) NGX_HTTP_SSE_LOCAL_DELETED);
    batch.touched[0]->busy = 0;

    free(batch.scratch);
    free(batch.copies);
    free(batch.touched);

    /* deleted once: a second DELETE finds nothing live */
    auto again = this->query({ "a" }, true);
    EXPECT_NE(again->channels[0].state,
              (ngx_uint_t) NGX_HTTP_SSE_CHANNEL_LIVE);
    EXPECT_EQ(this->info("a").state,
              (ngx_uint_t) NGX_HTTP_SSE_CHANNEL_DELETED);
}


/* ---- the fan-out's batch --------------------------------------------------- */

TYPED_TEST_P(StoreContract, CollectHandsOverNewEventsOnce)
{
    ngx_http_sse_store_join_t  j;
    ngx_http_sse_batch_t       batch;

    this->join({ "a" }, 0, {}, 0, &j);
    ASSERT_EQ(j.rc, NGX_OK);
    this->join({ "b" }, 0, {}, 0, &j);
    ASSERT_EQ(j.rc, NGX_OK);

    ngx_uint_t woken = worker_woken();

    this->publish({ "a", "b" }, { "1", "2" });

    /* its own worker heard of it */
    EXPECT_GT(worker_woken(), woken);

    std::memset(&batch, 0, sizeof(batch));
    EXPECT_EQ(this->zone->store->collect(this->zone, &batch), NGX_OK);
    EXPECT_EQ(batch.ntouched, 2u);
    ASSERT_EQ(batch.ncopies, 4u);

    std::string first((char *) batch.scratch + batch.copies[0].offset,
                      batch.copies[0].len);
    EXPECT_NE(first.find("data: 1\n"), std::string::npos);
    EXPECT_EQ(batch.copies[1].seq, 2u);
    EXPECT_EQ(batch.copies[1].local, batch.copies[0].local);

    for (ngx_uint_t i = 0; i < batch.ntouched; i++) {
        batch.touched[i]->busy = 0;
    }

    this->zone->store->settle(this->zone, batch.touched, batch.ntouched);

    /* taken: nothing more until the next publish */
    batch.ntouched = 0;
    batch.ncopies = 0;
    batch.scratch_len = 0;
    EXPECT_EQ(this->zone->store->collect(this->zone, &batch), NGX_OK);
    EXPECT_EQ(batch.ncopies, 0u);

    free(batch.scratch);
    free(batch.copies);
    free(batch.touched);
}


/* ---- info and figures ---------------------------------------------------- */

TYPED_TEST_P(StoreContract, InfoAndFigures)
{
    ngx_http_sse_store_join_t  j;
    ngx_http_sse_figures_t     f;

    EXPECT_EQ(this->info("a").state, (ngx_uint_t) NGX_HTTP_SSE_CHANNEL_NONE);

    auto op = this->publish({ "a" }, { "1", "2" });
    advance_clock(5);

    this->join({ "a" }, 0, {}, 0, &j);

    auto a = this->info("a");
    EXPECT_EQ(a.state, (ngx_uint_t) NGX_HTTP_SSE_CHANNEL_LIVE);
    EXPECT_EQ(a.subscribers, 1u);
    EXPECT_EQ(a.events, 2u);
    EXPECT_EQ(a.last.seq, op->last[0].seq);
    EXPECT_EQ(a.last.epoch, op->last[0].epoch);
    EXPECT_EQ(ngx_time() - a.last_publish, 5);

    std::memset(&f, 0, sizeof(f));
    this->zone->store->figures(this->zone, &f);
    EXPECT_EQ(f.channels, 1u);
    EXPECT_EQ(f.subscribers, 1u);
    EXPECT_EQ(f.stored_events, 2u);
    EXPECT_EQ(f.published, 2u);
    EXPECT_EQ(f.workers, 1u);
    EXPECT_GT(f.used, 0u);
    EXPECT_LE(f.used, f.size);

    this->zone->store->count(this->zone, NGX_HTTP_SSE_COUNT_DELIVERED, 3);
    this->zone->store->figures(this->zone, &f);
    EXPECT_EQ(f.delivered, 3u);
}


REGISTER_TYPED_TEST_SUITE_P(StoreContract,
    PublishGivesIdsInOrder,
    PublishCountsSubscribers,
    MultiChannelPublishReportsExactlyWhatItStored,
    FullZoneRefusesAndStoresNothing,
    HistoryKeepsTheNewestEvents,
    HistoryTtlExpiresEvents,
    IdempotencyKeyRepeatsTheAnswerAndStoresNothing,
    IdempotencyKeyIsKeptForHistoryTtl,
    IdempotencyKeyOfARefusedPublishIsNotKept,
    IdempotencyKeysWithOneHashAreTwoKeys,
    JoinWithoutIdReplaysWhatIsAsked,
    JoinAtAPositionResumesAfterIt,
    JoinPastHistoryIsAGap,
    JoinWithAnUnknownIdIsReset,
    JoinAfterDeleteIsRefusedAndRepublishIsANewEpoch,
    JoinRespectsMaxSubscribers,
    ReadStaysWithinItsBudget,
    ReadStopsWhereTheSinkHasNoRoom,
    ReadOfEventsGoneIsAGap,
    DeleteEndsReadersAfterWhatCameBefore,
    CollectHandsOverNewEventsOnce,
    InfoAndFigures);

} // namespace sse_test

#endif /* SSE_TEST_STORE_CONTRACT_H */
