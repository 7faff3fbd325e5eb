// The data of a benchmark event: a sequence number and the publisher's
// CLOCK_MONOTONIC time, from which a subscriber detects loss, duplicates and
// reordering and measures publish-to-receive latency.  Two shapes:
//
//   padded  "<seq> <ns> xxxx..."            padded to a fixed size
//   token   {"i":<seq>,"t":<ns>,"tok":"…"}  an AI chat token: short JSON text,
//                                           its token a word of 1-9 bytes
//
// parse_payload() reads either.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "util.h"

namespace bench {

enum class PayloadKind { kPadded, kToken };

inline std::string make_padded_payload(uint64_t seq, uint64_t ns, size_t size) {
    std::string s = std::to_string(seq) + ' ' + std::to_string(ns);
    if (s.size() + 1 < size) {
        s += ' ';
        s.append(size - s.size(), 'x');
    }
    return s;
}

// The token varies with channel and seq, so that events differ in size the
// way a chat answer's do; none needs escaping in JSON.
inline std::string make_token_payload(uint64_t seq, uint64_t ns, uint32_t channel) {
    static constexpr const char* kTokens[] = {
        " the",  " of",    "ing",    ",",      " model", " to",   " and", ".",
        " data", " Hello", " strea", "med",    " event", " a",    "s",    " answer",
        " is",   " chat",  " token", "ization", " in",   " more", "!",    " nginx",
    };
    constexpr uint64_t kCount = sizeof kTokens / sizeof kTokens[0];
    return "{\"i\":" + std::to_string(seq) + ",\"t\":" + std::to_string(ns) + ",\"tok\":\"" +
           kTokens[(seq * 7 + channel) % kCount] + "\"}";
}

inline std::string make_payload(PayloadKind kind, uint64_t seq, uint64_t ns, size_t size,
                                uint32_t channel) {
    return kind == PayloadKind::kToken ? make_token_payload(seq, ns, channel)
                                       : make_padded_payload(seq, ns, size);
}

// The number that follows `key` ("\"i\":") in a token payload.
inline bool token_field(std::string_view data, std::string_view key, uint64_t& out) {
    size_t at = data.find(key);
    if (at == std::string_view::npos) return false;
    data.remove_prefix(at + key.size());
    size_t end = data.find_first_not_of("0123456789");
    return end != 0 && parse_int(data.substr(0, end), out);
}

inline bool parse_payload(std::string_view data, uint64_t& seq, uint64_t& ns) {
    if (!data.empty() && data.front() == '{')
        return token_field(data, "\"i\":", seq) && token_field(data, "\"t\":", ns);
    size_t sp1 = data.find(' ');
    if (sp1 == std::string_view::npos) return false;
    size_t sp2 = data.find(' ', sp1 + 1);
    return parse_int(data.substr(0, sp1), seq) &&
           parse_int(data.substr(sp1 + 1, sp2 == std::string_view::npos ? sp2 : sp2 - sp1 - 1), ns);
}

}  // namespace bench
