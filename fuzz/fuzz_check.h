/*
 * What every fuzzer here uses to state an invariant: a failed check aborts,
 * which libFuzzer reports as a crash with the input that caused it.
 */

#ifndef SSE_FUZZ_CHECK_H
#define SSE_FUZZ_CHECK_H

#include <cstdio>
#include <cstdlib>

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,      \
                         __LINE__, #cond);                                   \
            std::abort();                                                    \
        }                                                                    \
    } while (0)

#endif /* SSE_FUZZ_CHECK_H */
