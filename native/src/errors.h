// Typed errors of the engine; the bindings map each to its own Python exception.
#pragma once
#include <stdexcept>
#include <string>

namespace docent {

// A file or byte string that is not a valid index: foreign, truncated, damaged, or too new.
struct FormatError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// A caller mistake: wrong dimension, non-finite value, bad k, unknown id.
struct ArgumentError : std::invalid_argument {
    using std::invalid_argument::invalid_argument;
};

}  // namespace docent
