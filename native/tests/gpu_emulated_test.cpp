// The GPU engine's own sources (native/cuda: kernels and host code) run on the CPU emulation of
// native/tests/cuda_emulation, checked against the CPU engine: exact search in each precision,
// filters, removal, IVF-Flat, IVF-PQ (with the CPU's codes, and encoded on the "GPU"), k-means,
// and running out of device memory. Built and run under ASan/UBSan by `make sanitize`, where
// device memory is heap memory: a kernel reading or writing past an array fails the test.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "check.h"
#include "cuda_runtime.h"  // the emulation's, for its device memory
#include "flat_index.h"
#include "gpu_api.h"
#include "ivf_index.h"
#include "kmeans.h"

using namespace docent;

static std::vector<float> random_vectors(std::size_t n, std::size_t dim, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal;
    std::vector<float> v(n * dim);
    for (auto& x : v) x = normal(rng);
    return v;
}

static std::vector<std::int64_t> iota_ids(std::size_t n, std::int64_t first, std::int64_t step) {
    std::vector<std::int64_t> ids(n);
    for (std::size_t i = 0; i < n; ++i) ids[i] = first + static_cast<std::int64_t>(i) * step;
    return ids;
}

// Share of the expected ids (per query, ignoring -1) that were found.
static double recall(const SearchResult& found, const SearchResult& expected, std::size_t nq, std::size_t k) {
    std::size_t hit = 0, total = 0;
    for (std::size_t q = 0; q < nq; ++q) {
        std::set<std::int64_t> mine(found.ids.begin() + q * k, found.ids.begin() + (q + 1) * k);
        for (std::size_t i = 0; i < k; ++i) {
            const std::int64_t id = expected.ids[q * k + i];
            if (id < 0) continue;
            ++total;
            hit += mine.count(id);
        }
    }
    return total ? static_cast<double>(hit) / total : 1.0;
}

static float max_distance_gap(const SearchResult& a, const SearchResult& b) {
    float gap = 0;
    for (std::size_t i = 0; i < a.ids.size(); ++i) {
        if ((a.ids[i] < 0) != (b.ids[i] < 0)) return INFINITY;
        if (a.ids[i] >= 0) gap = std::max(gap, std::fabs(a.distances[i] - b.distances[i]));
    }
    return gap;
}

static void test_exact_search_in_every_precision_matches_the_cpu() {
    const std::size_t n = 1000, dim = 40, nq = 12;  // 40: padded to the tile depth of 32
    const auto base = random_vectors(n, dim, 1), queries = random_vectors(nq, dim, 2);
    const auto ids = iota_ids(n, 7, 3);
    for (Metric metric : {Metric::InnerProduct, Metric::L2, Metric::Cosine}) {
        FlatIndex cpu(dim, metric);
        cpu.add(base.data(), ids.data(), n);
        for (gpu::Precision precision : {gpu::Precision::F32, gpu::Precision::F16, gpu::Precision::BF16}) {
            gpu::FlatIndex index(dim, metric, precision, 0);
            index.add(base.data(), ids.data(), n / 2);  // two adds: the second grows the device rows
            index.add(base.data() + n / 2 * dim, ids.data() + n / 2, n - n / 2);
            CHECK(index.size() == n);
            for (std::size_t k : {1, 10, 100}) {
                const SearchResult expected = cpu.search(queries.data(), nq, k, nullptr, 1);
                const SearchResult found = index.search(queries.data(), nq, k);
                const bool f32 = precision == gpu::Precision::F32;
                CHECK(recall(found, expected, nq, k) >= (f32 ? 0.999 : 0.9));
                if (f32) CHECK(max_distance_gap(found, expected) < 1e-3f);
                for (std::size_t q = 0; q < nq; ++q)  // best first
                    for (std::size_t i = 1; i < k; ++i) {
                        const float a = found.distances[q * k + i - 1], b = found.distances[q * k + i];
                        CHECK(metric == Metric::L2 ? a <= b : a >= b);
                    }
            }
        }
    }
}

static void test_the_longest_lists_and_fewer_vectors_than_k() {
    const std::size_t dim = 8, nq = 3;
    const auto queries = random_vectors(nq, dim, 12);
    for (std::size_t n : {300, 20}) {  // k = 256: the longest lists the kernels keep; then k > n
        const auto base = random_vectors(n, dim, 13);
        const auto ids = iota_ids(n, 1, 1);
        FlatIndex cpu(dim, Metric::L2);
        gpu::FlatIndex index(dim, Metric::L2, gpu::Precision::F32, 0);
        cpu.add(base.data(), ids.data(), n);
        index.add(base.data(), ids.data(), n);
        const std::size_t k = gpu::kMaxK;
        const SearchResult expected = cpu.search(queries.data(), nq, k, nullptr, 1);
        const SearchResult found = index.search(queries.data(), nq, k);
        CHECK(recall(found, expected, nq, k) >= 0.999 && max_distance_gap(found, expected) < 1e-3f);
        const auto missing = std::count(found.ids.begin(), found.ids.end(), -1);
        CHECK(static_cast<std::size_t>(missing) == (n < k ? nq * (k - n) : 0));
    }
}

static void test_filters_removal_and_replacement_match_the_cpu() {
    const std::size_t n = 900, dim = 24, nq = 16, k = 20;
    const auto base = random_vectors(n, dim, 3), queries = random_vectors(nq, dim, 4);
    const auto ids = iota_ids(n, 0, 2);
    FlatIndex cpu(dim, Metric::L2);
    gpu::FlatIndex index(dim, Metric::L2, gpu::Precision::F32, 0);
    cpu.add(base.data(), ids.data(), n);
    index.add(base.data(), ids.data(), n);
    std::vector<std::int64_t> gone;
    for (std::size_t i = 0; i < n; i += 3) gone.push_back(ids[i]);
    gone.push_back(99999);  // not there: skipped
    CHECK(index.remove(gone.data(), gone.size()) == 300);
    cpu.remove(gone.data(), gone.size());
    const auto replacement = random_vectors(2, dim, 5);
    index.add(replacement.data(), ids.data() + 1, 2);  // ids 2 and 4 replaced
    cpu.add(replacement.data(), ids.data() + 1, 2);
    CHECK(index.size() == 600 && !index.contains(ids[0]) && index.contains(ids[1]));
    const SearchResult all_cpu = cpu.search(queries.data(), nq, k, nullptr, 1);
    const SearchResult all_gpu = index.search(queries.data(), nq, k);
    CHECK(recall(all_gpu, all_cpu, nq, k) >= 0.999 && max_distance_gap(all_gpu, all_cpu) < 1e-3f);
    std::vector<std::int64_t> allowed;
    for (std::size_t i = 0; i < n; i += 7) allowed.push_back(ids[i]);
    const SearchResult some_cpu = cpu.search(queries.data(), nq, k, &allowed, 1);
    const SearchResult some_gpu = index.search(queries.data(), nq, k, allowed.data(), allowed.size());
    CHECK(recall(some_gpu, some_cpu, nq, k) >= 0.999 && max_distance_gap(some_gpu, some_cpu) < 1e-3f);
    const std::set<std::int64_t> allow(allowed.begin(), allowed.end());
    for (std::int64_t id : some_gpu.ids) CHECK(id == -1 || allow.count(id));
    const std::int64_t nothing_stored = 12345678;
    const SearchResult none = index.search(queries.data(), nq, k, &nothing_stored, 1);
    CHECK(std::all_of(none.ids.begin(), none.ids.end(), [](std::int64_t id) { return id == -1; }));
    const std::vector<float> back = index.vectors();
    CHECK(back.size() == 600 * dim);
}

static void test_out_of_device_memory_names_the_sizes_and_keeps_the_index() {
    auto& device = cuda_emulation::device();
    const std::size_t saved = device.memory;
    const std::size_t dim = 64;
    gpu::FlatIndex index(dim, Metric::InnerProduct, gpu::Precision::F32, 0);
    const auto rows = random_vectors(1000, dim, 6);
    const auto ids = iota_ids(1000, 0, 1);
    index.add(rows.data(), ids.data(), 500);
    device.memory = device.used + (1u << 16);  // 64 KiB left
    std::string message;
    try {
        index.add(rows.data() + 500 * dim, ids.data() + 500, 500);
    } catch (const gpu::GpuError& e) {
        message = e.what();
    }
    device.memory = saved;
    CHECK(message.find("out of GPU memory on device 0: needed") != std::string::npos);
    CHECK(index.size() == 500);
    const SearchResult still = index.search(rows.data(), 3, 1);
    CHECK(still.ids[0] == 0 && still.ids[1] == 1 && still.ids[2] == 2);
}

static void test_kmeans_and_ivf_flat() {
    const std::size_t n = 2000, dim = 16, nlist = 8, nq = 12, k = 10;
    const auto base = random_vectors(n, dim, 7), queries = random_vectors(nq, dim, 8);
    const auto ids = iota_ids(n, 0, 1);
    for (bool spherical : {false, true}) {
        const std::vector<float> centroids = gpu::kmeans(base.data(), n, dim, nlist, 10, spherical, 1, 0);
        const KMeansResult reference = kmeans(base.data(), n, dim, nlist, 10, spherical, 1, 1);
        double objective = 0;  // the same measure as the CPU's: squared distance, or 1 - cos
        std::vector<std::uint32_t> cell(n);
        std::vector<float> distance(n);
        assign_nearest(base.data(), n, centroids.data(), nlist, dim, spherical, cell.data(), distance.data(), 1);
        for (std::size_t i = 0; i < n; ++i) objective += distance[i];
        if (!spherical) CHECK(objective <= 1.1 * reference.objective);
        for (std::size_t c = 0; c < nlist && spherical; ++c) {
            double norm = 0;
            for (std::size_t d = 0; d < dim; ++d) norm += centroids[c * dim + d] * centroids[c * dim + d];
            CHECK(std::fabs(norm - 1) < 1e-4);
        }
    }
    for (Metric metric : {Metric::InnerProduct, Metric::L2}) {
        IvfIndex cpu(dim, metric, IvfParams{nlist, 0, false, 1});
        cpu.add(base.data(), ids.data(), n, 1);
        gpu::IvfFlatIndex index(dim, metric, cpu.centroids().data(), nlist, 0);
        index.add(base.data(), ids.data(), n);
        CHECK(index.size() == n);
        for (std::size_t nprobe : {2, 8}) {
            const SearchResult expected = cpu.search(queries.data(), nq, k, nprobe, nullptr, 1);
            const SearchResult found = index.search(queries.data(), nq, k, nprobe);
            CHECK(recall(found, expected, nq, k) >= 0.98);
        }
        std::vector<std::int64_t> allowed;
        for (std::size_t i = 0; i < n; i += 3) allowed.push_back(ids[i]);
        const SearchResult some_cpu = cpu.search(queries.data(), nq, k, 4, &allowed, 1);
        const SearchResult some_gpu = index.search(queries.data(), nq, k, 4, allowed.data(), allowed.size());
        CHECK(recall(some_gpu, some_cpu, nq, k) >= 0.98);
        for (std::int64_t id : some_gpu.ids) CHECK(id == -1 || id % 3 == 0);
        const IvfIndex::Entries entries = index.entries();
        CHECK(entries.ids.size() == n && entries.codes.size() == n * dim * sizeof(float));
    }
}

static void test_ivf_pq_answers_as_the_cpu_with_its_codes() {
    const std::size_t n = 2000, dim = 32, nlist = 8, m = 8, nq = 8;
    const auto base = random_vectors(n, dim, 9), queries = random_vectors(nq, dim, 10);
    const auto ids = iota_ids(n, 5, 1);
    for (Metric metric : {Metric::InnerProduct, Metric::L2, Metric::Cosine})
        for (bool rerank : {false, true}) {
            IvfIndex cpu(dim, metric, IvfParams{nlist, m, rerank, 1});
            cpu.add(base.data(), ids.data(), n, 1);
            gpu::IvfPqIndex index(dim, metric, cpu.centroids().data(), nlist, cpu.codebooks().data(), m, rerank, 0);
            const IvfIndex::Entries e = cpu.entries();
            index.add_encoded(e.lists.data(), e.ids.data(), e.codes.data(), rerank ? e.originals.data() : nullptr, e.ids.size());
            CHECK(index.size() == n);
            for (std::size_t nprobe : {1, 3, 8})
                for (std::size_t k : {10, 40}) {
                    const SearchResult expected = cpu.search(queries.data(), nq, k, nprobe, nullptr, 1);
                    const SearchResult found = index.search(queries.data(), nq, k, nprobe);
                    CHECK(recall(found, expected, nq, k) >= 0.97);
                    CHECK(max_distance_gap(found, expected) < 1e-2f);
                }
            std::vector<std::int64_t> allowed;  // a filter, as on the CPU: within the probed cells
            for (std::size_t i = 0; i < n; i += 5) allowed.push_back(ids[i]);
            const SearchResult some_cpu = cpu.search(queries.data(), nq, 10, 3, &allowed, 1);
            const SearchResult some_gpu = index.search(queries.data(), nq, 10, 3, allowed.data(), allowed.size());
            CHECK(recall(some_gpu, some_cpu, nq, 10) >= 0.97 && max_distance_gap(some_gpu, some_cpu) < 1e-2f);
            const IvfIndex::Entries back = index.entries();
            CHECK(back.ids.size() == n && back.codes.size() == n * m && back.originals.size() == (rerank ? n * dim : 0));
        }
}

static void test_ivf_pq_encodes_like_the_cpu() {
    const std::size_t n = 1200, dim = 32, nlist = 4, m = 8;
    const auto base = random_vectors(n, dim, 11);
    const auto ids = iota_ids(n, 0, 1);
    IvfIndex cpu(dim, Metric::L2, IvfParams{nlist, m, false, 1});
    cpu.add(base.data(), ids.data(), n, 1);
    gpu::IvfPqIndex index(dim, Metric::L2, cpu.centroids().data(), nlist, cpu.codebooks().data(), m, false, 0);
    index.add(base.data(), ids.data(), n);
    const IvfIndex::Entries mine = index.entries(), theirs = cpu.entries();
    std::vector<std::pair<std::uint32_t, std::vector<unsigned char>>> by_id_mine(n), by_id_theirs(n);
    for (std::size_t i = 0; i < n; ++i) {
        by_id_mine[mine.ids[i]] = {mine.lists[i], {mine.codes.begin() + i * m, mine.codes.begin() + (i + 1) * m}};
        by_id_theirs[theirs.ids[i]] = {theirs.lists[i], {theirs.codes.begin() + i * m, theirs.codes.begin() + (i + 1) * m}};
    }
    std::size_t same = 0;
    for (std::size_t i = 0; i < n; ++i) same += by_id_mine[i] == by_id_theirs[i];
    CHECK(same >= n * 99 / 100);  // equal up to near-ties in float rounding
    std::string message;
    try {
        index.add(base.data(), ids.data(), 1);
    } catch (const std::invalid_argument& e) {
        message = e.what();
    }
    CHECK(message.find("already in the GPU index") != std::string::npos);
}

int main() {
    test_exact_search_in_every_precision_matches_the_cpu();
    test_the_longest_lists_and_fewer_vectors_than_k();
    test_filters_removal_and_replacement_match_the_cpu();
    test_out_of_device_memory_names_the_sizes_and_keeps_the_index();
    test_kmeans_and_ivf_flat();
    test_ivf_pq_answers_as_the_cpu_with_its_codes();
    test_ivf_pq_encodes_like_the_cpu();
    return checks_passed("gpu_emulated_test");
}
