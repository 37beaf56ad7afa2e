// IVF-Flat search and k-means on the GPU, both built on the fused exact search of search_gpu.cu.
#include <algorithm>
#include <cmath>
#include <mutex>
#include <numeric>
#include <random>

#include "rows.cuh"

namespace docent::gpu {

namespace {

// Nearest centroid of each of n device rows (1-NN with the fused search), in batches.
void assign(const float* rows, std::size_t n, const float* centroids, const float* centroid_norms, std::size_t k,
            std::size_t dp, int device, int* out) {
    constexpr std::size_t kBatch = 65536;
    DeviceArray<float> values(std::min(n, kBatch), device, "k-means assignment");
    DeviceArray<float> scratch_values;
    DeviceArray<int> scratch_rows;
    for (std::size_t first = 0; first < n; first += kBatch) {
        const std::size_t count = std::min(kBatch, n - first);
        search_device<float>(rows + first * dp, static_cast<int>(count), centroids, centroid_norms, static_cast<int>(k),
                             static_cast<int>(dp), 1, device, values.data(), out + first, scratch_values, scratch_rows);
    }
}

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

// One block per (query, probed list): 4 warps scan the list's rows, 32 at a time, each warp
// keeping its best K; warp 0 then merges the four lists and writes the block's K.
template <int K>
__global__ void scan_lists_kernel(const float* queries, int dp, const int* probes, int nprobe, const long long* offsets,
                                  const float* rows, const float* norms, float* partial_values, int* partial_rows) {
    extern __shared__ __align__(32) unsigned char shared[];
    float* query = reinterpret_cast<float*>(shared);
    float* lists_v = query + dp;
    int* lists_r = reinterpret_cast<int*>(lists_v + 5 * K);
    const int q = blockIdx.x, probe = blockIdx.y, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    for (int d = threadIdx.x; d < dp; d += blockDim.x) query[d] = queries[static_cast<std::size_t>(q) * dp + d];
    __syncthreads();
    const int list = probes[static_cast<std::size_t>(q) * nprobe + probe];
    const long long begin = list >= 0 ? offsets[list] : 0, end = list >= 0 ? offsets[list + 1] : 0;
    int count = 0;
    for (long long base = begin + 32LL * warp; base < end; base += 32LL * 4) {
        float mine = 0;
        for (int r = 0; r < 32; ++r) {
            const long long row = base + r;
            float sum = 0;
            if (row < end)
                for (int d = lane; d < dp; d += 32) sum += query[d] * rows[row * dp + d];
            for (int offset = 16; offset > 0; offset >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
            if (lane == r) mine = norms != nullptr && row < end ? 2.0f * sum - norms[row] : sum;
        }
        const long long row = base + lane;
        warp_offer<K>(lists_v + warp * K, lists_r + warp * K, count, mine, static_cast<int>(row), row < end);
    }
    for (int i = lane; i < K; i += 32)
        if (i >= count) lists_r[warp * K + i] = -1;
    __syncthreads();
    if (warp == 0) {
        float* merged_v = lists_v + 4 * K;
        int* merged_r = lists_r + 4 * K;
        int merged = 0;
        for (int i = lane; i < 4 * K; i += 32)
            warp_offer<K>(merged_v, merged_r, merged, lists_v[i], lists_r[i], lists_r[i] >= 0);
        const std::size_t out = (static_cast<std::size_t>(q) * nprobe + probe) * K;
        for (int i = lane; i < K; i += 32) {
            partial_values[out + i] = i < merged ? merged_v[i] : -FLT_MAX;
            partial_rows[out + i] = i < merged ? merged_r[i] : -1;
        }
    }
}

template <int K>
void scan_and_merge(const float* queries, int nq, int dp, const int* probes, int nprobe, const long long* offsets,
                    const float* rows, const float* norms, int k, int device, float* out_values, int* out_rows) {
    DeviceArray<float> partial_values(static_cast<std::size_t>(nq) * nprobe * K, device, "IVF search scratch");
    DeviceArray<int> partial_rows(static_cast<std::size_t>(nq) * nprobe * K, device, "IVF search scratch");
    const std::size_t bytes = sizeof(float) * dp + (sizeof(float) + sizeof(int)) * 5 * K;
    check(cudaFuncSetAttribute(scan_lists_kernel<K>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)),
          "configuring the IVF kernel");
    scan_lists_kernel<K><<<dim3(nq, nprobe), 128, bytes>>>(queries, dp, probes, nprobe, offsets, rows, norms,
                                                         partial_values.data(), partial_rows.data());
    check(cudaGetLastError(), "launching the IVF kernel");
    constexpr int kWarps = 4;
    const std::size_t merge_bytes = (sizeof(float) + sizeof(int)) * kWarps * K;
    check(cudaFuncSetAttribute(merge_topk_kernel<K>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(merge_bytes)),
          "configuring the merge kernel");
    merge_topk_kernel<K><<<(nq + kWarps - 1) / kWarps, kWarps * 32, merge_bytes>>>(partial_values.data(), partial_rows.data(),
                                                                                  nq, nprobe, k, out_values, out_rows);
    check(cudaGetLastError(), "launching the merge kernel");
    check(cudaDeviceSynchronize(), "IVF search");
}

}  // namespace

// ---- k-means ----------------------------------------------------------------------------------------

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
        accumulate_kernel<<<(in + 7) / 8, 256>>>(d_rows.data(), d_assign.data(), in, idp, d_sums.data(), d_counts.data());
        finalize_kernel<<<(ik + 7) / 8, 256>>>(d_sums.data(), d_counts.data(), ik, idp, spherical, d_centroids.data());
        check(cudaGetLastError(), "k-means update");
    }
    check(cudaMemcpy(centroids.data(), d_centroids.data(), centroids.size() * sizeof(float), cudaMemcpyDeviceToHost),
          "copying centroids from the GPU");
    std::vector<float> out(k * dim);
    for (std::size_t c = 0; c < k; ++c) std::copy_n(centroids.begin() + c * dp, dim, out.begin() + c * dim);
    return out;
}

// ---- IVF-Flat -----------------------------------------------------------------------------------------

struct IvfFlatIndex::State {
    std::size_t dim, dp, nlist;
    Metric metric;
    int device;
    DeviceArray<float> centroids, centroid_norms;
    std::vector<std::vector<float>> lists;        // host copy, padded rows per cell
    std::vector<std::vector<std::int64_t>> list_ids;
    std::vector<std::int64_t> ids;                // in device row order
    DeviceArray<float> rows, norms;
    DeviceArray<long long> offsets;
    std::size_t size = 0;
    mutable std::mutex mutex;  // adds relayout the lists; a search must not see that half done
};

IvfFlatIndex::IvfFlatIndex(std::size_t dim, Metric metric, const float* centroids, std::size_t nlist, int device)
    : state_(new State{}) {
    if (dim == 0 || dim > 8192) throw std::invalid_argument("dim must be between 1 and 8192 for GPU IVF, got " + std::to_string(dim));
    if (nlist == 0 || nlist > static_cast<std::size_t>(INT32_MAX)) throw std::invalid_argument("nlist must be positive");
    require_device(device);
    State& s = *state_;
    s.dim = dim, s.dp = padded_dim(dim), s.nlist = nlist, s.metric = metric, s.device = device;
    const std::vector<float> host = padded_rows(centroids, nlist, dim, s.dp, metric == Metric::Cosine, "centroids");
    DeviceScope scope(device);
    s.centroids.allocate(nlist * s.dp, device, "IVF centroids");
    check(cudaMemcpy(s.centroids.data(), host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice), "copying IVF centroids");
    if (metric == Metric::L2) {
        s.centroid_norms.allocate(nlist, device, "IVF centroids");
        launch_norms(s.centroids.data(), nlist, s.dp, s.centroid_norms.data());
    }
    s.lists.resize(nlist);
    s.list_ids.resize(nlist);
}
IvfFlatIndex::~IvfFlatIndex() {
    if (state_) {
        try {
            DeviceScope scope(state_->device);
            state_.reset();
        } catch (...) {
        }
    }
}
IvfFlatIndex::IvfFlatIndex(IvfFlatIndex&&) noexcept = default;
IvfFlatIndex& IvfFlatIndex::operator=(IvfFlatIndex&&) noexcept = default;
std::size_t IvfFlatIndex::dim() const { return state_->dim; }
std::size_t IvfFlatIndex::nlist() const { return state_->nlist; }
std::size_t IvfFlatIndex::size() const { return state_->size; }

void IvfFlatIndex::add(const float* vectors, const std::int64_t* ids, std::size_t n) {
    State& s = *state_;
    if (n == 0) return;
    std::lock_guard<std::mutex> lock(s.mutex);
    if (s.size + n > static_cast<std::size_t>(INT32_MAX)) throw std::invalid_argument("a GPU IVF index holds at most 2^31 - 1 vectors");
    const std::vector<float> host = padded_rows(vectors, n, s.dim, s.dp, s.metric == Metric::Cosine, "vectors");
    DeviceScope scope(s.device);
    std::vector<int> cells(n);
    {
        DeviceArray<float> d_rows(n * s.dp, s.device, "IVF add");
        DeviceArray<int> d_cells(n, s.device, "IVF add");
        check(cudaMemcpy(d_rows.data(), host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice), "IVF add");
        assign(d_rows.data(), n, s.centroids.data(), s.metric == Metric::L2 ? s.centroid_norms.data() : nullptr, s.nlist, s.dp,
               s.device, d_cells.data());
        check(cudaMemcpy(cells.data(), d_cells.data(), n * sizeof(int), cudaMemcpyDeviceToHost), "IVF add");
    }
    for (std::size_t i = 0; i < n; ++i) {
        auto& list = s.lists[cells[i]];
        list.insert(list.end(), host.begin() + i * s.dp, host.begin() + (i + 1) * s.dp);
        s.list_ids[cells[i]].push_back(ids[i]);
    }
    s.size += n;
    // The device copy is laid out again, cell after cell (CSR), so each list is contiguous.
    std::vector<long long> offsets(s.nlist + 1, 0);
    std::vector<float> all;
    all.reserve(s.size * s.dp);
    s.ids.clear();
    for (std::size_t c = 0; c < s.nlist; ++c) {
        offsets[c + 1] = offsets[c] + static_cast<long long>(s.list_ids[c].size());
        all.insert(all.end(), s.lists[c].begin(), s.lists[c].end());
        s.ids.insert(s.ids.end(), s.list_ids[c].begin(), s.list_ids[c].end());
    }
    s.rows.allocate(all.size(), s.device, "IVF lists");
    s.norms.allocate(s.size, s.device, "IVF lists");
    s.offsets.allocate(offsets.size(), s.device, "IVF lists");
    check(cudaMemcpy(s.rows.data(), all.data(), all.size() * sizeof(float), cudaMemcpyHostToDevice), "copying IVF lists");
    check(cudaMemcpy(s.offsets.data(), offsets.data(), offsets.size() * sizeof(long long), cudaMemcpyHostToDevice), "copying IVF lists");
    launch_norms(s.rows.data(), s.size, s.dp, s.norms.data());
    check(cudaDeviceSynchronize(), "IVF add");
}

SearchResult IvfFlatIndex::search(const float* queries, std::size_t nq, std::size_t k, std::size_t nprobe) const {
    const State& s = *state_;
    if (k == 0 || k > kMaxK) throw std::invalid_argument("k must be between 1 and " + std::to_string(kMaxK) + " on the GPU");
    std::lock_guard<std::mutex> lock(s.mutex);
    nprobe = std::min(std::max<std::size_t>(nprobe, 1), std::min(s.nlist, kMaxK));
    SearchResult result;
    result.distances.assign(nq * k, s.metric == Metric::L2 ? INFINITY : -INFINITY);
    result.ids.assign(nq * k, -1);
    if (nq == 0 || s.size == 0) return result;
    if (nq > static_cast<std::size_t>(INT32_MAX)) throw std::invalid_argument("too many queries");
    const std::vector<float> host = padded_rows(queries, nq, s.dim, s.dp, s.metric == Metric::Cosine, "queries");
    DeviceScope scope(s.device);
    const int inq = static_cast<int>(nq), idp = static_cast<int>(s.dp), iprobe = static_cast<int>(nprobe), ik = static_cast<int>(k);
    DeviceArray<float> d_queries(host.size(), s.device, "copying queries to the GPU");
    DeviceArray<float> probe_values(nq * nprobe, s.device, "IVF coarse search");
    DeviceArray<int> probes(nq * nprobe, s.device, "IVF coarse search");
    DeviceArray<float> values(nq * k, s.device, "IVF results");
    DeviceArray<int> rows(nq * k, s.device, "IVF results");
    DeviceArray<float> scratch_values;
    DeviceArray<int> scratch_rows;
    check(cudaMemcpy(d_queries.data(), host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice), "copying queries to the GPU");
    search_device<float>(d_queries.data(), inq, s.centroids.data(), s.metric == Metric::L2 ? s.centroid_norms.data() : nullptr,
                         static_cast<int>(s.nlist), idp, iprobe, s.device, probe_values.data(), probes.data(), scratch_values,
                         scratch_rows);
    const float* norms = s.metric == Metric::L2 ? s.norms.data() : nullptr;
    if (k <= 32) scan_and_merge<32>(d_queries.data(), inq, idp, probes.data(), iprobe, s.offsets.data(), s.rows.data(), norms, ik, s.device, values.data(), rows.data());
    else if (k <= 64) scan_and_merge<64>(d_queries.data(), inq, idp, probes.data(), iprobe, s.offsets.data(), s.rows.data(), norms, ik, s.device, values.data(), rows.data());
    else if (k <= 128) scan_and_merge<128>(d_queries.data(), inq, idp, probes.data(), iprobe, s.offsets.data(), s.rows.data(), norms, ik, s.device, values.data(), rows.data());
    else scan_and_merge<256>(d_queries.data(), inq, idp, probes.data(), iprobe, s.offsets.data(), s.rows.data(), norms, ik, s.device, values.data(), rows.data());
    std::vector<float> scores(nq * k);
    std::vector<int> found(nq * k);
    check(cudaMemcpy(scores.data(), values.data(), scores.size() * sizeof(float), cudaMemcpyDeviceToHost), "copying results from the GPU");
    check(cudaMemcpy(found.data(), rows.data(), found.size() * sizeof(int), cudaMemcpyDeviceToHost), "copying results from the GPU");
    for (std::size_t q = 0; q < nq; ++q) {
        float query_norm = 0;
        for (std::size_t d = 0; d < s.dim; ++d) query_norm += host[q * s.dp + d] * host[q * s.dp + d];
        for (std::size_t i = 0; i < k; ++i) {
            const int row = found[q * k + i];
            if (row < 0) continue;
            result.ids[q * k + i] = s.ids[row];
            result.distances[q * k + i] = s.metric == Metric::L2 ? std::max(0.0f, query_norm - scores[q * k + i]) : scores[q * k + i];
        }
    }
    return result;
}

}  // namespace docent::gpu
