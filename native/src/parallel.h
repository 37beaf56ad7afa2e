// Minimal parallel-for loops over [0, n) on std::threads.
#pragma once
#include <algorithm>
#include <atomic>
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

// Calls body(begin, end) over [0, n) in pieces of `grain` handed out on demand, so a thread
// that draws fast pieces takes more of them (queries differ in cost); rethrows the first exception.
template <typename Body>
void parallel_dynamic(std::size_t n, unsigned threads, std::size_t grain, Body body) {
    grain = std::max<std::size_t>(1, grain);
    threads = static_cast<unsigned>(std::min<std::size_t>(std::max(1u, threads), (n + grain - 1) / grain));
    if (threads <= 1) {
        if (n) body(std::size_t{0}, n);
        return;
    }
    std::atomic<std::size_t> next{0};
    std::vector<std::thread> workers;
    std::vector<std::exception_ptr> errors(threads);
    for (unsigned t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            try {
                for (std::size_t begin; (begin = next.fetch_add(grain)) < n;) body(begin, std::min(n, begin + grain));
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
