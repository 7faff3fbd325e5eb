/*
 * Pure C++ parts of the SSE wire format (see sse_wire.h).
 *
 * Every function here works on caller-provided memory only: no allocation,
 * no exceptions, no nginx.  Output sizes are computed by companion *_size()
 * functions that must stay exact, because the nginx side allocates buffers
 * from them.
 */

#include "sse_wire.h"

#include <cstring>

namespace sse {

namespace {

bool is_list_separator(unsigned char c)
{
    return c == ' ' || c == ',';
}

/* printable ASCII other than space; ',' is excluded by the caller */
bool is_visible_ascii(unsigned char c)
{
    return c >= 0x21 && c <= 0x7e;
}

bool is_trim_space(unsigned char c)
{
    return c == ' ' || c == '\t';
}

bool same_bytes(Slice a, Slice b)
{
    return a.len == b.len && std::memcmp(a.data, b.data, a.len) == 0;
}

bool already_listed(const Slice *ids, size_t count, Slice id)
{
    for (size_t i = 0; i < count; i++) {
        if (same_bytes(ids[i], id)) {
            return true;
        }
    }
    return false;
}

} // namespace


bool valid_channel_id(const unsigned char *p, size_t n)
{
    if (n == 0 || n > max_channel_id_len) {
        return false;
    }

    for (size_t i = 0; i < n; i++) {
        if (!is_visible_ascii(p[i]) || p[i] == ',') {
            return false;
        }
    }

    return true;
}


int parse_channel_list(const unsigned char *p, size_t n, Slice *out,
    size_t max_out)
{
    size_t  count = 0;
    bool    too_many = false;
    size_t  i = 0;

    while (i < n) {
        if (is_list_separator(p[i])) {
            i++;
            continue;
        }

        size_t start = i;

        while (i < n && !is_list_separator(p[i])) {
            if (!is_visible_ascii(p[i])) {
                return static_cast<int>(ListError::bad_id);
            }
            i++;
        }

        Slice id = { p + start, i - start };

        if (id.len > max_channel_id_len) {
            return static_cast<int>(ListError::bad_id);
        }

        /*
         * Once the list is known to be too long, keep scanning anyway: a
         * malformed id later on is the more useful error to report.
         */
        if (too_many || already_listed(out, count, id)) {
            continue;
        }

        if (count == max_out) {
            too_many = true;
            continue;
        }

        out[count++] = id;
    }

    if (too_many) {
        return static_cast<int>(ListError::too_many);
    }

    if (count == 0) {
        return static_cast<int>(ListError::empty);
    }

    return static_cast<int>(count);
}


/*
 * Strict UTF-8 (RFC 3629): the second byte's allowed range depends on the
 * lead byte, which is how overlongs, surrogates and code points above
 * U+10FFFF are excluded without decoding the code point.
 */
bool utf8_valid(const unsigned char *p, size_t n)
{
    size_t i = 0;

    while (i < n) {

        /*
         * ASCII eight bytes at a time: most event data (JSON, tokens) is
         * ASCII, and every published byte comes through here.
         */
        if (n - i >= 8) {
            uint64_t word;

            std::memcpy(&word, p + i, 8);

            if ((word & UINT64_C(0x8080808080808080)) == 0) {
                i += 8;
                continue;
            }
        }

        unsigned char c = p[i];

        if (c < 0x80) {
            i++;
            continue;
        }

        size_t         len;
        unsigned char  lo = 0x80;
        unsigned char  hi = 0xbf;

        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;

        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            if (c == 0xe0) {
                lo = 0xa0;          /* overlong below U+0800 */
            } else if (c == 0xed) {
                hi = 0x9f;          /* surrogates U+D800..U+DFFF */
            }

        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            if (c == 0xf0) {
                lo = 0x90;          /* overlong below U+10000 */
            } else if (c == 0xf4) {
                hi = 0x8f;          /* above U+10FFFF */
            }

        } else {
            return false;           /* continuation byte, C0, C1, F5..FF */
        }

        if (n - i < len) {
            return false;
        }

        if (p[i + 1] < lo || p[i + 1] > hi) {
            return false;
        }

        for (size_t k = 2; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80) {
                return false;
            }
        }

        i += len;
    }

    return true;
}


/* event encoding */

namespace {

const char id_prefix[] = "id: ";
const char event_prefix[] = "event: ";
const char data_prefix[] = "data: ";

constexpr size_t id_prefix_len = sizeof(id_prefix) - 1;
constexpr size_t event_prefix_len = sizeof(event_prefix) - 1;
constexpr size_t data_prefix_len = sizeof(data_prefix) - 1;

unsigned char *put(unsigned char *out, const void *src, size_t n)
{
    if (n) {
        std::memcpy(out, src, n);
    }
    return out + n;
}

/*
 * Splits event data into lines at CRLF, CR or LF.  memchr(), not a loop
 * over every byte: most events (a token, a JSON object) have no line
 * break at all, and this runs under the zone lock.  Where the next LF is
 * is remembered, so data of many lone CRs is not searched again to its
 * end for every line: the work stays linear in the data.
 */
class LineSplitter {
public:
    explicit LineSplitter(Slice data) : data_(data), lf_(find_lf(0)) {}

    /*
     * The line starting at pos: returns its length; *next is where the
     * next line starts, or len + 1 past the last line.
     */
    size_t line(size_t pos, size_t *next)
    {
        if (pos >= data_.len) {
            *next = data_.len + 1;
            return 0;
        }

        if (lf_ < pos) {
            lf_ = find_lf(pos);
        }

        size_t end = lf_;

        const void *cr = std::memchr(data_.data + pos, '\r', end - pos);
        if (cr) {
            end = offset(cr);
        }

        if (end == data_.len) {
            *next = data_.len + 1;
            return data_.len - pos;
        }

        bool crlf = data_.data[end] == '\r' && end + 1 < data_.len
                    && data_.data[end + 1] == '\n';
        *next = end + (crlf ? 2 : 1);

        return end - pos;
    }

private:
    /* the first LF at or after from, or len */
    size_t find_lf(size_t from) const
    {
        if (from >= data_.len) {
            return data_.len;       /* and no memchr() of a NULL data */
        }

        const void *lf = std::memchr(data_.data + from, '\n',
                                     data_.len - from);

        return lf ? offset(lf) : data_.len;
    }

    size_t offset(const void *p) const
    {
        return static_cast<size_t>(static_cast<const unsigned char *>(p)
                                   - data_.data);
    }

    Slice   data_;
    size_t  lf_;        /* the first LF at or after the last search */
};

} // namespace


size_t encoded_size(Slice id, Slice type, Slice data)
{
    size_t size = 0;

    if (id.len) {
        size += id_line_size(id.len);
    }

    if (type.len) {
        size += event_prefix_len + type.len + 1;
    }

    /*
     * Every line gets "data: " and an LF; the line breaks of data (one or
     * two bytes each) are not copied.
     */
    size_t lines = 1;
    size_t break_bytes = 0;
    size_t pos = 0;
    LineSplitter split(data);

    for ( ;; ) {
        size_t next;
        size_t len = split.line(pos, &next);

        if (next > data.len) {
            break;
        }

        lines++;
        break_bytes += next - (pos + len);     /* CRLF, CR or LF */
        pos = next;
    }

    size += lines * (data_prefix_len + 1) + (data.len - break_bytes);

    return size + 1;    /* the blank line ending the event */
}


size_t encode(unsigned char *out, Slice id, Slice type, Slice data)
{
    unsigned char *p = out;

    if (id.len) {
        p += encode_id_line(p, id);
    }

    if (type.len) {
        p = put(p, event_prefix, event_prefix_len);
        p = put(p, type.data, type.len);
        *p++ = '\n';
    }

    size_t pos = 0;
    LineSplitter split(data);

    do {
        size_t next;
        size_t len = split.line(pos, &next);

        p = put(p, data_prefix, data_prefix_len);
        p = put(p, data.data + pos, len);
        *p++ = '\n';

        pos = next;
    } while (pos <= data.len);

    *p++ = '\n';

    return static_cast<size_t>(p - out);
}


size_t encode_id_line(unsigned char *out, Slice id)
{
    unsigned char *p = out;

    p = put(p, id_prefix, id_prefix_len);
    p = put(p, id.data, id.len);
    *p++ = '\n';

    return static_cast<size_t>(p - out);
}


/* event ids */

namespace {

const char base36_digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";

constexpr size_t max_epoch_digits = 13;     /* 2^64-1 = "3w5e11264sgsf" */
constexpr size_t max_seq_digits = 20;       /* 2^64-1 = 18446744073709551615 */

/*
 * Writes v in the given base, most significant digit first.  The base is
 * a constant of each instance: a division by a constant is a multiply,
 * and ids are formatted under the zone lock.
 */
template <unsigned base>
size_t format_in_base(unsigned char *out, uint64_t v)
{
    unsigned char  digits[64];
    unsigned char *d = digits + sizeof(digits);

    /* least significant digit first, from the end: no reversal */
    do {
        *--d = static_cast<unsigned char>(base36_digits[v % base]);
        v /= base;
    } while (v);

    size_t n = static_cast<size_t>(digits + sizeof(digits) - d);
    std::memcpy(out, d, n);

    return n;
}

int base36_value(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 10;
    }
    return -1;
}

int decimal_value(unsigned char c)
{
    return (c >= '0' && c <= '9') ? c - '0' : -1;
}

/*
 * Parses an unsigned number in [p, end) up to the first byte that is not a
 * digit of the base.  Leading zeros are refused (except a lone "0") so that
 * every value has exactly one text form: ids compare equal as text exactly
 * when they are the same position.  Returns the position after the number,
 * or nullptr when there is no number, it is too long, or it overflows.
 */
const unsigned char *parse_number(const unsigned char *p,
    const unsigned char *end, unsigned base, size_t max_digits,
    uint64_t *value)
{
    uint64_t  v = 0;
    size_t    digits = 0;

    for (; p < end; p++) {
        int d = (base == 10) ? decimal_value(*p) : base36_value(*p);

        if (d < 0) {
            break;
        }

        if (digits == 1 && v == 0) {
            return nullptr;         /* leading zero */
        }

        if (++digits > max_digits) {
            return nullptr;
        }

        if (v > (UINT64_MAX - static_cast<uint64_t>(d)) / base) {
            return nullptr;         /* overflow */
        }

        v = v * base + static_cast<uint64_t>(d);
    }

    if (digits == 0) {
        return nullptr;
    }

    *value = v;
    return p;
}

/* "<epoch base36>-<seq decimal>" at p; returns the position after it */
const unsigned char *parse_position(const unsigned char *p,
    const unsigned char *end, Position *pos)
{
    p = parse_number(p, end, 36, max_epoch_digits, &pos->epoch);

    if (p == nullptr || pos->epoch == 0 || p == end || *p != '-') {
        return nullptr;
    }

    return parse_number(p + 1, end, 10, max_seq_digits, &pos->seq);
}

} // namespace


size_t format_u64(unsigned char *out, uint64_t v)
{
    return format_in_base<10>(out, v);
}


size_t format_id(unsigned char *out, const Position *pos, size_t n)
{
    unsigned char *p = out;

    for (size_t i = 0; i < n; i++) {
        if (i) {
            *p++ = '.';
        }
        p += format_in_base<36>(p, pos[i].epoch);
        *p++ = '-';
        p += format_in_base<10>(p, pos[i].seq);
    }

    return static_cast<size_t>(p - out);
}


int parse_id(const unsigned char *p, size_t n, Position *out, size_t max_out)
{
    const unsigned char *end = p + n;

    /* header values may arrive with surrounding whitespace */
    while (p < end && is_trim_space(*p)) {
        p++;
    }
    while (end > p && is_trim_space(end[-1])) {
        end--;
    }

    if (p == end) {
        return -1;
    }

    size_t count = 0;

    for ( ;; ) {
        Position pos;

        if (count == max_out) {
            return -1;
        }

        p = parse_position(p, end, &pos);
        if (p == nullptr) {
            return -1;
        }

        out[count++] = pos;

        if (p == end) {
            return static_cast<int>(count);
        }

        if (*p != '.') {
            return -1;
        }

        p++;
    }
}


/* JSON */

namespace {

/* the short escape of c, or 0 when c needs \u00XX or no escaping at all */
char json_short_escape(unsigned char c)
{
    switch (c) {
    case '"':  return '"';
    case '\\': return '\\';
    case '\n': return 'n';
    case '\r': return 'r';
    case '\t': return 't';
    default:   return 0;
    }
}

} // namespace


size_t json_escaped_size(Slice s)
{
    size_t size = 0;

    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = s.data[i];

        if (json_short_escape(c)) {
            size += 2;
        } else if (c < 0x20) {
            size += 6;
        } else {
            size += 1;
        }
    }

    return size;
}


size_t json_escape(unsigned char *out, Slice s)
{
    static const char hex[] = "0123456789abcdef";

    unsigned char *p = out;

    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = s.data[i];
        char          esc = json_short_escape(c);

        if (esc) {
            *p++ = '\\';
            *p++ = static_cast<unsigned char>(esc);

        } else if (c < 0x20) {
            *p++ = '\\';
            *p++ = 'u';
            *p++ = '0';
            *p++ = '0';
            *p++ = static_cast<unsigned char>(hex[c >> 4]);
            *p++ = static_cast<unsigned char>(hex[c & 0xf]);

        } else {
            *p++ = c;
        }
    }

    return static_cast<size_t>(p - out);
}


/* logs */

namespace {

bool log_needs_escape(unsigned char c)
{
    return c < 0x20 || c >= 0x7f || c == '"' || c == '\\';
}

} // namespace


size_t log_escape(unsigned char *out, size_t out_cap, Slice s)
{
    static const char hex[] = "0123456789abcdef";

    unsigned char *p = out;
    size_t         need = 0;

    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = s.data[i];
        need += log_needs_escape(c) ? 4 : 1;
    }

    /* room for "..." when the whole of it does not fit */
    size_t room = (need <= out_cap) ? out_cap : out_cap - 3;

    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = s.data[i];

        if (log_needs_escape(c)) {
            if (static_cast<size_t>(p - out) + 4 > room) {
                break;
            }

            *p++ = '\\';
            *p++ = 'x';
            *p++ = static_cast<unsigned char>(hex[c >> 4]);
            *p++ = static_cast<unsigned char>(hex[c & 0xf]);

        } else {
            if (static_cast<size_t>(p - out) + 1 > room) {
                break;
            }

            *p++ = c;
        }
    }

    if (need > out_cap) {
        *p++ = '.';
        *p++ = '.';
        *p++ = '.';
    }

    return static_cast<size_t>(p - out);
}

} // namespace sse
