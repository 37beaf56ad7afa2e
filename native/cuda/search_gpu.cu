// Exact search (FlatIndex), IVF-Flat, k-means and device queries on the GPU.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <mutex>
#include <unordered_map>

#include "rows.cuh"

namespace docent::gpu {

// ---- devices --------------------------------------------------------------------------------------

std::string unavailable_reason() {
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
        cudaGetLastError();
        return describe(err, "CUDA");
    }
    return count == 0 ? "no CUDA GPU was found" : "";
}

std::vector<DeviceInfo> devices() {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        cudaGetLastError();
        return {};
    }
    std::vector<DeviceInfo> out;
    for (int d = 0; d < count; ++d) {
        cudaDeviceProp prop{};
        check(cudaGetDeviceProperties(&prop, d), "reading GPU properties");
        DeviceScope scope(d);
        std::size_t free_bytes = 0, total = 0;
        check(cudaMemGetInfo(&free_bytes, &total), "reading GPU memory");
        out.push_back({d, prop.name, total, free_bytes, prop.major, prop.minor});
    }
    return out;
}

Precision parse_precision(const std::string& name) {
    if (name == "f32" || name == "fp32") return Precision::F32;
    if (name == "f16" || name == "fp16") return Precision::F16;
    if (name == "bf16") return Precision::BF16;
    throw std::invalid_argument("unknown GPU precision '" + name + "': use f32, f16 or bf16");
}

static int sm_count(int device) {
    int sms = 0;
    check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "reading the GPU's SM count");
    return sms;
}

// ---- the fused search ------------------------------------------------------------------------------

template <class T, int K, bool kTensor>
static void launch_tiles(const float* queries, int nq, const T* base, const float* norms, int n, int dp,
                         const unsigned* allowed, int splits, float* partial_values, int* partial_rows) {
    const std::size_t bytes = tile_shared_bytes<T, kTensor>(K);
    check(cudaFuncSetAttribute(tile_topk_kernel<T, K, kTensor>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               static_cast<int>(bytes)),
          "configuring the search kernel");
    const dim3 grid((nq + kTileQueries - 1) / kTileQueries, splits);
    launch(grid, kThreads, bytes, tile_topk_kernel<T, K, kTensor>, queries, nq, base, norms, n, dp, allowed, partial_values,
           partial_rows);
    check(cudaGetLastError(), "launching the search kernel");
}

template <class T, int K>
static void search_k(const float* queries, int nq, const T* base, const float* norms, int n, int dp, int k, int device,
                     float* out_values, int* out_rows, DeviceArray<float>& scratch_values, DeviceArray<int>& scratch_rows,
                     const unsigned* allowed) {
    constexpr bool kTensor = !std::is_same_v<T, float>;
    const int query_tiles = (nq + kTileQueries - 1) / kTileQueries;
    const int row_tiles = std::max(1, (n + kTileRows - 1) / kTileRows);
    // Enough blocks to fill the GPU a few times over, but no split without a tile of its own.
    const int splits = std::clamp(4 * sm_count(device) / std::max(1, query_tiles), 1, row_tiles);
    const std::size_t need = static_cast<std::size_t>(nq) * splits * K;
    if (scratch_values.size() < need) {
        scratch_values.allocate(need, device, "search scratch");
        scratch_rows.allocate(need, device, "search scratch");
    }
    launch_tiles<T, K, kTensor>(queries, nq, base, norms, n, dp, allowed, splits, scratch_values.data(), scratch_rows.data());
    launch_merge<K>(scratch_values.data(), scratch_rows.data(), nq, splits, k, out_values, out_rows);
}

template <class T>
void search_device(const float* queries, int nq, const T* base, const float* norms, int n, int dp, int k, int device,
                   float* out_values, int* out_rows, DeviceArray<float>& scratch_values, DeviceArray<int>& scratch_rows,
                   const unsigned* allowed) {
    with_list_length(k, [&](auto K) {
        search_k<T, decltype(K)::value>(queries, nq, base, norms, n, dp, k, device, out_values, out_rows, scratch_values, scratch_rows,
                             allowed);
    });
}

template void search_device<float>(const float*, int, const float*, const float*, int, int, int, int, float*, int*,
                                   DeviceArray<float>&, DeviceArray<int>&, const unsigned*);

// ---- helpers shared by the indexes ------------------------------------------------------------------

static void check_k(std::size_t k) {
    if (k == 0 || k > kMaxK)
        throw std::invalid_argument("k must be between 1 and " + std::to_string(kMaxK) + " on the GPU, got " + std::to_string(k));
}

template <class T>
__global__ void convert_kernel(const float* in, T* out, std::size_t count) {
    const std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
    if (i < count) out[i] = from_float<T>(in[i]);
}

// ---- FlatIndex ---------------------------------------------------------------------------------------

struct FlatIndex::State {
    std::size_t dim, dp;
    Metric metric;
    Precision precision;
    int device;
    std::size_t size = 0, capacity = 0;
    DeviceArray<unsigned char> rows;  // capacity x dp elements of the precision's type
    DeviceArray<float> norms;         // |x|^2 per row (L2 only)
    std::vector<std::int64_t> ids;
    std::unordered_map<std::int64_t, std::size_t> row_of;
    mutable DeviceArray<float> scratch_values;
    mutable DeviceArray<int> scratch_rows;
    mutable std::mutex mutex;  // one call at a time: the scratch buffers are shared

    std::size_t element() const { return precision == Precision::F32 ? 4 : 2; }
};

FlatIndex::FlatIndex(std::size_t dim, Metric metric, Precision precision, int device) : state_(new State{}) {
    if (dim == 0 || dim > 65536) throw std::invalid_argument("dim must be between 1 and 65536, got " + std::to_string(dim));
    require_device(device);
    state_->dim = dim;
    state_->dp = padded_dim(dim);
    state_->metric = metric;
    state_->precision = precision;
    state_->device = device;
}
FlatIndex::~FlatIndex() { release_on_device(state_); }
FlatIndex::FlatIndex(FlatIndex&&) noexcept = default;
FlatIndex& FlatIndex::operator=(FlatIndex&&) noexcept = default;

std::size_t FlatIndex::dim() const { return state_->dim; }
Metric FlatIndex::metric() const { return state_->metric; }
Precision FlatIndex::precision() const { return state_->precision; }
int FlatIndex::device() const { return state_->device; }
std::size_t FlatIndex::size() const { return state_->size; }
std::size_t FlatIndex::memory_bytes() const { return state_->rows.bytes() + state_->norms.bytes(); }
const std::vector<std::int64_t>& FlatIndex::ids() const { return state_->ids; }

void FlatIndex::reset() {
    std::lock_guard<std::mutex> lock(state_->mutex);
    DeviceScope scope(state_->device);
    state_->rows.release();
    state_->norms.release();
    state_->size = state_->capacity = 0;
    state_->ids.clear();
    state_->row_of.clear();
}

template <class T>
static void upload_rows(const std::vector<float>& host, std::size_t count, std::size_t dp, int device, T* target) {
    DeviceArray<float> staging(count * dp, device, "copying vectors to the GPU");
    check(cudaMemcpy(staging.data(), host.data(), count * dp * sizeof(float), cudaMemcpyHostToDevice), "copying vectors to the GPU");
    if constexpr (std::is_same_v<T, float>) {
        check(cudaMemcpy(target, staging.data(), count * dp * sizeof(float), cudaMemcpyDeviceToDevice), "copying vectors on the GPU");
    } else {
        const std::size_t total = count * dp;
        launch((total + 255) / 256, 256, 0, convert_kernel<T>, staging.data(), target, total);
        check(cudaGetLastError(), "converting vectors on the GPU");
    }
    check(cudaDeviceSynchronize(), "copying vectors to the GPU");
}

template <class T>
static void compute_norms(const unsigned char* rows, std::size_t first, std::size_t count, std::size_t dp, float* norms) {
    launch_norms(reinterpret_cast<const T*>(rows) + first * dp, count, dp, norms + first);
}

bool FlatIndex::contains(std::int64_t id) const {
    std::lock_guard<std::mutex> lock(state_->mutex);
    return state_->row_of.count(id) != 0;
}

void FlatIndex::add(const float* vectors, const std::int64_t* ids, std::size_t n) {
    State& s = *state_;
    if (n == 0) return;
    std::vector<float> host = padded_rows(vectors, n, s.dim, s.dp, s.metric == Metric::Cosine, "vectors");
    {
        std::unordered_map<std::int64_t, std::size_t> seen;
        for (std::size_t i = 0; i < n; ++i)
            if (!seen.emplace(ids[i], i).second)
                throw std::invalid_argument("id " + std::to_string(ids[i]) + " appears twice in one add");
    }
    std::lock_guard<std::mutex> lock(s.mutex);
    DeviceScope scope(s.device);
    if (s.size + n > static_cast<std::size_t>(INT32_MAX))
        throw std::invalid_argument("a GPU flat index holds at most 2^31 - 1 vectors");
    // Room first (as if no id were replaced): running out of memory then leaves the index as it was.
    if (s.size + n > s.capacity) {  // grow by doubling; the old rows are copied over
        const std::size_t capacity = std::max(s.size + n, s.capacity * 2);
        DeviceArray<unsigned char> rows(capacity * s.dp * s.element(), s.device, "growing the GPU index");
        DeviceArray<float> norms(capacity, s.device, "growing the GPU index");
        if (s.size) {
            check(cudaMemcpy(rows.data(), s.rows.data(), s.size * s.dp * s.element(), cudaMemcpyDeviceToDevice), "growing the GPU index");
            check(cudaMemcpy(norms.data(), s.norms.data(), s.size * sizeof(float), cudaMemcpyDeviceToDevice), "growing the GPU index");
        }
        s.rows = std::move(rows);
        s.norms = std::move(norms);
        s.capacity = capacity;
    }
    for (std::size_t i = 0; i < n; ++i) {  // re-adding an id replaces it
        auto it = s.row_of.find(ids[i]);
        if (it != s.row_of.end()) drop_row(s, it->second);
    }
    unsigned char* target = s.rows.data() + s.size * s.dp * s.element();
    switch (s.precision) {
        case Precision::F32: upload_rows(host, n, s.dp, s.device, reinterpret_cast<float*>(target)); break;
        case Precision::F16: upload_rows(host, n, s.dp, s.device, reinterpret_cast<__half*>(target)); break;
        case Precision::BF16: upload_rows(host, n, s.dp, s.device, reinterpret_cast<__nv_bfloat16*>(target)); break;
    }
    switch (s.precision) {  // of the stored (rounded) values, so L2 scores stay consistent
        case Precision::F32: compute_norms<float>(s.rows.data(), s.size, n, s.dp, s.norms.data()); break;
        case Precision::F16: compute_norms<__half>(s.rows.data(), s.size, n, s.dp, s.norms.data()); break;
        case Precision::BF16: compute_norms<__nv_bfloat16>(s.rows.data(), s.size, n, s.dp, s.norms.data()); break;
    }
    check(cudaDeviceSynchronize(), "adding vectors to the GPU index");
    for (std::size_t i = 0; i < n; ++i) {
        s.row_of[ids[i]] = s.size + i;
        s.ids.push_back(ids[i]);
    }
    s.size += n;
}

// Moves the last row into `row` (device rows, norms and the host bookkeeping) and drops it.
void FlatIndex::drop_row(State& s, std::size_t row) {
    const std::size_t last = s.size - 1;
    s.row_of.erase(s.ids[row]);
    if (row != last) {
        const std::size_t bytes = s.dp * s.element();
        check(cudaMemcpyAsync(s.rows.data() + row * bytes, s.rows.data() + last * bytes, bytes, cudaMemcpyDeviceToDevice),
              "removing vectors from the GPU index");
        check(cudaMemcpyAsync(s.norms.data() + row, s.norms.data() + last, sizeof(float), cudaMemcpyDeviceToDevice),
              "removing vectors from the GPU index");
        s.ids[row] = s.ids[last];
        s.row_of[s.ids[row]] = row;
    }
    s.ids.pop_back();
    s.size = last;
}

std::size_t FlatIndex::remove(const std::int64_t* ids, std::size_t n) {
    State& s = *state_;
    std::lock_guard<std::mutex> lock(s.mutex);
    DeviceScope scope(s.device);
    std::size_t removed = 0;
    for (std::size_t i = 0; i < n; ++i) {
        auto it = s.row_of.find(ids[i]);
        if (it == s.row_of.end()) continue;
        drop_row(s, it->second);  // the copies run in order on the default stream
        ++removed;
    }
    check(cudaDeviceSynchronize(), "removing vectors from the GPU index");
    return removed;
}

SearchResult FlatIndex::search(const float* queries, std::size_t nq, std::size_t k, const std::int64_t* allowed,
                               std::size_t n_allowed) const {
    const State& s = *state_;
    check_k(k);
    const std::vector<float> host = padded_rows(queries, nq, s.dim, s.dp, s.metric == Metric::Cosine, "queries");
    std::lock_guard<std::mutex> lock(s.mutex);
    SearchResult result;
    if (nq == 0) return result;
    const bool l2 = s.metric == Metric::L2;
    bool any_allowed = true;
    const std::vector<unsigned> bits = allowed != nullptr ? row_bitmap(allowed, n_allowed, s.row_of, s.size, any_allowed)
                                                          : std::vector<unsigned>{};
    if (s.size == 0 || !any_allowed) {
        finish_results({}, std::vector<int>(nq * k, -1), {}, l2, s.ids, nq, k, k, result);
        return result;
    }
    const std::vector<float> norms_of_queries = query_norms(host, nq, s.dp);
    const std::size_t kq = std::min(k, s.size);
    DeviceScope scope(s.device);
    constexpr std::size_t kBatch = 8192;  // queries per pass: bounds the scratch memory
    std::vector<float> scores(nq * kq);
    std::vector<int> rows(nq * kq);
    DeviceArray<float> d_queries(std::min(nq, kBatch) * s.dp, s.device, "copying queries to the GPU");
    DeviceArray<float> d_values(std::min(nq, kBatch) * kq, s.device, "search results");
    DeviceArray<int> d_rows(std::min(nq, kBatch) * kq, s.device, "search results");
    DeviceArray<unsigned> d_allowed;
    upload(d_allowed, bits, s.device, "copying the filter to the GPU");
    const unsigned* filter = allowed != nullptr ? d_allowed.data() : nullptr;
    for (std::size_t first = 0; first < nq; first += kBatch) {
        const std::size_t count = std::min(kBatch, nq - first);
        check(cudaMemcpy(d_queries.data(), host.data() + first * s.dp, count * s.dp * sizeof(float), cudaMemcpyHostToDevice),
              "copying queries to the GPU");
        const float* norms = l2 ? s.norms.data() : nullptr;
        const int n = static_cast<int>(s.size), dp = static_cast<int>(s.dp), kk = static_cast<int>(kq), c = static_cast<int>(count);
        switch (s.precision) {
            case Precision::F32:
                search_device(d_queries.data(), c, reinterpret_cast<const float*>(s.rows.data()), norms, n, dp, kk, s.device,
                              d_values.data(), d_rows.data(), s.scratch_values, s.scratch_rows, filter);
                break;
            case Precision::F16:
                search_device(d_queries.data(), c, reinterpret_cast<const __half*>(s.rows.data()), norms, n, dp, kk, s.device,
                              d_values.data(), d_rows.data(), s.scratch_values, s.scratch_rows, filter);
                break;
            case Precision::BF16:
                search_device(d_queries.data(), c, reinterpret_cast<const __nv_bfloat16*>(s.rows.data()), norms, n, dp, kk,
                              s.device, d_values.data(), d_rows.data(), s.scratch_values, s.scratch_rows, filter);
                break;
        }
        check(cudaMemcpy(scores.data() + first * kq, d_values.data(), count * kq * sizeof(float), cudaMemcpyDeviceToHost),
              "copying results from the GPU");
        check(cudaMemcpy(rows.data() + first * kq, d_rows.data(), count * kq * sizeof(int), cudaMemcpyDeviceToHost),
              "copying results from the GPU");
    }
    finish_results(scores, rows, norms_of_queries, l2, s.ids, nq, k, kq, result);
    return result;
}

template <class T>
__global__ void unpad_kernel(const T* rows, std::size_t n, int dim, int dp, float* out) {
    const std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
    if (i < n * dim) out[i] = to_float<T>(rows[(i / dim) * dp + i % dim]);
}

std::vector<float> FlatIndex::vectors() const {
    const State& s = *state_;
    std::lock_guard<std::mutex> lock(s.mutex);
    std::vector<float> out(s.size * s.dim);
    if (s.size == 0) return out;
    DeviceScope scope(s.device);
    DeviceArray<float> staging(s.size * s.dim, s.device, "copying vectors from the GPU");
    const std::size_t total = s.size * s.dim;
    const unsigned blocks = static_cast<unsigned>((total + 255) / 256);
    const int dim = static_cast<int>(s.dim), dp = static_cast<int>(s.dp);
    switch (s.precision) {
        case Precision::F32:
            launch(blocks, 256, 0, unpad_kernel<float>, reinterpret_cast<const float*>(s.rows.data()), s.size, dim, dp, staging.data());
            break;
        case Precision::F16:
            launch(blocks, 256, 0, unpad_kernel<__half>, reinterpret_cast<const __half*>(s.rows.data()), s.size, dim, dp, staging.data());
            break;
        case Precision::BF16:
            launch(blocks, 256, 0, unpad_kernel<__nv_bfloat16>, reinterpret_cast<const __nv_bfloat16*>(s.rows.data()), s.size, dim, dp,
                   staging.data());
            break;
    }
    check(cudaGetLastError(), "copying vectors from the GPU");
    check(cudaMemcpy(out.data(), staging.data(), total * sizeof(float), cudaMemcpyDeviceToHost), "copying vectors from the GPU");
    return out;
}

}  // namespace docent::gpu
