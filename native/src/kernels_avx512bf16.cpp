// AVX-512 BF16 kernel for exact batched search (compiled with -mavx512bf16, only called when
// the CPU has it). One VDPBF16PS multiplies 32 bf16 pairs and accumulates in fp32: twice the
// work of an fp32 FMA. The caller turns the bf16 scores into exact results by re-scoring, in
// fp32, every candidate within the proven error bound of the k-th best (see flat_index.cpp).
#include <immintrin.h>

#include "kernels.h"

namespace docent::kernels_avx512bf16 {

// 8 queries x 2 panels of 16 rows, dimensions in pairs.
template <int NQ>
static void tile(const unsigned* q, std::size_t pairs, const unsigned* p0, const unsigned* p1, float* out, std::size_t stride) {
    __m512 acc0[NQ], acc1[NQ];
    for (int i = 0; i < NQ; ++i) acc0[i] = acc1[i] = _mm512_setzero_ps();
    for (std::size_t j = 0; j < pairs; ++j) {
        const __m512bh r0 = (__m512bh)_mm512_loadu_si512(p0 + j * 16);
        const __m512bh r1 = (__m512bh)_mm512_loadu_si512(p1 + j * 16);
        for (int i = 0; i < NQ; ++i) {
            const __m512bh b = (__m512bh)_mm512_set1_epi32(static_cast<int>(q[i * pairs + j]));
            acc0[i] = _mm512_dpbf16_ps(acc0[i], b, r0);
            acc1[i] = _mm512_dpbf16_ps(acc1[i], b, r1);
        }
    }
    for (int i = 0; i < NQ; ++i) {
        _mm512_storeu_ps(out + i * stride, acc0[i]);
        _mm512_storeu_ps(out + i * stride + 16, acc1[i]);
    }
}

static void tile_rows(std::size_t rows, const unsigned* q, std::size_t pairs, const unsigned* p0, const unsigned* p1, float* out,
                      std::size_t stride) {
    switch (rows) {
        case 8: tile<8>(q, pairs, p0, p1, out, stride); break;
        case 7: tile<7>(q, pairs, p0, p1, out, stride); break;
        case 6: tile<6>(q, pairs, p0, p1, out, stride); break;
        case 5: tile<5>(q, pairs, p0, p1, out, stride); break;
        case 4: tile<4>(q, pairs, p0, p1, out, stride); break;
        case 3: tile<3>(q, pairs, p0, p1, out, stride); break;
        case 2: tile<2>(q, pairs, p0, p1, out, stride); break;
        default: tile<1>(q, pairs, p0, p1, out, stride); break;
    }
}

void inner_product_packed_bf16(const unsigned* queries, std::size_t nq, const unsigned* panels, std::size_t n_panels,
                               std::size_t pairs, float* out, std::size_t out_stride) {
    for (std::size_t q = 0; q < nq; q += 8) {
        const std::size_t rows = nq - q < 8 ? nq - q : 8;
        std::size_t p = 0;
        for (; p + 2 <= n_panels; p += 2)
            tile_rows(rows, queries + q * pairs, pairs, panels + p * pairs * 16, panels + (p + 1) * pairs * 16,
                      out + q * out_stride + p * 16, out_stride);
        if (p < n_panels) {
            float scratch[8 * 32];
            const unsigned* last = panels + p * pairs * 16;
            tile_rows(rows, queries + q * pairs, pairs, last, last, scratch, 32);
            for (std::size_t i = 0; i < rows; ++i)
                for (std::size_t r = 0; r < 16; ++r) out[(q + i) * out_stride + p * 16 + r] = scratch[i * 32 + r];
        }
    }
}

}  // namespace docent::kernels_avx512bf16
