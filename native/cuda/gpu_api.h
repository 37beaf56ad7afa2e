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

    void add(const float* vectors, const std::int64_t* ids, std::size_t n);
    void reset();
    // (nq, k) distances (similarity for ip/cosine, squared L2 for l2) and ids, best first.
    SearchResult search(const float* queries, std::size_t nq, std::size_t k) const;
    // The stored vectors back as fp32 (n, dim), in the order of ids().
    std::vector<float> vectors() const;

private:
    struct State;
    std::unique_ptr<State> state_;
};

// IVF-Flat on one GPU: the coarse search is a FlatIndex search over the centroids; each
// (query, probed list) pair is scanned by one block, then the nprobe partial lists are merged.
class IvfFlatIndex {
public:
    IvfFlatIndex(std::size_t dim, Metric metric, const float* centroids, std::size_t nlist, int device);
    ~IvfFlatIndex();
    IvfFlatIndex(IvfFlatIndex&&) noexcept;
    IvfFlatIndex& operator=(IvfFlatIndex&&) noexcept;

    std::size_t dim() const;
    std::size_t nlist() const;
    std::size_t size() const;
    void add(const float* vectors, const std::int64_t* ids, std::size_t n);
    SearchResult search(const float* queries, std::size_t nq, std::size_t k, std::size_t nprobe) const;

private:
    struct State;
    std::unique_ptr<State> state_;
};

// Lloyd's k-means on the GPU (spherical: centroids renormalized, assignment by inner product).
// Initial centroids: k distinct rows drawn with the seed. Returns (k, dim).
std::vector<float> kmeans(const float* data, std::size_t n, std::size_t dim, std::size_t k, int iterations,
                          bool spherical, std::uint64_t seed, int device);

}  // namespace docent::gpu
