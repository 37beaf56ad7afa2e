// BM25 keyword index over token ids, with incremental add and remove.
//
// It scores exactly as rank_bm25.BM25Okapi: idf = ln((N - df + 0.5) / (df + 0.5)), with every
// negative idf replaced by epsilon * (mean idf over the vocabulary), and
// score = sum over query tokens (repeats counted) of idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avgdl)).
// Because N, avgdl and the mean idf change with every add or remove, the per-document
// length norms and the mean idf are derived lazily on the first search after a change.
//
// Layout: documents live in slots (reused after removal); each slot keeps its (term, tf)
// list so removal can find its postings; postings_[term] lists (slot, tf) in slot order, cut
// into blocks of kBlock postings whose last slots are kept, so a seek skips a block at once.
//
// Search is exact and skips what cannot change the top k (MaxScore, document at a time): each
// term has an upper bound on what it adds to any document's score (from its largest tf and its
// shortest document). Terms are ordered by bound; those whose bounds together stay below the
// k-th best score so far are "non-essential": a document they alone hold cannot enter, so only
// the other terms' postings are walked, and the non-essential lists are looked into (skipping
// whole blocks) only for a document that can still reach the top k. A document that enters is
// scored in query order, as the exhaustive scoring sums, so the top k (ids, scores, ties) is the
// exhaustive one's to the bit.
#pragma once
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "flat_index.h"
#include "serialize.h"
#include "topk.h"

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

    // Top k documents that contain at least one query token, best first. exhaustive: score
    // every posting of every query token (the reference the pruned search must equal).
    // Thread-safe against other searches; not against concurrent add/remove.
    SearchResult search(const std::vector<std::vector<std::uint32_t>>& queries, std::size_t k,
                        const std::vector<std::int64_t>* allowed, unsigned threads, bool exhaustive = false) const;

    // The same search scored with collection-wide statistics that the caller gives: each query
    // token's idf (idfs[q][i] for queries[q][i]) and the average document length. A shard of a
    // larger collection scores with these so that its scores are the whole collection's.
    SearchResult search_with_statistics(const std::vector<std::vector<std::uint32_t>>& queries,
                                        const std::vector<std::vector<double>>& idfs, double avgdl, std::size_t k,
                                        const std::vector<std::int64_t>* allowed, unsigned threads,
                                        bool exhaustive = false) const;

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
    // Bounds of a term's postings: no document holds it more than max_tf times, none of those
    // documents is shorter than min_length. Kept up on add; a removal leaves them loose but
    // still bounds (reset when the term's last posting goes).
    struct TermBound {
        std::uint32_t max_tf = 0;
        std::uint32_t min_length = 0xFFFFFFFFu;
    };
    struct Block {  // kBlock consecutive postings of a term
        std::uint32_t last_slot;
    };
    static constexpr std::size_t kBlock = 64;
    struct QueryTerm {
        std::uint32_t term;
        double weight;  // idf times the term's repeats in the query
        double bound;   // the most it adds to any document's score
    };
    void insert_posting(std::uint32_t term, Posting posting);
    void erase_posting(std::uint32_t term, std::uint32_t slot);
    void rebuild_blocks(std::uint32_t term, std::size_t from_posting);
    struct Derived {  // recomputed after any change
        std::vector<double> length_norm;  // k1 * (1 - b + b * len / avgdl), per slot
        double mean_idf = 0;
    };

    double idf(std::uint32_t term, const Derived& derived) const;
    // Top k per query; weight(q, term, position, times) is a query term's idf times its repeats,
    // norm_of_length(len) is k1 * (1 - b + b * len / avgdl) and norm(slot) the same for a slot.
    template <class Weight, class Norm, class NormOfLength>
    SearchResult top_k(const std::vector<std::vector<std::uint32_t>>& queries, std::size_t k,
                       const std::vector<std::int64_t>* allowed, unsigned threads, bool exhaustive, Weight weight,
                       Norm norm, NormOfLength norm_of_length) const;
    // The exact top k of one query's terms into heap, skipping what cannot enter it.
    template <class Part>
    void maxscore(const std::vector<QueryTerm>& present, TopK& heap, const std::vector<char>* allowed_slot,
                  Part part) const;
    const Derived& derived() const;

    BM25Params params_;
    std::vector<Document> docs_;
    std::vector<std::uint32_t> free_slots_;
    std::unordered_map<std::int64_t, std::uint32_t> slot_of_;
    std::vector<std::vector<Posting>> postings_;  // by term id; postings_[t].size() is df
    std::vector<TermBound> bounds_;               // by term id
    std::vector<std::vector<Block>> blocks_;      // by term id: blocks_[t][j] ends postings_[t][j * kBlock + 63]; none for a list of one block
    std::size_t vocabulary_size_ = 0;             // terms with df > 0
    std::uint64_t total_length_ = 0;

    mutable MovableMutex derived_mutex_;
    mutable bool derived_valid_ = false;
    mutable Derived derived_;
};

}  // namespace docent
