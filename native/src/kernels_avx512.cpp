// AVX-512F kernels (compiled with -mavx512f..., only called when the CPU has them).
// The tail is handled with a masked load instead of a scalar loop.
#include <immintrin.h>

#include "kernels.h"

namespace docent::kernels_avx512 {

static inline __mmask16 tail_mask(std::size_t remaining) {
    return static_cast<__mmask16>((1u << remaining) - 1u);
}

static float inner_product(const float* a, const float* b, std::size_t dim) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    std::size_t i = 0;
    for (; i + 32 <= dim; i += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    }
    for (; i + 16 <= dim; i += 16) s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    if (i < dim) {
        const __mmask16 m = tail_mask(dim - i);
        s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

static float l2_squared(const float* a, const float* b, std::size_t dim) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    std::size_t i = 0;
    for (; i + 32 <= dim; i += 32) {
        const __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
        const __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16));
        s0 = _mm512_fmadd_ps(d0, d0, s0);
        s1 = _mm512_fmadd_ps(d1, d1, s1);
    }
    for (; i + 16 <= dim; i += 16) {
        const __m512 d = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
        s0 = _mm512_fmadd_ps(d, d, s0);
    }
    if (i < dim) {
        const __mmask16 m = tail_mask(dim - i);
        const __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i));
        s1 = _mm512_fmadd_ps(d, d, s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

static float inner_product_f16(const float* q, const unsigned short* c, std::size_t dim) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    std::size_t i = 0;
    for (; i + 32 <= dim; i += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + i))), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i + 16),
                             _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + i + 16))), s1);
    }
    for (; i < dim; i += 16) {
        const __mmask16 m = dim - i >= 16 ? static_cast<__mmask16>(0xffff) : tail_mask(dim - i);
        s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + i), _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, c + i)), s0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

static float l2_squared_f16(const float* q, const unsigned short* c, std::size_t dim) {
    __m512 s0 = _mm512_setzero_ps();
    for (std::size_t i = 0; i < dim; i += 16) {
        const __mmask16 m = dim - i >= 16 ? static_cast<__mmask16>(0xffff) : tail_mask(dim - i);
        const __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, q + i), _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, c + i)));
        s0 = _mm512_fmadd_ps(d, d, s0);
    }
    return _mm512_reduce_add_ps(s0);
}

static float dot_u8(const float* q, const unsigned char* c, std::size_t dim) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    std::size_t i = 0;
    for (; i + 32 <= dim; i += 32) {
        const __m512 c0 = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(c + i))));
        const __m512 c1 = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(c + i + 16))));
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), c0, s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i + 16), c1, s1);
    }
    for (; i < dim; i += 16) {
        const __mmask16 m = dim - i >= 16 ? static_cast<__mmask16>(0xffff) : tail_mask(dim - i);
        const __m512 cv = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, c + i)));
        s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + i), cv, s0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

// A 4 x 6 tile of dot products: 24 accumulators, 4 query registers and 1 row register.
static void tile_4x6(const float* q, const float* r, std::size_t dim, float* out, std::size_t stride) {
    __m512 acc[4][6];
    for (auto& row : acc)
        for (auto& a : row) a = _mm512_setzero_ps();
    for (std::size_t i = 0; i < dim; i += 16) {
        const __mmask16 m = dim - i >= 16 ? static_cast<__mmask16>(0xffff) : tail_mask(dim - i);
        const __m512 q0 = _mm512_maskz_loadu_ps(m, q + i), q1 = _mm512_maskz_loadu_ps(m, q + dim + i);
        const __m512 q2 = _mm512_maskz_loadu_ps(m, q + 2 * dim + i), q3 = _mm512_maskz_loadu_ps(m, q + 3 * dim + i);
        for (int j = 0; j < 6; ++j) {
            const __m512 rv = _mm512_maskz_loadu_ps(m, r + j * dim + i);
            acc[0][j] = _mm512_fmadd_ps(q0, rv, acc[0][j]);
            acc[1][j] = _mm512_fmadd_ps(q1, rv, acc[1][j]);
            acc[2][j] = _mm512_fmadd_ps(q2, rv, acc[2][j]);
            acc[3][j] = _mm512_fmadd_ps(q3, rv, acc[3][j]);
        }
    }
    for (int a = 0; a < 4; ++a)
        for (int j = 0; j < 6; ++j) out[a * stride + j] = _mm512_reduce_add_ps(acc[a][j]);
}

static void inner_product_block(const float* queries, std::size_t nq, const float* rows, std::size_t nr, std::size_t dim,
                                float* out, std::size_t out_stride) {
    std::size_t q = 0;
    for (; q + 4 <= nq; q += 4) {
        std::size_t r = 0;
        for (; r + 6 <= nr; r += 6) tile_4x6(queries + q * dim, rows + r * dim, dim, out + q * out_stride + r, out_stride);
        for (; r < nr; ++r)
            for (std::size_t a = 0; a < 4; ++a)
                out[(q + a) * out_stride + r] = inner_product(queries + (q + a) * dim, rows + r * dim, dim);
    }
    for (; q < nq; ++q)
        for (std::size_t r = 0; r < nr; ++r) out[q * out_stride + r] = inner_product(queries + q * dim, rows + r * dim, dim);
}

// 8 queries x 2 panels of 16 rows: 16 accumulators, 2 panel loads and 8 broadcasts per dimension.
template <int NQ>
static void packed_tile(const float* q, std::size_t dim, const float* p0, const float* p1, float* out, std::size_t stride) {
    __m512 acc0[NQ], acc1[NQ];
    for (int i = 0; i < NQ; ++i) acc0[i] = acc1[i] = _mm512_setzero_ps();
    for (std::size_t d = 0; d < dim; ++d) {
        const __m512 r0 = _mm512_loadu_ps(p0 + d * 16), r1 = _mm512_loadu_ps(p1 + d * 16);
        for (int i = 0; i < NQ; ++i) {
            const __m512 b = _mm512_set1_ps(q[i * dim + d]);
            acc0[i] = _mm512_fmadd_ps(b, r0, acc0[i]);
            acc1[i] = _mm512_fmadd_ps(b, r1, acc1[i]);
        }
    }
    for (int i = 0; i < NQ; ++i) {
        _mm512_storeu_ps(out + i * stride, acc0[i]);
        _mm512_storeu_ps(out + i * stride + 16, acc1[i]);
    }
}

static void tile_rows(std::size_t rows, const float* q, std::size_t dim, const float* p0, const float* p1, float* out,
                      std::size_t stride) {
    switch (rows) {
        case 8: packed_tile<8>(q, dim, p0, p1, out, stride); break;
        case 7: packed_tile<7>(q, dim, p0, p1, out, stride); break;
        case 6: packed_tile<6>(q, dim, p0, p1, out, stride); break;
        case 5: packed_tile<5>(q, dim, p0, p1, out, stride); break;
        case 4: packed_tile<4>(q, dim, p0, p1, out, stride); break;
        case 3: packed_tile<3>(q, dim, p0, p1, out, stride); break;
        case 2: packed_tile<2>(q, dim, p0, p1, out, stride); break;
        default: packed_tile<1>(q, dim, p0, p1, out, stride); break;
    }
}

static void inner_product_packed(const float* queries, std::size_t nq, const float* panels, std::size_t n_panels, std::size_t dim,
                                 float* out, std::size_t out_stride) {
    for (std::size_t q = 0; q < nq; q += 8) {
        const std::size_t rows = nq - q < 8 ? nq - q : 8;
        std::size_t p = 0;
        for (; p + 2 <= n_panels; p += 2)
            tile_rows(rows, queries + q * dim, dim, panels + p * dim * 16, panels + (p + 1) * dim * 16, out + q * out_stride + p * 16,
                      out_stride);
        if (p < n_panels) {  // an odd last panel: computed twice into a scratch tile
            float tile[8 * 32];
            const float* last = panels + p * dim * 16;
            tile_rows(rows, queries + q * dim, dim, last, last, tile, 32);
            for (std::size_t i = 0; i < rows; ++i)
                for (std::size_t r = 0; r < 16; ++r) out[(q + i) * out_stride + p * 16 + r] = tile[i * 32 + r];
        }
    }
}

const Kernels table{"avx512", inner_product, l2_squared, inner_product_f16, l2_squared_f16, dot_u8, inner_product_block, 16,
                    inner_product_packed};

}  // namespace docent::kernels_avx512
