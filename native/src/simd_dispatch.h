// Run-time choice of the distance kernels for this CPU.
#pragma once
#include <string>
#include <vector>

#include "kernels.h"

namespace docent {

// The kernels in use: the best the CPU supports, unless overridden with set_simd_level()
// or the DOCENT_SIMD environment variable (generic|avx2|avx512), read once at start.
const Kernels& active_kernels();

// The bf16 batch kernel when the CPU has AVX-512 BF16 and the avx512 level is active, else null.
InnerProductPackedBf16Fn bf16_inner_product_packed();

// The levels this CPU can run, best last.
std::vector<std::string> supported_simd_levels();

// Forces a level (for tests and benchmarks); throws std::invalid_argument if unsupported.
void set_simd_level(const std::string& level);

}  // namespace docent
