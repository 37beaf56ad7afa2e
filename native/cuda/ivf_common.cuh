// What the GPU IVF indexes (IVF-Flat, IVF-PQ) and k-means share: assigning rows to their
// nearest centroid, the coarse search for the cells to probe, the end of a list scan (the
// warps' lists merged into the block's K), and the cells themselves (IvfCells): centroids,
// ids, device layout, and the start of every search.
#pragma once

#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "rows.cuh"

namespace docent::gpu {

// Nearest centroid of each of n device rows (1-NN with the fused search), in batches.
inline void assign(const float* rows, std::size_t n, const float* centroids, const float* centroid_norms, std::size_t k,
                   std::size_t dp, int device, int* out) {
    constexpr std::size_t kBatch = 65536;
    DeviceArray<float> values(std::min(n, kBatch), device, "assigning vectors to cells");
    DeviceArray<float> scratch_values;
    DeviceArray<int> scratch_rows;
    for (std::size_t first = 0; first < n; first += kBatch) {
        const std::size_t count = std::min(kBatch, n - first);
        search_device<float>(rows + first * dp, static_cast<int>(count), centroids, centroid_norms, static_cast<int>(k),
                             static_cast<int>(dp), 1, device, values.data(), out + first, scratch_values, scratch_rows);
    }
}

inline void check_ivf_search(std::size_t nq, std::size_t k) {
    if (k == 0 || k > kMaxK) throw std::invalid_argument("k must be between 1 and " + std::to_string(kMaxK) + " on the GPU");
    if (nq > static_cast<std::size_t>(INT32_MAX)) throw std::invalid_argument("too many queries");
}

// The queries of an IVF search on the device, and the nprobe best cells of each with their
// coarse scores: q.c, or 2 q.c - |c|^2 for L2 (with centroid_norms), the part of 2 q.x - |x|^2
// that the cell gives.
struct ProbedQueries {
    DeviceArray<float> queries;      // (nq, dp)
    DeviceArray<float> cell_scores;  // (nq, nprobe)
    DeviceArray<int> cells;          // (nq, nprobe)
};

inline ProbedQueries probe_cells(const std::vector<float>& padded_queries, std::size_t nq, const float* centroids,
                                 const float* centroid_norms, std::size_t nlist, std::size_t dp, std::size_t nprobe, int device) {
    ProbedQueries p;
    upload(p.queries, padded_queries, device, "copying queries to the GPU");
    p.cell_scores.allocate(nq * nprobe, device, "IVF coarse search");
    p.cells.allocate(nq * nprobe, device, "IVF coarse search");
    DeviceArray<float> scratch_values;
    DeviceArray<int> scratch_rows;
    search_device<float>(p.queries.data(), static_cast<int>(nq), centroids, centroid_norms, static_cast<int>(nlist),
                         static_cast<int>(dp), static_cast<int>(nprobe), device, p.cell_scores.data(), p.cells.data(),
                         scratch_values, scratch_rows);
    return p;
}

constexpr int kScanWarps = 4;  // warps of a (query, probed cell) block

// The end of a block's scan of one cell: after each warp has kept its best K in
// lists_v/lists_r[warp * K ...] (row -1 in the slots it did not fill), warp 0 merges the
// kScanWarps lists (using the K slots after them) and writes the block's K at out.
template <int K>
__device__ inline void merge_block_lists(float* lists_v, int* lists_r, std::size_t out, float* partial_values, int* partial_rows) {
    __syncthreads();
    if ((threadIdx.x >> 5) != 0) return;
    const int lane = threadIdx.x & 31;
    float* merged_v = lists_v + kScanWarps * K;
    int* merged_r = lists_r + kScanWarps * K;
    int merged = 0;
    for (int i = lane; i < kScanWarps * K; i += 32)  // the same trip count in every lane
        warp_offer<K>(merged_v, merged_r, merged, lists_v[i], lists_r[i], lists_r[i] >= 0);
    for (int i = lane; i < K; i += 32) {
        partial_values[out + i] = i < merged ? merged_v[i] : -FLT_MAX;
        partial_rows[out + i] = i < merged ? merged_r[i] : -1;
    }
}

// Marks the slots of a warp's list past `count` empty (row -1), before merge_block_lists.
template <int K>
__device__ inline void close_warp_list(int* rows, int count) {
    for (int i = threadIdx.x & 31; i < K; i += 32)
        if (i >= count) rows[i] = -1;
}

constexpr std::size_t scan_list_bytes(int K) { return (sizeof(float) + sizeof(int)) * (kScanWarps + 1) * K; }

// The device row of each id, once the cells are laid out (ids in device row order).
inline std::unordered_map<std::int64_t, std::size_t> rows_of(const std::vector<std::int64_t>& ids) {
    std::unordered_map<std::int64_t, std::size_t> out;
    out.reserve(ids.size());
    for (std::size_t r = 0; r < ids.size(); ++r) out.emplace(ids[r], r);
    return out;
}

// Whether a scanned row counts: inside its cell and, with a filter, allowed.
__device__ inline bool row_allowed(long long row, long long end, const unsigned* allowed) {
    return row < end && (allowed == nullptr || (allowed[row >> 5] >> (row & 31) & 1u));
}

// Each cell's entries sit together on the device, cell after cell: offsets[c] .. offsets[c + 1].
inline std::vector<long long> cell_offsets(const std::vector<std::vector<std::int64_t>>& cell_ids) {
    std::vector<long long> offsets(cell_ids.size() + 1, 0);
    for (std::size_t c = 0; c < cell_ids.size(); ++c) offsets[c + 1] = offsets[c] + static_cast<long long>(cell_ids[c].size());
    return offsets;
}

template <class T>
std::vector<T> concatenated(const std::vector<std::vector<T>>& parts) {
    std::size_t total = 0;
    for (const auto& p : parts) total += p.size();
    std::vector<T> out;
    out.reserve(total);
    for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
}

// Refuses ids that are already in a GPU IVF index or appear twice in one batch.
inline void check_new_ids(const std::vector<std::vector<std::int64_t>>& cell_ids, const std::int64_t* ids, std::size_t n) {
    std::unordered_set<std::int64_t> seen;
    for (const auto& cell : cell_ids) seen.insert(cell.begin(), cell.end());
    for (std::size_t i = 0; i < n; ++i) {
        if (ids[i] < 0) throw std::invalid_argument("ids must be non-negative (-1 marks 'no result'), got " + std::to_string(ids[i]));
        if (!seen.insert(ids[i]).second)
            throw std::invalid_argument("id " + std::to_string(ids[i]) + " is already in the GPU index (or twice in this add)");
    }
}

// What both GPU IVF indexes hold besides their entries' payload (whole vectors or codes): the
// centroids on both sides, the ids of each cell and the cells' device layout, cell after cell.
struct IvfCells {
    std::size_t dim = 0, dp = 0, nlist = 0;
    Metric metric = Metric::InnerProduct;
    int device = 0;
    std::vector<float> host_centroids;             // (nlist, dim), as the device has them
    DeviceArray<float> centroids, centroid_norms;  // padded rows; |c|^2 for L2 only
    std::vector<std::vector<std::int64_t>> cell_ids;
    std::vector<std::int64_t> ids;                 // in device row order
    std::unordered_map<std::int64_t, std::size_t> row_of;
    DeviceArray<long long> offsets;                // cell c: rows offsets[c] .. offsets[c + 1]
    std::size_t size = 0;
    mutable std::mutex mutex;  // adds lay the cells out again; a search must not see that half done

    // Checks the shape and puts the centroids on the device (normalized, when asked, for cosine).
    void set_up(std::size_t d, Metric m, const float* given, std::size_t cells, bool normalize, int gpu) {
        if (d == 0 || d > 8192) throw std::invalid_argument("dim must be between 1 and 8192 for GPU IVF, got " + std::to_string(d));
        if (cells == 0 || cells > static_cast<std::size_t>(INT32_MAX)) throw std::invalid_argument("nlist must be positive");
        require_device(gpu);
        dim = d, dp = padded_dim(d), nlist = cells, metric = m, device = gpu;
        const std::vector<float> padded = padded_rows(given, nlist, dim, dp, normalize, "centroids");
        host_centroids.resize(nlist * dim);
        for (std::size_t c = 0; c < nlist; ++c) std::copy_n(padded.begin() + c * dp, dim, host_centroids.begin() + c * dim);
        cell_ids.resize(nlist);
        DeviceScope scope(device);
        upload(centroids, padded, device, "copying IVF centroids to the GPU");
        if (metric == Metric::L2) {
            centroid_norms.allocate(nlist, device, "IVF centroids");
            launch_norms(centroids.data(), nlist, dp, centroid_norms.data());
            check(cudaDeviceSynchronize(), "copying IVF centroids to the GPU");
        }
    }

    const float* l2_centroid_norms() const { return metric == Metric::L2 ? centroid_norms.data() : nullptr; }

    // Refuses an add of n more entries that would not fit, or whose ids are not new.
    void check_add(const std::int64_t* new_ids, std::size_t n) const {
        if (size + n > static_cast<std::size_t>(INT32_MAX)) throw std::invalid_argument("a GPU IVF index holds at most 2^31 - 1 vectors");
        check_new_ids(cell_ids, new_ids, n);
    }

    // The nearest cell of each of n device rows (padded), into device memory.
    void assign_cells(const float* rows, std::size_t n, int* cells) const {
        assign(rows, n, centroids.data(), l2_centroid_norms(), nlist, dp, device, cells);
    }

    // After entries went into cell_ids (size counted): the ids in device row order, their rows,
    // and the offsets on the device.
    void lay_out() {
        ids = concatenated(cell_ids);
        row_of = rows_of(ids);
        upload(offsets, cell_offsets(cell_ids), device, "copying IVF lists to the GPU");
    }
};

// The start of an IVF search, taken under the index's lock with its device current: the queries
// and the cells to probe on the device, and the filter. Empty when nothing can be found (no
// queries, no entries, or none of the allowed ids stored); `result` then holds empty places.
struct IvfSearch {
    std::size_t nprobe = 0;
    ProbedQueries probed;
    DeviceArray<unsigned> filter;
    bool filtered = false;
    const unsigned* filter_data() const { return filtered ? filter.data() : nullptr; }
};

inline bool start_search(const IvfCells& s, const std::vector<float>& padded_queries, std::size_t nq, std::size_t k,
                         std::size_t nprobe, const std::int64_t* allowed, std::size_t n_allowed, IvfSearch& search,
                         SearchResult& result) {
    bool any_allowed = true;
    const std::vector<unsigned> bits = allowed != nullptr ? row_bitmap(allowed, n_allowed, s.row_of, s.size, any_allowed)
                                                          : std::vector<unsigned>{};
    if (nq == 0 || s.size == 0 || !any_allowed) {
        finish_results({}, std::vector<int>(nq * k, -1), {}, s.metric == Metric::L2, s.ids, nq, k, k, result);
        return false;
    }
    search.nprobe = std::min(std::max<std::size_t>(nprobe, 1), std::min(s.nlist, kMaxK));
    search.filtered = allowed != nullptr;
    upload(search.filter, bits, s.device, "copying the filter to the GPU");
    search.probed = probe_cells(padded_queries, nq, s.centroids.data(), s.l2_centroid_norms(), s.nlist, s.dp, search.nprobe, s.device);
    return true;
}

}  // namespace docent::gpu
