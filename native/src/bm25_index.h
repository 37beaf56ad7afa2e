// BM25 keyword index over token ids, with incremental add and remove.
//
// It scores exactly as rank_bm25.BM25Okapi: idf = ln((N - df + 0.5) / (df + 0.5)), with every
// negative idf replaced by epsilon * (mean idf over the vocabulary), and
// score = sum over query tokens (repeats counted) of idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avgdl)).
// Because N, avgdl and the mean idf change with every add or remove, the per-document
// length norms and the mean idf are derived lazily on the first search after a change.
//
// Layout: documents live in slots (reused after removal); each slot keeps its (term, tf)
// list so removal can find its postings; postings_[term] lists (slot, tf).
#pragma once
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "flat_index.h"
#include "serialize.h"

namespace docent {

struct BM25Params {
    double k1 = 1.5;
    double b = 0.75;
    double epsilon = 0.25;
};

class BM25Index {
public:
    explicit BM25Index(BM25Params params = {});

    // Adds one document as its token ids; an id already present is replaced.
    void add(std::int64_t id, const std::uint32_t* tokens, std::size_t n_tokens);
    bool remove(std::int64_t id);
    bool contains(std::int64_t id) const { return slot_of_.count(id) != 0; }
    std::size_t size() const { return slot_of_.size(); }
    std::size_t vocabulary_size() const { return vocabulary_size_; }
    const BM25Params& params() const { return params_; }

    // Top k documents that contain at least one query token, best first.
    // Thread-safe against other searches; not against concurrent add/remove.
    SearchResult search(const std::vector<std::vector<std::uint32_t>>& queries, std::size_t k,
                        const std::vector<std::int64_t>* allowed, unsigned threads) const;

    // The same search scored with collection-wide statistics that the caller gives: each query
    // token's idf (idfs[q][i] for queries[q][i]) and the average document length. A shard of a
    // larger collection scores with these so that its scores are the whole collection's.
    SearchResult search_with_statistics(const std::vector<std::vector<std::uint32_t>>& queries,
                                        const std::vector<std::vector<double>>& idfs, double avgdl, std::size_t k,
                                        const std::vector<std::int64_t>* allowed, unsigned threads) const;

    // What a collection-wide score needs from this index: its document count, total length,
    // and each term's document frequency (terms with df > 0, ascending).
    std::uint64_t total_length() const { return total_length_; }
    void document_frequencies(std::vector<std::uint32_t>& terms, std::vector<std::uint32_t>& dfs) const;

    // Scores of the given documents (0 for documents without query tokens): the oracle view.
    std::vector<double> scores(const std::vector<std::uint32_t>& query, const std::vector<std::int64_t>& ids) const;

    std::vector<unsigned char> serialize(std::uint64_t checkpoint) const;
    static BM25Index deserialize(const Unsealed& sealed);

private:
    struct Posting {
        std::uint32_t slot;
        std::uint32_t tf;
    };
    struct TermCount {
        std::uint32_t term;
        std::uint32_t tf;
        bool operator<(const TermCount& other) const { return term < other.term; }
    };
    struct Document {
        std::int64_t id = -1;  // -1: free slot
        std::uint32_t length = 0;
        std::vector<TermCount> terms;  // sorted by term
    };
    // A mutex that lets the index be moved: a moved-to index gets a fresh one.
    struct MovableMutex {
        std::mutex mutex;
        MovableMutex() = default;
        MovableMutex(const MovableMutex&) {}
        MovableMutex& operator=(const MovableMutex&) { return *this; }
    };
    struct Derived {  // recomputed after any change
        std::vector<double> length_norm;  // k1 * (1 - b + b * len / avgdl), per slot
        double mean_idf = 0;
    };

    double idf(std::uint32_t term, const Derived& derived) const;
    // Top k per query; weight(q, term, times) is a query term's idf times its repeats, norm(slot)
    // the slot's k1 * (1 - b + b * len / avgdl).
    template <class Weight, class Norm>
    SearchResult top_k(const std::vector<std::vector<std::uint32_t>>& queries, std::size_t k,
                       const std::vector<std::int64_t>* allowed, unsigned threads, Weight weight, Norm norm) const;
    const Derived& derived() const;

    BM25Params params_;
    std::vector<Document> docs_;
    std::vector<std::uint32_t> free_slots_;
    std::unordered_map<std::int64_t, std::uint32_t> slot_of_;
    std::vector<std::vector<Posting>> postings_;  // by term id; postings_[t].size() is df
    std::size_t vocabulary_size_ = 0;             // terms with df > 0
    std::uint64_t total_length_ = 0;

    mutable MovableMutex derived_mutex_;
    mutable bool derived_valid_ = false;
    mutable Derived derived_;
};

}  // namespace docent
