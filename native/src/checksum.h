// XXH64 (Yann Collet's xxHash, 64-bit variant): fast enough to check every byte of an
// index on load without being noticed next to reading it.
#pragma once
#include <cstddef>
#include <cstdint>

namespace docent {
std::uint64_t xxh64(const void* data, std::size_t size, std::uint64_t seed = 0);
}
