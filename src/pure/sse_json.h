/*
 * A small strict JSON parser (RFC 8259) for token headers, claims and key
 * sets.  Hostile input is the normal case here, so it refuses what lenient
 * parsers let through and what could make two parsers disagree about one
 * text: duplicate member names, invalid UTF-8, lone surrogates, control
 * bytes in strings, bytes after the value, nesting deeper than max_depth.
 *
 * The parse produces a flat list of nodes in document order; strings are
 * validated while parsing and decoded only when asked for.  The memory it
 * takes is bounded by the input: at most one node per two input bytes.
 * No exceptions escape (allocation failure is Error::no_memory); no nginx.
 */

#ifndef SSE_JSON_H
#define SSE_JSON_H

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "sse_wire.h"

namespace sse {
namespace json {

/* an object or array counts one level; "[[1]]" is depth 2 */
constexpr size_t max_depth = 32;

/* the largest text parsed; offsets are kept in 32 bits */
constexpr size_t max_text_len = 64 * 1024 * 1024;

enum class Type : uint8_t {
    null,
    boolean,
    number,
    string,
    array,
    object,
};

enum class Error : uint8_t {
    ok = 0,
    syntax,             /* not JSON, or bytes after the value */
    too_deep,           /* more than max_depth levels */
    duplicate_key,
    bad_string,         /* invalid UTF-8, lone surrogate, control byte */
    too_large,          /* longer than max_text_len */
    no_memory,
};

const char *error_name(Error e);

struct Node {
    Type      type;
    bool      truth;    /* boolean: its value */
    uint32_t  start;    /* the value's JSON text: offset in the input ... */
    uint32_t  len;      /* ... and length */
    uint32_t  count;    /* object: members; array: items */
    uint32_t  next;     /* index of the first node after this subtree */
};

/*
 * An object's children are its members' name and value nodes, alternating;
 * an array's children are its items.  The first child of node i is i + 1,
 * the one after child c is nodes()[c].next.
 */
class Document {
public:
    /* the text must outlive the document: nodes point into it */
    Error parse(const unsigned char *p, size_t n);

    const std::vector<Node> &nodes() const { return nodes_; }
    const Node &node(size_t i) const { return nodes_[i]; }

    static constexpr size_t npos = static_cast<size_t>(-1);

    /* the value node of the member called name in object node obj, or npos */
    size_t member(size_t obj, const char *name) const;
    size_t member(size_t obj, const unsigned char *name, size_t n) const;

    /* the JSON text of node i, exactly as it appeared in the input */
    Slice raw(size_t i) const;

    /* appends the decoded text of string node i; false on no memory */
    bool string_value(size_t i, std::string *out) const;

    /* string node i equals these bytes after decoding */
    bool string_equals(size_t i, const unsigned char *p, size_t n) const;

private:
    const unsigned char  *text_ = nullptr;
    size_t                len_ = 0;
    std::vector<Node>     nodes_;
};


/*
 * A JSON number (as validated by the parser) rounded towards minus
 * infinity, or towards plus infinity, to an integer, as NumericDate allows
 * fractions (RFC 7519 2).  Values beyond +-2^62 are clamped to it, which
 * keeps arithmetic with them (adding a leeway) clear of overflow.
 */
constexpr int64_t max_number_floor = int64_t(1) << 62;
int64_t number_floor(Slice number);
int64_t number_ceil(Slice number);

} // namespace json
} // namespace sse

#endif /* SSE_JSON_H */
