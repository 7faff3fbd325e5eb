/*
 * libFuzzer target: the event id codec.
 *
 * Checks:
 *   - a text parse_id() accepts formats back to itself, surrounding blanks
 *     aside (one position, one text), and parses again to the same
 *     positions;
 *   - positions built from the raw input bytes survive format then parse;
 *   - format_u64() agrees with printf.
 */

#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "sse_wire.h"

#include "fuzz_check.h"

namespace {

using sse::Position;

constexpr size_t max_pos = sse::max_channels_per_stream;

bool same_positions(const Position *a, const Position *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (a[i].epoch != b[i].epoch || a[i].seq != b[i].seq) {
            return false;
        }
    }
    return true;
}

/* format, parse, compare: what every valid list of positions must survive */
void check_round_trip(const Position *pos, size_t n)
{
    unsigned char  text[sse::max_id_len];
    Position       again[max_pos];

    size_t len = sse::format_id(text, pos, n);
    CHECK(len <= sse::max_id_len);

    int rc = sse::parse_id(text, len, again, max_pos);
    CHECK(rc == static_cast<int>(n));
    CHECK(same_positions(pos, again, n));
}

void check_text(const uint8_t *data, size_t size)
{
    Position pos[max_pos];

    int rc = sse::parse_id(data, size, pos, max_pos);
    CHECK(rc == -1 || (rc >= 1 && rc <= static_cast<int>(max_pos)));

    if (rc < 0) {
        return;
    }

    for (int i = 0; i < rc; i++) {
        CHECK(pos[i].epoch != 0);
    }

    check_round_trip(pos, static_cast<size_t>(rc));

    /* the canonical text is the input without its surrounding blanks */
    const uint8_t *start = data;
    const uint8_t *end = data + size;

    while (start < end && (*start == ' ' || *start == '\t')) {
        start++;
    }
    while (end > start && (end[-1] == ' ' || end[-1] == '\t')) {
        end--;
    }

    unsigned char text[sse::max_id_len];
    size_t        len = sse::format_id(text, pos, static_cast<size_t>(rc));

    CHECK(len == static_cast<size_t>(end - start));
    CHECK(std::memcmp(text, start, len) == 0);

    /* fewer slots than positions is an error, never a partial result */
    if (rc > 1) {
        CHECK(sse::parse_id(data, size, pos, static_cast<size_t>(rc - 1))
              == -1);
    }
}

uint64_t load_u64(const uint8_t *p)
{
    uint64_t v;
    std::memcpy(&v, p, sizeof(v));
    return v;
}

void check_binary(const uint8_t *data, size_t size)
{
    Position  pos[max_pos];
    size_t    n = 0;

    for (; n < max_pos && size >= 16; n++, data += 16, size -= 16) {
        pos[n].epoch = load_u64(data);
        pos[n].seq = load_u64(data + 8);

        if (pos[n].epoch == 0) {
            pos[n].epoch = 1;           /* not a valid epoch */
        }

        /* format_u64 against printf */
        unsigned char  mine[20];
        char           ref[32];
        size_t         len = sse::format_u64(mine, pos[n].seq);
        int            ref_len = std::snprintf(ref, sizeof(ref), "%" PRIu64,
                                               pos[n].seq);

        CHECK(len == static_cast<size_t>(ref_len));
        CHECK(std::memcmp(mine, ref, len) == 0);
    }

    if (n) {
        check_round_trip(pos, n);
    }
}

} // namespace


extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_text(data, size);
    check_binary(data, size);
    return 0;
}
