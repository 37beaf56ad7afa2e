// C++ tests of the engine core, built and run under ASan/UBSan by `make sanitize`.
// They check results against naive loops and feed every truncation and many corruptions
// of serialized indexes to the loaders, which must answer with FormatError and nothing worse.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "bm25_index.h"
#include "check.h"
#include "flat_index.h"
#include "hnsw_index.h"
#include "ivf_index.h"
#include "kmeans.h"
#include "simd_dispatch.h"

using namespace docent;

static std::vector<float> random_vectors(std::size_t n, std::size_t dim, std::mt19937& rng) {
    std::normal_distribution<float> normal;
    std::vector<float> v(n * dim);
    for (auto& x : v) x = normal(rng);
    return v;
}

static void test_kernels_agree() {
    std::mt19937 rng(1);
    for (std::size_t dim = 1; dim <= 70; ++dim) {
        auto a = random_vectors(1, dim, rng), b = random_vectors(1, dim, rng);
        const float ip = kernels_generic::table.inner_product(a.data(), b.data(), dim);
        const float l2 = kernels_generic::table.l2_squared(a.data(), b.data(), dim);
        for (const auto& level : supported_simd_levels()) {
            set_simd_level(level);
            CHECK(std::fabs(active_kernels().inner_product(a.data(), b.data(), dim) - ip) < 1e-4f * (1 + std::fabs(ip)));
            CHECK(std::fabs(active_kernels().l2_squared(a.data(), b.data(), dim) - l2) < 1e-4f * (1 + l2));
        }
    }
    set_simd_level(supported_simd_levels().back());
}

static void test_flat_matches_naive() {
    std::mt19937 rng(2);
    const std::size_t n = 500, dim = 37, nq = 20, k = 7;
    auto data = random_vectors(n, dim, rng), queries = random_vectors(nq, dim, rng);
    std::vector<std::int64_t> ids(n);
    for (std::size_t i = 0; i < n; ++i) ids[i] = static_cast<std::int64_t>(i * 10 + 3);
    FlatIndex index(dim, Metric::L2);
    index.add(data.data(), ids.data(), n);
    const auto result = index.search(queries.data(), nq, k, nullptr, 2);
    for (std::size_t q = 0; q < nq; ++q) {
        std::vector<std::pair<float, std::int64_t>> all;
        for (std::size_t i = 0; i < n; ++i) {
            float d = 0;
            for (std::size_t j = 0; j < dim; ++j) d += (queries[q * dim + j] - data[i * dim + j]) * (queries[q * dim + j] - data[i * dim + j]);
            all.emplace_back(d, ids[i]);
        }
        std::sort(all.begin(), all.end());
        for (std::size_t j = 0; j < k; ++j) CHECK(result.ids[q * k + j] == all[j].second);
    }
    // Removing the best hit of query 0 promotes the second.
    const std::int64_t best = result.ids[0], second = result.ids[1];
    CHECK(index.remove(&best, 1) == 1);
    CHECK(index.search(queries.data(), 1, k, nullptr, 1).ids[0] == second);
    // A filter keeps only allowed ids, and asks for more than exist.
    std::vector<std::int64_t> allowed{ids[5], ids[9], 99999};
    const auto filtered = index.search(queries.data(), 1, 5, &allowed, 1);
    CHECK((filtered.ids[0] == ids[5] || filtered.ids[0] == ids[9]));
    CHECK(filtered.ids[2] == -1);
}

static void test_flat_rejects_bad_input() {
    FlatIndex index(4, Metric::Cosine);
    const float bad[4] = {1, NAN, 0, 0};
    const float zero[4] = {0, 0, 0, 0};
    const std::int64_t id = 1;
    bool threw = false;
    try { index.add(bad, &id, 1); } catch (const ArgumentError&) { threw = true; }
    CHECK(threw);
    threw = false;
    try { index.add(zero, &id, 1); } catch (const ArgumentError&) { threw = true; }
    CHECK(threw);
    CHECK(index.size() == 0);
}

static BM25Index small_bm25(std::mt19937& rng, std::size_t docs) {
    BM25Index index;
    std::uniform_int_distribution<std::uint32_t> token(0, 40), length(0, 30);
    for (std::size_t d = 0; d < docs; ++d) {
        std::vector<std::uint32_t> tokens(length(rng));
        for (auto& t : tokens) t = token(rng);
        index.add(static_cast<std::int64_t>(d), tokens.data(), tokens.size());
    }
    return index;
}

static void test_bm25_remove_equals_rebuild() {
    std::mt19937 rng(3);
    BM25Index index;
    std::vector<std::vector<std::uint32_t>> docs;
    std::uniform_int_distribution<std::uint32_t> token(0, 40), length(1, 30);
    for (int d = 0; d < 60; ++d) {
        std::vector<std::uint32_t> tokens(length(rng));
        for (auto& t : tokens) t = token(rng);
        docs.push_back(tokens);
        index.add(d, tokens.data(), tokens.size());
    }
    BM25Index rebuilt;
    for (int d = 0; d < 60; ++d) {
        if (d % 3 == 0) index.remove(d);
        else rebuilt.add(d, docs[d].data(), docs[d].size());
    }
    const std::vector<std::uint32_t> query{1, 2, 3, 3, 40};
    const auto a = index.search({query}, 10, nullptr, 1), b = rebuilt.search({query}, 10, nullptr, 1);
    CHECK(a.ids == b.ids);
    for (std::size_t i = 0; i < a.distances.size(); ++i) CHECK(std::fabs(a.distances[i] - b.distances[i]) < 1e-5f);
}

// The pruned search (MaxScore) gives the exhaustive top k exactly: ids, float scores, order;
// also after removals and re-adds (slots reused: postings inserted mid-list) and with a filter.
static void test_bm25_pruned_equals_exhaustive() {
    std::mt19937 rng(11);
    std::geometric_distribution<std::uint32_t> common(0.08);  // a few terms in most documents
    std::uniform_int_distribution<std::uint32_t> length(1, 80), query_length(1, 7);
    BM25Index index;
    auto document = [&] {
        std::vector<std::uint32_t> tokens(length(rng));
        for (auto& t : tokens) t = common(rng) % 500;
        return tokens;
    };
    for (int d = 0; d < 3000; ++d) {
        const auto tokens = document();
        index.add(d, tokens.data(), tokens.size());
    }
    std::vector<std::vector<std::uint32_t>> queries;
    for (int q = 0; q < 80; ++q) {
        std::vector<std::uint32_t> query(query_length(rng));
        for (auto& t : query) t = common(rng) % 520;  // some terms no document holds
        queries.push_back(query);
    }
    auto same = [&](std::size_t k, const std::vector<std::int64_t>* allowed) {
        const auto pruned = index.search(queries, k, allowed, 2), exhaustive = index.search(queries, k, allowed, 2, true);
        CHECK(pruned.ids == exhaustive.ids);
        CHECK(pruned.distances == exhaustive.distances);
    };
    for (std::size_t k : {1, 10, 100}) same(k, nullptr);
    for (int d = 0; d < 3000; d += 4) index.remove(d);
    for (int d = 3000; d < 3400; ++d) {
        const auto tokens = document();
        index.add(d, tokens.data(), tokens.size());
    }
    same(10, nullptr);
    std::vector<std::int64_t> allowed;
    for (int d = 0; d < 3400; d += 3) allowed.push_back(d);
    same(10, &allowed);
}

// An index searched with its own statistics given from outside (what a shard of a larger
// collection receives) ranks and scores as its own search does; bad statistics are refused.
static void test_bm25_search_with_statistics() {
    std::mt19937 rng(5);
    const BM25Index index = small_bm25(rng, 80);
    std::vector<std::uint32_t> terms, dfs;
    index.document_frequencies(terms, dfs);
    const double n = static_cast<double>(index.size());
    const double avgdl = static_cast<double>(index.total_length()) / n;
    std::vector<double> idf_of(64, 0.0);
    double idf_sum = 0;
    for (std::size_t i = 0; i < terms.size(); ++i) {
        idf_of[terms[i]] = std::log(n - dfs[i] + 0.5) - std::log(dfs[i] + 0.5);
        idf_sum += idf_of[terms[i]];
    }
    const double mean_idf = idf_sum / static_cast<double>(terms.size());
    const std::vector<std::uint32_t> query{1, 2, 3, 3, 40};
    std::vector<double> idfs;
    for (std::uint32_t t : query) idfs.push_back(idf_of[t] < 0 ? 0.25 * mean_idf : idf_of[t]);
    const auto own = index.search({query}, 10, nullptr, 1);
    const auto given = index.search_with_statistics({query}, {idfs}, avgdl, 10, nullptr, 1);
    CHECK(own.ids == given.ids);
    for (std::size_t i = 0; i < own.distances.size(); ++i)
        CHECK(std::fabs(own.distances[i] - given.distances[i]) < 1e-5f);
    bool refused = false;
    try { index.search_with_statistics({query}, {{1.0}}, avgdl, 10, nullptr, 1); } catch (const ArgumentError&) { refused = true; }
    CHECK(refused);
    refused = false;
    try { index.search_with_statistics({query}, {idfs}, 0.0, 10, nullptr, 1); } catch (const ArgumentError&) { refused = true; }
    CHECK(refused);
}

template <typename Load>
static void fuzz_loader(const std::vector<unsigned char>& blob, Load load) {
    // Every truncation must be refused.
    for (std::size_t len = 0; len < blob.size(); len += (len < 64 ? 1 : 7)) {
        bool refused = false;
        try { load(std::vector<unsigned char>(blob.begin(), blob.begin() + static_cast<std::ptrdiff_t>(len))); }
        catch (const FormatError&) { refused = true; }
        CHECK(refused);
    }
    // Single byte flips: refused by the checksum, or by the header checks before it.
    std::mt19937 rng(4);
    for (int trial = 0; trial < 300; ++trial) {
        auto damaged = blob;
        damaged[rng() % damaged.size()] ^= static_cast<unsigned char>(1u + rng() % 255u);
        bool refused = false;
        try { load(damaged); } catch (const FormatError&) { refused = true; }
        CHECK(refused);
    }
}

// Structure-aware fuzzing of the payload parsers: the checksum would stop a random flip before
// the parser sees it, so damaged payloads are sealed again with a valid checksum. The loader
// must then refuse them (FormatError) or load something it can search safely; under ASan and
// UBSan any out-of-bounds read or overflow fails the test.
template <typename Load>
static void fuzz_payload(const std::vector<unsigned char>& blob, Load load, unsigned seed) {
    const Unsealed sealed = unseal(blob.data(), blob.size());
    const std::vector<unsigned char> payload(sealed.payload, sealed.payload + sealed.payload_size);
    std::mt19937 rng(seed);
    for (int trial = 0; trial < 400; ++trial) {
        auto damaged = payload;
        const int flips = 1 + static_cast<int>(rng() % 4);
        for (int f = 0; f < flips; ++f) {
            // header fields (sizes, counts, levels) are where parsers go wrong: hit them more often
            const std::size_t at = (rng() % 2) ? rng() % std::min<std::size_t>(damaged.size(), 128) : rng() % damaged.size();
            damaged[at] = (rng() % 3) ? static_cast<unsigned char>(damaged[at] ^ (1u << (rng() % 8))) : static_cast<unsigned char>(rng());
        }
        if (rng() % 5 == 0) damaged.resize(rng() % damaged.size());
        Writer w;
        w.append(damaged.data(), damaged.size());
        const auto resealed = seal(sealed.kind, 0, std::move(w));
        try {
            load(resealed);
        } catch (const FormatError&) {
        } catch (const ArgumentError&) {
        }
    }
}

static void test_hnsw_matches_naive_and_survives_fuzzing() {
    std::mt19937 rng(6);
    const std::size_t n = 800, dim = 12, nq = 10, k = 5;
    auto data = random_vectors(n, dim, rng), queries = random_vectors(nq, dim, rng);
    std::vector<std::int64_t> ids(n);
    for (std::size_t i = 0; i < n; ++i) ids[i] = static_cast<std::int64_t>(i);
    for (Storage storage : {Storage::F32, Storage::F16, Storage::SQ8}) {
        HnswIndex index(dim, Metric::L2, HnswParams{8, 64, storage, storage == Storage::SQ8, 7});
        index.add(data.data(), ids.data(), n / 2, 2);
        index.add(data.data() + n / 2 * dim, ids.data() + n / 2, n - n / 2, 1);
        CHECK(index.size() == n);
        const auto result = index.search(queries.data(), nq, k, 200, nullptr, 2);
        std::size_t hits = 0;
        for (std::size_t q = 0; q < nq; ++q) {
            std::vector<std::pair<float, std::int64_t>> all;
            for (std::size_t i = 0; i < n; ++i) {
                float d = 0;
                for (std::size_t j = 0; j < dim; ++j) d += (queries[q * dim + j] - data[i * dim + j]) * (queries[q * dim + j] - data[i * dim + j]);
                all.emplace_back(d, ids[i]);
            }
            std::sort(all.begin(), all.end());
            for (std::size_t j = 0; j < k; ++j)
                for (std::size_t t = 0; t < k; ++t) hits += result.ids[q * k + j] == all[t].second;
        }
        CHECK(hits >= nq * k * 9 / 10);
        // deletes, slot reuse, updates, filters
        std::vector<std::int64_t> gone(ids.begin(), ids.begin() + 300);
        CHECK(index.remove(gone.data(), gone.size()) == 300);
        CHECK(index.size() == n - 300);
        const auto after = index.search(queries.data(), nq, k, 64, nullptr, 1);
        for (auto id : after.ids) CHECK(id >= 300);
        index.add(data.data(), ids.data(), 100, 2);  // back into freed slots
        CHECK(index.size() == n - 200 && index.slots() == n);
        std::vector<std::int64_t> allowed{1, 2, 3};
        const auto filtered = index.search(queries.data(), 1, k, 64, &allowed, 1);
        CHECK(filtered.ids[3] == -1);
        for (std::size_t j = 0; j < 3; ++j) CHECK(filtered.ids[j] >= 1 && filtered.ids[j] <= 3);
        const auto range = index.range_search(queries.data(), nq, 5.0f, 32, 2);
        CHECK(range.lims.size() == nq + 1);

        const auto blob = index.serialize(3);
        const auto copy = HnswIndex::deserialize(unseal(blob.data(), blob.size()));
        CHECK(copy.size() == index.size());
        CHECK(copy.search(queries.data(), nq, k, 64, nullptr, 1).ids == index.search(queries.data(), nq, k, 64, nullptr, 1).ids);
        fuzz_loader(blob, [](const std::vector<unsigned char>& b) { HnswIndex::deserialize(unseal(b.data(), b.size())); });
        fuzz_payload(blob, [&](const std::vector<unsigned char>& b) {
            const auto loaded = HnswIndex::deserialize(unseal(b.data(), b.size()));
            loaded.search(queries.data(), 2, k, 16, nullptr, 1);
        }, 11 + static_cast<unsigned>(storage));
    }
}

static void test_ivf_and_kmeans() {
    std::mt19937 rng(8);
    const std::size_t n = 1200, dim = 16, nq = 8, k = 5;
    auto data = random_vectors(n, dim, rng), queries = random_vectors(nq, dim, rng);
    std::vector<std::int64_t> ids(n);
    for (std::size_t i = 0; i < n; ++i) ids[i] = static_cast<std::int64_t>(i * 2);
    const auto km = kmeans(data.data(), n, dim, 10, 10, false, 1, 2);
    CHECK(km.centroids.size() == 10 * dim && km.assignment.size() == n);
    for (auto a : km.assignment) CHECK(a < 10);
    for (std::size_t pq_m : {std::size_t{0}, std::size_t{4}}) {
        IvfIndex index(dim, Metric::L2, IvfParams{8, pq_m, pq_m != 0, 3});
        index.add(data.data(), ids.data(), n, 2);
        CHECK(index.size() == n && index.trained());
        const auto all_cells = index.search(queries.data(), nq, k, 8, nullptr, 2);
        if (pq_m == 0) {  // every cell probed: exact
            FlatIndex flat(dim, Metric::L2);
            flat.add(data.data(), ids.data(), n);
            CHECK(flat.search(queries.data(), nq, k, nullptr, 1).ids == all_cells.ids);
        }
        CHECK(index.remove(ids.data(), 10) == 10 && index.size() == n - 10);
        const auto blob = index.serialize(1);
        const auto copy = IvfIndex::deserialize(unseal(blob.data(), blob.size()));
        CHECK(copy.search(queries.data(), nq, k, 3, nullptr, 1).ids == index.search(queries.data(), nq, k, 3, nullptr, 1).ids);
        fuzz_loader(blob, [](const std::vector<unsigned char>& b) { IvfIndex::deserialize(unseal(b.data(), b.size())); });
        fuzz_payload(blob, [&](const std::vector<unsigned char>& b) {
            const auto loaded = IvfIndex::deserialize(unseal(b.data(), b.size()));
            loaded.search(queries.data(), 2, k, 4, nullptr, 1);
        }, 21 + static_cast<unsigned>(pq_m));
    }
}

static void test_serialization() {
    std::mt19937 rng(5);
    const std::size_t n = 40, dim = 8;
    auto data = random_vectors(n, dim, rng);
    std::vector<std::int64_t> ids(n);
    for (std::size_t i = 0; i < n; ++i) ids[i] = static_cast<std::int64_t>(i);
    FlatIndex flat(dim, Metric::InnerProduct);
    flat.add(data.data(), ids.data(), n);
    const auto flat_blob = flat.serialize(42);
    const auto sealed = unseal(flat_blob.data(), flat_blob.size());
    CHECK(sealed.checkpoint == 42);
    const auto copy = FlatIndex::deserialize(sealed);
    CHECK(copy.size() == n && copy.reconstruct(7) == flat.reconstruct(7));
    fuzz_loader(flat_blob, [](const std::vector<unsigned char>& b) { FlatIndex::deserialize(unseal(b.data(), b.size())); });

    auto bm25 = small_bm25(rng, 30);
    const auto bm25_blob = bm25.serialize(7);
    const auto bm25_copy = BM25Index::deserialize(unseal(bm25_blob.data(), bm25_blob.size()));
    CHECK(bm25_copy.size() == bm25.size() && bm25_copy.vocabulary_size() == bm25.vocabulary_size());
    fuzz_loader(bm25_blob, [](const std::vector<unsigned char>& b) { BM25Index::deserialize(unseal(b.data(), b.size())); });
    fuzz_payload(bm25_blob, [](const std::vector<unsigned char>& b) {
        const auto loaded = BM25Index::deserialize(unseal(b.data(), b.size()));
        loaded.search({{0, 1, 2, 3}, {5, 5, 9}}, 5, nullptr, 1);
    }, 17);
    // The copy is the index: the same top k, exhaustive and pruned alike.
    const std::vector<std::vector<std::uint32_t>> queries{{0, 1, 2}, {3, 4, 4, 7}, {1, 9}};
    for (bool exhaustive : {true, false}) {
        const auto a = bm25.search(queries, 5, nullptr, 1, exhaustive);
        const auto b = bm25_copy.search(queries, 5, nullptr, 1, exhaustive);
        CHECK(a.ids == b.ids && a.distances == b.distances);
    }

    // The wrong kind is refused too.
    bool refused = false;
    try { BM25Index::deserialize(unseal(flat_blob.data(), flat_blob.size())); } catch (const FormatError&) { refused = true; }
    CHECK(refused);
}

int main() {
    test_kernels_agree();
    test_flat_matches_naive();
    test_flat_rejects_bad_input();
    test_bm25_remove_equals_rebuild();
    test_bm25_pruned_equals_exhaustive();
    test_bm25_search_with_statistics();
    test_serialization();
    test_hnsw_matches_naive_and_survives_fuzzing();
    test_ivf_and_kmeans();
    return checks_passed("engine_test");
}
