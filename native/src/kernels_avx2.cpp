// AVX2 + FMA + F16C kernels (compiled with -mavx2 -mfma -mf16c, only called when the CPU has all three).
#include <immintrin.h>

#include "kernels.h"

namespace docent::kernels_avx2 {

static inline float horizontal_sum(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v);
    __m128 hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_shuffle_ps(lo, lo, 0x55));
    return _mm_cvtss_f32(lo);
}

static float inner_product(const float* a, const float* b, std::size_t dim) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    std::size_t i = 0;
    for (; i + 16 <= dim; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= dim; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = horizontal_sum(_mm256_add_ps(s0, s1));
    for (; i < dim; ++i) s += a[i] * b[i];
    return s;
}

static float l2_squared(const float* a, const float* b, std::size_t dim) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    std::size_t i = 0;
    for (; i + 16 <= dim; i += 16) {
        const __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        const __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
        s0 = _mm256_fmadd_ps(d0, d0, s0);
        s1 = _mm256_fmadd_ps(d1, d1, s1);
    }
    for (; i + 8 <= dim; i += 8) {
        const __m256 d = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        s0 = _mm256_fmadd_ps(d, d, s0);
    }
    float s = horizontal_sum(_mm256_add_ps(s0, s1));
    for (; i < dim; ++i) {
        const float d = a[i] - b[i];
        s += d * d;
    }
    return s;
}

static float inner_product_f16(const float* q, const unsigned short* c, std::size_t dim) {
    __m256 s0 = _mm256_setzero_ps();
    std::size_t i = 0;
    for (; i + 8 <= dim; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(c + i))), s0);
    float s = horizontal_sum(s0);
    for (; i < dim; ++i) s += q[i] * _cvtsh_ss(c[i]);
    return s;
}

static float l2_squared_f16(const float* q, const unsigned short* c, std::size_t dim) {
    __m256 s0 = _mm256_setzero_ps();
    std::size_t i = 0;
    for (; i + 8 <= dim; i += 8) {
        const __m256 d = _mm256_sub_ps(_mm256_loadu_ps(q + i), _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(c + i))));
        s0 = _mm256_fmadd_ps(d, d, s0);
    }
    float s = horizontal_sum(s0);
    for (; i < dim; ++i) {
        const float d = q[i] - _cvtsh_ss(c[i]);
        s += d * d;
    }
    return s;
}

static float dot_u8(const float* q, const unsigned char* c, std::size_t dim) {
    __m256 s0 = _mm256_setzero_ps();
    std::size_t i = 0;
    for (; i + 8 <= dim; i += 8) {
        const __m256 cv = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(c + i))));
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), cv, s0);
    }
    float s = horizontal_sum(s0);
    for (; i < dim; ++i) s += q[i] * static_cast<float>(c[i]);
    return s;
}

// A 3 x 4 tile of dot products: 12 accumulators, 3 query registers and 1 row register.
static void tile_3x4(const float* q, const float* r, std::size_t dim, float* out, std::size_t stride) {
    __m256 acc[3][4];
    for (auto& row : acc)
        for (auto& a : row) a = _mm256_setzero_ps();
    std::size_t i = 0;
    for (; i + 8 <= dim; i += 8) {
        const __m256 q0 = _mm256_loadu_ps(q + i), q1 = _mm256_loadu_ps(q + dim + i), q2 = _mm256_loadu_ps(q + 2 * dim + i);
        for (int j = 0; j < 4; ++j) {
            const __m256 rv = _mm256_loadu_ps(r + j * dim + i);
            acc[0][j] = _mm256_fmadd_ps(q0, rv, acc[0][j]);
            acc[1][j] = _mm256_fmadd_ps(q1, rv, acc[1][j]);
            acc[2][j] = _mm256_fmadd_ps(q2, rv, acc[2][j]);
        }
    }
    for (int a = 0; a < 3; ++a)
        for (int j = 0; j < 4; ++j) {
            float s = horizontal_sum(acc[a][j]);
            for (std::size_t t = i; t < dim; ++t) s += q[a * dim + t] * r[j * dim + t];
            out[a * stride + j] = s;
        }
}

static void inner_product_block(const float* queries, std::size_t nq, const float* rows, std::size_t nr, std::size_t dim,
                                float* out, std::size_t out_stride) {
    std::size_t q = 0;
    for (; q + 3 <= nq; q += 3) {
        std::size_t r = 0;
        for (; r + 4 <= nr; r += 4) tile_3x4(queries + q * dim, rows + r * dim, dim, out + q * out_stride + r, out_stride);
        for (; r < nr; ++r)
            for (std::size_t a = 0; a < 3; ++a)
                out[(q + a) * out_stride + r] = inner_product(queries + (q + a) * dim, rows + r * dim, dim);
    }
    for (; q < nq; ++q)
        for (std::size_t r = 0; r < nr; ++r) out[q * out_stride + r] = inner_product(queries + q * dim, rows + r * dim, dim);
}

// 4 queries x 2 panels of 8 rows: 8 accumulators, 2 panel loads and 4 broadcasts per dimension.
template <int NQ>
static void packed_tile(const float* q, std::size_t dim, const float* p0, const float* p1, float* out, std::size_t stride) {
    __m256 acc0[NQ], acc1[NQ];
    for (int i = 0; i < NQ; ++i) acc0[i] = acc1[i] = _mm256_setzero_ps();
    for (std::size_t d = 0; d < dim; ++d) {
        const __m256 r0 = _mm256_loadu_ps(p0 + d * 8), r1 = _mm256_loadu_ps(p1 + d * 8);
        for (int i = 0; i < NQ; ++i) {
            const __m256 b = _mm256_broadcast_ss(q + i * dim + d);
            acc0[i] = _mm256_fmadd_ps(b, r0, acc0[i]);
            acc1[i] = _mm256_fmadd_ps(b, r1, acc1[i]);
        }
    }
    for (int i = 0; i < NQ; ++i) {
        _mm256_storeu_ps(out + i * stride, acc0[i]);
        _mm256_storeu_ps(out + i * stride + 8, acc1[i]);
    }
}

static void tile_rows(std::size_t rows, const float* q, std::size_t dim, const float* p0, const float* p1, float* out,
                      std::size_t stride) {
    switch (rows) {
        case 4: packed_tile<4>(q, dim, p0, p1, out, stride); break;
        case 3: packed_tile<3>(q, dim, p0, p1, out, stride); break;
        case 2: packed_tile<2>(q, dim, p0, p1, out, stride); break;
        default: packed_tile<1>(q, dim, p0, p1, out, stride); break;
    }
}

static void inner_product_packed(const float* queries, std::size_t nq, const float* panels, std::size_t n_panels, std::size_t dim,
                                 float* out, std::size_t out_stride) {
    for (std::size_t q = 0; q < nq; q += 4) {
        const std::size_t rows = nq - q < 4 ? nq - q : 4;
        std::size_t p = 0;
        for (; p + 2 <= n_panels; p += 2)
            tile_rows(rows, queries + q * dim, dim, panels + p * dim * 8, panels + (p + 1) * dim * 8, out + q * out_stride + p * 8,
                      out_stride);
        if (p < n_panels) {  // an odd last panel: computed twice into a scratch tile
            float tile[4 * 16];
            const float* last = panels + p * dim * 8;
            tile_rows(rows, queries + q * dim, dim, last, last, tile, 16);
            for (std::size_t i = 0; i < rows; ++i)
                for (std::size_t r = 0; r < 8; ++r) out[(q + i) * out_stride + p * 8 + r] = tile[i * 16 + r];
        }
    }
}

const Kernels table{"avx2", inner_product, l2_squared, inner_product_f16, l2_squared_f16, dot_u8, inner_product_block, 8,
                    inner_product_packed};

}  // namespace docent::kernels_avx2
