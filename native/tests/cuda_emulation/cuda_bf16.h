// CPU emulation (see cuda_runtime.h): bfloat16, the top 16 bits of a float, rounded to nearest even.
#pragma once

#include <cstdint>
#include <cstring>

struct __nv_bfloat16 {
    std::uint16_t bits;
};
inline __nv_bfloat16 __float2bfloat16_rn(float v) {
    std::uint32_t u;
    std::memcpy(&u, &v, sizeof u);
    u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even (finite values)
    return __nv_bfloat16{static_cast<std::uint16_t>(u >> 16)};
}
inline float __bfloat162float(__nv_bfloat16 h) {
    const std::uint32_t u = static_cast<std::uint32_t>(h.bits) << 16;
    float v;
    std::memcpy(&v, &u, sizeof v);
    return v;
}
