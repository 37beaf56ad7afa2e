// IVF-Flat on the GPU: the coarse search is the fused exact search over the centroids; each
// (query, probed cell) pair is scanned by one block, then the nprobe partial lists are merged.
#include <algorithm>
#include <cstring>
#include <mutex>

#include "ivf_common.cuh"

namespace docent::gpu {

namespace {

// One block per (query, probed cell): each warp scores 32 rows at a time (the warp sums each
// row's products, lane r keeps row r's score) and keeps its best K; the block then merges.
template <int K>
__global__ void scan_flat_kernel(const float* queries, int dp, const int* cells, int nprobe, const long long* offsets,
                                 const float* rows, const float* norms, const unsigned* allowed, float* partial_values,
                                 int* partial_rows) {
    unsigned char* shared = dynamic_shared_memory();
    float* query = reinterpret_cast<float*>(shared);
    float* lists_v = query + dp;
    int* lists_r = reinterpret_cast<int*>(lists_v + (kScanWarps + 1) * K);
    const int q = blockIdx.x, probe = blockIdx.y, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    for (int d = threadIdx.x; d < dp; d += blockDim.x) query[d] = queries[static_cast<std::size_t>(q) * dp + d];
    __syncthreads();
    const int cell = cells[static_cast<std::size_t>(q) * nprobe + probe];
    const long long begin = cell >= 0 ? offsets[cell] : 0, end = cell >= 0 ? offsets[cell + 1] : 0;
    int count = 0;
    for (long long first = begin + 32LL * warp; first < end; first += 32LL * kScanWarps) {
        float mine = 0;
        for (int r = 0; r < 32; ++r) {
            const long long row = first + r;
            float sum = 0;
            if (row < end)
                for (int d = lane; d < dp; d += 32) sum += query[d] * rows[row * dp + d];
            for (int offset = 16; offset > 0; offset >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
            if (lane == r) mine = norms != nullptr && row < end ? 2.0f * sum - norms[row] : sum;
        }
        const long long row = first + lane;
        warp_offer<K>(lists_v + warp * K, lists_r + warp * K, count, mine, static_cast<int>(row), row_allowed(row, end, allowed));
    }
    close_warp_list<K>(lists_r + warp * K, count);
    merge_block_lists<K>(lists_v, lists_r, (static_cast<std::size_t>(q) * nprobe + probe) * K, partial_values, partial_rows);
}

template <int K>
void scan_and_merge(const float* queries, int nq, int dp, const int* cells, int nprobe, const long long* offsets,
                    const float* rows, const float* norms, const unsigned* allowed, int k, int device, float* out_values,
                    int* out_rows) {
    DeviceArray<float> partial_values(static_cast<std::size_t>(nq) * nprobe * K, device, "IVF search scratch");
    DeviceArray<int> partial_rows(static_cast<std::size_t>(nq) * nprobe * K, device, "IVF search scratch");
    const std::size_t bytes = sizeof(float) * dp + scan_list_bytes(K);
    check(cudaFuncSetAttribute(scan_flat_kernel<K>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)),
          "configuring the IVF kernel");
    launch(dim3(nq, nprobe), 32 * kScanWarps, bytes, scan_flat_kernel<K>, queries, dp, cells, nprobe, offsets, rows, norms,
           allowed, partial_values.data(), partial_rows.data());
    check(cudaGetLastError(), "launching the IVF kernel");
    launch_merge<K>(partial_values.data(), partial_rows.data(), nq, nprobe, k, out_values, out_rows);
    check(cudaDeviceSynchronize(), "IVF search");
}

}  // namespace

struct IvfFlatIndex::State : IvfCells {
    std::vector<std::vector<float>> cell_rows;  // host copy, padded rows per cell
    DeviceArray<float> rows, norms;             // all cells, cell after cell; |x|^2 of each row
};

IvfFlatIndex::IvfFlatIndex(std::size_t dim, Metric metric, const float* centroids, std::size_t nlist, int device)
    : state_(new State()) {
    state_->set_up(dim, metric, centroids, nlist, metric == Metric::Cosine, device);
    state_->cell_rows.resize(nlist);
}
IvfFlatIndex::~IvfFlatIndex() { release_on_device(state_); }
IvfFlatIndex::IvfFlatIndex(IvfFlatIndex&&) noexcept = default;
IvfFlatIndex& IvfFlatIndex::operator=(IvfFlatIndex&&) noexcept = default;
std::size_t IvfFlatIndex::dim() const { return state_->dim; }
Metric IvfFlatIndex::metric() const { return state_->metric; }
std::size_t IvfFlatIndex::nlist() const { return state_->nlist; }
std::size_t IvfFlatIndex::size() const { return state_->size; }
const std::vector<float>& IvfFlatIndex::centroids() const { return state_->host_centroids; }

void IvfFlatIndex::add(const float* vectors, const std::int64_t* ids, std::size_t n) {
    State& s = *state_;
    if (n == 0) return;
    std::lock_guard<std::mutex> lock(s.mutex);
    s.check_add(ids, n);
    const std::vector<float> host = padded_rows(vectors, n, s.dim, s.dp, s.metric == Metric::Cosine, "vectors");
    DeviceScope scope(s.device);
    std::vector<int> cells;
    {
        DeviceArray<float> d_rows;
        upload(d_rows, host, s.device, "IVF add");
        DeviceArray<int> d_cells(n, s.device, "IVF add");
        s.assign_cells(d_rows.data(), n, d_cells.data());
        cells = download(d_cells, n, "IVF add");
    }
    for (std::size_t i = 0; i < n; ++i) {
        auto& cell = s.cell_rows[cells[i]];
        cell.insert(cell.end(), host.begin() + i * s.dp, host.begin() + (i + 1) * s.dp);
        s.cell_ids[cells[i]].push_back(ids[i]);
    }
    s.size += n;
    s.lay_out();
    upload(s.rows, concatenated(s.cell_rows), s.device, "copying IVF lists to the GPU");
    s.norms.allocate(s.size, s.device, "IVF lists");
    launch_norms(s.rows.data(), s.size, s.dp, s.norms.data());
    check(cudaDeviceSynchronize(), "IVF add");
}

IvfIndex::Entries IvfFlatIndex::entries() const {
    const State& s = *state_;
    std::lock_guard<std::mutex> lock(s.mutex);
    IvfIndex::Entries out;
    out.ids = concatenated(s.cell_ids);
    out.codes.resize(s.size * s.dim * sizeof(float));
    std::size_t i = 0;
    for (std::size_t c = 0; c < s.nlist; ++c)
        for (std::size_t r = 0; r < s.cell_ids[c].size(); ++r, ++i) {
            out.lists.push_back(static_cast<std::uint32_t>(c));
            std::memcpy(out.codes.data() + i * s.dim * sizeof(float), s.cell_rows[c].data() + r * s.dp, s.dim * sizeof(float));
        }
    return out;
}

SearchResult IvfFlatIndex::search(const float* queries, std::size_t nq, std::size_t k, std::size_t nprobe,
                                  const std::int64_t* allowed, std::size_t n_allowed) const {
    const State& s = *state_;
    check_ivf_search(nq, k);
    const std::vector<float> host = padded_rows(queries, nq, s.dim, s.dp, s.metric == Metric::Cosine, "queries");
    std::lock_guard<std::mutex> lock(s.mutex);
    DeviceScope scope(s.device);
    SearchResult result;
    IvfSearch search;
    if (!start_search(s, host, nq, k, nprobe, allowed, n_allowed, search, result)) return result;
    const bool l2 = s.metric == Metric::L2;
    const int ik = static_cast<int>(k);
    DeviceArray<float> values(nq * k, s.device, "IVF results");
    DeviceArray<int> rows(nq * k, s.device, "IVF results");
    with_list_length(ik, [&](auto K) {
        scan_and_merge<decltype(K)::value>(search.probed.queries.data(), static_cast<int>(nq), static_cast<int>(s.dp),
                                           search.probed.cells.data(), static_cast<int>(search.nprobe), s.offsets.data(),
                                           s.rows.data(), l2 ? s.norms.data() : nullptr, search.filter_data(), ik, s.device,
                                           values.data(), rows.data());
    });
    finish_results(download(values, nq * k, "copying results from the GPU"), download(rows, nq * k, "copying results from the GPU"),
                   query_norms(host, nq, s.dp), l2, s.ids, nq, k, k, result);
    return result;
}

}  // namespace docent::gpu
