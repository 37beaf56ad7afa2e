#include "simd_dispatch.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>

namespace docent {
namespace {

const Kernels* table_for(const std::string& level) {
    if (level == "generic") return &kernels_generic::table;
#if defined(DOCENT_X86_KERNELS)
    if (level == "avx2") return &kernels_avx2::table;
    if (level == "avx512") return &kernels_avx512::table;
#endif
    return nullptr;
}

const Kernels* best_supported() {
    const auto levels = supported_simd_levels();
    return table_for(levels.back());
}

const Kernels* initial_kernels() {
    if (const char* forced = std::getenv("DOCENT_SIMD")) {
        for (const auto& level : supported_simd_levels())
            if (level == forced) return table_for(level);
    }
    return best_supported();
}

std::atomic<const Kernels*>& current() {
    static std::atomic<const Kernels*> kernels{initial_kernels()};
    return kernels;
}

}  // namespace

std::vector<std::string> supported_simd_levels() {
    std::vector<std::string> levels{"generic"};
#if defined(DOCENT_X86_KERNELS) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
        levels.push_back("avx2");
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
        levels.push_back("avx512");
#endif
    return levels;
}

InnerProductPackedBf16Fn bf16_inner_product_packed() {
#if defined(DOCENT_X86_KERNELS) && (defined(__GNUC__) || defined(__clang__))
    static const bool supported = [] {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512bf16") != 0;
    }();
    if (supported && &active_kernels() == &kernels_avx512::table) return kernels_avx512bf16::inner_product_packed_bf16;
#endif
    return nullptr;
}

const Kernels& active_kernels() { return *current().load(std::memory_order_relaxed); }

void set_simd_level(const std::string& level) {
    for (const auto& supported : supported_simd_levels()) {
        if (supported == level) {
            current().store(table_for(level));
            return;
        }
    }
    throw std::invalid_argument("SIMD level '" + level + "' is not supported on this CPU");
}

}  // namespace docent
