// k-means on the GPU: the assignment step is the fused exact search (1-NN against the
// centroids), the update step sums rows into their cells with atomics.
#include <algorithm>
#include <numeric>
#include <random>

#include "ivf_common.cuh"

namespace docent::gpu {

namespace {

__global__ void accumulate_kernel(const float* rows, const int* assignment, int n, int dp, float* sums, int* counts) {
    const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (row >= n) return;
    const int c = assignment[row];
    for (int d = lane; d < dp; d += 32) atomicAdd(&sums[static_cast<std::size_t>(c) * dp + d], rows[static_cast<std::size_t>(row) * dp + d]);
    if (lane == 0) atomicAdd(&counts[c], 1);
}

__global__ void finalize_kernel(const float* sums, const int* counts, int k, int dp, bool spherical, float* centroids) {
    const int c = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (c >= k || counts[c] == 0) return;  // an empty cell keeps its centroid
    const float inv = 1.0f / counts[c];
    float norm = 0;
    for (int d = lane; d < dp; d += 32) {
        const float v = sums[static_cast<std::size_t>(c) * dp + d] * inv;
        norm += v * v;
    }
    for (int offset = 16; offset > 0; offset >>= 1) norm += __shfl_xor_sync(0xffffffffu, norm, offset);
    const float scale = spherical && norm > 0 ? rsqrtf(norm) : 1.0f;
    for (int d = lane; d < dp; d += 32)
        centroids[static_cast<std::size_t>(c) * dp + d] = sums[static_cast<std::size_t>(c) * dp + d] * inv * scale;
}

}  // namespace

std::vector<float> kmeans(const float* data, std::size_t n, std::size_t dim, std::size_t k, int iterations, bool spherical,
                          std::uint64_t seed, int device) {
    if (dim == 0) throw std::invalid_argument("dim must be positive");
    if (k == 0 || k > n) throw std::invalid_argument("k must be between 1 and the number of vectors (" + std::to_string(n) + ")");
    if (iterations < 1) throw std::invalid_argument("iterations must be at least 1");
    if (n > static_cast<std::size_t>(INT32_MAX) || k > static_cast<std::size_t>(INT32_MAX))
        throw std::invalid_argument("too many vectors for GPU k-means");
    require_device(device);
    const std::size_t dp = padded_dim(dim);
    const std::vector<float> rows = padded_rows(data, n, dim, dp, spherical, "vectors");
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::mt19937_64 rng(seed);
    for (std::size_t i = 0; i < k; ++i) std::swap(order[i], order[i + rng() % (n - i)]);
    std::vector<float> centroids(k * dp);
    for (std::size_t c = 0; c < k; ++c) std::copy_n(rows.begin() + order[c] * dp, dp, centroids.begin() + c * dp);

    DeviceScope scope(device);
    DeviceArray<float> d_rows(n * dp, device, "k-means data");
    DeviceArray<float> d_centroids(k * dp, device, "k-means centroids");
    DeviceArray<float> d_norms(k, device, "k-means centroids");
    DeviceArray<float> d_sums(k * dp, device, "k-means sums");
    DeviceArray<int> d_counts(k, device, "k-means counts");
    DeviceArray<int> d_assign(n, device, "k-means assignment");
    check(cudaMemcpy(d_rows.data(), rows.data(), rows.size() * sizeof(float), cudaMemcpyHostToDevice), "copying k-means data");
    check(cudaMemcpy(d_centroids.data(), centroids.data(), centroids.size() * sizeof(float), cudaMemcpyHostToDevice),
          "copying k-means centroids");
    const int in = static_cast<int>(n), ik = static_cast<int>(k), idp = static_cast<int>(dp);
    for (int it = 0; it < iterations; ++it) {
        const float* norms = nullptr;
        if (!spherical) {  // L2 assignment: 2 x.c - |c|^2
            launch_norms(d_centroids.data(), k, dp, d_norms.data());
            norms = d_norms.data();
        }
        assign(d_rows.data(), n, d_centroids.data(), norms, k, dp, device, d_assign.data());
        check(cudaMemset(d_sums.data(), 0, d_sums.bytes()), "k-means update");
        check(cudaMemset(d_counts.data(), 0, d_counts.bytes()), "k-means update");
        launch((in + 7) / 8, 256, 0, accumulate_kernel, d_rows.data(), d_assign.data(), in, idp, d_sums.data(), d_counts.data());
        launch((ik + 7) / 8, 256, 0, finalize_kernel, d_sums.data(), d_counts.data(), ik, idp, spherical, d_centroids.data());
        check(cudaGetLastError(), "k-means update");
    }
    check(cudaMemcpy(centroids.data(), d_centroids.data(), centroids.size() * sizeof(float), cudaMemcpyDeviceToHost),
          "copying centroids from the GPU");
    std::vector<float> out(k * dim);
    for (std::size_t c = 0; c < k; ++c) std::copy_n(centroids.begin() + c * dp, dim, out.begin() + c * dim);
    return out;
}

}  // namespace docent::gpu
