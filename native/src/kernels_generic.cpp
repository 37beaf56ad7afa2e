// Portable kernels: four independent accumulators so the compiler can vectorize with SSE2.
#include "kernels.h"

namespace docent {

float half_to_float(unsigned short h) {
    const unsigned sign = (h & 0x8000u) << 16, exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
    unsigned bits;
    if (exponent == 0) {
        if (mantissa == 0) {
            bits = sign;
        } else {  // subnormal: renormalize
            unsigned e = 113, m = mantissa;
            while (!(m & 0x400u)) {
                m <<= 1;
                --e;
            }
            bits = sign | (e << 23) | ((m & 0x3ffu) << 13);
        }
    } else if (exponent == 31) {
        bits = sign | 0x7f800000u | (mantissa << 13);
    } else {
        bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
    }
    float f;
    __builtin_memcpy(&f, &bits, sizeof f);
    return f;
}

unsigned short float_to_half(float f) {
    unsigned bits;
    __builtin_memcpy(&bits, &f, sizeof bits);
    const unsigned sign = (bits >> 16) & 0x8000u;
    const int exponent = static_cast<int>((bits >> 23) & 0xffu) - 127 + 15;
    unsigned mantissa = bits & 0x7fffffu;
    if (((bits >> 23) & 0xffu) == 0xffu) return static_cast<unsigned short>(sign | 0x7c00u | (mantissa ? 0x200u : 0));
    if (exponent >= 31) return static_cast<unsigned short>(sign | 0x7c00u);
    if (exponent <= 0) {  // subnormal half or zero
        if (exponent < -10) return static_cast<unsigned short>(sign);
        mantissa |= 0x800000u;
        const unsigned shift = static_cast<unsigned>(14 - exponent);
        unsigned half = mantissa >> shift;
        const unsigned rest = mantissa & ((1u << shift) - 1), halfway = 1u << (shift - 1);
        if (rest > halfway || (rest == halfway && (half & 1u))) ++half;
        return static_cast<unsigned short>(sign | half);
    }
    unsigned half = (static_cast<unsigned>(exponent) << 10) | (mantissa >> 13);
    const unsigned rest = mantissa & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) ++half;  // may carry into the exponent: correct
    return static_cast<unsigned short>(sign | half);
}

}  // namespace docent

namespace docent::kernels_generic {

static float inner_product(const float* a, const float* b, std::size_t dim) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    std::size_t i = 0;
    for (; i + 4 <= dim; i += 4) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    for (; i < dim; ++i) s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

static float l2_squared(const float* a, const float* b, std::size_t dim) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    std::size_t i = 0;
    for (; i + 4 <= dim; i += 4) {
        const float d0 = a[i] - b[i], d1 = a[i + 1] - b[i + 1];
        const float d2 = a[i + 2] - b[i + 2], d3 = a[i + 3] - b[i + 3];
        s0 += d0 * d0;
        s1 += d1 * d1;
        s2 += d2 * d2;
        s3 += d3 * d3;
    }
    for (; i < dim; ++i) {
        const float d = a[i] - b[i];
        s0 += d * d;
    }
    return (s0 + s1) + (s2 + s3);
}

static float inner_product_f16(const float* q, const unsigned short* c, std::size_t dim) {
    float s0 = 0, s1 = 0;
    std::size_t i = 0;
    for (; i + 2 <= dim; i += 2) {
        s0 += q[i] * half_to_float(c[i]);
        s1 += q[i + 1] * half_to_float(c[i + 1]);
    }
    for (; i < dim; ++i) s0 += q[i] * half_to_float(c[i]);
    return s0 + s1;
}

static float l2_squared_f16(const float* q, const unsigned short* c, std::size_t dim) {
    float s = 0;
    for (std::size_t i = 0; i < dim; ++i) {
        const float d = q[i] - half_to_float(c[i]);
        s += d * d;
    }
    return s;
}

static float dot_u8(const float* q, const unsigned char* c, std::size_t dim) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    std::size_t i = 0;
    for (; i + 4 <= dim; i += 4) {
        s0 += q[i] * static_cast<float>(c[i]);
        s1 += q[i + 1] * static_cast<float>(c[i + 1]);
        s2 += q[i + 2] * static_cast<float>(c[i + 2]);
        s3 += q[i + 3] * static_cast<float>(c[i + 3]);
    }
    for (; i < dim; ++i) s0 += q[i] * static_cast<float>(c[i]);
    return (s0 + s1) + (s2 + s3);
}

static void inner_product_block(const float* queries, std::size_t nq, const float* rows, std::size_t nr, std::size_t dim,
                                float* out, std::size_t out_stride) {
    for (std::size_t q = 0; q < nq; ++q)
        for (std::size_t r = 0; r < nr; ++r) out[q * out_stride + r] = inner_product(queries + q * dim, rows + r * dim, dim);
}

static void inner_product_packed(const float* queries, std::size_t nq, const float* panels, std::size_t n_panels, std::size_t dim,
                                 float* out, std::size_t out_stride) {
    constexpr std::size_t W = 8;
    for (std::size_t q = 0; q < nq; ++q)
        for (std::size_t p = 0; p < n_panels; ++p) {
            float acc[W] = {0, 0, 0, 0, 0, 0, 0, 0};
            const float* panel = panels + p * dim * W;
            for (std::size_t d = 0; d < dim; ++d)
                for (std::size_t r = 0; r < W; ++r) acc[r] += queries[q * dim + d] * panel[d * W + r];
            for (std::size_t r = 0; r < W; ++r) out[q * out_stride + p * W + r] = acc[r];
        }
}

const Kernels table{"generic", inner_product, l2_squared, inner_product_f16, l2_squared_f16, dot_u8, inner_product_block, 8,
                    inner_product_packed};

}  // namespace docent::kernels_generic
