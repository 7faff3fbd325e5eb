/*
 * Pure C++ parts of the SSE wire format: channel ids and channel lists,
 * UTF-8 validation, event encoding and the event id codec.
 *
 * Nothing here depends on nginx, allocates, or throws: the nginx glue and
 * the unit tests/fuzzers drive these functions directly.
 */

#ifndef SSE_WIRE_H
#define SSE_WIRE_H

#include <cstddef>
#include <cstdint>

namespace sse {

constexpr size_t max_channel_id_len = 255;
constexpr size_t max_channels_per_stream = 64;

struct Slice {
    const unsigned char  *data;
    size_t                len;
};


/* 1..255 bytes, each 0x21..0x7E except ',' (0x2C) */
bool valid_channel_id(const unsigned char *p, size_t n);

enum class ListError : int {
    ok = 0,
    empty = -1,         /* no channel id at all */
    bad_id = -2,        /* a byte outside the allowed set, or an id > 255 */
    too_many = -3,      /* more than max_out ids */
};

/*
 * Splits a channel list on spaces and commas (any run of them, leading and
 * trailing ones ignored).  Duplicate ids are dropped (the first one stays).
 * On success returns the number of ids written to out (>= 1); otherwise a
 * negative ListError value.  The slices point into p.
 * Tabs and other bytes outside 0x21..0x7E make the list invalid (bad_id).
 */
int parse_channel_list(const unsigned char *p, size_t n, Slice *out,
    size_t max_out);


/* strict UTF-8 (no overlongs, no surrogates, max U+10FFFF) */
bool utf8_valid(const unsigned char *p, size_t n);


/*
 * Event encoding.  An event on the wire is
 *
 *     id: <id>\n            (only if id.len > 0)
 *     event: <type>\n       (only if type.len > 0)
 *     data: <line>\n        (one per line of data; CR, LF and CRLF all
 *                            end a line; empty data gives one "data: \n")
 *     \n
 *
 * encoded_size() returns the exact number of bytes encode() writes.
 */
size_t encoded_size(Slice id, Slice type, Slice data);
size_t encode(unsigned char *out, Slice id, Slice type, Slice data);

/* "id: <id>\n" */
constexpr size_t id_line_size(size_t id_len) { return 4 + id_len + 1; }
size_t encode_id_line(unsigned char *out, Slice id);


/*
 * Event ids.  The position of a stream in one channel is (epoch, seq):
 * epoch names one incarnation of the channel (a new one after its history
 * was lost or it was deleted), seq counts its events from 1.  seq 0 means
 * "before the first event".
 *
 * Text form, for one channel:   <epoch base36>-<seq decimal>   "k2f9x0a1-17"
 * for several channels, the positions in stream order joined by '.':
 *                                "k2f9x0a1-17.k2f9x0b7-0"
 * epoch is 1..2^64-1 (0 is never a valid epoch).
 */
struct Position {
    uint64_t  epoch;
    uint64_t  seq;
};

constexpr size_t max_position_len = 13 + 1 + 20;   /* base36 u64, '-', u64 */
constexpr size_t max_id_len =
    max_channels_per_stream * (max_position_len + 1);

/* writes the text form of n positions; returns its length */
size_t format_id(unsigned char *out, const Position *pos, size_t n);

/*
 * Parses an id; returns the number of positions (1..max_out), or -1 when
 * the text is not a well-formed id (any junk, empty, epoch 0, overflow,
 * more than max_out positions).
 */
int parse_id(const unsigned char *p, size_t n, Position *out, size_t max_out);

/* writes the decimal form of v; returns its length (at most 20) */
size_t format_u64(unsigned char *out, uint64_t v);

/*
 * Minimal JSON string escaping (", \, control bytes as \u00XX); the input
 * is expected to be valid UTF-8 and is copied through otherwise.
 * json_escaped_size() is exact.
 */
size_t json_escaped_size(Slice s);
size_t json_escape(unsigned char *out, Slice s);


/*
 * Client-supplied text made safe for a log line: printable ASCII is copied,
 * every other byte (CR, LF, other controls, DEL, anything >= 0x80) and the
 * '"' and '\\' that would make the quoted value ambiguous become "\xHH".
 * At most out_cap bytes are written (out_cap >= 4): when the escaped form
 * does not fit, as many whole escapes as fit are written, then "...".
 * A log line so never holds a line break, a terminal escape or more than
 * out_cap bytes of what a client sent.
 */
constexpr size_t max_log_value = 256;
size_t log_escape(unsigned char *out, size_t out_cap, Slice s);

} // namespace sse

#endif /* SSE_WIRE_H */
