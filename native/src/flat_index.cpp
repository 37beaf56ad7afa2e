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
constexpr std::size_t kPackedMinQueries = 4;

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

    const auto& kernels = active_kernels();
    const bool l2 = metric_ == Metric::L2;
    auto row_at = [&](std::size_t i) { return vectors_.data() + (filtered ? rows[i] : i) * dim_; };
    auto finish = [&](std::size_t q, TopK& heap) {
        const auto best = heap.sorted();
        for (std::size_t j = 0; j < best.size(); ++j) {
            result.distances[q * k + j] = l2 ? -best[j].first : best[j].first;
            result.ids[q * k + j] = best[j].second;
        }
    };

    // A few queries: one pass of dot products per query, no packing.
    if (nq < kPackedMinQueries) {
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
            finish(q, heap);
        }
        return result;
    }

    // A batch: each thread takes a range of queries and walks the rows in blocks. A block is
    // packed transposed into panels (see kernels.h), scored against 64 queries at a time with
    // the register-tiled kernel, and the scores streamed into per-query top-k heaps.
    // For L2, |q - x|^2 = |q|^2 + |x|^2 - 2<q, x>, and |q|^2 does not change the order.
    const std::size_t width = kernels.panel_width;
    const std::size_t panels_per_block = (kRowBlock + width - 1) / width;
    const unsigned use_threads = nq * n_rows * dim_ < (1u << 22) ? 1u : threads;
    parallel_ranges(nq, use_threads, [&](std::size_t q_begin, std::size_t q_end) {
        std::vector<float> packed(panels_per_block * width * dim_);
        std::vector<float> half_norms(kRowBlock);
        std::vector<float> scores(kQueryBlock * kRowBlock);
        std::vector<TopK> heaps(q_end - q_begin, TopK(k));
        std::vector<float> thresholds(q_end - q_begin, -std::numeric_limits<float>::infinity());
        for (std::size_t rb = 0; rb < n_rows; rb += kRowBlock) {
            const std::size_t re = std::min(n_rows, rb + kRowBlock), count = re - rb;
            const std::size_t panels = (count + width - 1) / width;
            for (std::size_t i = 0; i < panels * width; ++i) {
                float* column = packed.data() + (i / width) * width * dim_ + (i % width);
                if (i < count) {
                    const float* x = row_at(rb + i);
                    for (std::size_t d = 0; d < dim_; ++d) column[d * width] = x[d];
                    if (l2) half_norms[i] = 0.5f * kernels.inner_product(x, x, dim_);
                } else {
                    for (std::size_t d = 0; d < dim_; ++d) column[d * width] = 0;
                }
            }
            for (std::size_t qb = q_begin; qb < q_end; qb += kQueryBlock) {
                const std::size_t qe = std::min(q_end, qb + kQueryBlock);
                kernels.inner_product_packed(prepared.data() + qb * dim_, qe - qb, packed.data(), panels, dim_, scores.data(), kRowBlock);
                for (std::size_t q = qb; q < qe; ++q) {
                    TopK& heap = heaps[q - q_begin];
                    float threshold = thresholds[q - q_begin];
                    const float* row_scores = scores.data() + (q - qb) * kRowBlock;
                    for (std::size_t i = 0; i < count; ++i) {
                        const float s = l2 ? row_scores[i] - half_norms[i] : row_scores[i];
                        if (s >= threshold) {
                            heap.push(s, ids_[filtered ? rows[rb + i] : rb + i]);
                            threshold = heap.threshold();
                        }
                    }
                    thresholds[q - q_begin] = threshold;
                }
            }
        }
        for (std::size_t q = q_begin; q < q_end; ++q) {
            TopK& heap = heaps[q - q_begin];
            if (l2) {  // back from <q, x> - |x|^2 / 2 to the exact squared distance
                const float* query = prepared.data() + q * dim_;
                const float qn = kernels.inner_product(query, query, dim_);
                TopK exact(k);
                for (const auto& [s, id] : heap.sorted()) exact.push(-std::max(0.0f, qn - 2 * s), id);
                heap = std::move(exact);
            }
            finish(q, heap);
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
