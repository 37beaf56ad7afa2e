// Keeping the k best (score, id) pairs of a stream; higher score is better.
#pragma once
#include <algorithm>
#include <limits>
#include <cstdint>
#include <utility>
#include <vector>

namespace docent {

class TopK {
public:
    explicit TopK(std::size_t k) : k_(k) { heap_.reserve(k); }

    // The score a candidate must beat to enter (lowest kept score once full).
    float threshold() const { return heap_.size() < k_ ? -std::numeric_limits<float>::infinity() : heap_.front().first; }

    void push(float score, std::int64_t id) {
        if (heap_.size() < k_) {
            heap_.emplace_back(score, id);
            std::push_heap(heap_.begin(), heap_.end(), worse_first);
        } else if (k_ > 0 && better(score, id, heap_.front())) {
            std::pop_heap(heap_.begin(), heap_.end(), worse_first);
            heap_.back() = {score, id};
            std::push_heap(heap_.begin(), heap_.end(), worse_first);
        }
    }

    // Best first; ties go to the smaller id so results are deterministic.
    std::vector<std::pair<float, std::int64_t>> sorted() {
        std::vector<std::pair<float, std::int64_t>> out(heap_);
        std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return better(a.first, a.second, b); });
        return out;
    }

private:
    static bool better(float score, std::int64_t id, const std::pair<float, std::int64_t>& other) {
        return score > other.first || (score == other.first && id < other.second);
    }
    // Heap comparator that keeps the worst element at the front.
    static bool worse_first(const std::pair<float, std::int64_t>& a, const std::pair<float, std::int64_t>& b) {
        return better(a.first, a.second, b);
    }

    std::size_t k_;
    std::vector<std::pair<float, std::int64_t>> heap_;
};

}  // namespace docent
