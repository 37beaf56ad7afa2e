// The GPU engine's C++ interface: plain C++ (no CUDA types), so the Python bindings and any
// C++ caller build with the host compiler. Everything here throws GpuError with a message that
// names the problem: no GPU, a driver too old for this build, or how much memory was missing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "ivf_index.h"
#include "metric.h"

namespace docent::gpu {

struct GpuError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct DeviceInfo {
    int id;
    std::string name;
    std::size_t total_memory;
    std::size_t free_memory;
    int major, minor;  // compute capability
};

// "" when at least one GPU is usable, else why not (no device, no driver, driver too old).
std::string unavailable_reason();
std::vector<DeviceInfo> devices();

// How vectors are stored and multiplied: fp32 on the CUDA cores, or fp16 / bf16 inputs on the
// tensor cores with fp32 accumulation (half the memory and traffic, within their rounding).
enum class Precision : std::uint32_t { F32 = 0, F16 = 1, BF16 = 2 };
Precision parse_precision(const std::string& name);

constexpr std::size_t kMaxK = 256;  // the fused k-selection keeps at most this many per query

// Exact search on one GPU. The distances are computed tile by tile and each tile is reduced to
// its best k at once, in shared memory: the query-by-vector matrix is never written out.
class FlatIndex {
public:
    FlatIndex(std::size_t dim, Metric metric, Precision precision, int device);
    ~FlatIndex();
    FlatIndex(FlatIndex&&) noexcept;
    FlatIndex& operator=(FlatIndex&&) noexcept;

    std::size_t dim() const;
    Metric metric() const;
    Precision precision() const;
    int device() const;
    std::size_t size() const;
    std::size_t memory_bytes() const;  // on the GPU
    const std::vector<std::int64_t>& ids() const;

    bool contains(std::int64_t id) const;
    // Adds vectors; an id already in the index is replaced (as on the CPU).
    void add(const float* vectors, const std::int64_t* ids, std::size_t n);
    // Removes the ids that are there (the last rows move into the holes); returns how many went.
    std::size_t remove(const std::int64_t* ids, std::size_t n);
    void reset();
    // (nq, k) distances (similarity for ip/cosine, squared L2 for l2) and ids, best first.
    // allowed (n_allowed ids), when given, is the only ids that may come back.
    SearchResult search(const float* queries, std::size_t nq, std::size_t k, const std::int64_t* allowed = nullptr,
                        std::size_t n_allowed = 0) const;
    // The stored vectors back as fp32 (n, dim), in the order of ids().
    std::vector<float> vectors() const;

private:
    struct State;
    static void drop_row(State& s, std::size_t row);  // the last row moves into `row`
    std::unique_ptr<State> state_;
};

// IVF-Flat on one GPU: the coarse search is a FlatIndex search over the centroids; each
// (query, probed list) pair is scanned by one block, then the nprobe partial lists are merged.
// Ids must be new (no replacing); entries() gives the cells as the CPU IvfIndex takes them.
class IvfFlatIndex {
public:
    IvfFlatIndex(std::size_t dim, Metric metric, const float* centroids, std::size_t nlist, int device);
    ~IvfFlatIndex();
    IvfFlatIndex(IvfFlatIndex&&) noexcept;
    IvfFlatIndex& operator=(IvfFlatIndex&&) noexcept;

    std::size_t dim() const;
    Metric metric() const;
    std::size_t nlist() const;
    std::size_t size() const;
    const std::vector<float>& centroids() const;  // (nlist, dim)
    void add(const float* vectors, const std::int64_t* ids, std::size_t n);
    // As FlatIndex::search, within the nprobe nearest cells of each query.
    SearchResult search(const float* queries, std::size_t nq, std::size_t k, std::size_t nprobe, const std::int64_t* allowed = nullptr,
                        std::size_t n_allowed = 0) const;
    IvfIndex::Entries entries() const;

private:
    struct State;
    std::unique_ptr<State> state_;
};

// IVF-PQ on one GPU: codes of the residual to the cell centroid, pq_m bytes each, as the CPU
// IvfIndex makes them (the same centroids, codebooks and codes give the same answers). A block
// per (query, probed cell) builds the cell's lookup table in shared memory and scores one entry
// per thread. With rerank, fp32 originals are kept and the best candidates re-scored exactly.
class IvfPqIndex {
public:
    // codebooks: (pq_m, 256, dim / pq_m).
    IvfPqIndex(std::size_t dim, Metric metric, const float* centroids, std::size_t nlist, const float* codebooks, std::size_t pq_m,
               bool rerank, int device);
    ~IvfPqIndex();
    IvfPqIndex(IvfPqIndex&&) noexcept;
    IvfPqIndex& operator=(IvfPqIndex&&) noexcept;

    std::size_t dim() const;
    Metric metric() const;
    std::size_t nlist() const;
    std::size_t pq_m() const;
    bool rerank() const;
    std::size_t size() const;
    std::size_t memory_bytes() const;  // on the GPU
    const std::vector<float>& centroids() const;  // (nlist, dim)
    const std::vector<float>& codebooks() const;  // (pq_m, 256, dim / pq_m)

    // Vectors, assigned to cells and encoded on the GPU. Ids must be new.
    void add(const float* vectors, const std::int64_t* ids, std::size_t n);
    // Entries already encoded (by the CPU index: IvfIndex::entries); originals with rerank.
    void add_encoded(const std::uint32_t* cells, const std::int64_t* ids, const unsigned char* codes, const float* originals,
                     std::size_t n);
    // As FlatIndex::search, within the nprobe nearest cells of each query.
    SearchResult search(const float* queries, std::size_t nq, std::size_t k, std::size_t nprobe, const std::int64_t* allowed = nullptr,
                        std::size_t n_allowed = 0) const;
    IvfIndex::Entries entries() const;

private:
    struct State;
    void append(const std::vector<int>& cells, const std::int64_t* ids, const unsigned char* codes, const float* padded_originals,
                std::size_t n);
    std::unique_ptr<State> state_;
};

// Lloyd's k-means on the GPU (spherical: centroids renormalized, assignment by inner product).
// Initial centroids: k distinct rows drawn with the seed. Returns (k, dim).
std::vector<float> kmeans(const float* data, std::size_t n, std::size_t dim, std::size_t k, int iterations,
                          bool spherical, std::uint64_t seed, int device);

}  // namespace docent::gpu
