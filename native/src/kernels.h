// Distance kernels: one small set of functions per SIMD level, picked once at run time.
// The kernel files include nothing from the standard library on purpose: an inline template
// instantiated in an AVX-512 translation unit could be merged by the linker into generic code.
#pragma once
#include <cstddef>

namespace docent {

using DistanceFn = float (*)(const float* a, const float* b, std::size_t dim);
// A float query against stored fp16 values (IEEE half, as unsigned short).
using HalfDistanceFn = float (*)(const float* query, const unsigned short* code, std::size_t dim);
// sum(query[i] * code[i]) over uint8 codes (the scalar-quantized form; the caller applies scale/offset).
using ByteDotFn = float (*)(const float* query, const unsigned char* code, std::size_t dim);
// out[q * out_stride + r] = <queries[q], rows[r]> for a block of queries and rows, register-blocked
// like a matrix product so that exact batched search runs at the speed of the FMA units.
using InnerProductBlockFn = void (*)(const float* queries, std::size_t nq, const float* rows, std::size_t nr,
                                     std::size_t dim, float* out, std::size_t out_stride);

// Exact search's inner loop: scores of up to 8 queries against rows packed in panels of
// `panel_width` rows, transposed (panel[d * width + r] = row r's value d), so that every FMA
// works on `width` rows at once and no horizontal sums are needed.
// out[q * out_stride + p * width + r] = <queries[q], row r of panel p>.
using InnerProductPackedFn = void (*)(const float* queries, std::size_t nq, const float* panels, std::size_t n_panels,
                                      std::size_t dim, float* out, std::size_t out_stride);

struct Kernels {
    const char* name;     // "generic", "avx2" or "avx512"
    DistanceFn inner_product;
    DistanceFn l2_squared;
    HalfDistanceFn inner_product_f16;
    HalfDistanceFn l2_squared_f16;
    ByteDotFn dot_u8;
    InnerProductBlockFn inner_product_block;
    std::size_t panel_width;
    InnerProductPackedFn inner_product_packed;
};

namespace kernels_generic { extern const Kernels table; }
namespace kernels_avx2 { extern const Kernels table; }
namespace kernels_avx512 { extern const Kernels table; }

// The same over bf16 values stored in pairs (one 32-bit word = dimensions 2j and 2j+1):
// queries (nq, pairs) and panels of 16 rows laid out [panel][pair][row]. AVX-512 BF16 only.
using InnerProductPackedBf16Fn = void (*)(const unsigned* queries, std::size_t nq, const unsigned* panels, std::size_t n_panels,
                                          std::size_t pairs, float* out, std::size_t out_stride);
namespace kernels_avx512bf16 {
void inner_product_packed_bf16(const unsigned* queries, std::size_t nq, const unsigned* panels, std::size_t n_panels,
                               std::size_t pairs, float* out, std::size_t out_stride);
}

// IEEE half <-> float in portable code (the SIMD kernels convert with F16C / AVX-512 instead).
float half_to_float(unsigned short h);
unsigned short float_to_half(float f);  // round to nearest even; overflow becomes infinity

}  // namespace docent
