// HNSW (hierarchical navigable small world graph) over fp32, fp16 or int8 vectors.
//
// Memory layout. Every node lives in a slot. Level 0, where searches spend nearly all their
// time, is one fixed-size block per slot holding everything a visit touches:
//     [int64 id][uint32 link count][uint32 links x M0][vector code]
// Blocks are allocated in chunks of 2^16 slots that never move, so the index grows without a
// fixed capacity and without invalidating a search that runs while another thread adds.
// Upper levels (a few percent of nodes) have their own small arrays.
//
// Concurrency. Any number of searches may run while one add() (itself parallel) inserts:
// a link list is rewritten under its node's spin lock and read lock-free (its count is
// published last with release order), and a slot becomes reachable only after its data is
// written. remove() marks a node deleted: it still routes searches but is never returned,
// and its slot is reused by a later add. Re-adding an existing id replaces its vector.
//
// Search. Greedy descent through the upper levels, then a best-first beam of width ef on
// level 0 with pooled visited bitsets and prefetching of the next neighbours' blocks. A filter
// (allow-list) is checked during the traversal; a very selective one is answered by exact
// search over the allowed nodes instead, so it still finds k results when k exist. With
// rerank, fp32 originals are kept beside the compressed codes and the beam's candidates are
// re-scored exactly.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>
#include <vector>

#include "metric.h"
#include "serialize.h"
#include "vector_codec.h"

namespace docent {

struct HnswParams {
    std::size_t M = 32;                 // links per node on upper levels; 2*M on level 0
    std::size_t ef_construction = 200;  // beam width while inserting
    Storage storage = Storage::F32;
    bool rerank = false;                // keep fp32 originals and re-score candidates exactly
    std::uint64_t seed = 100;
};

class HnswIndex {
public:
    HnswIndex(std::size_t dim, Metric metric, HnswParams params);
    ~HnswIndex();
    HnswIndex(HnswIndex&&) noexcept;
    HnswIndex(const HnswIndex&) = delete;
    HnswIndex& operator=(const HnswIndex&) = delete;

    std::size_t dim() const { return codec_.dim(); }
    Metric metric() const { return codec_.metric(); }
    const HnswParams& params() const { return params_; }
    std::size_t size() const;
    std::size_t slots() const { return slots_.load(std::memory_order_acquire); }
    bool read_only() const { return mapping_ != nullptr; }
    // Bytes held in memory by vectors, links and ids (what a user pays per vector).
    std::size_t memory_bytes() const;

    void add(const float* vectors, const std::int64_t* ids, std::size_t n, unsigned threads);
    std::size_t remove(const std::int64_t* ids, std::size_t n);
    bool contains(std::int64_t id) const;
    std::vector<float> reconstruct(std::int64_t id) const;
    std::vector<std::int64_t> ids() const;

    SearchResult search(const float* queries, std::size_t nq, std::size_t k, std::size_t ef,
                        const std::vector<std::int64_t>* allowed, unsigned threads) const;
    // All results within `radius` (similarity >= radius for ip/cosine, squared L2 <= radius for l2),
    // found by growing the search region of the graph from the best hits.
    RangeResult range_search(const float* queries, std::size_t nq, float radius, std::size_t ef, unsigned threads) const;

    std::vector<unsigned char> serialize(std::uint64_t checkpoint) const;
    // Copies the payload, or (with `mapping` set) points into a read-only memory mapping it keeps alive.
    static HnswIndex deserialize(const Unsealed& sealed, std::shared_ptr<const void> mapping = nullptr);

private:
    struct Chunk;
    struct Visited;
    class VisitedPool;
    using Candidate = std::pair<float, std::uint32_t>;  // (distance, slot)

    unsigned char* block(std::uint32_t slot) const;
    std::int64_t id_of(std::uint32_t slot) const;
    std::uint32_t* links(std::uint32_t slot, int level) const;  // [count][cap entries]
    const unsigned char* code(std::uint32_t slot) const;
    float* original(std::uint32_t slot) const;
    int level_of(std::uint32_t slot) const;
    bool deleted(std::uint32_t slot) const;
    void set_deleted(std::uint32_t slot, bool value);
    std::atomic<std::uint8_t>& lock_of(std::uint32_t slot) const;

    void ensure_slots(std::size_t count);
    std::uint32_t take_slot(int& level);
    int random_level();
    void insert(std::uint32_t slot, int level, const float* vector);
    void connect(std::uint32_t slot, int level, std::vector<Candidate>& candidates, std::vector<float>& scratch);
    std::vector<Candidate> select_neighbours(std::vector<Candidate> candidates, std::size_t limit, std::vector<float>& scratch) const;
    float distance_to_slot(const float* vector, std::uint32_t slot) const;  // between stored nodes, while building

    std::uint32_t greedy_descent(const VectorCodec::Query& q, std::uint32_t entry, int top_level, int bottom_level) const;
    std::vector<Candidate> search_level(const VectorCodec::Query& q, std::uint32_t entry, int level, std::size_t ef,
                                        const std::vector<std::uint64_t>* allow_bits) const;
    template <typename Distance>
    void search_pool(const Distance& distance, std::uint32_t entry, int level, std::size_t ef, std::vector<Candidate>& pool) const;
    void prefetch_head(const unsigned char* code) const;
    void prefetch_tail(const unsigned char* code) const;
    void pool_search(const VectorCodec::Query& q, std::uint32_t entry, int level, std::size_t ef, std::vector<Candidate>& pool) const;
    void search_one(const float* query, std::size_t k, std::size_t ef, const std::vector<std::uint64_t>* allow_bits,
                    float* out_distances, std::int64_t* out_ids) const;
    void exact_over(const float* query, const std::vector<std::uint32_t>& slots, std::size_t k, float* out_distances,
                    std::int64_t* out_ids) const;
    void write_results(std::vector<Candidate>& found, const float* query, std::size_t k, float* out_distances,
                       std::int64_t* out_ids) const;
    void check_writable() const;

    VectorCodec codec_;
    HnswParams params_;
    std::size_t max_links0_, node_bytes_, code_offset_;
    double level_mult_;
    std::size_t code_lines_, head_lines_;  // cache lines of a vector code, and how many to prefetch early

    // Fixed-size tables of chunk pointers (never reallocated, so readers need no lock).
    std::unique_ptr<std::atomic<Chunk*>[]> chunk_table_;
    std::unique_ptr<std::atomic<unsigned char*>[]> block_table_;
    std::vector<std::unique_ptr<Chunk>> chunks_;
    std::uint32_t next_slot_ = 0;  // slots handed out (under add_mutex_)
    std::atomic<std::uint32_t> slots_{0};
    std::atomic<std::uint32_t> entry_{0};
    std::atomic<int> max_level_{-1};

    mutable std::shared_mutex ids_mutex_;  // id map and free list
    std::unordered_map<std::int64_t, std::uint32_t> slot_of_;
    std::vector<std::uint32_t> free_slots_;
    std::mutex entry_mutex_;  // entry point and top level
    std::mutex add_mutex_;    // one add() at a time (each one parallel inside)
    std::uint64_t rng_state_;
    std::unique_ptr<VisitedPool> visited_;
    std::shared_ptr<const void> mapping_;  // set when loaded read-only by memory mapping
};

}  // namespace docent
