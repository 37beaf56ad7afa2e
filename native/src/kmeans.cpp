#include "kmeans.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "errors.h"
#include "parallel.h"
#include "simd_dispatch.h"

namespace docent {

void assign_nearest(const float* x, std::size_t n, const float* centroids, std::size_t k, std::size_t dim,
                    bool by_inner_product, std::uint32_t* out, float* out_distance, unsigned threads) {
    const Kernels& kernels = active_kernels();
    std::vector<float> half_norms(k, 0);
    if (!by_inner_product)
        for (std::size_t c = 0; c < k; ++c) half_norms[c] = 0.5f * kernels.inner_product(centroids + c * dim, centroids + c * dim, dim);
    constexpr std::size_t kPoints = 32, kCentroids = 256;
    const std::size_t blocks = (n + kPoints - 1) / kPoints;
    parallel_ranges(blocks, n * k * dim < (1u << 20) ? 1u : threads, [&](std::size_t b_begin, std::size_t b_end) {
        std::vector<float> scores(kPoints * kCentroids);
        std::vector<float> best(kPoints);
        for (std::size_t b = b_begin; b < b_end; ++b) {
            const std::size_t p0 = b * kPoints, p1 = std::min(n, p0 + kPoints);
            std::fill(best.begin(), best.end(), -std::numeric_limits<float>::infinity());
            for (std::size_t c0 = 0; c0 < k; c0 += kCentroids) {
                const std::size_t c1 = std::min(k, c0 + kCentroids);
                kernels.inner_product_block(x + p0 * dim, p1 - p0, centroids + c0 * dim, c1 - c0, dim, scores.data(), kCentroids);
                for (std::size_t p = p0; p < p1; ++p) {
                    const float* row = scores.data() + (p - p0) * kCentroids;
                    for (std::size_t c = c0; c < c1; ++c) {
                        const float s = row[c - c0] - half_norms[c];  // max <x,c> - |c|^2/2 == min |x-c|^2
                        if (s > best[p - p0]) {
                            best[p - p0] = s;
                            out[p] = static_cast<std::uint32_t>(c);
                        }
                    }
                }
            }
            if (out_distance)
                for (std::size_t p = p0; p < p1; ++p)
                    out_distance[p] = by_inner_product ? -best[p - p0]
                                                       : std::max(0.0f, kernels.inner_product(x + p * dim, x + p * dim, dim) - 2 * best[p - p0]);
        }
    });
}

KMeansResult kmeans(const float* x, std::size_t n, std::size_t dim, std::size_t k, std::size_t iterations, bool spherical,
                    std::uint64_t seed, unsigned threads) {
    if (k == 0) throw ArgumentError("k-means needs at least one centroid");
    if (n < k) throw ArgumentError("k-means needs at least as many points as centroids: got " + std::to_string(n) +
                                   " points for " + std::to_string(k) + " centroids");
    for (std::size_t i = 0; i < n * dim; ++i)
        if (!std::isfinite(x[i])) throw ArgumentError("k-means input contains NaN or infinite values");
    std::mt19937_64 rng(seed);
    KMeansResult result;
    result.centroids.resize(k * dim);
    result.assignment.assign(n, 0);
    // Seeding: k-means++ (each new centroid drawn with probability proportional to its squared
    // distance from the chosen ones) where that costs little; for large n * k, k distinct
    // random points, as Faiss does, since Lloyd's iterations then fix most of a poor start.
    const Kernels& kernels = active_kernels();
    if (static_cast<double>(n) * static_cast<double>(k) * static_cast<double>(dim) <= 4e8) {
        std::vector<float> nearest(n, std::numeric_limits<float>::infinity());
        std::size_t pick = rng() % n;
        for (std::size_t c = 0; c < k; ++c) {
            const float* chosen = x + pick * dim;
            std::copy_n(chosen, dim, result.centroids.begin() + static_cast<std::ptrdiff_t>(c * dim));
            double total = 0;
            for (std::size_t p = 0; p < n; ++p) {
                nearest[p] = std::min(nearest[p], kernels.l2_squared(x + p * dim, chosen, dim));
                total += nearest[p];
            }
            if (!(total > 0)) {  // fewer distinct points than centroids: fall back to any unused point
                pick = (pick + 1) % n;
                continue;
            }
            double target = std::uniform_real_distribution<double>(0, total)(rng);
            pick = n - 1;
            for (std::size_t p = 0; p < n; ++p) {
                target -= nearest[p];
                if (target <= 0 && nearest[p] > 0) {
                    pick = p;
                    break;
                }
            }
        }
    } else {
        std::vector<std::size_t> order(n);
        std::iota(order.begin(), order.end(), 0);
        for (std::size_t i = 0; i < k; ++i) {
            std::swap(order[i], order[i + rng() % (n - i)]);
            std::copy_n(x + order[i] * dim, dim, result.centroids.begin() + static_cast<std::ptrdiff_t>(i * dim));
        }
    }
    const auto normalize = [dim](float* c) {
        double norm = 0;
        for (std::size_t j = 0; j < dim; ++j) norm += double(c[j]) * c[j];
        if (norm > 0) {
            const float inv = static_cast<float>(1.0 / std::sqrt(norm));
            for (std::size_t j = 0; j < dim; ++j) c[j] *= inv;
        }
    };
    if (spherical)
        for (std::size_t c = 0; c < k; ++c) normalize(result.centroids.data() + c * dim);
    std::vector<float> distance(n);
    std::vector<double> sums(k * dim);
    std::vector<std::size_t> counts(k);
    for (std::size_t it = 0; it < std::max<std::size_t>(iterations, 1); ++it) {
        assign_nearest(x, n, result.centroids.data(), k, dim, spherical, result.assignment.data(), distance.data(), threads);
        result.objective = spherical ? std::accumulate(distance.begin(), distance.end(), 0.0, [](double a, float d) { return a + 1.0 + d; })
                                     : std::accumulate(distance.begin(), distance.end(), 0.0);
        if (it + 1 == std::max<std::size_t>(iterations, 1)) break;
        std::fill(sums.begin(), sums.end(), 0.0);
        std::fill(counts.begin(), counts.end(), 0);
        for (std::size_t p = 0; p < n; ++p) {
            const std::size_t c = result.assignment[p];
            ++counts[c];
            for (std::size_t j = 0; j < dim; ++j) sums[c * dim + j] += x[p * dim + j];
        }
        for (std::size_t c = 0; c < k; ++c) {
            if (counts[c] == 0) continue;
            for (std::size_t j = 0; j < dim; ++j) result.centroids[c * dim + j] = static_cast<float>(sums[c * dim + j] / counts[c]);
            if (spherical) normalize(result.centroids.data() + c * dim);
        }
        // An empty cluster restarts at a random member of the largest one, nudged apart.
        for (std::size_t c = 0; c < k; ++c) {
            if (counts[c] != 0) continue;
            const std::size_t largest = static_cast<std::size_t>(std::max_element(counts.begin(), counts.end()) - counts.begin());
            std::size_t pick = rng() % n;
            for (std::size_t tries = 0; tries < n && result.assignment[pick] != largest; ++tries) pick = (pick + 1) % n;
            for (std::size_t j = 0; j < dim; ++j) {
                const float v = x[pick * dim + j];
                result.centroids[c * dim + j] = v * (1 + 1e-3f * ((j & 1) ? 1 : -1));
                result.centroids[largest * dim + j] = result.centroids[largest * dim + j] * (1 - 1e-3f * ((j & 1) ? 1 : -1));
            }
            if (spherical) normalize(result.centroids.data() + c * dim);
            counts[c] = counts[largest] / 2;
            counts[largest] -= counts[c];
        }
    }
    return result;
}

}  // namespace docent
