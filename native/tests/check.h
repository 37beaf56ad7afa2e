// The C++ tests' one assertion: CHECK(cond) reports a failed condition with its place and goes on;
// main() ends with `return checks_passed("name");`.
#pragma once

#include <cstdio>

inline int& check_failures() {
    static int failures = 0;
    return failures;
}

#define CHECK(cond)                                                                       \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            ++check_failures();                                                           \
        }                                                                                 \
    } while (0)

// The exit status of a test program: 0 when every check held.
inline int checks_passed(const char* name) {
    if (check_failures()) {
        std::fprintf(stderr, "%s: %d check(s) failed\n", name, check_failures());
        return 1;
    }
    std::printf("%s: all checks passed\n", name);
    return 0;
}
