// Portable kernels: four independent accumulators so the compiler can vectorize with SSE2.
#include "kernels.h"

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

const Kernels table{"generic", inner_product, l2_squared};

}  // namespace docent::kernels_generic
