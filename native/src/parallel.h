// A minimal parallel-for over [0, n) in contiguous ranges, one std::thread per range.
#pragma once
#include <algorithm>
#include <cstddef>
#include <exception>
#include <thread>
#include <vector>

namespace docent {

inline unsigned default_threads() {
    const unsigned hw = std::thread::hardware_concurrency();
    return hw == 0 ? 1 : hw;
}

// Calls body(begin, end) on up to `threads` threads; rethrows the first exception.
template <typename Body>
void parallel_ranges(std::size_t n, unsigned threads, Body body) {
    threads = static_cast<unsigned>(std::min<std::size_t>(std::max(1u, threads), n));
    if (threads <= 1) {
        if (n) body(std::size_t{0}, n);
        return;
    }
    std::vector<std::thread> workers;
    std::vector<std::exception_ptr> errors(threads);
    const std::size_t step = (n + threads - 1) / threads;
    for (unsigned t = 0; t < threads; ++t) {
        const std::size_t begin = t * step, end = std::min(n, begin + step);
        if (begin >= end) break;
        workers.emplace_back([&, t, begin, end] {
            try {
                body(begin, end);
            } catch (...) {
                errors[t] = std::current_exception();
            }
        });
    }
    for (auto& w : workers) w.join();
    for (auto& e : errors)
        if (e) std::rethrow_exception(e);
}

}  // namespace docent
