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
        if (term >= postings_.size()) postings_.resize(term + 1);
        if (postings_[term].empty()) ++vocabulary_size_;
        postings_[term].push_back({slot, tf});
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
        auto& list = postings_[term];
        auto pos = std::find_if(list.begin(), list.end(), [slot](const Posting& p) { return p.slot == slot; });
        *pos = list.back();  // order within a posting list does not matter
        list.pop_back();
        if (list.empty()) --vocabulary_size_;
    }
    total_length_ -= doc.length;
    doc = Document{};
    free_slots_.push_back(slot);
    slot_of_.erase(it);
    std::lock_guard<std::mutex> lock(derived_mutex_.mutex);
    derived_valid_ = false;
    return true;
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
                               const std::vector<std::int64_t>* allowed, unsigned threads) const {
    if (k == 0) throw ArgumentError("k must be at least 1");
    const Derived& d = derived();
    return top_k(
        queries, k, allowed, threads,
        [&](std::size_t, std::uint32_t term, std::size_t, std::uint32_t times) { return idf(term, d) * times; },
        [&](std::uint32_t slot) { return d.length_norm[slot]; });
}

SearchResult BM25Index::search_with_statistics(const std::vector<std::vector<std::uint32_t>>& queries,
                                               const std::vector<std::vector<double>>& idfs, double avgdl,
                                               std::size_t k, const std::vector<std::int64_t>* allowed,
                                               unsigned threads) const {
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
    return top_k(
        queries, k, allowed, threads,
        [&](std::size_t q, std::uint32_t, std::size_t position, std::uint32_t times) { return idfs[q][position] * times; },
        [&](std::uint32_t slot) { return k1 * (1.0 - b + b * (docs_[slot].length / avgdl)); });
}

template <class Weight, class Norm>
SearchResult BM25Index::top_k(const std::vector<std::vector<std::uint32_t>>& queries, std::size_t k,
                              const std::vector<std::int64_t>* allowed, unsigned threads, Weight weight,
                              Norm norm) const {
    std::vector<char> allowed_slot;
    if (allowed) {
        allowed_slot.assign(docs_.size(), 0);
        for (std::int64_t id : *allowed) {
            auto it = slot_of_.find(id);
            if (it != slot_of_.end()) allowed_slot[it->second] = 1;
        }
    }
    const std::size_t nq = queries.size();
    SearchResult result;
    result.distances.assign(nq * k, -std::numeric_limits<float>::infinity());
    result.ids.assign(nq * k, -1);
    parallel_ranges(nq, nq >= 16 ? threads : 1, [&](std::size_t begin, std::size_t end) {
        std::vector<double> scores(docs_.size(), 0.0);
        std::vector<char> seen(docs_.size(), 0);
        std::vector<std::uint32_t> touched;
        for (std::size_t q = begin; q < end; ++q) {
            // A repeated query token counts once per repeat: weights of its positions are summed.
            std::unordered_map<std::uint32_t, double> term_weight;
            std::unordered_map<std::uint32_t, std::uint32_t> multiplicity;
            for (std::uint32_t t : queries[q]) ++multiplicity[t];
            std::vector<std::uint32_t> order;  // each distinct term once, in query order
            for (std::size_t i = 0; i < queries[q].size(); ++i) {
                const std::uint32_t t = queries[q][i];
                if (term_weight.count(t)) continue;
                term_weight[t] = weight(q, t, i, multiplicity[t]);
                order.push_back(t);
            }
            const double k1_plus_1 = params_.k1 + 1.0;
            for (std::uint32_t term : order) {
                if (term >= postings_.size() || postings_[term].empty()) continue;
                const double w = term_weight[term];
                for (const Posting& p : postings_[term]) {
                    if (!seen[p.slot]) {
                        seen[p.slot] = 1;
                        touched.push_back(p.slot);
                    }
                    const double tf = p.tf;
                    scores[p.slot] += w * (tf * k1_plus_1) / (tf + norm(p.slot));
                }
            }
            TopK heap(k);
            for (std::uint32_t slot : touched) {
                if (!allowed || allowed_slot[slot]) heap.push(static_cast<float>(scores[slot]), docs_[slot].id);
                scores[slot] = 0.0;
                seen[slot] = 0;
            }
            touched.clear();
            const auto best = heap.sorted();
            for (std::size_t j = 0; j < best.size(); ++j) {
                result.distances[q * k + j] = best[j].first;
                result.ids[q * k + j] = best[j].second;
            }
        }
    });
    return result;
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
    return seal(IndexKind::BM25, checkpoint, w.bytes());
}

BM25Index BM25Index::deserialize(const Unsealed& sealed) {
    if (sealed.kind != IndexKind::BM25) throw FormatError("Docent index holds another index kind, not a BM25 index");
    Reader r(sealed.payload, sealed.payload_size);
    BM25Params params;
    params.k1 = r.get<double>();
    params.b = r.get<double>();
    params.epsilon = r.get<double>();
    BM25Index index(params);
    const auto n = r.get<std::uint64_t>();
    std::vector<TermCount> terms;
    std::vector<std::uint32_t> tokens;
    for (std::uint64_t i = 0; i < n; ++i) {
        const auto id = r.get<std::int64_t>();
        const auto length = r.get<std::uint32_t>();
        const auto n_terms = r.get<std::uint32_t>();
        r.get_array(terms, n_terms);
        std::uint64_t tf_total = 0;
        tokens.clear();
        for (const auto& [term, tf] : terms) {
            tf_total += tf;
            if (tf == 0 || term >= kMaxTokenId || tf_total > length)
                throw FormatError("BM25 index is damaged: document " + std::to_string(id) + " has inconsistent term counts");
            tokens.insert(tokens.end(), tf, term);
        }
        if (tf_total != length || index.contains(id))
            throw FormatError("BM25 index is damaged: document " + std::to_string(id) + " is repeated or has a wrong length");
        index.add(id, tokens.data(), tokens.size());
    }
    if (r.remaining() != 0) throw FormatError("BM25 index has unexpected trailing bytes");
    return index;
}

}  // namespace docent
