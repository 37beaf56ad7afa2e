// How an index stores each vector, and distances from a float query to a stored code.
//
//   f32  dim floats                      exact
//   f16  dim IEEE halves                 half the memory, ~3 significant digits
//   sq8  scale, offset, |x|^2 (floats)   a quarter of the memory: x[i] ~ offset + scale * code[i],
//        + dim uint8 codes               quantized per vector, so it needs no training pass and
//                                        vectors can be added one at a time
//
// Distances are "lower is better" inside the engine: the negative inner product for ip and
// cosine (vectors and queries are normalized for cosine), the squared L2 distance for l2.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "metric.h"

namespace docent {

enum class Storage : std::uint32_t { F32 = 0, F16 = 1, SQ8 = 2 };

Storage parse_storage(const std::string& name);
std::string storage_name(Storage storage);

class VectorCodec {
public:
    VectorCodec(std::size_t dim, Metric metric, Storage storage);

    std::size_t dim() const { return dim_; }
    Metric metric() const { return metric_; }
    Storage storage() const { return storage_; }
    std::size_t code_size() const { return code_size_; }

    void encode(const float* vector, unsigned char* code) const;
    void decode(const unsigned char* code, float* vector) const;

    struct Query {
        const float* vector;
        float sum;    // sum of the components (sq8 inner products)
        float norm2;  // squared length (sq8 L2)
    };
    Query prepare(const float* vector) const;
    float distance(const Query& query, const unsigned char* code) const;
    // Exact distance between two float vectors under the metric.
    float distance(const float* a, const float* b) const;

private:
    std::size_t dim_;
    Metric metric_;
    Storage storage_;
    std::size_t code_size_;
};

// Turns an internal distance into the public one: similarity for ip/cosine, squared L2 for l2.
inline float public_distance(Metric metric, float distance) { return metric == Metric::L2 ? distance : -distance; }

// Range hits per query, as (internal distance, id) sorted best first, into one RangeResult
// with public distances.
RangeResult flatten_range(const std::vector<std::vector<std::pair<float, std::int64_t>>>& per_query, Metric metric);

// Input checks shared by every index: finite values, and unit length for cosine.
void check_finite(const float* values, std::size_t count, const char* what);
void normalize_rows(float* values, std::size_t count, std::size_t dim, const char* what);
// A copy of n vectors, checked and (for cosine) normalized.
std::vector<float> prepare_vectors(const float* vectors, std::size_t n, std::size_t dim, Metric metric, const char* what);

}  // namespace docent
