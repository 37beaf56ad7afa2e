// The metrics every index understands.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace docent {

enum class Metric : std::uint32_t { InnerProduct = 0, L2 = 1, Cosine = 2 };

Metric parse_metric(const std::string& name);
std::string metric_name(Metric metric);

struct SearchResult {
    std::vector<float> distances;  // (queries, k), row-major
    std::vector<std::int64_t> ids; // (queries, k), -1 where fewer than k
};

// Range search: the results of query q are at [lims[q], lims[q + 1]) of distances and ids.
struct RangeResult {
    std::vector<std::size_t> lims;
    std::vector<float> distances;
    std::vector<std::int64_t> ids;
};

}  // namespace docent
