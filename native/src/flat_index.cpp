#include "flat_index.h"

#include <algorithm>
#include <cmath>

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

}  // namespace

FlatIndex::FlatIndex(std::size_t dim, Metric metric) : dim_(dim), metric_(metric) {
    if (dim == 0 || dim > 65536) throw ArgumentError("dimension must be between 1 and 65536, got " + std::to_string(dim));
}

void FlatIndex::add(const float* vectors, const std::int64_t* ids, std::size_t n) {
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

std::vector<float> FlatIndex::reconstruct(std::int64_t id) const {
    auto it = row_of_.find(id);
    if (it == row_of_.end()) throw ArgumentError("id " + std::to_string(id) + " is not in the index");
    const float* row = vectors_.data() + it->second * dim_;
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

    // Squared norms of the rows, for L2 through inner products: |q - x|^2 = |q|^2 + |x|^2 - 2<q, x>.
    const auto& kernels = active_kernels();
    std::vector<float> row_norms;
    if (metric_ == Metric::L2) {
        row_norms.resize(n_rows);
        for (std::size_t i = 0; i < n_rows; ++i) {
            const float* x = vectors_.data() + (filtered ? rows[i] : i) * dim_;
            row_norms[i] = kernels.inner_product(x, x, dim_);
        }
    }

    // Blocks of queries against blocks of rows, each block pair as one small matrix product
    // (register-blocked kernel), the scores then streamed into per-query top-k heaps.
    // Parallel over query blocks; a small batch runs on the calling thread.
    const unsigned use_threads = nq * n_rows * dim_ < (1u << 22) ? 1u : threads;
    const std::size_t query_block = std::min<std::size_t>(kQueryBlock, std::max<std::size_t>(1, (nq + use_threads - 1) / use_threads));
    const std::size_t n_query_blocks = (nq + query_block - 1) / query_block;
    parallel_ranges(n_query_blocks, use_threads, [&](std::size_t b_begin, std::size_t b_end) {
        std::vector<float> scores(query_block * kRowBlock);
        std::vector<float> gathered;
        for (std::size_t b = b_begin; b < b_end; ++b) {
            const std::size_t qb = b * query_block, qe = std::min(nq, qb + query_block);
            const float* block_queries = prepared.data() + qb * dim_;
            std::vector<float> query_norms(qe - qb);
            for (std::size_t q = qb; q < qe; ++q)
                query_norms[q - qb] = metric_ == Metric::L2 ? kernels.inner_product(prepared.data() + q * dim_, prepared.data() + q * dim_, dim_) : 0;
            std::vector<TopK> heaps(qe - qb, TopK(k));
            for (std::size_t rb = 0; rb < n_rows; rb += kRowBlock) {
                const std::size_t re = std::min(n_rows, rb + kRowBlock);
                const float* block_rows = vectors_.data() + rb * dim_;
                if (filtered) {  // gather the allowed rows so the kernel reads them contiguously
                    gathered.resize((re - rb) * dim_);
                    for (std::size_t i = rb; i < re; ++i)
                        std::copy_n(vectors_.data() + rows[i] * dim_, dim_, gathered.data() + (i - rb) * dim_);
                    block_rows = gathered.data();
                }
                kernels.inner_product_block(block_queries, qe - qb, block_rows, re - rb, dim_, scores.data(), kRowBlock);
                for (std::size_t q = qb; q < qe; ++q) {
                    TopK& heap = heaps[q - qb];
                    const float* row_scores = scores.data() + (q - qb) * kRowBlock;
                    for (std::size_t i = rb; i < re; ++i) {
                        float s = row_scores[i - rb];
                        if (metric_ == Metric::L2) s = -std::max(0.0f, query_norms[q - qb] + row_norms[i] - 2 * s);
                        if (s >= heap.threshold()) heap.push(s, ids_[filtered ? rows[i] : i]);
                    }
                }
            }
            for (std::size_t q = qb; q < qe; ++q) {
                const auto best = heaps[q - qb].sorted();
                for (std::size_t j = 0; j < best.size(); ++j) {
                    result.distances[q * k + j] = metric_ == Metric::L2 ? -best[j].first : best[j].first;
                    result.ids[q * k + j] = best[j].second;
                }
            }
        }
    });
    return result;
}

RangeResult FlatIndex::range_search(const float* queries, std::size_t nq, float radius, unsigned threads) const {
    if (!std::isfinite(radius)) throw ArgumentError("radius must be a finite number");
    const std::vector<float> prepared = prepare_vectors(queries, nq, dim_, metric_, "queries");
    std::vector<std::vector<std::pair<float, std::int64_t>>> per_query(nq);
    parallel_ranges(nq, nq * ids_.size() * dim_ < (1u << 22) ? 1u : threads, [&](std::size_t begin, std::size_t end) {
        for (std::size_t q = begin; q < end; ++q) {
            const float* query = prepared.data() + q * dim_;
            for (std::size_t row = 0; row < ids_.size(); ++row) {
                const float s = score(query, vectors_.data() + row * dim_);
                if (metric_ == Metric::L2 ? -s <= radius : s >= radius) per_query[q].emplace_back(-s, ids_[row]);
            }
            std::sort(per_query[q].begin(), per_query[q].end());
        }
    });
    RangeResult result;
    result.lims.push_back(0);
    for (const auto& hits : per_query) {
        for (const auto& [negated, id] : hits) {
            result.distances.push_back(metric_ == Metric::L2 ? negated : -negated);
            result.ids.push_back(id);
        }
        result.lims.push_back(result.ids.size());
    }
    return result;
}

std::vector<unsigned char> FlatIndex::serialize(std::uint64_t checkpoint) const {
    Writer w;
    w.put<std::uint32_t>(static_cast<std::uint32_t>(dim_));
    w.put<std::uint32_t>(static_cast<std::uint32_t>(metric_));
    w.put<std::uint64_t>(ids_.size());
    w.put_array(ids_.data(), ids_.size());
    w.put_array(vectors_.data(), vectors_.size());
    return seal(IndexKind::Flat, checkpoint, w.bytes());
}

FlatIndex FlatIndex::deserialize(const Unsealed& sealed) {
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
    r.get_array(index.vectors_, n * dim);
    if (r.remaining() != 0) throw FormatError("flat index has unexpected trailing bytes");
    index.row_of_.reserve(static_cast<std::size_t>(n));
    for (std::size_t row = 0; row < index.ids_.size(); ++row) {
        if (index.ids_[row] < 0 || !index.row_of_.emplace(index.ids_[row], row).second)
            throw FormatError("flat index is damaged: id " + std::to_string(index.ids_[row]) + " is negative or repeated");
    }
    return index;
}

}  // namespace docent
