// CPU emulation (see cuda_runtime.h): IEEE half precision, rounded to nearest even.
#pragma once

struct __half {
    _Float16 value;
};
inline __half __float2half_rn(float v) { return __half{static_cast<_Float16>(v)}; }
inline float __half2float(__half h) { return static_cast<float>(h.value); }
