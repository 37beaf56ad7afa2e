// Exact k-nearest search on the GPU: a tiled query-by-vector product whose every tile is reduced
// to the best K per query in shared memory (the full distance matrix is never written), then a
// merge of the per-block lists. Scores are "higher is better": q.x for inner product, and
// 2 q.x - |x|^2 for L2 (the caller subtracts that from |q|^2 to get the squared distance).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>

#include <cfloat>
#include <type_traits>

#include "gpu_common.cuh"

namespace docent::gpu {

constexpr int kTileQueries = 32;  // queries per block
constexpr int kTileRows = 64;     // base rows per tile
constexpr int kTileDepth = 32;    // dimensions per shared-memory step; dims are padded to this
constexpr int kThreads = 256;     // 8 warps
constexpr int kLd16 = kTileDepth + 8;  // leading dimension of 16-bit tiles (wmma: multiple of 8, 32-byte rows)
constexpr int kLd32 = kTileDepth + 1;  // fp32 tiles: +1 against bank conflicts

inline std::size_t padded_dim(std::size_t dim) { return (dim + kTileDepth - 1) / kTileDepth * kTileDepth; }

template <class T> __device__ inline T from_float(float v);
template <> __device__ inline float from_float<float>(float v) { return v; }
template <> __device__ inline __half from_float<__half>(float v) { return __float2half_rn(v); }
template <> __device__ inline __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

template <class T> __device__ inline float to_float(T v);
template <> __device__ inline float to_float<float>(float v) { return v; }
template <> __device__ inline float to_float<__half>(__half v) { return __half2float(v); }
template <> __device__ inline float to_float<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

// Inserts candidates into a warp's sorted (descending) list of at most K in shared memory.
// The whole warp calls it with the same (value, row); count is the list's current length.
template <int K>
__device__ inline void warp_insert(float* values, int* rows, int& count, float value, int row) {
    static_assert(K % 32 == 0, "K must be a multiple of 32");
    constexpr int kPer = K / 32;
    const int lane = threadIdx.x & 31;
    float old_v[kPer];
    int old_r[kPer];
    int position = 0;
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
        const int i = lane + 32 * j;
        old_v[j] = values[i];
        old_r[j] = rows[i];
        position += __popc(__ballot_sync(0xffffffffu, i < count && old_v[j] >= value));
    }
    __syncwarp();
    const int end = count < K ? count + 1 : K;  // entries after the insertion
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
        const int i = lane + 32 * j;
        float prev_v = __shfl_up_sync(0xffffffffu, old_v[j], 1);
        int prev_r = __shfl_up_sync(0xffffffffu, old_r[j], 1);
        if (j > 0) {
            const float carry_v = __shfl_sync(0xffffffffu, old_v[j - 1], 31);
            const int carry_r = __shfl_sync(0xffffffffu, old_r[j - 1], 31);
            if (lane == 0) prev_v = carry_v, prev_r = carry_r;
        }
        if (i > position && i < end) values[i] = prev_v, rows[i] = prev_r;
        if (i == position && position < K) values[i] = value, rows[i] = row;
    }
    __syncwarp();
    count = end;
}

// Offers one value per lane (valid where `valid`) to the warp's list.
template <int K>
__device__ inline void warp_offer(float* values, int* rows, int& count, float value, int row, bool valid) {
    float threshold = count < K ? -FLT_MAX : values[K - 1];
    unsigned pending = __ballot_sync(0xffffffffu, valid && value > threshold);
    while (pending) {
        const int source = __ffs(pending) - 1;
        const float v = __shfl_sync(0xffffffffu, value, source);
        const int r = __shfl_sync(0xffffffffu, row, source);
        warp_insert<K>(values, rows, count, v, r);
        threshold = count < K ? -FLT_MAX : values[K - 1];
        pending &= ~(1u << source);
        pending &= __ballot_sync(0xffffffffu, valid && value > threshold);
    }
}

template <class T, bool kTensor>
struct TileMemory;

template <class T>
struct TileMemory<T, false> {
    float q[kTileQueries][kLd32];
    float x[kTileRows][kLd32];
};

template <class T>
struct TileMemory<T, true> {
    T q[kTileQueries][kLd16];
    T x[kTileRows][kLd16];
};

// One block: kTileQueries queries against the tiles split, split + splits, ... of the base.
// Writes each query's best K of those tiles to partial[(query * splits + split) * K ...].
template <class T, int K, bool kTensor>
__global__ void __launch_bounds__(kThreads) tile_topk_kernel(const float* __restrict__ queries, int nq,
                                                             const T* __restrict__ base, const float* __restrict__ norms,
                                                             int n, int dp, const unsigned* __restrict__ allowed,
                                                             float* partial_values, int* partial_rows) {
    unsigned char* shared = dynamic_shared_memory();
    auto& tile = *reinterpret_cast<TileMemory<T, kTensor>*>(shared);
    float* scores = reinterpret_cast<float*>(shared + (sizeof(TileMemory<T, kTensor>) + 31) / 32 * 32);  // [32][64]
    float* top_values = scores + kTileQueries * kTileRows;                                                // [32][K]
    int* top_rows = reinterpret_cast<int*>(top_values + kTileQueries * K);                                // [32][K]

    const int q0 = blockIdx.x * kTileQueries;
    const int split = blockIdx.y, splits = gridDim.y;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    constexpr int kRowsPerWarp = kTileQueries / (kThreads / 32);
    int counts[kRowsPerWarp] = {};  // list lengths of this warp's query rows (same in every lane)

    const int tiles = (n + kTileRows - 1) / kTileRows;
    for (int t = split; t < tiles; t += splits) {
        const int r0 = t * kTileRows;
        float acc[8] = {};
        using namespace nvcuda;
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> frag_c;
        if constexpr (kTensor) wmma::fill_fragment(frag_c, 0.0f);
        for (int d0 = 0; d0 < dp; d0 += kTileDepth) {
            for (int e = threadIdx.x; e < kTileQueries * kTileDepth; e += kThreads) {
                const int r = e / kTileDepth, c = e % kTileDepth;
                const float v = q0 + r < nq ? queries[static_cast<size_t>(q0 + r) * dp + d0 + c] : 0.0f;
                if constexpr (kTensor) tile.q[r][c] = from_float<T>(v);
                else tile.q[r][c] = v;
            }
            for (int e = threadIdx.x; e < kTileRows * kTileDepth; e += kThreads) {
                const int r = e / kTileDepth, c = e % kTileDepth;
                const T v = r0 + r < n ? base[static_cast<size_t>(r0 + r) * dp + d0 + c] : from_float<T>(0.0f);
                if constexpr (kTensor) tile.x[r][c] = v;
                else tile.x[r][c] = to_float<T>(v);
            }
            __syncthreads();
            if constexpr (kTensor) {
                // 8 warps, 2 x 4 fragments of 16 x 16 over the 32 x 64 tile.
                const int fm = warp / 4, fn = warp % 4;
                for (int kk = 0; kk < kTileDepth; kk += 16) {
                    wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> frag_a;
                    wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> frag_b;
                    wmma::load_matrix_sync(frag_a, &tile.q[fm * 16][kk], kLd16);
                    wmma::load_matrix_sync(frag_b, &tile.x[fn * 16][kk], kLd16);
                    wmma::mma_sync(frag_c, frag_a, frag_b, frag_c);
                }
            } else {
                const int r = threadIdx.x / 8, c = threadIdx.x % 8;
#pragma unroll 8
                for (int kk = 0; kk < kTileDepth; ++kk) {
                    const float qv = tile.q[r][kk];
#pragma unroll
                    for (int j = 0; j < 8; ++j) acc[j] += qv * tile.x[c + 8 * j][kk];
                }
            }
            __syncthreads();
        }
        if constexpr (kTensor) {
            const int fm = warp / 4, fn = warp % 4;
            wmma::store_matrix_sync(scores + fm * 16 * kTileRows + fn * 16, frag_c, kTileRows, wmma::mem_row_major);
        } else {
            const int r = threadIdx.x / 8, c = threadIdx.x % 8;
#pragma unroll
            for (int j = 0; j < 8; ++j) scores[r * kTileRows + c + 8 * j] = acc[j];
        }
        __syncthreads();
        // Each warp reduces its query rows' 64 new scores into their running lists.
#pragma unroll
        for (int w = 0; w < kRowsPerWarp; ++w) {
            const int r = warp * kRowsPerWarp + w;
            if (q0 + r >= nq) break;
            for (int half = 0; half < kTileRows; half += 32) {
                const int row = r0 + half + lane;
                const bool valid = row < n && (allowed == nullptr || (allowed[row >> 5] >> (row & 31) & 1u));
                float s = scores[r * kTileRows + half + lane];
                if (norms != nullptr && valid) s = 2.0f * s - norms[row];
                warp_offer<K>(top_values + r * K, top_rows + r * K, counts[w], s, row, valid);
            }
        }
        __syncthreads();
    }
#pragma unroll
    for (int w = 0; w < kRowsPerWarp; ++w) {
        const int r = warp * kRowsPerWarp + w;
        if (q0 + r >= nq) break;
        const size_t out = (static_cast<size_t>(q0 + r) * splits + split) * K;
        for (int i = lane; i < K; i += 32) {
            partial_values[out + i] = i < counts[w] ? top_values[r * K + i] : -FLT_MAX;
            partial_rows[out + i] = i < counts[w] ? top_rows[r * K + i] : -1;
        }
    }
}

// One warp per query: merges `lists` sorted lists of K into the best k.
template <int K>
__global__ void merge_topk_kernel(const float* partial_values, const int* partial_rows, int nq, int lists, int k,
                                  float* out_values, int* out_rows) {
    unsigned char* shared = dynamic_shared_memory();
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
    const int q = blockIdx.x * warps + warp;
    float* values = reinterpret_cast<float*>(shared) + warp * K;
    int* rows = reinterpret_cast<int*>(reinterpret_cast<float*>(shared) + warps * K) + warp * K;
    if (q >= nq) return;
    int count = 0;
    const size_t begin = static_cast<size_t>(q) * lists * K;
    for (size_t i = lane; i < static_cast<size_t>(lists) * K; i += 32) {
        const int row = partial_rows[begin + i];
        warp_offer<K>(values, rows, count, partial_values[begin + i], row, row >= 0);
    }
    // Lanes that ran out of candidates early still took part in every warp_offer above: the
    // loop bound is the same for the whole warp because lists * K is a multiple of 32.
    for (int i = lane; i < k; i += 32) {
        out_values[static_cast<size_t>(q) * k + i] = i < count ? values[i] : -FLT_MAX;
        out_rows[static_cast<size_t>(q) * k + i] = i < count ? rows[i] : -1;
    }
}

// Calls f(std::integral_constant<int, K>) with the smallest list length K >= k that the
// kernels are built for (32, 64, 128 or 256).
template <class F>
inline void with_list_length(int k, F&& f) {
    if (k <= 32) f(std::integral_constant<int, 32>{});
    else if (k <= 64) f(std::integral_constant<int, 64>{});
    else if (k <= 128) f(std::integral_constant<int, 128>{});
    else f(std::integral_constant<int, 256>{});
}

// Merges each query's `lists` lists of K (device, row -1 where empty) into its best k.
template <int K>
inline void launch_merge(const float* partial_values, const int* partial_rows, int nq, int lists, int k, float* out_values,
                         int* out_rows) {
    constexpr int kWarps = 4;
    const std::size_t bytes = (sizeof(float) + sizeof(int)) * kWarps * K;
    check(cudaFuncSetAttribute(merge_topk_kernel<K>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)),
          "configuring the merge kernel");
    launch((nq + kWarps - 1) / kWarps, kWarps * 32, bytes, merge_topk_kernel<K>, partial_values, partial_rows, nq, lists, k,
           out_values, out_rows);
    check(cudaGetLastError(), "launching the merge kernel");
}

template <class T, bool kTensor>
constexpr std::size_t tile_shared_bytes(int K) {
    return (sizeof(TileMemory<T, kTensor>) + 31) / 32 * 32 + sizeof(float) * kTileQueries * kTileRows +
           (sizeof(float) + sizeof(int)) * kTileQueries * K;
}

// Launches the search of nq device queries (fp32, padded to dp) against n device rows.
// out_values/out_rows: (nq, k) on the device. scratch grows as needed. allowed: a device
// bitmap over the rows (bit r of word r / 32); null lets every row through.
template <class T>
void search_device(const float* queries, int nq, const T* base, const float* norms, int n, int dp, int k, int device,
                   float* out_values, int* out_rows, DeviceArray<float>& scratch_values, DeviceArray<int>& scratch_rows,
                   const unsigned* allowed = nullptr);

}  // namespace docent::gpu
