// IVF-PQ on the GPU. Scores are "higher is better" as everywhere on the GPU: q.x for inner
// product, 2 q.x - |x|^2 for L2. With x = c + r (cell centroid plus its coded residual) both split
// into the coarse score of the cell (from the centroid search) and a sum of per-sub-space table
// entries: ip: <q_m, r_m>; l2: 2 <q_m - c_m, r_m> - |r_m|^2.
#include <algorithm>
#include <cstring>
#include <mutex>

#include "ivf_common.cuh"

namespace docent::gpu {

namespace {

constexpr int kCodewords = 256;

// One block per (query, probed cell): the cell's lookup table goes to shared memory, then
// each lane scores one entry at a time and each warp keeps its best K; the block then merges.
template <int K>
__global__ void scan_pq_kernel(const float* queries, int dim, int dp, const float* centroids, const int* cells,
                               const float* cell_scores, int nprobe, const long long* offsets, const unsigned char* codes, int m,
                               int sub_dim, const float* codebooks, const float* codeword_norms, const unsigned* allowed,
                               float* partial_values, int* partial_rows) {
    unsigned char* shared = dynamic_shared_memory();
    float* table = reinterpret_cast<float*>(shared);  // [m][256]
    float* shifted = table + m * kCodewords;           // [dp]: q, or 2 (q - c) for L2
    float* lists_v = shifted + dp;
    int* lists_r = reinterpret_cast<int*>(lists_v + (kScanWarps + 1) * K);
    const int q = blockIdx.x, probe = blockIdx.y, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const std::size_t slot = static_cast<std::size_t>(q) * nprobe + probe;
    const int cell = cells[slot];
    const bool l2 = codeword_norms != nullptr;
    for (int d = threadIdx.x; d < dim; d += blockDim.x) {
        const float qv = queries[static_cast<std::size_t>(q) * dp + d];
        shifted[d] = l2 && cell >= 0 ? 2.0f * (qv - centroids[static_cast<std::size_t>(cell) * dp + d]) : qv;
    }
    __syncthreads();
    for (int e = threadIdx.x; e < m * kCodewords; e += blockDim.x) {
        const float* word = codebooks + static_cast<std::size_t>(e) * sub_dim;
        const float* part = shifted + (e / kCodewords) * sub_dim;
        float sum = 0;
        for (int d = 0; d < sub_dim; ++d) sum += part[d] * word[d];
        table[e] = l2 ? sum - codeword_norms[e] : sum;
    }
    __syncthreads();
    const float cell_score = cell >= 0 ? cell_scores[slot] : 0.0f;
    const long long begin = cell >= 0 ? offsets[cell] : 0, end = cell >= 0 ? offsets[cell + 1] : 0;
    int count = 0;
    for (long long first = begin + 32LL * warp; first < end; first += 32LL * kScanWarps) {
        const long long row = first + lane;
        float score = cell_score;
        if (row < end) {
            const unsigned char* code = codes + row * m;
            for (int sub = 0; sub < m; ++sub) score += table[sub * kCodewords + code[sub]];
        }
        warp_offer<K>(lists_v + warp * K, lists_r + warp * K, count, score, static_cast<int>(row), row_allowed(row, end, allowed));
    }
    close_warp_list<K>(lists_r + warp * K, count);
    merge_block_lists<K>(lists_v, lists_r, slot * K, partial_values, partial_rows);
}

// Re-scores the best `keep` of each query's `stride` candidates (best first) with the fp32
// originals, one warp per candidate, and drops the rest, as the CPU does.
__global__ void rerank_kernel(const float* queries, int dp, const float* originals, const float* original_norms, int stride,
                              int keep, float* values, int* rows) {
    const int q = blockIdx.x, warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
    for (int c = warp; c < stride; c += warps) {
        const std::size_t slot = static_cast<std::size_t>(q) * stride + c;
        const int row = rows[slot];
        if (row < 0) continue;  // the same for the whole warp
        if (c >= keep) {
            if (lane == 0) rows[slot] = -1;
            continue;
        }
        float sum = 0;
        for (int d = lane; d < dp; d += 32)
            sum += queries[static_cast<std::size_t>(q) * dp + d] * originals[static_cast<std::size_t>(row) * dp + d];
        for (int offset = 16; offset > 0; offset >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
        if (lane == 0) values[slot] = original_norms != nullptr ? 2.0f * sum - original_norms[row] : sum;
    }
}

// The code of each row's residual to its cell centroid: one thread per (row, sub-space), the
// nearest of the 256 codewords (the first of equals, as on the CPU).
__global__ void encode_kernel(const float* rows, int n, int dp, const int* cells, const float* centroids, const float* codebooks,
                              int m, int sub_dim, unsigned char* codes) {
    const long long t = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x;
    if (t >= static_cast<long long>(n) * m) return;
    const long long row = t / m;
    const int sub = static_cast<int>(t % m);
    const float* x = rows + row * dp + sub * sub_dim;
    const float* c = centroids + static_cast<long long>(cells[row]) * dp + sub * sub_dim;
    float best = FLT_MAX;
    int best_word = 0;
    for (int j = 0; j < kCodewords; ++j) {
        const float* word = codebooks + (static_cast<std::size_t>(sub) * kCodewords + j) * sub_dim;
        float d2 = 0;
        for (int d = 0; d < sub_dim; ++d) {
            const float diff = x[d] - c[d] - word[d];
            d2 += diff * diff;
        }
        if (d2 < best) best = d2, best_word = j;
    }
    codes[t] = static_cast<unsigned char>(best_word);
}

std::size_t scan_shared_bytes(std::size_t m, std::size_t dp, int K) {
    return sizeof(float) * (m * kCodewords + dp) + scan_list_bytes(K);
}

}  // namespace

struct IvfPqIndex::State : IvfCells {
    std::size_t m = 0, sub_dim = 0;
    bool rerank = false;
    std::vector<float> host_codebooks;
    DeviceArray<float> codebooks, codeword_norms;        // norms for L2 only
    std::vector<std::vector<unsigned char>> cell_codes;  // m bytes per entry
    std::vector<std::vector<float>> cell_originals;      // dp floats per entry, with rerank
    DeviceArray<unsigned char> codes;                    // all cells, cell after cell
    DeviceArray<float> originals, original_norms;
};

IvfPqIndex::IvfPqIndex(std::size_t dim, Metric metric, const float* centroids, std::size_t nlist, const float* codebooks,
                       std::size_t pq_m, bool rerank, int device)
    : state_(new State()) {
    if (pq_m == 0 || dim == 0 || dim % pq_m)
        throw std::invalid_argument("PQ" + std::to_string(pq_m) + " needs a dimension divisible by it, got " + std::to_string(dim));
    State& s = *state_;
    // Centroids are used as given (not normalized): the codes are residuals to exactly these.
    s.set_up(dim, metric, centroids, nlist, false, device);
    s.m = pq_m, s.sub_dim = dim / pq_m, s.rerank = rerank;
    int shared_limit = 0;
    check(cudaDeviceGetAttribute(&shared_limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device), "reading the GPU's shared memory");
    const std::size_t need = scan_shared_bytes(s.m, s.dp, static_cast<int>(kMaxK));
    if (need > static_cast<std::size_t>(shared_limit))
        throw GpuError("IVF-PQ with " + std::to_string(pq_m) + " sub-spaces needs " + std::to_string(need / 1024) +
                       " KiB of shared memory per block for its lookup table; GPU " + std::to_string(device) + " has " +
                       std::to_string(shared_limit / 1024) + " KiB: use fewer sub-spaces");
    const std::size_t n_codebook = pq_m * kCodewords * s.sub_dim;
    s.host_codebooks.assign(codebooks, codebooks + n_codebook);
    std::vector<float> word_norms(pq_m * kCodewords, 0.0f);
    for (std::size_t i = 0; i < n_codebook; ++i) {
        if (!std::isfinite(codebooks[i])) throw std::invalid_argument("the codebooks contain NaN or infinity");
        word_norms[i / s.sub_dim] += codebooks[i] * codebooks[i];
    }
    DeviceScope scope(device);
    upload(s.codebooks, s.host_codebooks, device, "copying PQ codebooks to the GPU");
    if (metric == Metric::L2) upload(s.codeword_norms, word_norms, device, "copying PQ codebooks to the GPU");
    s.cell_codes.resize(nlist);
    s.cell_originals.resize(nlist);
}
IvfPqIndex::~IvfPqIndex() { release_on_device(state_); }
IvfPqIndex::IvfPqIndex(IvfPqIndex&&) noexcept = default;
IvfPqIndex& IvfPqIndex::operator=(IvfPqIndex&&) noexcept = default;
std::size_t IvfPqIndex::dim() const { return state_->dim; }
Metric IvfPqIndex::metric() const { return state_->metric; }
std::size_t IvfPqIndex::nlist() const { return state_->nlist; }
std::size_t IvfPqIndex::pq_m() const { return state_->m; }
bool IvfPqIndex::rerank() const { return state_->rerank; }
std::size_t IvfPqIndex::size() const { return state_->size; }
const std::vector<float>& IvfPqIndex::centroids() const { return state_->host_centroids; }
const std::vector<float>& IvfPqIndex::codebooks() const { return state_->host_codebooks; }
std::size_t IvfPqIndex::memory_bytes() const {
    const State& s = *state_;
    return s.centroids.bytes() + s.centroid_norms.bytes() + s.codebooks.bytes() + s.codeword_norms.bytes() + s.codes.bytes() +
           s.originals.bytes() + s.original_norms.bytes() + s.offsets.bytes();
}

void IvfPqIndex::add(const float* vectors, const std::int64_t* ids, std::size_t n) {
    State& s = *state_;
    if (n == 0) return;
    std::lock_guard<std::mutex> lock(s.mutex);
    s.check_add(ids, n);
    const std::vector<float> host = padded_rows(vectors, n, s.dim, s.dp, s.metric == Metric::Cosine, "vectors");
    DeviceScope scope(s.device);
    std::vector<int> cells;
    std::vector<unsigned char> codes;
    {
        DeviceArray<float> d_rows;
        upload(d_rows, host, s.device, "IVF-PQ add");
        DeviceArray<int> d_cells(n, s.device, "IVF-PQ add");
        s.assign_cells(d_rows.data(), n, d_cells.data());
        DeviceArray<unsigned char> d_codes(n * s.m, s.device, "IVF-PQ add");
        const long long threads = static_cast<long long>(n) * static_cast<long long>(s.m);
        launch(static_cast<unsigned>((threads + 255) / 256), 256, 0, encode_kernel, d_rows.data(), static_cast<int>(n),
               static_cast<int>(s.dp), d_cells.data(), s.centroids.data(), s.codebooks.data(), static_cast<int>(s.m),
               static_cast<int>(s.sub_dim), d_codes.data());
        check(cudaGetLastError(), "encoding vectors on the GPU");
        cells = download(d_cells, n, "IVF-PQ add");
        codes = download(d_codes, n * s.m, "IVF-PQ add");
    }
    append(cells, ids, codes.data(), s.rerank ? host.data() : nullptr, n);
}

void IvfPqIndex::add_encoded(const std::uint32_t* cells, const std::int64_t* ids, const unsigned char* codes, const float* originals,
                             std::size_t n) {
    State& s = *state_;
    if (n == 0) return;
    std::lock_guard<std::mutex> lock(s.mutex);
    if (s.rerank && originals == nullptr) throw std::invalid_argument("an IVF-PQ index with rerank needs the originals of its entries");
    s.check_add(ids, n);
    std::vector<int> cell_of(n);
    for (std::size_t i = 0; i < n; ++i) {
        if (cells[i] >= s.nlist)
            throw std::invalid_argument("cell " + std::to_string(cells[i]) + " does not exist: the index has " + std::to_string(s.nlist));
        cell_of[i] = static_cast<int>(cells[i]);
    }
    std::vector<float> padded;  // the CPU's originals are already normalized for cosine
    if (s.rerank) padded = padded_rows(originals, n, s.dim, s.dp, false, "originals");
    DeviceScope scope(s.device);
    append(cell_of, ids, codes, s.rerank ? padded.data() : nullptr, n);
}

// Adds entries to the host cells and lays the device copy out again, cell after cell.
void IvfPqIndex::append(const std::vector<int>& cells, const std::int64_t* ids, const unsigned char* codes,
                        const float* padded_originals, std::size_t n) {
    State& s = *state_;
    for (std::size_t i = 0; i < n; ++i) {
        const int c = cells[i];
        s.cell_ids[c].push_back(ids[i]);
        s.cell_codes[c].insert(s.cell_codes[c].end(), codes + i * s.m, codes + (i + 1) * s.m);
        if (s.rerank)
            s.cell_originals[c].insert(s.cell_originals[c].end(), padded_originals + i * s.dp, padded_originals + (i + 1) * s.dp);
    }
    s.size += n;
    s.lay_out();
    upload(s.codes, concatenated(s.cell_codes), s.device, "copying IVF-PQ codes to the GPU");
    if (s.rerank) {
        upload(s.originals, concatenated(s.cell_originals), s.device, "copying IVF-PQ originals to the GPU");
        s.original_norms.allocate(s.size, s.device, "copying IVF-PQ originals to the GPU");
        launch_norms(s.originals.data(), s.size, s.dp, s.original_norms.data());
    }
    check(cudaDeviceSynchronize(), "IVF-PQ add");
}

IvfIndex::Entries IvfPqIndex::entries() const {
    const State& s = *state_;
    std::lock_guard<std::mutex> lock(s.mutex);
    IvfIndex::Entries out;
    out.ids = concatenated(s.cell_ids);
    out.codes = concatenated(s.cell_codes);
    for (std::size_t c = 0; c < s.nlist; ++c) {
        out.lists.insert(out.lists.end(), s.cell_ids[c].size(), static_cast<std::uint32_t>(c));
        if (s.rerank)
            for (std::size_t r = 0; r < s.cell_ids[c].size(); ++r)
                out.originals.insert(out.originals.end(), s.cell_originals[c].begin() + r * s.dp,
                                     s.cell_originals[c].begin() + r * s.dp + s.dim);
    }
    return out;
}

SearchResult IvfPqIndex::search(const float* queries, std::size_t nq, std::size_t k, std::size_t nprobe,
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
    const int inq = static_cast<int>(nq), iprobe = static_cast<int>(search.nprobe), ik = static_cast<int>(k);
    const ProbedQueries& probed = search.probed;
    // With rerank, as on the CPU, at least max(4k, 32) PQ candidates are re-scored exactly.
    const int keep = s.rerank ? static_cast<int>(std::min<std::size_t>(kMaxK, std::max<std::size_t>(4 * k, 32))) : ik;
    DeviceArray<float> values(nq * k, s.device, "IVF results");
    DeviceArray<int> rows(nq * k, s.device, "IVF results");
    with_list_length(keep, [&](auto list_length) {
        constexpr int K = decltype(list_length)::value;
        DeviceArray<float> partial_values(nq * search.nprobe * K, s.device, "IVF-PQ search scratch");
        DeviceArray<int> partial_rows(nq * search.nprobe * K, s.device, "IVF-PQ search scratch");
        const std::size_t bytes = scan_shared_bytes(s.m, s.dp, K);
        check(cudaFuncSetAttribute(scan_pq_kernel<K>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)),
              "configuring the IVF-PQ kernel");
        launch(dim3(inq, iprobe), 32 * kScanWarps, bytes, scan_pq_kernel<K>, probed.queries.data(), static_cast<int>(s.dim),
               static_cast<int>(s.dp), s.centroids.data(), probed.cells.data(), probed.cell_scores.data(), iprobe, s.offsets.data(),
               s.codes.data(), static_cast<int>(s.m), static_cast<int>(s.sub_dim), s.codebooks.data(),
               l2 ? s.codeword_norms.data() : nullptr, search.filter_data(), partial_values.data(), partial_rows.data());
        check(cudaGetLastError(), "launching the IVF-PQ kernel");
        if (!s.rerank) {
            launch_merge<K>(partial_values.data(), partial_rows.data(), inq, iprobe, ik, values.data(), rows.data());
            return;
        }
        // The best `keep` PQ candidates of each query, re-scored exactly, then the best k of them.
        DeviceArray<float> candidate_values(nq * K, s.device, "IVF-PQ rerank");
        DeviceArray<int> candidate_rows(nq * K, s.device, "IVF-PQ rerank");
        launch_merge<K>(partial_values.data(), partial_rows.data(), inq, iprobe, K, candidate_values.data(), candidate_rows.data());
        launch(inq, 256, 0, rerank_kernel, probed.queries.data(), static_cast<int>(s.dp), s.originals.data(),
               l2 ? s.original_norms.data() : nullptr, K, keep, candidate_values.data(), candidate_rows.data());
        check(cudaGetLastError(), "launching the IVF-PQ rerank kernel");
        launch_merge<K>(candidate_values.data(), candidate_rows.data(), inq, 1, ik, values.data(), rows.data());
    });
    check(cudaDeviceSynchronize(), "IVF-PQ search");
    finish_results(download(values, nq * k, "copying results from the GPU"), download(rows, nq * k, "copying results from the GPU"),
                   query_norms(host, nq, s.dp), l2, s.ids, nq, k, k, result);
    return result;
}

}  // namespace docent::gpu
