// Distance kernels: one small set of functions per SIMD level, picked once at run time.
// The kernel files include nothing from the standard library on purpose: an inline template
// instantiated in an AVX-512 translation unit could be merged by the linker into generic code.
#pragma once
#include <cstddef>

namespace docent {

using DistanceFn = float (*)(const float* a, const float* b, std::size_t dim);

struct Kernels {
    const char* name;     // "generic", "avx2" or "avx512"
    DistanceFn inner_product;
    DistanceFn l2_squared;
};

namespace kernels_generic { extern const Kernels table; }
namespace kernels_avx2 { extern const Kernels table; }
namespace kernels_avx512 { extern const Kernels table; }

}  // namespace docent
