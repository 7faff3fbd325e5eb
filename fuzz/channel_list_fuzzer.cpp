/*
 * libFuzzer target: parse_channel_list() and valid_channel_id().
 *
 * Checks every id returned is a valid channel id inside the input, that
 * there are no duplicates and at most max_out ids, and compares the result
 * with a plain reference implementation written with std::string.
 */

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "sse_wire.h"

#include "fuzz_check.h"

namespace {

using sse::ListError;
using sse::Slice;

bool reference_valid_id(const std::string &id)
{
    if (id.empty() || id.size() > 255) {
        return false;
    }

    for (unsigned char c : id) {
        if (c < 0x21 || c > 0x7e || c == ',') {
            return false;
        }
    }

    return true;
}

/* the same contract, the obvious way: split, validate, deduplicate */
int reference_list(const std::string &s, size_t max_out,
    std::vector<std::string> *ids)
{
    std::vector<std::string> tokens;
    std::string              token;

    for (char c : s + " ") {
        if (c == ' ' || c == ',') {
            if (!token.empty()) {
                tokens.push_back(token);
            }
            token.clear();
        } else {
            token += c;
        }
    }

    for (const std::string &t : tokens) {
        if (!reference_valid_id(t)) {
            return static_cast<int>(ListError::bad_id);
        }
    }

    for (const std::string &t : tokens) {
        bool seen = false;

        for (const std::string &id : *ids) {
            seen = seen || id == t;
        }

        if (!seen) {
            ids->push_back(t);
        }
    }

    if (ids->empty()) {
        return static_cast<int>(ListError::empty);
    }

    if (ids->size() > max_out) {
        return static_cast<int>(ListError::too_many);
    }

    return static_cast<int>(ids->size());
}

void check_list(const uint8_t *data, size_t size, size_t max_out)
{
    std::vector<Slice> out(max_out + 1, Slice{ nullptr, 0 });

    int rc = sse::parse_channel_list(data, size, out.data(), max_out);

    CHECK(out[max_out].data == nullptr);        /* nothing past max_out */
    CHECK(rc <= static_cast<int>(max_out));

    for (int i = 0; i < rc; i++) {
        const Slice &id = out[static_cast<size_t>(i)];

        CHECK(sse::valid_channel_id(id.data, id.len));
        CHECK(id.data >= data && id.data + id.len <= data + size);

        for (int k = 0; k < i; k++) {
            const Slice &other = out[static_cast<size_t>(k)];

            CHECK(!(other.len == id.len
                    && std::memcmp(other.data, id.data, id.len) == 0));
        }
    }

    std::string               s(reinterpret_cast<const char *>(data), size);
    std::vector<std::string>  ids;

    CHECK(rc == reference_list(s, max_out, &ids));

    for (int i = 0; i < rc; i++) {
        const Slice &id = out[static_cast<size_t>(i)];

        CHECK(ids[static_cast<size_t>(i)]
              == std::string(reinterpret_cast<const char *>(id.data),
                             id.len));
    }
}

} // namespace


extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_list(data, size, sse::max_channels_per_stream);

    /* small limits reach too_many with short inputs */
    if (size) {
        check_list(data + 1, size - 1, data[0] % 8);
    }

    std::string s(reinterpret_cast<const char *>(data), size);
    CHECK(sse::valid_channel_id(data, size) == reference_valid_id(s));

    return 0;
}
