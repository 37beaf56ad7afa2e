#include "bm25_index.h"

#include <algorithm>
#include <cmath>

#include "parallel.h"
#include "topk.h"

namespace docent {

// Token ids are dense vocabulary indexes; this bound keeps a damaged or hostile input from
// making the postings table allocate gigabytes.
constexpr std::uint32_t kMaxTokenId = 1u << 26;

BM25Index::BM25Index(BM25Params params) : params_(params) {
    if (!(params.k1 >= 0) || !(params.b >= 0 && params.b <= 1) || !std::isfinite(params.epsilon))
        throw ArgumentError("BM25 parameters out of range: need k1 >= 0, 0 <= b <= 1, finite epsilon");
}

void BM25Index::add(std::int64_t id, const std::uint32_t* tokens, std::size_t n_tokens) {
    if (id < 0) throw ArgumentError("ids must be non-negative (-1 marks 'no result'), got " + std::to_string(id));
    if (n_tokens > 0xFFFFFFFFu) throw ArgumentError("document has too many tokens");
    std::unordered_map<std::uint32_t, std::uint32_t> counts;
    for (std::size_t i = 0; i < n_tokens; ++i) {
        if (tokens[i] >= kMaxTokenId)
            throw ArgumentError("token id " + std::to_string(tokens[i]) + " is too large (limit " + std::to_string(kMaxTokenId) + ")");
        ++counts[tokens[i]];
    }
    remove(id);

    std::uint32_t slot;
    if (!free_slots_.empty()) {
        slot = free_slots_.back();
        free_slots_.pop_back();
    } else {
        slot = static_cast<std::uint32_t>(docs_.size());
        docs_.emplace_back();
    }
    Document& doc = docs_[slot];
    doc.id = id;
    doc.length = static_cast<std::uint32_t>(n_tokens);
    doc.terms.clear();
    for (const auto& [term, tf] : counts) doc.terms.push_back({term, tf});
    std::sort(doc.terms.begin(), doc.terms.end());
    for (const auto& [term, tf] : doc.terms) {
        if (term >= postings_.size()) {
            postings_.resize(term + 1);
            bounds_.resize(term + 1);
            blocks_.resize(term + 1);
        }
        if (postings_[term].empty()) ++vocabulary_size_;
        insert_posting(term, {slot, tf});
        TermBound& bound = bounds_[term];
        bound.max_tf = std::max(bound.max_tf, tf);
        bound.min_length = std::min(bound.min_length, doc.length);
    }
    slot_of_[id] = slot;
    total_length_ += n_tokens;
    std::lock_guard<std::mutex> lock(derived_mutex_.mutex);
    derived_valid_ = false;
}

bool BM25Index::remove(std::int64_t id) {
    auto it = slot_of_.find(id);
    if (it == slot_of_.end()) return false;
    const std::uint32_t slot = it->second;
    Document& doc = docs_[slot];
    for (const auto& [term, tf] : doc.terms) {
        erase_posting(term, slot);
        if (postings_[term].empty()) {
            --vocabulary_size_;
            bounds_[term] = TermBound{};
        }
    }
    total_length_ -= doc.length;
    doc = Document{};
    free_slots_.push_back(slot);
    slot_of_.erase(it);
    std::lock_guard<std::mutex> lock(derived_mutex_.mutex);
    derived_valid_ = false;
    return true;
}

void BM25Index::insert_posting(std::uint32_t term, Posting posting) {
    auto& list = postings_[term];
    if (list.empty() || list.back().slot < posting.slot) {  // a new slot: the usual case
        list.push_back(posting);
        rebuild_blocks(term, list.size() - 1);
        return;
    }
    auto pos = std::lower_bound(list.begin(), list.end(), posting.slot,
                                [](const Posting& p, std::uint32_t slot) { return p.slot < slot; });
    const std::size_t at = static_cast<std::size_t>(pos - list.begin());
    list.insert(pos, posting);  // a reused slot
    rebuild_blocks(term, at);
}

void BM25Index::erase_posting(std::uint32_t term, std::uint32_t slot) {
    auto& list = postings_[term];
    auto pos = std::lower_bound(list.begin(), list.end(), slot,
                                [](const Posting& p, std::uint32_t s) { return p.slot < s; });
    const std::size_t at = static_cast<std::size_t>(pos - list.begin());
    list.erase(pos);
    rebuild_blocks(term, at);
}

void BM25Index::rebuild_blocks(std::uint32_t term, std::size_t from_posting) {
    // The postings from here on moved by one (or one was appended): their blocks are redone.
    const auto& list = postings_[term];
    auto& blocks = blocks_[term];
    if (list.size() <= kBlock) {  // one block: a seek walks it (most terms are rare: no block kept)
        std::vector<Block>().swap(blocks);
        return;
    }
    const std::size_t count = (list.size() + kBlock - 1) / kBlock;
    const std::size_t first = blocks.empty() ? 0 : from_posting / kBlock;  // all, when the list just grew past one
    blocks.resize(count);
    for (std::size_t j = first; j < count; ++j)
        blocks[j].last_slot = list[std::min(list.size(), (j + 1) * kBlock) - 1].slot;
}

const BM25Index::Derived& BM25Index::derived() const {
    std::lock_guard<std::mutex> lock(derived_mutex_.mutex);
    if (derived_valid_) return derived_;
    const double n = static_cast<double>(slot_of_.size());
    const double avgdl = slot_of_.empty() ? 0.0 : static_cast<double>(total_length_) / n;
    derived_.length_norm.assign(docs_.size(), 0.0);
    for (std::size_t s = 0; s < docs_.size(); ++s) {
        if (docs_[s].id < 0) continue;
        // avgdl is 0 only when every document is empty; such documents never match anyway.
        const double relative = avgdl > 0 ? docs_[s].length / avgdl : 0.0;
        derived_.length_norm[s] = params_.k1 * (1.0 - params_.b + params_.b * relative);
    }
    double idf_sum = 0;
    for (const auto& list : postings_) {
        if (list.empty()) continue;
        const double df = static_cast<double>(list.size());
        idf_sum += std::log(n - df + 0.5) - std::log(df + 0.5);
    }
    derived_.mean_idf = vocabulary_size_ ? idf_sum / static_cast<double>(vocabulary_size_) : 0.0;
    derived_valid_ = true;
    return derived_;
}

double BM25Index::idf(std::uint32_t term, const Derived& d) const {
    if (term >= postings_.size() || postings_[term].empty()) return 0.0;
    const double n = static_cast<double>(slot_of_.size());
    const double df = static_cast<double>(postings_[term].size());
    const double value = std::log(n - df + 0.5) - std::log(df + 0.5);
    return value < 0 ? params_.epsilon * d.mean_idf : value;
}

SearchResult BM25Index::search(const std::vector<std::vector<std::uint32_t>>& queries, std::size_t k,
                               const std::vector<std::int64_t>* allowed, unsigned threads, bool exhaustive) const {
    if (k == 0) throw ArgumentError("k must be at least 1");
    const Derived& d = derived();
    const double avgdl = slot_of_.empty() ? 0.0 : static_cast<double>(total_length_) / slot_of_.size();
    return top_k(
        queries, k, allowed, threads, exhaustive,
        [&](std::size_t, std::uint32_t term, std::size_t, std::uint32_t times) { return idf(term, d) * times; },
        [&](std::uint32_t slot) { return d.length_norm[slot]; },
        [&](std::uint32_t length) {  // as derived() computes a slot's
            const double relative = avgdl > 0 ? length / avgdl : 0.0;
            return params_.k1 * (1.0 - params_.b + params_.b * relative);
        });
}

SearchResult BM25Index::search_with_statistics(const std::vector<std::vector<std::uint32_t>>& queries,
                                               const std::vector<std::vector<double>>& idfs, double avgdl,
                                               std::size_t k, const std::vector<std::int64_t>* allowed,
                                               unsigned threads, bool exhaustive) const {
    if (k == 0) throw ArgumentError("k must be at least 1");
    if (idfs.size() != queries.size())
        throw ArgumentError("need one idf list per query: " + std::to_string(idfs.size()) + " for " +
                            std::to_string(queries.size()) + " queries");
    for (std::size_t q = 0; q < queries.size(); ++q) {
        if (idfs[q].size() != queries[q].size())
            throw ArgumentError("query " + std::to_string(q) + " has " + std::to_string(queries[q].size()) +
                                " tokens but " + std::to_string(idfs[q].size()) + " idfs");
        for (double value : idfs[q])
            if (!std::isfinite(value)) throw ArgumentError("idfs must be finite");
    }
    if (!(avgdl > 0) || !std::isfinite(avgdl)) throw ArgumentError("avgdl must be positive and finite");
    const double k1 = params_.k1, b = params_.b;
    auto norm_of_length = [k1, b, avgdl](std::uint32_t length) { return k1 * (1.0 - b + b * (length / avgdl)); };
    return top_k(
        queries, k, allowed, threads, exhaustive,
        [&](std::size_t q, std::uint32_t, std::size_t position, std::uint32_t times) { return idfs[q][position] * times; },
        [&](std::uint32_t slot) { return norm_of_length(docs_[slot].length); }, norm_of_length);
}

namespace {

// A document is left out only when even its best possible score is below the k-th best by more
// than this share of it: scores are compared as floats, whose ties go to the smaller id, so a
// document within rounding of the k-th must stay in.
constexpr double kRelativeSlack = 1e-6;

bool cannot_reach(double best_possible, double threshold) {
    return best_possible < threshold - kRelativeSlack * std::abs(threshold) - 1e-12;
}

}  // namespace

template <class Weight, class Norm, class NormOfLength>
SearchResult BM25Index::top_k(const std::vector<std::vector<std::uint32_t>>& queries, std::size_t k,
                              const std::vector<std::int64_t>* allowed, unsigned threads, bool exhaustive,
                              Weight weight, Norm norm, NormOfLength norm_of_length) const {
    std::vector<char> allowed_slot;
    if (allowed) {
        allowed_slot.assign(docs_.size(), 0);
        for (std::int64_t id : *allowed) {
            auto it = slot_of_.find(id);
            if (it != slot_of_.end()) allowed_slot[it->second] = 1;
        }
    }
    const std::size_t nq = queries.size();
    const double k1_plus_1 = params_.k1 + 1.0;
    // One term's part of a slot's score: the same expression on every path, so sums in the same
    // order are the same to the last bit.
    auto part = [&](double w, double tf, std::uint32_t slot) { return w * (tf * k1_plus_1) / (tf + norm(slot)); };
    SearchResult result;
    result.distances.assign(nq * k, -std::numeric_limits<float>::infinity());
    result.ids.assign(nq * k, -1);
    parallel_ranges(nq, nq >= 16 ? threads : 1, [&](std::size_t begin, std::size_t end) {
        std::vector<double> scores;  // the exhaustive path's accumulators, made on first use
        std::vector<char> seen;
        std::vector<std::uint32_t> touched;
        for (std::size_t q = begin; q < end; ++q) {
            // A repeated query token counts once per repeat: weights of its positions are summed.
            std::unordered_map<std::uint32_t, std::uint32_t> multiplicity;
            for (std::uint32_t t : queries[q]) ++multiplicity[t];
            std::vector<QueryTerm> present;  // each distinct term the index holds, in query order
            bool bounded = !exhaustive;
            for (std::size_t i = 0; i < queries[q].size(); ++i) {
                const std::uint32_t t = queries[q][i];
                auto repeats = multiplicity.find(t);
                if (repeats->second == 0) continue;  // seen already
                const double w = weight(q, t, i, repeats->second);
                repeats->second = 0;
                if (t >= postings_.size() || postings_[t].empty()) continue;
                const TermBound& tb = bounds_[t];
                const double bound = w * (tb.max_tf * k1_plus_1) / (tb.max_tf + norm_of_length(tb.min_length));
                bounded = bounded && w > 0 && std::isfinite(bound);  // bounds need positive weights
                present.push_back({t, w, bound});
            }
            TopK heap(k);
            if (!bounded) {  // every posting of every term, summed in query order
                if (scores.empty()) {
                    scores.assign(docs_.size(), 0.0);
                    seen.assign(docs_.size(), 0);
                }
                for (const QueryTerm& t : present) {
                    for (const Posting& p : postings_[t.term]) {
                        if (!seen[p.slot]) {
                            seen[p.slot] = 1;
                            touched.push_back(p.slot);
                        }
                        scores[p.slot] += part(t.weight, p.tf, p.slot);
                    }
                }
                for (std::uint32_t slot : touched) {
                    if (!allowed || allowed_slot[slot]) heap.push(static_cast<float>(scores[slot]), docs_[slot].id);
                    scores[slot] = 0.0;
                    seen[slot] = 0;
                }
                touched.clear();
            } else {
                maxscore(present, heap, allowed ? &allowed_slot : nullptr, part);
            }
            const auto best = heap.sorted();
            for (std::size_t j = 0; j < best.size(); ++j) {
                result.distances[q * k + j] = best[j].first;
                result.ids[q * k + j] = best[j].second;
            }
        }
    });
    return result;
}

template <class Part>
void BM25Index::maxscore(const std::vector<QueryTerm>& present, TopK& heap, const std::vector<char>* allowed_slot,
                         Part part) const {
    struct Cursor {
        const QueryTerm* term;
        std::size_t index;  // the term's place in `present` (query order)
        const std::vector<Posting>* postings;
        const std::vector<Block>* blocks;
        std::size_t at = 0;  // the next posting
        bool done() const { return at >= postings->size(); }
        std::uint32_t slot() const { return (*postings)[at].slot; }
        // Moves to the first posting at or after `slot`, skipping whole blocks that end before it.
        void seek(std::uint32_t slot) {
            if (done() || (*postings)[at].slot >= slot) return;
            if (blocks->empty()) {  // a short list
                while (at < postings->size() && (*postings)[at].slot < slot) ++at;
                return;
            }
            std::size_t block = at / kBlock;
            while (block < blocks->size() && (*blocks)[block].last_slot < slot) ++block;
            if (block >= blocks->size()) {
                at = postings->size();
                return;
            }
            at = std::max(at, block * kBlock);
            while ((*postings)[at].slot < slot) ++at;  // the block ends at or after slot
        }
    };
    const std::size_t n = present.size();
    std::vector<Cursor> cursors;  // by bound, lowest first
    for (std::size_t i = 0; i < n; ++i)
        cursors.push_back({&present[i], i, &postings_[present[i].term], &blocks_[present[i].term]});
    std::sort(cursors.begin(), cursors.end(),
              [](const Cursor& a, const Cursor& b) { return a.term->bound < b.term->bound; });
    std::vector<double> below(n + 1, 0.0);  // below[i]: the bounds of cursors[0..i) summed
    for (std::size_t i = 0; i < n; ++i) below[i + 1] = below[i] + cursors[i].term->bound;
    std::vector<std::uint32_t> tf(n, 0);  // by query order, for the document being scored
    std::size_t essential = 0;            // cursors[0..essential) are not
    double threshold = -std::numeric_limits<double>::infinity();
    while (essential < n) {
        std::uint32_t slot = std::numeric_limits<std::uint32_t>::max();
        for (std::size_t i = essential; i < n; ++i)
            if (!cursors[i].done()) slot = std::min(slot, cursors[i].slot());
        if (slot == std::numeric_limits<std::uint32_t>::max()) break;  // every essential list is walked
        std::fill(tf.begin(), tf.end(), 0);
        double score = 0.0;  // summed in bound order: only to decide, never reported
        for (std::size_t i = essential; i < n; ++i) {
            Cursor& c = cursors[i];
            if (!c.done() && c.slot() == slot) {
                tf[c.index] = (*c.postings)[c.at].tf;
                score += part(c.term->weight, tf[c.index], slot);
                ++c.at;
            }
        }
        if (allowed_slot && !(*allowed_slot)[slot]) continue;
        // The non-essential terms, highest bound first, while the document can still enter.
        bool can_enter = !cannot_reach(score + below[essential], threshold);
        for (std::size_t i = essential; can_enter && i-- > 0;) {
            Cursor& c = cursors[i];
            c.seek(slot);
            if (!c.done() && c.slot() == slot) {
                tf[c.index] = (*c.postings)[c.at].tf;
                score += part(c.term->weight, tf[c.index], slot);
            }
            can_enter = !cannot_reach(score + below[i], threshold);
        }
        if (!can_enter) continue;
        double exact = 0.0;  // as the exhaustive scoring sums: query order
        for (std::size_t i = 0; i < n; ++i)
            if (tf[i]) exact += part(present[i].weight, tf[i], slot);
        heap.push(static_cast<float>(exact), docs_[slot].id);
        threshold = heap.threshold();
        // Terms whose bounds together cannot reach the k-th best are no longer walked.
        while (essential < n && cannot_reach(below[essential + 1], threshold)) ++essential;
    }
}

void BM25Index::document_frequencies(std::vector<std::uint32_t>& terms, std::vector<std::uint32_t>& dfs) const {
    terms.clear();
    dfs.clear();
    for (std::size_t t = 0; t < postings_.size(); ++t) {
        if (postings_[t].empty()) continue;
        terms.push_back(static_cast<std::uint32_t>(t));
        dfs.push_back(static_cast<std::uint32_t>(postings_[t].size()));
    }
}

std::vector<double> BM25Index::scores(const std::vector<std::uint32_t>& query, const std::vector<std::int64_t>& ids) const {
    const Derived& d = derived();
    std::vector<double> out(ids.size(), 0.0);
    const double k1_plus_1 = params_.k1 + 1.0;
    for (std::size_t i = 0; i < ids.size(); ++i) {
        auto it = slot_of_.find(ids[i]);
        if (it == slot_of_.end()) throw ArgumentError("id " + std::to_string(ids[i]) + " is not in the index");
        const Document& doc = docs_[it->second];
        for (std::uint32_t term : query) {
            auto pos = std::lower_bound(doc.terms.begin(), doc.terms.end(), TermCount{term, 0});
            if (pos == doc.terms.end() || pos->term != term) continue;
            const double tf = pos->tf;
            out[i] += idf(term, d) * (tf * k1_plus_1) / (tf + d.length_norm[it->second]);
        }
    }
    return out;
}

std::vector<unsigned char> BM25Index::serialize(std::uint64_t checkpoint) const {
    // Only the forward lists are stored; postings are rebuilt on load.
    Writer w;
    std::size_t payload = 32;
    for (const Document& doc : docs_)
        if (doc.id >= 0) payload += 16 + doc.terms.size() * sizeof(doc.terms[0]);
    w.reserve(payload);
    w.put<double>(params_.k1);
    w.put<double>(params_.b);
    w.put<double>(params_.epsilon);
    w.put<std::uint64_t>(slot_of_.size());
    for (const Document& doc : docs_) {
        if (doc.id < 0) continue;
        w.put<std::int64_t>(doc.id);
        w.put<std::uint32_t>(doc.length);
        w.put<std::uint32_t>(static_cast<std::uint32_t>(doc.terms.size()));
        w.put_array(doc.terms.data(), doc.terms.size());
    }
    return seal(IndexKind::BM25, checkpoint, std::move(w));
}

BM25Index BM25Index::deserialize(const Unsealed& sealed) {
    // Built in bulk rather than by add(): each document goes to the slot of its place in the
    // file, every term's postings are counted first and then filled in slot order (so each
    // list is allocated once, at its size), and the blocks are cut once at the end.
    if (sealed.kind != IndexKind::BM25) throw FormatError("Docent index holds another index kind, not a BM25 index");
    Reader r(sealed.payload, sealed.payload_size);
    BM25Params params;
    params.k1 = r.get<double>();
    params.b = r.get<double>();
    params.epsilon = r.get<double>();
    BM25Index index(params);
    const auto n = r.get<std::uint64_t>();
    if (n > r.remaining() / 16 || n > 0xFFFFFFFFu) throw FormatError("BM25 index is damaged: its document count runs past the end");
    index.docs_.resize(static_cast<std::size_t>(n));
    index.slot_of_.reserve(static_cast<std::size_t>(n));
    std::vector<std::uint32_t> df;  // by term
    for (std::uint32_t slot = 0; slot < n; ++slot) {
        Document& doc = index.docs_[slot];
        const auto id = r.get<std::int64_t>();
        const auto length = r.get<std::uint32_t>();
        const auto n_terms = r.get<std::uint32_t>();
        r.get_array(doc.terms, n_terms);
        std::uint64_t tf_total = 0;
        for (std::size_t i = 0; i < doc.terms.size(); ++i) {
            const auto [term, tf] = doc.terms[i];
            tf_total += tf;
            if (tf == 0 || term >= kMaxTokenId || tf_total > length || (i > 0 && doc.terms[i - 1].term >= term))
                throw FormatError("BM25 index is damaged: document " + std::to_string(id) + " has inconsistent term counts");
            if (term >= df.size()) df.resize(static_cast<std::size_t>(term) + 1, 0);
            ++df[term];
        }
        if (id < 0 || tf_total != length || !index.slot_of_.emplace(id, slot).second)
            throw FormatError("BM25 index is damaged: document " + std::to_string(id) + " is repeated or has a wrong length");
        doc.id = id;
        doc.length = length;
        index.total_length_ += length;
    }
    if (r.remaining() != 0) throw FormatError("BM25 index has unexpected trailing bytes");

    index.postings_.resize(df.size());
    index.bounds_.resize(df.size());
    index.blocks_.resize(df.size());
    for (std::size_t term = 0; term < df.size(); ++term) {
        index.postings_[term].reserve(df[term]);
        if (df[term]) ++index.vocabulary_size_;
    }
    for (std::uint32_t slot = 0; slot < n; ++slot) {
        const Document& doc = index.docs_[slot];
        for (const auto& [term, tf] : doc.terms) {
            index.postings_[term].push_back({slot, tf});
            TermBound& bound = index.bounds_[term];
            bound.max_tf = std::max(bound.max_tf, tf);
            bound.min_length = std::min(bound.min_length, doc.length);
        }
    }
    for (std::size_t term = 0; term < df.size(); ++term) index.rebuild_blocks(static_cast<std::uint32_t>(term), 0);
    return index;
}

}  // namespace docent
