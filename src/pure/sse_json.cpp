/*
 * A small strict JSON parser (see sse_json.h).
 *
 * Recursive descent over the whole text at once: the recursion is bounded
 * by max_depth, the node list by the text's length.  Strings are checked
 * while parsing (escapes, surrogate pairs, UTF-8) so that decoding them
 * later cannot fail except for memory.
 */

#include "sse_json.h"

#include <algorithm>
#include <cstring>
#include <new>

namespace sse {
namespace json {

namespace {

bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* four hex digits at p (the caller checked they are there), or -1 */
long hex4(const unsigned char *p)
{
    long v = 0;

    for (int k = 0; k < 4; k++) {
        int h = hex_value(p[k]);
        if (h < 0) {
            return -1;
        }
        v = (v << 4) | h;
    }

    return v;
}

bool is_high_surrogate(long cp)
{
    return cp >= 0xd800 && cp <= 0xdbff;
}

bool is_low_surrogate(long cp)
{
    return cp >= 0xdc00 && cp <= 0xdfff;
}

/* an unescaped byte that may stand in a string as itself */
bool is_plain_string_byte(unsigned char c)
{
    return c >= 0x20 && c != '"' && c != '\\';
}

size_t utf8_encode(unsigned char *out, unsigned long cp)
{
    if (cp < 0x80) {
        out[0] = static_cast<unsigned char>(cp);
        return 1;
    }
    if (cp < 0x800) {
        out[0] = static_cast<unsigned char>(0xc0 | (cp >> 6));
        out[1] = static_cast<unsigned char>(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = static_cast<unsigned char>(0xe0 | (cp >> 12));
        out[1] = static_cast<unsigned char>(0x80 | ((cp >> 6) & 0x3f));
        out[2] = static_cast<unsigned char>(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = static_cast<unsigned char>(0xf0 | (cp >> 18));
    out[1] = static_cast<unsigned char>(0x80 | ((cp >> 12) & 0x3f));
    out[2] = static_cast<unsigned char>(0x80 | ((cp >> 6) & 0x3f));
    out[3] = static_cast<unsigned char>(0x80 | (cp & 0x3f));
    return 4;
}

/*
 * Decodes the inside of a string the parser accepted (no quotes), handing
 * each run of plain bytes and each escaped character to sink(p, n); stops
 * early when sink returns false.  Returns false when it stopped early.
 */
template <typename Sink>
bool decode_string(const unsigned char *p, size_t n, Sink sink)
{
    size_t i = 0;

    while (i < n) {
        size_t run = i;

        while (i < n && p[i] != '\\') {
            i++;
        }

        if (i > run && !sink(p + run, i - run)) {
            return false;
        }

        if (i == n) {
            break;
        }

        unsigned char  buf[4];
        size_t         len = 1;
        unsigned char  c = p[i + 1];

        i += 2;

        switch (c) {
        case 'b': buf[0] = '\b'; break;
        case 'f': buf[0] = '\f'; break;
        case 'n': buf[0] = '\n'; break;
        case 'r': buf[0] = '\r'; break;
        case 't': buf[0] = '\t'; break;

        case 'u': {
            unsigned long cp = static_cast<unsigned long>(hex4(p + i));
            i += 4;

            if (is_high_surrogate(static_cast<long>(cp))) {
                /* the parser made sure "\uDC00".."\uDFFF" follows */
                unsigned long lo = static_cast<unsigned long>(hex4(p + i + 2));
                i += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }

            len = utf8_encode(buf, cp);
            break;
        }

        default:                /* '"', '\\', '/' stand for themselves */
            buf[0] = c;
            break;
        }

        if (!sink(buf, len)) {
            return false;
        }
    }

    return true;
}


class Parser {
public:
    Parser(const unsigned char *p, size_t n, std::vector<Node> *nodes)
        : p_(p), n_(n), nodes_(nodes) {}

    Error run()
    {
        Error e = value(0);
        if (e != Error::ok) {
            return e;
        }

        skip_space();

        return i_ == n_ ? Error::ok : Error::syntax;
    }

private:
    void skip_space()
    {
        while (i_ < n_ && is_space(p_[i_])) {
            i_++;
        }
    }

    bool at(unsigned char c) const { return i_ < n_ && p_[i_] == c; }

    size_t open_node(Type type)
    {
        Node node = {};
        node.type = type;
        node.start = static_cast<uint32_t>(i_);
        nodes_->push_back(node);
        return nodes_->size() - 1;
    }

    void close_node(size_t index)
    {
        Node &node = (*nodes_)[index];
        node.len = static_cast<uint32_t>(i_ - node.start);
        node.next = static_cast<uint32_t>(nodes_->size());
    }

    Error value(size_t depth)
    {
        skip_space();

        if (i_ == n_) {
            return Error::syntax;
        }

        switch (p_[i_]) {
        case '{':
            return object(depth + 1);
        case '[':
            return array(depth + 1);
        case '"':
            return string();
        case 't':
            return literal("true", Type::boolean, true);
        case 'f':
            return literal("false", Type::boolean, false);
        case 'n':
            return literal("null", Type::null, false);
        default:
            if (p_[i_] == '-' || is_digit(p_[i_])) {
                return number();
            }
            return Error::syntax;
        }
    }

    Error object(size_t depth)
    {
        if (depth > max_depth) {
            return Error::too_deep;
        }

        size_t index = open_node(Type::object);
        size_t count = 0;

        i_++;
        skip_space();

        if (at('}')) {
            i_++;
            close_node(index);
            return Error::ok;
        }

        for ( ;; ) {
            skip_space();

            if (!at('"')) {
                return Error::syntax;
            }

            Error e = string();
            if (e != Error::ok) {
                return e;
            }

            skip_space();

            if (!at(':')) {
                return Error::syntax;
            }

            i_++;

            e = value(depth);
            if (e != Error::ok) {
                return e;
            }

            count++;
            skip_space();

            if (at(',')) {
                i_++;
                continue;
            }

            if (at('}')) {
                i_++;
                break;
            }

            return Error::syntax;
        }

        (*nodes_)[index].count = static_cast<uint32_t>(count);
        close_node(index);

        return unique_names(index) ? Error::ok : Error::duplicate_key;
    }

    Error array(size_t depth)
    {
        if (depth > max_depth) {
            return Error::too_deep;
        }

        size_t index = open_node(Type::array);
        size_t count = 0;

        i_++;
        skip_space();

        if (at(']')) {
            i_++;
            close_node(index);
            return Error::ok;
        }

        for ( ;; ) {
            Error e = value(depth);
            if (e != Error::ok) {
                return e;
            }

            count++;
            skip_space();

            if (at(',')) {
                i_++;
                continue;
            }

            if (at(']')) {
                i_++;
                break;
            }

            return Error::syntax;
        }

        (*nodes_)[index].count = static_cast<uint32_t>(count);
        close_node(index);

        return Error::ok;
    }

    Error string()
    {
        size_t index = open_node(Type::string);

        i_++;                               /* the opening quote */

        for ( ;; ) {
            size_t run = i_;

            while (i_ < n_ && is_plain_string_byte(p_[i_])) {
                i_++;
            }

            /*
             * '"', '\\' and control bytes are ASCII, so they never fall
             * inside a multibyte sequence: each run is checked whole.
             */
            if (!utf8_valid(p_ + run, i_ - run)) {
                return Error::bad_string;
            }

            if (i_ == n_) {
                return Error::syntax;       /* unterminated */
            }

            unsigned char c = p_[i_];

            if (c == '"') {
                i_++;
                break;
            }

            if (c < 0x20) {
                return Error::bad_string;
            }

            Error e = escape();
            if (e != Error::ok) {
                return e;
            }
        }

        close_node(index);
        return Error::ok;
    }

    /* one escape sequence at '\\' */
    Error escape()
    {
        if (n_ - i_ < 2) {
            return Error::syntax;
        }

        unsigned char c = p_[i_ + 1];

        if (std::strchr("\"\\/bfnrt", c) != nullptr && c != '\0') {
            i_ += 2;
            return Error::ok;
        }

        if (c != 'u') {
            return Error::syntax;
        }

        if (n_ - i_ < 6) {
            return Error::syntax;
        }

        long cp = hex4(p_ + i_ + 2);
        if (cp < 0) {
            return Error::syntax;
        }

        i_ += 6;

        if (is_low_surrogate(cp)) {
            return Error::bad_string;
        }

        if (!is_high_surrogate(cp)) {
            return Error::ok;
        }

        /* a high surrogate stands only right before a low one */
        if (n_ - i_ < 6 || p_[i_] != '\\' || p_[i_ + 1] != 'u') {
            return Error::bad_string;
        }

        long lo = hex4(p_ + i_ + 2);
        if (lo < 0) {
            return Error::syntax;
        }

        if (!is_low_surrogate(lo)) {
            return Error::bad_string;
        }

        i_ += 6;
        return Error::ok;
    }

    Error number()
    {
        size_t index = open_node(Type::number);

        if (at('-')) {
            i_++;
        }

        if (at('0')) {
            i_++;

        } else if (i_ < n_ && is_digit(p_[i_])) {
            while (i_ < n_ && is_digit(p_[i_])) {
                i_++;
            }

        } else {
            return Error::syntax;
        }

        if (at('.')) {
            i_++;

            if (!(i_ < n_ && is_digit(p_[i_]))) {
                return Error::syntax;
            }

            while (i_ < n_ && is_digit(p_[i_])) {
                i_++;
            }
        }

        if (at('e') || at('E')) {
            i_++;

            if (at('+') || at('-')) {
                i_++;
            }

            if (!(i_ < n_ && is_digit(p_[i_]))) {
                return Error::syntax;
            }

            while (i_ < n_ && is_digit(p_[i_])) {
                i_++;
            }
        }

        close_node(index);
        return Error::ok;
    }

    Error literal(const char *word, Type type, bool truth)
    {
        size_t len = std::strlen(word);

        if (n_ - i_ < len || std::memcmp(p_ + i_, word, len) != 0) {
            return Error::syntax;
        }

        size_t index = open_node(type);

        (*nodes_)[index].truth = truth;
        i_ += len;
        close_node(index);

        return Error::ok;
    }

    /*
     * Duplicate names are compared decoded ("a" and "\u0061" are one
     * name), after sorting, so that an object with thousands of members
     * costs n log n, not n squared.
     */
    bool unique_names(size_t obj)
    {
        const Node &node = (*nodes_)[obj];

        if (node.count < 2) {
            return true;
        }

        std::vector<std::string> names;
        names.reserve(node.count);

        size_t c = obj + 1;

        for (uint32_t k = 0; k < node.count; k++) {
            const Node &key = (*nodes_)[c];
            std::string name;

            decode_string(p_ + key.start + 1, key.len - 2,
                          [&name](const unsigned char *p, size_t n) {
                              name.append(reinterpret_cast<const char *>(p),
                                          n);
                              return true;
                          });

            names.push_back(std::move(name));
            c = (*nodes_)[c + 1].next;
        }

        std::sort(names.begin(), names.end());

        return std::adjacent_find(names.begin(), names.end()) == names.end();
    }

    const unsigned char  *p_;
    size_t                n_;
    size_t                i_ = 0;
    std::vector<Node>    *nodes_;
};

} // namespace


const char *error_name(Error e)
{
    switch (e) {
    case Error::ok:             return "ok";
    case Error::syntax:         return "syntax error";
    case Error::too_deep:       return "nested too deeply";
    case Error::duplicate_key:  return "duplicate member name";
    case Error::bad_string:     return "invalid string";
    case Error::too_large:      return "too large";
    case Error::no_memory:      return "out of memory";
    }
    return "?";
}


Error Document::parse(const unsigned char *p, size_t n)
{
    text_ = p;
    len_ = n;
    nodes_.clear();

    if (n > max_text_len) {
        return Error::too_large;
    }

    Error e;

    try {
        e = Parser(p, n, &nodes_).run();

    } catch (const std::bad_alloc &) {
        e = Error::no_memory;
    }

    if (e != Error::ok) {
        nodes_.clear();
    }

    return e;
}


size_t Document::member(size_t obj, const char *name) const
{
    return member(obj, reinterpret_cast<const unsigned char *>(name),
                  std::strlen(name));
}


size_t Document::member(size_t obj, const unsigned char *name, size_t n) const
{
    if (obj >= nodes_.size() || nodes_[obj].type != Type::object) {
        return npos;
    }

    size_t c = obj + 1;

    for (uint32_t k = 0; k < nodes_[obj].count; k++) {
        if (string_equals(c, name, n)) {
            return c + 1;
        }
        c = nodes_[c + 1].next;
    }

    return npos;
}


Slice Document::raw(size_t i) const
{
    return { text_ + nodes_[i].start, nodes_[i].len };
}


bool Document::string_value(size_t i, std::string *out) const
{
    const Node &node = nodes_[i];

    try {
        decode_string(text_ + node.start + 1, node.len - 2,
                      [out](const unsigned char *p, size_t n) {
                          out->append(reinterpret_cast<const char *>(p), n);
                          return true;
                      });

    } catch (const std::bad_alloc &) {
        return false;
    }

    return true;
}


bool Document::string_equals(size_t i, const unsigned char *p, size_t n) const
{
    const Node &node = nodes_[i];
    size_t      at = 0;

    if (node.type != Type::string) {
        return false;
    }

    bool whole = decode_string(text_ + node.start + 1, node.len - 2,
                               [&at, p, n](const unsigned char *q, size_t m) {
                                   if (n - at < m
                                       || std::memcmp(p + at, q, m) != 0)
                                   {
                                       return false;
                                   }
                                   at += m;
                                   return true;
                               });

    return whole && at == n;
}


/*
 * The number's significant digits D and decimal exponent E (value
 * D * 10^E) are read off the text without converting to binary floating
 * point, so the floor is exact for every input, 1e400 and 5e-400 included.
 */
namespace {

/* the floor; *fraction: the number was not an integer (and not clamped) */
int64_t floor_and_fraction(Slice number, bool *fraction_out)
{
    const unsigned char  *p = number.data;
    size_t                n = number.len;
    size_t                i = 0;
    bool                  negative = false;

    if (i < n && p[i] == '-') {
        negative = true;
        i++;
    }

    /* the digits, without the '.', in one buffer-free walk: two ranges */
    size_t int_start = i;
    while (i < n && is_digit(p[i])) {
        i++;
    }
    size_t int_end = i;

    size_t frac_start = i, frac_end = i;
    if (i < n && p[i] == '.') {
        frac_start = ++i;
        while (i < n && is_digit(p[i])) {
            i++;
        }
        frac_end = i;
    }

    long exponent = 0;
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        bool exp_negative = false;

        i++;
        if (i < n && (p[i] == '+' || p[i] == '-')) {
            exp_negative = (p[i] == '-');
            i++;
        }

        for (; i < n && is_digit(p[i]); i++) {
            /* far beyond anything that changes the result; no overflow */
            if (exponent < 100000) {
                exponent = exponent * 10 + (p[i] - '0');
            }
        }

        if (exp_negative) {
            exponent = -exponent;
        }
    }

    size_t int_len = int_end - int_start;
    size_t frac_len = frac_end - frac_start;
    size_t total = int_len + frac_len;

    auto digit = [&](size_t k) -> unsigned {
        return k < int_len ? p[int_start + k] - '0'
                           : p[frac_start + k - int_len] - '0';
    };

    size_t first = 0;
    while (first < total && digit(first) == 0) {
        first++;
    }

    if (first == total) {
        *fraction_out = false;
        return 0;
    }

    /* value = digits[first..total) * 10^(exponent - frac_len) */
    long sig = static_cast<long>(total - first);
    long e = exponent - static_cast<long>(frac_len);
    long whole_digits = sig + e;        /* digits before the point */

    uint64_t  whole = 0;
    bool      fraction = false;
    bool      huge = whole_digits > 19;

    if (!huge && whole_digits > 0) {
        for (long k = 0; k < whole_digits; k++) {
            whole = whole * 10 + (k < sig ? digit(first + k) : 0);
        }
    }

    for (long k = whole_digits < 0 ? 0 : whole_digits; k < sig; k++) {
        if (digit(first + k) != 0) {
            fraction = true;
            break;
        }
    }

    uint64_t limit = static_cast<uint64_t>(max_number_floor);

    if (huge || whole > limit) {
        whole = limit;
        fraction = false;
    }

    *fraction_out = fraction;

    if (!negative) {
        return static_cast<int64_t>(whole);
    }

    int64_t v = -static_cast<int64_t>(whole) - (fraction ? 1 : 0);

    if (v < -max_number_floor) {
        *fraction_out = false;
        return -max_number_floor;
    }

    return v;
}

} // namespace


int64_t number_floor(Slice number)
{
    bool fraction;
    return floor_and_fraction(number, &fraction);
}


int64_t number_ceil(Slice number)
{
    bool     fraction;
    int64_t  v = floor_and_fraction(number, &fraction);

    return fraction && v < max_number_floor ? v + 1 : v;
}

} // namespace json
} // namespace sse
