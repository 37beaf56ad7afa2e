// Exact (brute-force) vector index with caller-chosen 64-bit ids.
//
// Layout: row r holds the vector of ids_[r] at vectors_[r * dim, (r + 1) * dim); row_of_
// maps an id back to its row. Removing swaps the last row into the hole, so rows stay dense.
// With metric cosine, vectors and queries are normalized and compared by inner product.
// Scores are "higher is better" inside; for L2 the public distance is the squared L2
// (lower is better), as in Faiss.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "kernels.h"
#include "metric.h"
#include "serialize.h"

namespace docent {

class FlatIndex {
public:
    FlatIndex(std::size_t dim, Metric metric);

    std::size_t dim() const { return dim_; }
    Metric metric() const { return metric_; }
    std::size_t size() const { return ids_.size(); }

    // Adds n vectors; an id already present is updated in place. All-or-nothing: the batch
    // is validated (finite values, nonzero norm for cosine) before anything changes.
    void add(const float* vectors, const std::int64_t* ids, std::size_t n);

    // Removes the ids; returns how many were present. Unknown ids are ignored here;
    // the Python layer decides whether that is an error.
    std::size_t remove(const std::int64_t* ids, std::size_t n);

    bool contains(std::int64_t id) const { return row_of_.count(id) != 0; }
    std::vector<float> reconstruct(std::int64_t id) const;
    const std::vector<std::int64_t>& ids() const { return ids_; }
    // Every stored row, (size, dim), in the order of ids(): what moving the index elsewhere copies.
    const float* data() const { return row_data(); }

    // Searches nq queries. `allowed` (optional, may be null) restricts the results to those ids.
    SearchResult search(const float* queries, std::size_t nq, std::size_t k, const std::vector<std::int64_t>* allowed,
                        unsigned threads) const;

    // Every row within `radius`: similarity >= radius for ip/cosine, squared L2 <= radius for l2.
    RangeResult range_search(const float* queries, std::size_t nq, float radius, unsigned threads) const;

    std::vector<unsigned char> serialize(std::uint64_t checkpoint) const;
    // Copies the payload, or (with `mapping` set) searches the vectors in place in a read-only
    // memory mapping it keeps alive; add and remove then raise.
    static FlatIndex deserialize(const Unsealed& sealed, std::shared_ptr<const void> mapping = nullptr);
    bool read_only() const { return mapping_ != nullptr; }

private:
    float score(const float* query, const float* row) const;
    void search_batched(InnerProductPackedBf16Fn bf16, const float* queries, std::size_t nq, std::size_t k,
                        const std::vector<std::size_t>* rows, unsigned threads, SearchResult& result) const;

    std::size_t dim_;
    Metric metric_;
    const float* row_data() const { return mapped_ ? mapped_ : vectors_.data(); }
    void check_writable() const;

    std::vector<float> vectors_;
    std::shared_ptr<const void> mapping_;
    const float* mapped_ = nullptr;
    std::vector<std::int64_t> ids_;
    std::unordered_map<std::int64_t, std::size_t> row_of_;
};

}  // namespace docent
