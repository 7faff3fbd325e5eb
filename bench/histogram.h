// A fixed-size log-linear histogram of durations in nanoseconds.
//
// Every power of two is split into kSub linear buckets, so a recorded value
// is known to within 1/kSub (1.6 %) of itself; that is finer than the noise
// of any latency measured here.  The histogram is a plain array, so it can be
// merged by addition and copied through a pipe from a child process.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace bench {

class Histogram {
public:
    static constexpr int kSubBits = 6;
    static constexpr uint64_t kSub = 1u << kSubBits;
    static constexpr int kMaxBits = 42;  // 2^42 ns is more than an hour
    static constexpr size_t kBuckets = kSub + (kMaxBits - kSubBits) * kSub;

    void record(uint64_t ns) {
        counts_[index_of(ns)]++;
        total_++;
    }

    void merge(const Histogram& o) {
        for (size_t i = 0; i < kBuckets; i++) counts_[i] += o.counts_[i];
        total_ += o.total_;
    }

    uint64_t count() const { return total_; }

    // The value below which the fraction q of the recorded values lie
    // (the midpoint of the bucket that holds that rank); 0 when empty.
    uint64_t quantile(double q) const {
        if (total_ == 0) return 0;
        uint64_t rank = uint64_t(q * double(total_ - 1)) + 1;
        uint64_t seen = 0;
        for (size_t i = 0; i < kBuckets; i++) {
            seen += counts_[i];
            if (seen >= rank) return (lower_bound(i) + upper_bound(i)) / 2;
        }
        return upper_bound(kBuckets - 1);
    }

    uint64_t max() const {
        for (size_t i = kBuckets; i-- > 0;)
            if (counts_[i]) return upper_bound(i);
        return 0;
    }

    // JSON object with the usual quantiles, in microseconds.
    std::string summary_json() const {
        char buf[320];
        std::snprintf(buf, sizeof buf,
                      "{\"count\":%llu,\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,"
                      "\"p999_us\":%.1f,\"max_us\":%.1f}",
                      static_cast<unsigned long long>(total_), quantile(0.50) / 1e3,
                      quantile(0.90) / 1e3, quantile(0.99) / 1e3, quantile(0.999) / 1e3,
                      max() / 1e3);
        return buf;
    }

    // [[upper bound in us, cumulative fraction], ...] for non-empty buckets:
    // enough to draw a distribution.
    std::string cdf_json() const {
        std::string out = "[";
        uint64_t seen = 0;
        char buf[64];
        for (size_t i = 0; i < kBuckets; i++) {
            if (!counts_[i]) continue;
            seen += counts_[i];
            std::snprintf(buf, sizeof buf, "%s[%.3f,%.6f]", out.size() > 1 ? "," : "",
                          upper_bound(i) / 1e3, double(seen) / double(total_));
            out += buf;
        }
        return out + "]";
    }

private:
    static size_t index_of(uint64_t v) {
        if (v < kSub) return size_t(v);
        int msb = 63 - __builtin_clzll(v);
        if (msb >= kMaxBits) return kBuckets - 1;
        int shift = msb - kSubBits;  // v >> shift is in [kSub, 2 kSub)
        return size_t(kSub + uint64_t(shift) * kSub + ((v >> shift) - kSub));
    }

    static uint64_t lower_bound(size_t i) {
        if (i < kSub) return i;
        uint64_t shift = (i - kSub) / kSub;
        uint64_t sub = (i - kSub) % kSub + kSub;
        return sub << shift;
    }

    static uint64_t upper_bound(size_t i) {
        return i + 1 < kBuckets ? lower_bound(i + 1) : lower_bound(i) * 2;
    }

    uint64_t counts_[kBuckets] = {};
    uint64_t total_ = 0;
};

}  // namespace bench
