// CPU emulation (see cuda_runtime.h) of the warp matrix functions (nvcuda::wmma) that the exact
// search uses: every lane holds the whole 16 x 16 tile, and each call is warp-synchronous.
#pragma once

#include "cuda_bf16.h"
#include "cuda_fp16.h"
#include "cuda_runtime.h"

namespace nvcuda::wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

inline float element(float v) { return v; }
inline float element(__half v) { return __half2float(v); }
inline float element(__nv_bfloat16 v) { return __bfloat162float(v); }

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
    float x[16][16] = {};  // a: (m, k), b: (k, n), accumulator: (m, n)
};

template <class Use, int M, int N, int K, class T, class Layout>
void fill_fragment(fragment<Use, M, N, K, T, Layout>& f, float value) {
    for (auto& row : f.x)
        for (float& v : row) v = value;
    cuda_emulation::warp_barrier();
}

template <class Use, int M, int N, int K, class T, class Layout, class E>
void load_matrix_sync(fragment<Use, M, N, K, T, Layout>& f, const E* p, unsigned ld) {
    static_assert(M == 16 && N == 16 && K == 16, "the emulation knows 16 x 16 x 16 tiles");
    cuda_emulation::warp_barrier();  // the stores the tile was made of are done in every lane
    for (int r = 0; r < 16; ++r)
        for (int c = 0; c < 16; ++c)
            f.x[r][c] = std::is_same_v<Layout, col_major> ? element(p[c * ld + r]) : element(p[r * ld + c]);
    cuda_emulation::warp_barrier();
}

template <int M, int N, int K, class T, class LA, class LB>
void mma_sync(fragment<accumulator, M, N, K, float>& d, const fragment<matrix_a, M, N, K, T, LA>& a,
              const fragment<matrix_b, M, N, K, T, LB>& b, const fragment<accumulator, M, N, K, float>& c) {
    float out[16][16];
    for (int i = 0; i < 16; ++i)
        for (int j = 0; j < 16; ++j) {
            float sum = c.x[i][j];
            for (int k = 0; k < 16; ++k) sum += a.x[i][k] * b.x[k][j];
            out[i][j] = sum;
        }
    std::memcpy(d.x, out, sizeof out);
    cuda_emulation::warp_barrier();
}

template <int M, int N, int K>
void store_matrix_sync(float* p, const fragment<accumulator, M, N, K, float>& f, unsigned ld, layout_t layout) {
    cuda_emulation::warp_barrier();
    if (cuda_emulation::lane() == 0)
        for (int r = 0; r < 16; ++r)
            for (int c = 0; c < 16; ++c) (layout == mem_row_major ? p[r * ld + c] : p[c * ld + r]) = f.x[r][c];
    cuda_emulation::warp_barrier();
}

}  // namespace nvcuda::wmma
