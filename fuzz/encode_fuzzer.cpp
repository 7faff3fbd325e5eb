/*
 * libFuzzer target: the event encoder, JSON escaping and UTF-8 validation.
 *
 * Input: byte 0 and byte 1 give the lengths of the id and the type, the
 * rest is id, type and data in that order.  The encoder trusts its caller
 * to have kept line breaks out of id and type, so the fuzzer does too.
 *
 * Checks:
 *   - encode() writes exactly encoded_size() bytes (the buffer is exact, so
 *     ASan sees any overrun);
 *   - the output has no CR, ends with a blank line, and every other line
 *     starts with "id: ", "event: " or "data: ", in that order, one data
 *     line per line of data;
 *   - valid UTF-8 events parse back to the same type and LF-normalised
 *     data;
 *   - json_escape() writes exactly json_escaped_size() bytes with no raw
 *     control byte and no unescaped quote;
 *   - utf8_valid() agrees with a decoder written from the definition.
 */

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "sse_event_stream.h"
#include "sse_wire.h"

#include "fuzz_check.h"

namespace {

using sse::EventStreamParser;
using sse::Slice;

Slice slice(const std::string &s)
{
    return Slice{ reinterpret_cast<const unsigned char *>(s.data()),
                  s.size() };
}

bool starts_with(const std::string &s, const char *prefix)
{
    return s.compare(0, std::strlen(prefix), prefix) == 0;
}

/* what the encoder's input looks like after a reader joins its lines */
std::string normalized(const std::string &data, size_t *lines)
{
    std::string out;

    *lines = 1;

    for (size_t i = 0; i < data.size(); i++) {
        if (data[i] == '\r' || data[i] == '\n') {
            if (data[i] == '\r' && i + 1 < data.size() && data[i + 1] == '\n') {
                i++;
            }
            out += '\n';
            (*lines)++;
        } else {
            out += data[i];
        }
    }

    return out;
}

/*
 * A decoder from the definition: decode a code point, then reject what is
 * overlong, a surrogate or above U+10FFFF.
 */
bool reference_utf8(const std::string &s)
{
    size_t i = 0;

    while (i < s.size()) {
        unsigned char  c = static_cast<unsigned char>(s[i]);
        size_t         len;
        uint32_t       cp;
        uint32_t       min;

        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2; cp = c & 0x1f; min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3; cp = c & 0x0f; min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4; cp = c & 0x07; min = 0x10000;
        } else {
            return false;
        }

        if (s.size() - i < len) {
            return false;
        }

        for (size_t k = 1; k < len; k++) {
            unsigned char cc = static_cast<unsigned char>(s[i + k]);

            if ((cc & 0xc0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (cc & 0x3f);
        }

        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return false;
        }

        i += len;
    }

    return true;
}

void check_wire_format(const std::string &out, const std::string &id,
    const std::string &type, size_t data_lines)
{
    CHECK(out.find('\r') == std::string::npos);
    CHECK(out.size() >= 2 && out.compare(out.size() - 2, 2, "\n\n") == 0);

    std::vector<std::string> lines;
    size_t                   start = 0;

    /* every line ends with LF; the last one is the blank line */
    while (start < out.size()) {
        size_t lf = out.find('\n', start);
        CHECK(lf != std::string::npos);
        lines.push_back(out.substr(start, lf - start));
        start = lf + 1;
    }

    CHECK(lines.back().empty());
    lines.pop_back();

    size_t i = 0;

    if (!id.empty()) {
        CHECK(lines[i++] == "id: " + id);
    }

    if (!type.empty()) {
        CHECK(lines[i++] == "event: " + type);
    }

    CHECK(lines.size() - i == data_lines);

    for (; i < lines.size(); i++) {
        CHECK(starts_with(lines[i], "data: "));
    }
}

bool collect(void *ctx, Slice type, Slice data)
{
    auto *events = static_cast<std::vector<std::string> *>(ctx);

    events->emplace_back(reinterpret_cast<const char *>(type.data), type.len);
    events->emplace_back(reinterpret_cast<const char *>(data.data), data.len);
    return true;
}

void check_parses_back(const std::string &out, const std::string &type,
    const std::string &data)
{
    EventStreamParser         parser(out.size());
    std::vector<std::string>  events;
    auto                      p = reinterpret_cast<const unsigned char *>(
                                      out.data());

    CHECK(parser.feed(p, out.size(), collect, &events)
          == EventStreamParser::Status::ok);
    CHECK(parser.finish(collect, &events) == EventStreamParser::Status::ok);

    CHECK(events.size() == 2);
    CHECK(events[0] == type);
    CHECK(events[1] == data);
}

void check_json(const std::string &s)
{
    size_t size = sse::json_escaped_size(slice(s));

    std::vector<unsigned char> out(size ? size : 1);
    CHECK(sse::json_escape(out.data(), slice(s)) == size);

    for (size_t i = 0; i < size; i++) {
        CHECK(out[i] >= 0x20);

        if (out[i] == '\\') {
            CHECK(i + 1 < size);
            i++;                        /* skip what is escaped */
        } else {
            CHECK(out[i] != '"');
        }
    }
}

/* the caller of encode() keeps line breaks out of id and type */
std::string without_line_breaks(const uint8_t *p, size_t n)
{
    std::string s(reinterpret_cast<const char *>(p), n);

    for (char &c : s) {
        if (c == '\r' || c == '\n') {
            c = '_';
        }
    }

    return s;
}

} // namespace


extern "C" int LLVMFuzzerTestOneInput(const uint8_t *input, size_t size)
{
    if (size < 2) {
        return 0;
    }

    size_t         rest = size - 2;
    size_t         id_len = input[0] % 64 < rest ? input[0] % 64 : rest;
    size_t         type_len = input[1] % 64 < rest - id_len
                              ? input[1] % 64 : rest - id_len;
    const uint8_t *p = input + 2;

    std::string id = without_line_breaks(p, id_len);
    std::string type = without_line_breaks(p + id_len, type_len);
    std::string data(reinterpret_cast<const char *>(p + id_len + type_len),
                     rest - id_len - type_len);

    size_t encoded = sse::encoded_size(slice(id), slice(type), slice(data));

    /* exactly the computed size: a write past it is a heap overflow */
    std::vector<unsigned char> buf(encoded);
    size_t len = sse::encode(buf.data(), slice(id), slice(type), slice(data));
    CHECK(len == encoded);

    std::string out(reinterpret_cast<const char *>(buf.data()), len);
    size_t      data_lines;
    std::string joined = normalized(data, &data_lines);

    check_wire_format(out, id, type, data_lines);

    bool type_ok = sse::utf8_valid(slice(type).data, type.size());
    bool data_ok = sse::utf8_valid(slice(data).data, data.size());

    CHECK(type_ok == reference_utf8(type));
    CHECK(data_ok == reference_utf8(data));

    if (type_ok && data_ok) {
        check_parses_back(out, type, joined);
    }

    check_json(data);

    return 0;
}
