// k-means (Lloyd) over float vectors, the training step of IVF cells and PQ codebooks.
// Assignment runs as blocked inner products on threads; spherical k-means (for cosine and
// inner product) keeps centroids at unit length. An empty cluster takes a point from the
// largest one, so all k centroids stay in use.
#pragma once
#include <cstdint>
#include <vector>

namespace docent {

struct KMeansResult {
    std::vector<float> centroids;          // (k, dim)
    std::vector<std::uint32_t> assignment;  // (n): nearest centroid of each point
    double objective = 0;                  // sum of squared distances (or of 1 - cos when spherical)
};

KMeansResult kmeans(const float* x, std::size_t n, std::size_t dim, std::size_t k, std::size_t iterations, bool spherical,
                    std::uint64_t seed, unsigned threads);

// Nearest centroid (by L2, or by inner product when `by_inner_product`) of each of n points.
void assign_nearest(const float* x, std::size_t n, const float* centroids, std::size_t k, std::size_t dim,
                    bool by_inner_product, std::uint32_t* out, float* out_distance, unsigned threads);

}  // namespace docent
