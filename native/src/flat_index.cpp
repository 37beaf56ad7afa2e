#include "flat_index.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "parallel.h"
#include "simd_dispatch.h"
#include "topk.h"
#include "vector_codec.h"

namespace docent {
namespace {

// Rows scanned per block: 256 rows of 384 floats (384 KiB) stay in L2 while a block of up to
// 64 queries runs over them.
constexpr std::size_t kRowBlock = 256;
constexpr std::size_t kQueryBlock = 64;
constexpr std::size_t kPackedMinQueries = 4;
constexpr std::size_t kBf16MinDim = 32;

// Writes a query's best hits into its row of the result (scores are higher-is-better inside;
// for L2 the public distance is the squared distance).
void store_top(TopK& heap, Metric metric, std::size_t q, std::size_t k, SearchResult& result) {
    const auto best = heap.sorted();
    for (std::size_t j = 0; j < best.size(); ++j) {
        result.distances[q * k + j] = metric == Metric::L2 ? -best[j].first : best[j].first;
        result.ids[q * k + j] = best[j].second;
    }
}

}  // namespace

FlatIndex::FlatIndex(std::size_t dim, Metric metric) : dim_(dim), metric_(metric) {
    if (dim == 0 || dim > 65536) throw ArgumentError("dimension must be between 1 and 65536, got " + std::to_string(dim));
}

void FlatIndex::add(const float* vectors, const std::int64_t* ids, std::size_t n) {
    check_writable();
    check_finite(vectors, n * dim_, "vectors");
    std::vector<float> staged(vectors, vectors + n * dim_);
    if (metric_ == Metric::Cosine) normalize_rows(staged.data(), n, dim_, "vectors");
    for (std::size_t i = 0; i < n; ++i) {
        if (ids[i] < 0) throw ArgumentError("ids must be non-negative (-1 marks 'no result'), got " + std::to_string(ids[i]));
    }
    vectors_.reserve(vectors_.size() + n * dim_);
    for (std::size_t i = 0; i < n; ++i) {
        const float* v = staged.data() + i * dim_;
        auto [it, inserted] = row_of_.try_emplace(ids[i], ids_.size());
        if (inserted) {
            ids_.push_back(ids[i]);
            vectors_.insert(vectors_.end(), v, v + dim_);
        } else {
            std::copy(v, v + dim_, vectors_.begin() + static_cast<std::ptrdiff_t>(it->second * dim_));
        }
    }
}

std::size_t FlatIndex::remove(const std::int64_t* ids, std::size_t n) {
    check_writable();
    std::size_t removed = 0;
    for (std::size_t i = 0; i < n; ++i) {
        auto it = row_of_.find(ids[i]);
        if (it == row_of_.end()) continue;
        const std::size_t row = it->second, last = ids_.size() - 1;
        row_of_.erase(it);
        if (row != last) {
            std::copy(vectors_.begin() + static_cast<std::ptrdiff_t>(last * dim_), vectors_.begin() + static_cast<std::ptrdiff_t>((last + 1) * dim_),
                      vectors_.begin() + static_cast<std::ptrdiff_t>(row * dim_));
            ids_[row] = ids_[last];
            row_of_[ids_[row]] = row;
        }
        ids_.pop_back();
        vectors_.resize(ids_.size() * dim_);
        ++removed;
    }
    return removed;
}

void FlatIndex::check_writable() const {
    if (mapping_) throw ArgumentError("this index was loaded read-only (memory-mapped); load it without mmap to change it");
}

std::vector<float> FlatIndex::reconstruct(std::int64_t id) const {
    auto it = row_of_.find(id);
    if (it == row_of_.end()) throw ArgumentError("id " + std::to_string(id) + " is not in the index");
    const float* row = row_data() + it->second * dim_;
    return {row, row + dim_};
}

float FlatIndex::score(const float* query, const float* row) const {
    const auto& k = active_kernels();
    if (metric_ == Metric::L2) return -k.l2_squared(query, row, dim_);
    return k.inner_product(query, row, dim_);
}

SearchResult FlatIndex::search(const float* queries, std::size_t nq, std::size_t k,
                               const std::vector<std::int64_t>* allowed, unsigned threads) const {
    if (k == 0) throw ArgumentError("k must be at least 1");
    check_finite(queries, nq * dim_, "queries");
    std::vector<float> prepared(queries, queries + nq * dim_);
    if (metric_ == Metric::Cosine) normalize_rows(prepared.data(), nq, dim_, "queries");

    // With a filter, only the allowed rows are visited: a selective filter costs little.
    std::vector<std::size_t> rows;
    const bool filtered = allowed != nullptr;
    if (filtered) {
        rows.reserve(allowed->size());
        for (std::int64_t id : *allowed) {
            auto it = row_of_.find(id);
            if (it != row_of_.end()) rows.push_back(it->second);
        }
        std::sort(rows.begin(), rows.end());
        rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
    }
    const std::size_t n_rows = filtered ? rows.size() : ids_.size();

    SearchResult result;
    result.distances.assign(nq * k, metric_ == Metric::L2 ? std::numeric_limits<float>::infinity()
                                                          : -std::numeric_limits<float>::infinity());
    result.ids.assign(nq * k, -1);

    // A few queries: one pass of exact distances per query, no packing.
    if (nq < kPackedMinQueries) {
        auto row_at = [&](std::size_t i) { return row_data() + (filtered ? rows[i] : i) * dim_; };
        for (std::size_t q = 0; q < nq; ++q) {
            const float* query = prepared.data() + q * dim_;
            TopK heap(k);
            float threshold = heap.threshold();
            for (std::size_t i = 0; i < n_rows; ++i) {
                const float s = score(query, row_at(i));
                if (s >= threshold) {
                    heap.push(s, ids_[filtered ? rows[i] : i]);
                    threshold = heap.threshold();
                }
            }
            store_top(heap, metric_, q, k, result);
        }
        return result;
    }

    const auto bf16 = dim_ >= kBf16MinDim ? bf16_inner_product_packed() : nullptr;
    search_batched(bf16, prepared.data(), nq, k, filtered ? &rows : nullptr, threads, result);
    return result;
}

namespace {
std::uint32_t bf16_bits(float f) {  // round to nearest even (values are finite here)
    std::uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}
std::uint32_t bf16_pair(const float* v, std::size_t d, std::size_t dim) {
    return bf16_bits(v[d]) | (d + 1 < dim ? bf16_bits(v[d + 1]) << 16 : 0u);
}
}  // namespace

// Exact batched search. Each thread takes a range of queries and walks the rows in blocks;
// a block is packed transposed into panels (see kernels.h) and scored against up to 64
// queries at a time by a register-tiled kernel: fp32, or bf16 (AVX-512 BF16, twice the work
// per instruction) when `bf16` is set. L2 goes through inner products
// (|q - x|^2 = |q|^2 - 2(<q, x> - |x|^2 / 2)), which loses precision when rows are long and close.
//
// So these scores are only used to choose candidates. Their error is bounded: rounding the
// inputs to bf16 (u = 2^-8) moves a product q_i x_i by at most (2u + u^2)|q_i x_i|, and summing
// dim terms in fp32 adds at most about dim * 2^-24 of sum |q_i x_i| <= |q| |x|. With e the bound
// for the largest row, a true top-k row scores at least A_k - 2e (A_k: the k-th best score seen),
// so every row above that line is kept and re-scored exactly in fp32 with the direct kernels.
// The result is the exact top k, as the one-query path finds it.
void FlatIndex::search_batched(InnerProductPackedBf16Fn bf16, const float* queries, std::size_t nq, std::size_t k,
                               const std::vector<std::size_t>* rows, unsigned threads, SearchResult& result) const {
    const auto& kernels = active_kernels();
    const bool l2 = metric_ == Metric::L2;
    const std::size_t n_rows = rows ? rows->size() : ids_.size();
    auto row_at = [&](std::size_t i) { return row_data() + (rows ? (*rows)[i] : i) * dim_; };
    auto id_at = [&](std::size_t i) { return ids_[rows ? (*rows)[i] : i]; };
    float longest = 0;
    for (std::size_t i = 0; i < n_rows; ++i) longest = std::max(longest, kernels.inner_product(row_at(i), row_at(i), dim_));
    longest = std::sqrt(longest);
    const double summing = static_cast<double>(dim_ + 8) / 16777216.0 * 2;  // fp32 sums, with slack
    const double rounding = bf16 ? 2.0 / 256 + 1.0 / 65536 : 0.0;
    // words per packed row: bf16 pairs, or floats
    const std::size_t words = bf16 ? (dim_ + 1) / 2 : dim_;
    const std::size_t width = bf16 ? 16 : kernels.panel_width;
    const std::size_t panels_per_block = (kRowBlock + width - 1) / width;
    const unsigned use_threads = nq * n_rows * dim_ < (1u << 22) ? 1u : threads;
    parallel_ranges(nq, use_threads, [&](std::size_t q_begin, std::size_t q_end) {
        const std::size_t span = q_end - q_begin;
        std::vector<std::uint32_t> query_words(bf16 ? span * words : 0), packed_words(bf16 ? panels_per_block * words * width : 0);
        std::vector<float> packed_floats(bf16 ? 0 : panels_per_block * words * width);
        std::vector<float> half_norms(kRowBlock), scores(kQueryBlock * kRowBlock), band(span);
        std::vector<float> cut(span, -std::numeric_limits<float>::infinity());
        std::vector<TopK> approx(span, TopK(k));
        std::vector<std::vector<std::pair<float, std::uint32_t>>> candidates(span);
        for (std::size_t q = q_begin; q < q_end; ++q) {
            const float* query = queries + q * dim_;
            if (bf16)
                for (std::size_t j = 0; j < words; ++j) query_words[(q - q_begin) * words + j] = bf16_pair(query, 2 * j, dim_);
            const double qn = std::sqrt(kernels.inner_product(query, query, dim_));
            const double e = (rounding + summing) * qn * longest + (l2 ? summing * longest * longest : 0.0);
            band[q - q_begin] = static_cast<float>(2.0 * 1.05 * e);
        }
        for (std::size_t rb = 0; rb < n_rows; rb += kRowBlock) {
            const std::size_t count = std::min(n_rows - rb, kRowBlock), panels = (count + width - 1) / width;
            for (std::size_t i = 0; i < panels * width; ++i) {
                const std::size_t at = (i / width) * words * width + (i % width);
                const float* x = i < count ? row_at(rb + i) : nullptr;
                for (std::size_t j = 0; j < words; ++j) {
                    if (bf16) packed_words[at + j * width] = x ? bf16_pair(x, 2 * j, dim_) : 0u;
                    else packed_floats[at + j * width] = x ? x[j] : 0.0f;
                }
                if (x && l2) half_norms[i] = 0.5f * kernels.inner_product(x, x, dim_);
            }
            for (std::size_t qb = q_begin; qb < q_end; qb += kQueryBlock) {
                const std::size_t qe = std::min(q_end, qb + kQueryBlock);
                if (bf16)
                    bf16(query_words.data() + (qb - q_begin) * words, qe - qb, packed_words.data(), panels, words, scores.data(), kRowBlock);
                else
                    kernels.inner_product_packed(queries + qb * dim_, qe - qb, packed_floats.data(), panels, dim_, scores.data(), kRowBlock);
                for (std::size_t q = qb; q < qe; ++q) {
                    const std::size_t t = q - q_begin;
                    const float* row_scores = scores.data() + (q - qb) * kRowBlock;
                    float line = cut[t];
                    auto& kept = candidates[t];
                    for (std::size_t i = 0; i < count; ++i) {
                        const float s = l2 ? row_scores[i] - half_norms[i] : row_scores[i];
                        if (s < line) continue;
                        kept.emplace_back(s, static_cast<std::uint32_t>(rb + i));
                        approx[t].push(s, static_cast<std::int64_t>(rb + i));
                        line = approx[t].threshold() - band[t];
                    }
                    cut[t] = line;
                    if (kept.size() > 8 * k + 1024)  // drop what fell below the line since
                        kept.erase(std::remove_if(kept.begin(), kept.end(), [line](const auto& c) { return c.first < line; }), kept.end());
                }
            }
        }
        for (std::size_t q = q_begin; q < q_end; ++q) {
            const std::size_t t = q - q_begin;
            TopK exact(k);
            for (const auto& [s, i] : candidates[t])
                if (s >= cut[t]) exact.push(score(queries + q * dim_, row_at(i)), id_at(i));
            store_top(exact, metric_, q, k, result);
        }
    });
}

RangeResult FlatIndex::range_search(const float* queries, std::size_t nq, float radius, unsigned threads) const {
    if (!std::isfinite(radius)) throw ArgumentError("radius must be a finite number");
    const std::vector<float> prepared = prepare_vectors(queries, nq, dim_, metric_, "queries");
    std::vector<std::vector<std::pair<float, std::int64_t>>> per_query(nq);
    parallel_ranges(nq, nq * ids_.size() * dim_ < (1u << 22) ? 1u : threads, [&](std::size_t begin, std::size_t end) {
        for (std::size_t q = begin; q < end; ++q) {
            const float* query = prepared.data() + q * dim_;
            for (std::size_t row = 0; row < ids_.size(); ++row) {
                const float s = score(query, row_data() + row * dim_);
                if (metric_ == Metric::L2 ? -s <= radius : s >= radius) per_query[q].emplace_back(-s, ids_[row]);  // -s: lower is better
            }
            std::sort(per_query[q].begin(), per_query[q].end());
        }
    });
    return flatten_range(per_query, metric_);
}

std::vector<unsigned char> FlatIndex::serialize(std::uint64_t checkpoint) const {
    Writer w;
    w.reserve(16 + ids_.size() * (sizeof(ids_[0]) + dim_ * sizeof(float)));
    w.put<std::uint32_t>(static_cast<std::uint32_t>(dim_));
    w.put<std::uint32_t>(static_cast<std::uint32_t>(metric_));
    w.put<std::uint64_t>(ids_.size());
    w.put_array(ids_.data(), ids_.size());
    w.put_array(row_data(), ids_.size() * dim_);
    return seal(IndexKind::Flat, checkpoint, std::move(w));
}

FlatIndex FlatIndex::deserialize(const Unsealed& sealed, std::shared_ptr<const void> mapping) {
    if (sealed.kind != IndexKind::Flat) throw FormatError("Docent index holds another index kind, not a flat index");
    Reader r(sealed.payload, sealed.payload_size);
    const auto dim = r.get<std::uint32_t>();
    const auto metric = r.get<std::uint32_t>();
    const auto n = r.get<std::uint64_t>();
    if (dim == 0 || dim > 65536) throw FormatError("flat index has an invalid dimension " + std::to_string(dim));
    if (metric > static_cast<std::uint32_t>(Metric::Cosine)) throw FormatError("flat index has an unknown metric code " + std::to_string(metric));
    FlatIndex index(dim, static_cast<Metric>(metric));
    r.get_array(index.ids_, n);
    if (n > r.remaining() / (sizeof(float) * dim)) throw FormatError("flat index is truncated: fewer vectors than ids");
    const unsigned char* vectors = r.take(static_cast<std::size_t>(n * dim * sizeof(float)));
    if (mapping && reinterpret_cast<std::uintptr_t>(vectors) % alignof(float) == 0) {
        index.mapping_ = std::move(mapping);  // searched in place, read-only
        index.mapped_ = reinterpret_cast<const float*>(vectors);
    } else {
        index.vectors_.resize(static_cast<std::size_t>(n * dim));
        std::memcpy(index.vectors_.data(), vectors, index.vectors_.size() * sizeof(float));
    }
    if (r.remaining() != 0) throw FormatError("flat index has unexpected trailing bytes");
    index.row_of_.reserve(static_cast<std::size_t>(n));
    for (std::size_t row = 0; row < index.ids_.size(); ++row) {
        if (index.ids_[row] < 0 || !index.row_of_.emplace(index.ids_[row], row).second)
            throw FormatError("flat index is damaged: id " + std::to_string(index.ids_[row]) + " is negative or repeated");
    }
    return index;
}

}  // namespace docent
