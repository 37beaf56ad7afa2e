#include "ivf_index.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "errors.h"
#include "kmeans.h"
#include "parallel.h"
#include "simd_dispatch.h"
#include "topk.h"
#include "vector_codec.h"

namespace docent {
namespace {

constexpr std::size_t kQueriesPerPiece = 8;  // queries a search thread takes at a time
constexpr std::size_t kCodebook = 256;
constexpr std::size_t kTrainPerCentroid = 256;  // as Faiss: more points add time, not quality
constexpr std::size_t kIterations = 20;
}  // namespace

IvfIndex::IvfIndex(std::size_t dim, Metric metric, IvfParams params) : dim_(dim), metric_(metric), params_(params) {
    if (dim == 0 || dim > 65536) throw ArgumentError("dimension must be between 1 and 65536, got " + std::to_string(dim));
    if (params.nlist == 0 || params.nlist > (1u << 20)) throw ArgumentError("nlist must be between 1 and 2^20");
    if (params.pq_m) {
        if (dim % params.pq_m) throw ArgumentError("PQ" + std::to_string(params.pq_m) + " needs a dimension divisible by " +
                                                   std::to_string(params.pq_m) + ", got " + std::to_string(dim));
        sub_dim_ = dim / params.pq_m;
    }
    code_size_ = params.pq_m ? params.pq_m : dim * sizeof(float);
    lists_.resize(params.nlist);
}

std::size_t IvfIndex::memory_bytes() const {
    std::size_t bytes = (centroids_.size() + codebooks_.size()) * sizeof(float);
    for (const List& l : lists_) bytes += l.ids.capacity() * 8 + l.codes.capacity() + l.originals.capacity() * 4;
    return bytes + where_.size() * 40;
}

void IvfIndex::train(const float* vectors, std::size_t n, unsigned threads) {
    std::vector<float> x = prepare_vectors(vectors, n, dim_, metric_, "training vectors");
    if (n < params_.nlist)
        throw ArgumentError("training IVF" + std::to_string(params_.nlist) + " needs at least " + std::to_string(params_.nlist) +
                            " vectors, got " + std::to_string(n));
    if (params_.pq_m && n < kCodebook)
        throw ArgumentError("training PQ needs at least 256 vectors, got " + std::to_string(n));
    // A sample is enough, and keeps training time flat as collections grow.
    const std::size_t sample = std::min(n, params_.nlist * kTrainPerCentroid);
    if (sample < n) {
        std::vector<float> picked(sample * dim_);
        const double step = static_cast<double>(n) / static_cast<double>(sample);
        for (std::size_t i = 0; i < sample; ++i)
            std::copy_n(x.data() + static_cast<std::size_t>(i * step) * dim_, dim_, picked.data() + i * dim_);
        x.swap(picked);
    }
    KMeansResult coarse = kmeans(x.data(), sample, dim_, params_.nlist, kIterations, spherical(), params_.seed, threads);
    centroids_ = std::move(coarse.centroids);
    if (params_.pq_m) {
        // Codebooks for the residuals to the cell centroids, one sub-space at a time.
        std::vector<float> residual(sample * dim_);
        for (std::size_t i = 0; i < sample; ++i)
            for (std::size_t j = 0; j < dim_; ++j)
                residual[i * dim_ + j] = x[i * dim_ + j] - centroids_[coarse.assignment[i] * dim_ + j];
        codebooks_.assign(params_.pq_m * kCodebook * sub_dim_, 0);
        std::vector<float> sub(sample * sub_dim_);
        for (std::size_t m = 0; m < params_.pq_m; ++m) {
            for (std::size_t i = 0; i < sample; ++i)
                std::copy_n(residual.data() + i * dim_ + m * sub_dim_, sub_dim_, sub.data() + i * sub_dim_);
            KMeansResult book = kmeans(sub.data(), sample, sub_dim_, kCodebook, kIterations, false, params_.seed + m + 1, threads);
            std::copy(book.centroids.begin(), book.centroids.end(), codebooks_.begin() + static_cast<std::ptrdiff_t>(m * kCodebook * sub_dim_));
        }
    }
    trained_ = true;
}

void IvfIndex::encode(const float* v, std::size_t list, unsigned char* code) const {
    if (!params_.pq_m) {
        std::memcpy(code, v, dim_ * sizeof(float));
        return;
    }
    const Kernels& k = active_kernels();
    std::vector<float> residual(dim_);
    for (std::size_t j = 0; j < dim_; ++j) residual[j] = v[j] - centroids_[list * dim_ + j];
    for (std::size_t m = 0; m < params_.pq_m; ++m) {
        const float* r = residual.data() + m * sub_dim_;
        const float* book = codebooks_.data() + m * kCodebook * sub_dim_;
        float best = std::numeric_limits<float>::infinity();
        for (std::size_t c = 0; c < kCodebook; ++c) {
            const float d = k.l2_squared(r, book + c * sub_dim_, sub_dim_);
            if (d < best) {
                best = d;
                code[m] = static_cast<unsigned char>(c);
            }
        }
    }
}

void IvfIndex::decode(const unsigned char* code, std::size_t list, float* out) const {
    if (!params_.pq_m) {
        std::memcpy(out, code, dim_ * sizeof(float));
        return;
    }
    for (std::size_t m = 0; m < params_.pq_m; ++m) {
        const float* c = codebooks_.data() + (m * kCodebook + code[m]) * sub_dim_;
        for (std::size_t j = 0; j < sub_dim_; ++j) out[m * sub_dim_ + j] = centroids_[list * dim_ + m * sub_dim_ + j] + c[j];
    }
}

void IvfIndex::add(const float* vectors, const std::int64_t* ids, std::size_t n, unsigned threads) {
    for (std::size_t i = 0; i < n; ++i)
        if (ids[i] < 0) throw ArgumentError("ids must be non-negative (-1 marks 'no result'), got " + std::to_string(ids[i]));
    const std::vector<float> x = prepare_vectors(vectors, n, dim_, metric_, "vectors");
    if (!trained_) {
        if (n < params_.nlist || (params_.pq_m && n < kCodebook))
            throw ArgumentError("this IVF index is not trained: call train() with at least " +
                                std::to_string(std::max(params_.nlist, params_.pq_m ? kCodebook : 0)) +
                                " vectors first, or add at least that many at once");
        train(x.data(), n, threads);
    }
    std::vector<std::uint32_t> cell(n);
    assign_nearest(x.data(), n, centroids_.data(), params_.nlist, dim_, spherical(), cell.data(), nullptr, threads);
    std::vector<unsigned char> codes(n * code_size_);
    parallel_ranges(n, n < 256 ? 1u : threads, [&](std::size_t b, std::size_t e) {
        for (std::size_t i = b; i < e; ++i) encode(x.data() + i * dim_, cell[i], codes.data() + i * code_size_);
    });
    for (std::size_t i = 0; i < n; ++i) {
        remove(&ids[i], 1);  // re-adding an id replaces it
        List& list = lists_[cell[i]];
        where_[ids[i]] = {cell[i], static_cast<std::uint32_t>(list.ids.size())};
        list.ids.push_back(ids[i]);
        list.codes.insert(list.codes.end(), codes.begin() + static_cast<std::ptrdiff_t>(i * code_size_),
                          codes.begin() + static_cast<std::ptrdiff_t>((i + 1) * code_size_));
        if (params_.rerank) list.originals.insert(list.originals.end(), x.begin() + static_cast<std::ptrdiff_t>(i * dim_),
                                                  x.begin() + static_cast<std::ptrdiff_t>((i + 1) * dim_));
    }
}

std::size_t IvfIndex::remove(const std::int64_t* ids, std::size_t n) {
    std::size_t removed = 0;
    for (std::size_t i = 0; i < n; ++i) {
        auto it = where_.find(ids[i]);
        if (it == where_.end()) continue;
        const auto [l, pos] = it->second;
        where_.erase(it);
        List& list = lists_[l];
        const std::size_t last = list.ids.size() - 1;
        if (pos != last) {  // move the last entry into the hole
            list.ids[pos] = list.ids[last];
            std::memcpy(list.codes.data() + pos * code_size_, list.codes.data() + last * code_size_, code_size_);
            if (params_.rerank) std::memcpy(list.originals.data() + pos * dim_, list.originals.data() + last * dim_, dim_ * sizeof(float));
            where_[list.ids[pos]] = {l, pos};
        }
        list.ids.pop_back();
        list.codes.resize(last * code_size_);
        if (params_.rerank) list.originals.resize(last * dim_);
        ++removed;
    }
    return removed;
}

std::vector<float> IvfIndex::reconstruct(std::int64_t id) const {
    auto it = where_.find(id);
    if (it == where_.end()) throw ArgumentError("id " + std::to_string(id) + " is not in the index");
    const auto [l, pos] = it->second;
    std::vector<float> out(dim_);
    if (params_.rerank) std::memcpy(out.data(), lists_[l].originals.data() + pos * dim_, dim_ * sizeof(float));
    else decode(lists_[l].codes.data() + pos * code_size_, l, out.data());
    return out;
}

std::vector<std::int64_t> IvfIndex::ids() const {
    std::vector<std::int64_t> out;
    out.reserve(where_.size());
    for (const List& l : lists_) out.insert(out.end(), l.ids.begin(), l.ids.end());
    return out;
}

IvfIndex::Entries IvfIndex::entries() const {
    Entries out;
    out.lists.reserve(where_.size());
    out.ids.reserve(where_.size());
    for (std::size_t l = 0; l < lists_.size(); ++l) {
        const List& list = lists_[l];
        out.lists.insert(out.lists.end(), list.ids.size(), static_cast<std::uint32_t>(l));
        out.ids.insert(out.ids.end(), list.ids.begin(), list.ids.end());
        out.codes.insert(out.codes.end(), list.codes.begin(), list.codes.end());
        out.originals.insert(out.originals.end(), list.originals.begin(), list.originals.end());
    }
    return out;
}

void IvfIndex::set_trained(const float* centroids, const float* codebooks) {
    if (trained_) throw ArgumentError("this IVF index is already trained");
    const std::size_t n_centroids = params_.nlist * dim_, n_codebooks = params_.pq_m * kCodebook * sub_dim_;
    for (std::size_t i = 0; i < n_centroids; ++i)
        if (!std::isfinite(centroids[i])) throw ArgumentError("the centroids contain NaN or infinity");
    for (std::size_t i = 0; i < n_codebooks; ++i)
        if (!std::isfinite(codebooks[i])) throw ArgumentError("the codebooks contain NaN or infinity");
    centroids_.assign(centroids, centroids + n_centroids);
    codebooks_.assign(codebooks, codebooks + n_codebooks);
    trained_ = true;
}

void IvfIndex::add_encoded(const std::uint32_t* lists, const std::int64_t* ids, const unsigned char* codes, const float* originals,
                           std::size_t n) {
    if (!trained_) throw ArgumentError("encoded entries need a trained IVF index");
    if (params_.rerank && originals == nullptr) throw ArgumentError("an IVF index with rerank needs the originals of its entries");
    for (std::size_t i = 0; i < n; ++i) {
        if (ids[i] < 0) throw ArgumentError("ids must be non-negative (-1 marks 'no result'), got " + std::to_string(ids[i]));
        if (lists[i] >= params_.nlist)
            throw ArgumentError("cell " + std::to_string(lists[i]) + " does not exist: the index has " + std::to_string(params_.nlist));
    }
    if (!params_.pq_m)  // whole vectors: the codes are floats, and must be numbers
        for (std::size_t i = 0; i < n * dim_; ++i) {
            float v;
            std::memcpy(&v, codes + i * sizeof(float), sizeof(float));
            if (!std::isfinite(v)) throw ArgumentError("the vectors contain NaN or infinity");
        }
    for (std::size_t i = 0; i < n; ++i) {
        remove(&ids[i], 1);
        List& list = lists_[lists[i]];
        where_[ids[i]] = {lists[i], static_cast<std::uint32_t>(list.ids.size())};
        list.ids.push_back(ids[i]);
        list.codes.insert(list.codes.end(), codes + i * code_size_, codes + (i + 1) * code_size_);
        if (params_.rerank) list.originals.insert(list.originals.end(), originals + i * dim_, originals + (i + 1) * dim_);
    }
}

std::vector<std::uint32_t> IvfIndex::probe(const float* query, std::size_t nprobe) const {
    const Kernels& k = active_kernels();
    std::vector<std::pair<float, std::uint32_t>> cells(params_.nlist);
    for (std::size_t c = 0; c < params_.nlist; ++c) {
        const float* centroid = centroids_.data() + c * dim_;
        cells[c] = {spherical() ? -k.inner_product(query, centroid, dim_) : k.l2_squared(query, centroid, dim_), static_cast<std::uint32_t>(c)};
    }
    nprobe = std::min(nprobe, cells.size());
    std::partial_sort(cells.begin(), cells.begin() + static_cast<std::ptrdiff_t>(nprobe), cells.end());
    std::vector<std::uint32_t> out(nprobe);
    for (std::size_t i = 0; i < nprobe; ++i) out[i] = cells[i].second;
    return out;
}

// <q_m, codeword> for every sub-space m and codeword: for ip/cosine one table serves every cell.
void IvfIndex::fill_ip_table(const float* query, std::vector<float>& table) const {
    const Kernels& k = active_kernels();
    for (std::size_t m = 0; m < params_.pq_m; ++m)
        for (std::size_t c = 0; c < kCodebook; ++c)
            table[m * kCodebook + c] = k.inner_product(query + m * sub_dim_, codebooks_.data() + (m * kCodebook + c) * sub_dim_, sub_dim_);
}

// Distances (lower is better) of every entry of one list. For PQ, a lookup table per sub-space:
// ip: <q, c + r> = <q, c> + sum_m <q_m, r_m>; l2: |q - c - r|^2 = sum_m |(q - c)_m - r_m|^2.
template <typename Consider>
void IvfIndex::scan_list(const float* query, std::size_t l, float centroid_ip, std::vector<float>& table, Consider&& consider) const {
    const List& list = lists_[l];
    if (list.ids.empty()) return;
    const Kernels& k = active_kernels();
    const bool l2 = metric_ == Metric::L2;
    if (!params_.pq_m) {
        for (std::size_t i = 0; i < list.ids.size(); ++i) {
            const auto* v = reinterpret_cast<const float*>(list.codes.data() + i * code_size_);
            consider(l2 ? k.l2_squared(query, v, dim_) : -k.inner_product(query, v, dim_), i);
        }
        return;
    }
    const std::size_t M = params_.pq_m;
    if (l2) {  // the table depends on the cell: rebuild it
        std::vector<float> shifted(dim_);
        for (std::size_t j = 0; j < dim_; ++j) shifted[j] = query[j] - centroids_[l * dim_ + j];
        for (std::size_t m = 0; m < M; ++m)
            for (std::size_t c = 0; c < kCodebook; ++c)
                table[m * kCodebook + c] = k.l2_squared(shifted.data() + m * sub_dim_, codebooks_.data() + (m * kCodebook + c) * sub_dim_, sub_dim_);
    }
    const float base = l2 ? 0.0f : -centroid_ip;
    const float sign = l2 ? 1.0f : -1.0f;
    for (std::size_t i = 0; i < list.ids.size(); ++i) {
        const unsigned char* code = list.codes.data() + i * M;
        float s = 0;
        for (std::size_t m = 0; m < M; ++m) s += table[m * kCodebook + code[m]];
        consider(base + sign * s, i);
    }
}

SearchResult IvfIndex::search(const float* queries, std::size_t nq, std::size_t k, std::size_t nprobe,
                              const std::vector<std::int64_t>* allowed, unsigned threads) const {
    if (k == 0) throw ArgumentError("k must be at least 1");
    if (nprobe == 0) throw ArgumentError("nprobe must be at least 1");
    const std::vector<float> prepared = prepare_vectors(queries, nq, dim_, metric_, "queries");
    std::unordered_set<std::int64_t> allow;
    if (allowed) allow.insert(allowed->begin(), allowed->end());
    SearchResult result;
    result.distances.assign(nq * k, metric_ == Metric::L2 ? std::numeric_limits<float>::infinity() : -std::numeric_limits<float>::infinity());
    result.ids.assign(nq * k, -1);
    if (!trained_ || where_.empty()) return result;
    const bool rerank = params_.rerank && params_.pq_m;
    const std::size_t keep = rerank ? std::max<std::size_t>(4 * k, 32) : k;  // PQ candidates re-scored exactly
    parallel_dynamic(nq, nq < 2 ? 1u : threads, kQueriesPerPiece, [&](std::size_t begin, std::size_t end) {
        const Kernels& kernels = active_kernels();
        std::vector<float> table(params_.pq_m * kCodebook);
        for (std::size_t q = begin; q < end; ++q) {
            const float* query = prepared.data() + q * dim_;
            if (params_.pq_m && metric_ != Metric::L2) fill_ip_table(query, table);
            TopK best(keep);  // scores are negated distances (higher is better)
            for (std::uint32_t l : probe(query, nprobe)) {
                const float centroid_ip = kernels.inner_product(query, centroids_.data() + l * dim_, dim_);
                const List& list = lists_[l];
                scan_list(query, l, centroid_ip, table, [&](float d, std::size_t i) {
                    if (-d < best.threshold()) return;
                    if (allowed && !allow.count(list.ids[i])) return;
                    best.push(-d, list.ids[i]);
                });
            }
            auto ranked = best.sorted();
            if (rerank) {
                for (auto& [score, id] : ranked) {
                    const auto [l, pos] = where_.at(id);
                    const float* v = lists_[l].originals.data() + std::size_t{pos} * dim_;
                    score = metric_ == Metric::L2 ? -kernels.l2_squared(query, v, dim_) : kernels.inner_product(query, v, dim_);
                }
                std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
            }
            for (std::size_t j = 0; j < std::min(k, ranked.size()); ++j) {
                result.distances[q * k + j] = metric_ == Metric::L2 ? -ranked[j].first : ranked[j].first;
                result.ids[q * k + j] = ranked[j].second;
            }
        }
    });
    return result;
}

RangeResult IvfIndex::range_search(const float* queries, std::size_t nq, float radius, std::size_t nprobe, unsigned threads) const {
    if (!std::isfinite(radius)) throw ArgumentError("radius must be a finite number");
    if (nprobe == 0) throw ArgumentError("nprobe must be at least 1");
    const std::vector<float> prepared = prepare_vectors(queries, nq, dim_, metric_, "queries");
    const float limit = metric_ == Metric::L2 ? radius : -radius;
    std::vector<std::vector<std::pair<float, std::int64_t>>> per_query(nq);
    if (trained_)
        parallel_dynamic(nq, nq < 2 ? 1u : threads, kQueriesPerPiece, [&](std::size_t begin, std::size_t end) {
            const Kernels& kernels = active_kernels();
            std::vector<float> table(params_.pq_m * kCodebook);
            for (std::size_t q = begin; q < end; ++q) {
                const float* query = prepared.data() + q * dim_;
                if (params_.pq_m && metric_ != Metric::L2) fill_ip_table(query, table);
                for (std::uint32_t l : probe(query, nprobe)) {
                    const float centroid_ip = kernels.inner_product(query, centroids_.data() + l * dim_, dim_);
                    scan_list(query, l, centroid_ip, table, [&](float d, std::size_t i) {
                        if (d <= limit) per_query[q].emplace_back(d, lists_[l].ids[i]);
                    });
                }
                std::sort(per_query[q].begin(), per_query[q].end());
            }
        });
    return flatten_range(per_query, metric_);
}

std::vector<unsigned char> IvfIndex::serialize(std::uint64_t checkpoint) const {
    Writer w;
    w.put<std::uint32_t>(static_cast<std::uint32_t>(dim_));
    w.put<std::uint32_t>(static_cast<std::uint32_t>(metric_));
    w.put<std::uint32_t>(static_cast<std::uint32_t>(params_.nlist));
    w.put<std::uint32_t>(static_cast<std::uint32_t>(params_.pq_m));
    w.put<std::uint32_t>(params_.rerank ? 1u : 0u);
    w.put<std::uint32_t>(trained_ ? 1u : 0u);
    w.put<std::uint64_t>(params_.seed);
    w.put_array(centroids_.data(), centroids_.size());
    w.put_array(codebooks_.data(), codebooks_.size());
    for (const List& l : lists_) {
        w.put<std::uint64_t>(l.ids.size());
        w.put_array(l.ids.data(), l.ids.size());
        w.put_array(l.codes.data(), l.codes.size());
        w.put_array(l.originals.data(), l.originals.size());
    }
    return seal(IndexKind::IVF, checkpoint, std::move(w));
}

IvfIndex IvfIndex::deserialize(const Unsealed& sealed) {
    if (sealed.kind != IndexKind::IVF) throw FormatError("Docent index holds another index kind, not an IVF index");
    Reader r(sealed.payload, sealed.payload_size);
    const auto dim = r.get<std::uint32_t>();
    const auto metric = r.get<std::uint32_t>();
    const auto nlist = r.get<std::uint32_t>();
    const auto pq_m = r.get<std::uint32_t>();
    const auto rerank = r.get<std::uint32_t>();
    const auto trained = r.get<std::uint32_t>();
    const auto seed = r.get<std::uint64_t>();
    if (dim == 0 || dim > 65536 || metric > static_cast<std::uint32_t>(Metric::Cosine) || nlist == 0 || nlist > (1u << 20) ||
        (pq_m && dim % pq_m) || rerank > 1 || trained > 1)
        throw FormatError("IVF index has invalid parameters");
    IvfIndex index(dim, static_cast<Metric>(metric), IvfParams{nlist, pq_m, rerank == 1, seed});
    index.trained_ = trained == 1;
    if (index.trained_) {
        r.get_array(index.centroids_, std::uint64_t{nlist} * dim);
        if (pq_m) r.get_array(index.codebooks_, std::uint64_t{pq_m} * kCodebook * index.sub_dim_);
    }
    for (std::uint32_t l = 0; l < nlist; ++l) {
        List& list = index.lists_[l];
        const auto count = r.get<std::uint64_t>();
        if (count && !index.trained_) throw FormatError("IVF index is damaged: entries in an untrained index");
        r.get_array(list.ids, count);
        if (count > r.remaining() / index.code_size_) throw FormatError("IVF index is truncated: codes missing");
        r.get_array(list.codes, count * index.code_size_);
        if (rerank) {
            if (count > r.remaining() / (dim * sizeof(float))) throw FormatError("IVF index is truncated: originals missing");
            r.get_array(list.originals, count * dim);
        }
        for (std::size_t i = 0; i < list.ids.size(); ++i)
            if (list.ids[i] < 0 || !index.where_.emplace(list.ids[i], std::make_pair(l, static_cast<std::uint32_t>(i))).second)
                throw FormatError("IVF index is damaged: id " + std::to_string(list.ids[i]) + " is negative or repeated");
    }
    if (r.remaining() != 0) throw FormatError("IVF index has unexpected trailing bytes");
    const auto finite = [](const std::vector<float>& values) {
        return std::all_of(values.begin(), values.end(), [](float v) { return std::isfinite(v); });
    };
    bool ok = finite(index.centroids_) && finite(index.codebooks_);
    for (const List& list : index.lists_) ok = ok && finite(list.originals) &&
        (pq_m || std::all_of(reinterpret_cast<const float*>(list.codes.data()), reinterpret_cast<const float*>(list.codes.data() + list.codes.size()),
                             [](float v) { return std::isfinite(v); }));
    if (!ok) throw FormatError("IVF index is damaged: it holds NaN or infinite values");
    return index;
}

}  // namespace docent
