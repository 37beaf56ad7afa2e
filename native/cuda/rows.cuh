// What every GPU index does with rows before and after they reach the device: the checks at
// the entry points, the host copy padded to the kernels' tile depth, and the squared norms that
// L2 scores need.
#pragma once

#include <algorithm>
#include <cmath>
#include <string>
#include <unordered_map>
#include <vector>

#include "topk.cuh"

namespace docent::gpu {

// Throws GpuError when no GPU can be used, or when `device` names none of them.
inline void require_device(int device) {
    const std::string reason = unavailable_reason();
    if (!reason.empty()) throw GpuError(reason);
    int count = 0;
    cudaGetDeviceCount(&count);
    if (device < 0 || device >= count) throw GpuError("no GPU " + std::to_string(device) + ": there are " + std::to_string(count));
}

// Rows as the GPU wants them: checked finite, fp32, padded with zeros to dp, normalized for cosine.
inline std::vector<float> padded_rows(const float* rows, std::size_t n, std::size_t dim, std::size_t dp, bool normalize,
                                      const char* what) {
    std::vector<float> out(n * dp, 0.0f);
    for (std::size_t i = 0; i < n; ++i) {
        const float* src = rows + i * dim;
        double norm = 0;
        for (std::size_t d = 0; d < dim; ++d) {
            if (!std::isfinite(src[d])) throw std::invalid_argument(std::string(what) + " contain NaN or infinity");
            norm += static_cast<double>(src[d]) * src[d];
        }
        if (normalize && norm == 0) throw std::invalid_argument("a zero vector has no direction for cosine similarity");
        const float scale = normalize ? static_cast<float>(1.0 / std::sqrt(norm)) : 1.0f;
        for (std::size_t d = 0; d < dim; ++d) out[i * dp + d] = src[d] * scale;
    }
    return out;
}

// One warp per row: |row|^2 of the values as stored.
template <class T>
__global__ void norms_kernel(const T* rows, int n, int dp, float* norms) {
    const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (row >= n) return;
    float sum = 0;
    for (int d = lane; d < dp; d += 32) {
        const float v = to_float<T>(rows[static_cast<std::size_t>(row) * dp + d]);
        sum += v * v;
    }
    for (int offset = 16; offset > 0; offset >>= 1) sum += __shfl_down_sync(0xffffffffu, sum, offset);
    if (lane == 0) norms[row] = sum;
}

template <class T>
void launch_norms(const T* rows, std::size_t n, std::size_t dp, float* norms) {
    launch(static_cast<unsigned>((n + 7) / 8), 256, 0, norms_kernel<T>, rows, static_cast<int>(n), static_cast<int>(dp), norms);
    check(cudaGetLastError(), "computing norms on the GPU");
}

// A host vector to the device (allocated to its size), and device memory back to the host.
template <class T>
void upload(DeviceArray<T>& target, const std::vector<T>& host, int device, const char* what) {
    target.allocate(host.size(), device, what);
    if (!host.empty()) check(cudaMemcpy(target.data(), host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice), what);
}

template <class T>
std::vector<T> download(const DeviceArray<T>& source, std::size_t count, const char* what) {
    std::vector<T> host(count);
    if (count) check(cudaMemcpy(host.data(), source.data(), count * sizeof(T), cudaMemcpyDeviceToHost), what);
    return host;
}

// A filter as the kernels take it: a bitmap over the device rows (bit r of word r / 32) with the
// rows of the allowed ids that are stored; `any` says whether there was one.
inline std::vector<unsigned> row_bitmap(const std::int64_t* allowed, std::size_t n_allowed,
                                        const std::unordered_map<std::int64_t, std::size_t>& row_of, std::size_t rows, bool& any) {
    std::vector<unsigned> bits((rows + 31) / 32, 0u);
    any = false;
    for (std::size_t i = 0; i < n_allowed; ++i) {
        auto it = row_of.find(allowed[i]);
        if (it == row_of.end()) continue;
        bits[it->second >> 5] |= 1u << (it->second & 31);
        any = true;
    }
    return bits;
}

// |q|^2 of each padded host row (L2 distances are |q|^2 minus the device's 2 q.x - |x|^2).
inline std::vector<float> query_norms(const std::vector<float>& rows, std::size_t n, std::size_t dp) {
    std::vector<float> out(n, 0.0f);
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t d = 0; d < dp; ++d) out[i] += rows[i * dp + d] * rows[i * dp + d];
    return out;
}

// Turns device top lists (scores, rows: kq per query, kq <= k) into the caller's distances and
// ids, k per query; the places past kq, and those of row -1, stay empty (id -1).
inline void finish_results(const std::vector<float>& scores, const std::vector<int>& rows, const std::vector<float>& query_norms,
                           bool l2, const std::vector<std::int64_t>& ids, std::size_t nq, std::size_t k, std::size_t kq,
                           SearchResult& result) {
    result.distances.assign(nq * k, l2 ? INFINITY : -INFINITY);
    result.ids.assign(nq * k, -1);
    for (std::size_t q = 0; q < nq; ++q)
        for (std::size_t i = 0; i < std::min(k, kq); ++i) {
            const int row = rows[q * kq + i];
            if (row < 0) continue;
            const float s = scores[q * kq + i];
            result.ids[q * k + i] = ids[row];
            result.distances[q * k + i] = l2 ? std::max(0.0f, query_norms[q] - s) : s;
        }
}

}  // namespace docent::gpu
