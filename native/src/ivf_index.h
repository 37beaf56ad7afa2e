// IVF: vectors split into k-means cells; a query scans only the `nprobe` nearest cells.
// Each cell keeps its ids and codes contiguous: whole fp32 vectors ("IVF1024,Flat") or
// product-quantized codes of the residual to the cell centroid ("IVF1024,PQ32": 32 sub-spaces
// of 256 centroids each, one byte per sub-space), scored through per-query lookup tables.
// With rerank, fp32 originals are kept too and the best PQ candidates are re-scored exactly.
// train() runs k-means (spherical for ip/cosine) once; add() trains on its first batch
// when nothing trained the index before.
#pragma once
#include <cstdint>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "metric.h"
#include "serialize.h"

namespace docent {

struct IvfParams {
    std::size_t nlist = 1024;
    std::size_t pq_m = 0;  // 0: whole vectors; else bytes per code (must divide dim)
    bool rerank = false;
    std::uint64_t seed = 1234;
};

class IvfIndex {
public:
    IvfIndex(std::size_t dim, Metric metric, IvfParams params);

    std::size_t dim() const { return dim_; }
    Metric metric() const { return metric_; }
    const IvfParams& params() const { return params_; }
    std::size_t size() const { return where_.size(); }
    bool trained() const { return trained_; }
    std::size_t memory_bytes() const;

    void train(const float* vectors, std::size_t n, unsigned threads);
    void add(const float* vectors, const std::int64_t* ids, std::size_t n, unsigned threads);
    std::size_t remove(const std::int64_t* ids, std::size_t n);
    bool contains(std::int64_t id) const { return where_.count(id) != 0; }
    std::vector<float> reconstruct(std::int64_t id) const;
    std::vector<std::int64_t> ids() const;
    const std::vector<float>& centroids() const { return centroids_; }
    const std::vector<float>& codebooks() const { return codebooks_; }  // (pq_m, 256, dim / pq_m)
    std::size_t code_size() const { return code_size_; }

    // The entries as plain arrays, cell after cell: how an index moves (to the GPU and back)
    // without being encoded again, so both sides hold the same codes.
    struct Entries {
        std::vector<std::uint32_t> lists;  // the cell of each entry
        std::vector<std::int64_t> ids;
        std::vector<unsigned char> codes;  // code_size() bytes each
        std::vector<float> originals;      // dim each, with rerank
    };
    Entries entries() const;
    // Trains an untrained index with given centroids (nlist, dim) and, with PQ, codebooks.
    void set_trained(const float* centroids, const float* codebooks);
    // Adds encoded entries (originals: dim floats each, with rerank; else null). Ids present are replaced.
    void add_encoded(const std::uint32_t* lists, const std::int64_t* ids, const unsigned char* codes, const float* originals,
                     std::size_t n);

    SearchResult search(const float* queries, std::size_t nq, std::size_t k, std::size_t nprobe,
                        const std::vector<std::int64_t>* allowed, unsigned threads) const;
    RangeResult range_search(const float* queries, std::size_t nq, float radius, std::size_t nprobe, unsigned threads) const;

    std::vector<unsigned char> serialize(std::uint64_t checkpoint) const;
    static IvfIndex deserialize(const Unsealed& sealed);

private:
    struct List {
        std::vector<std::int64_t> ids;
        std::vector<unsigned char> codes;  // code_size_ bytes per entry
        std::vector<float> originals;      // dim per entry, with rerank
    };
    bool spherical() const { return metric_ != Metric::L2; }
    void encode(const float* vector, std::size_t list, unsigned char* code) const;
    void decode(const unsigned char* code, std::size_t list, float* out) const;
    // Scores one list for a prepared query into `consider(distance, list, position)`.
    template <typename Consider>
    void scan_list(const float* query, std::size_t list, float centroid_score, std::vector<float>& table, Consider&& consider) const;
    void fill_ip_table(const float* query, std::vector<float>& table) const;
    std::vector<std::uint32_t> probe(const float* query, std::size_t nprobe) const;

    std::size_t dim_;
    Metric metric_;
    IvfParams params_;
    std::size_t sub_dim_ = 0, code_size_;
    bool trained_ = false;
    std::vector<float> centroids_;   // (nlist, dim)
    std::vector<float> codebooks_;   // (pq_m, 256, sub_dim)
    std::vector<List> lists_;
    std::unordered_map<std::int64_t, std::pair<std::uint32_t, std::uint32_t>> where_;  // id -> (list, position)
};

}  // namespace docent
