// A CPU emulation of the part of CUDA that Docent's GPU engine (native/cuda) uses, so that the
// engine's own kernels and host code run in the C++ tests on machines without a GPU, under ASan
// and UBSan. Device memory is host memory (so out-of-bounds accesses in a kernel are caught);
// a thread block runs as one fiber per GPU thread, warp by warp, switched at every barrier and
// warp-synchronous instruction; blocks run one after another. It checks what the kernels
// compute and touch, and that every warp instruction is reached by all 32 lanes together; it
// says nothing of speed, and does not model the memory ordering of a real GPU.
#pragma once

#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <tuple>
#include <type_traits>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) alignas(n)

struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
};

// The running fiber's coordinates (one fiber runs at a time, so plain globals will do).
extern dim3 threadIdx, blockIdx, blockDim, gridDim;

// ---- runtime API ---------------------------------------------------------------------------------

enum cudaError_t {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInsufficientDriver = 35,
    cudaErrorNoDevice = 100,
};
enum cudaMemcpyKind { cudaMemcpyHostToHost, cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice, cudaMemcpyDefault };
enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount = 16, cudaDevAttrMaxSharedMemoryPerBlockOptin = 97 };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };

struct cudaDeviceProp {
    char name[256];
    std::size_t totalGlobalMem;
    int major, minor, multiProcessorCount;
};

namespace cuda_emulation {

// What the emulated GPU offers; tests may shrink the memory to provoke "out of GPU memory".
struct Device {
    std::size_t memory = std::size_t{1} << 34;
    std::size_t used = 0;
    int multiprocessors = 2;
    int shared_memory_per_block = 227 * 1024;  // as a Hopper GPU opts in to
};
Device& device();

cudaError_t allocate(void** pointer, std::size_t bytes);
cudaError_t release(void* pointer);
std::size_t allocation_size(const void* pointer);  // 0 when it is not device memory

// Runs body() as every thread of every block of the grid, with dynamic shared memory.
void run_grid(dim3 grid, dim3 block, std::size_t shared_bytes, const std::function<void()>& body);
unsigned char* dynamic_shared_memory();

template <class... Params, class... Args>
void launch(dim3 grid, dim3 block, std::size_t shared_bytes, void (*kernel)(Params...), Args... args) {
    std::tuple<Args...> values(args...);
    run_grid(grid, block, shared_bytes, [&] { std::apply(kernel, values); });
}

// Warp-synchronous exchange: every lane of the warp deposits a value, then reads one.
void block_barrier();
int lane();
void warp_barrier();
// The 32 slots of the running warp for its next exchange. Two sets take turns, so a lane may
// deposit its next value while a slower lane still reads the last one: one barrier each.
std::uint64_t* next_warp_slots();

template <class T>
T exchange(T value, int source) {
    static_assert(sizeof(T) <= sizeof(std::uint64_t), "one slot per lane");
    std::uint64_t bits = 0;
    std::memcpy(&bits, &value, sizeof(T));
    std::uint64_t* slots = next_warp_slots();
    slots[lane()] = bits;
    warp_barrier();
    T out = value;
    if (source >= 0 && source < 32) std::memcpy(&out, &slots[source], sizeof(T));
    return out;
}

}  // namespace cuda_emulation

inline cudaError_t cudaGetDeviceCount(int* count) {
    *count = 1;
    return cudaSuccess;
}
inline cudaError_t cudaGetDevice(int* device) {
    *device = 0;
    return cudaSuccess;
}
inline cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : cudaErrorInvalidValue; }
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int) {
    std::memset(prop, 0, sizeof(*prop));
    std::strcpy(prop->name, "CPU emulation");
    prop->totalGlobalMem = cuda_emulation::device().memory;
    prop->major = 9;
    prop->multiProcessorCount = cuda_emulation::device().multiprocessors;
    return cudaSuccess;
}
inline cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attribute, int) {
    *value = attribute == cudaDevAttrMultiProcessorCount ? cuda_emulation::device().multiprocessors
                                                         : cuda_emulation::device().shared_memory_per_block;
    return cudaSuccess;
}
inline cudaError_t cudaMemGetInfo(std::size_t* free_bytes, std::size_t* total) {
    *total = cuda_emulation::device().memory;
    *free_bytes = *total - cuda_emulation::device().used;
    return cudaSuccess;
}
template <class T>
cudaError_t cudaMalloc(T** pointer, std::size_t bytes) {
    return cuda_emulation::allocate(reinterpret_cast<void**>(pointer), bytes);
}
inline cudaError_t cudaFree(void* pointer) { return cuda_emulation::release(pointer); }
cudaError_t cudaMemcpy(void* target, const void* source, std::size_t bytes, cudaMemcpyKind kind);
inline cudaError_t cudaMemcpyAsync(void* target, const void* source, std::size_t bytes, cudaMemcpyKind kind) {
    return cudaMemcpy(target, source, bytes, kind);
}
cudaError_t cudaMemset(void* target, int value, std::size_t bytes);
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline const char* cudaGetErrorString(cudaError_t error) { return error == cudaSuccess ? "no error" : "emulated CUDA error"; }
inline cudaError_t cudaRuntimeGetVersion(int* version) {
    *version = 13000;
    return cudaSuccess;
}
inline cudaError_t cudaDriverGetVersion(int* version) {
    *version = 13000;
    return cudaSuccess;
}
template <class Kernel>
cudaError_t cudaFuncSetAttribute(Kernel, cudaFuncAttribute, int value) {
    return value <= cuda_emulation::device().shared_memory_per_block ? cudaSuccess : cudaErrorInvalidValue;
}

// ---- the kernel language -------------------------------------------------------------------------

inline void __syncthreads() { cuda_emulation::block_barrier(); }
inline void __syncwarp(unsigned = 0xffffffffu) { cuda_emulation::warp_barrier(); }

template <class T>
T __shfl_sync(unsigned, T value, int source) {
    return cuda_emulation::exchange(value, source);
}
template <class T>
T __shfl_up_sync(unsigned, T value, unsigned delta) {
    const int lane = cuda_emulation::lane();
    return cuda_emulation::exchange(value, lane >= static_cast<int>(delta) ? lane - static_cast<int>(delta) : lane);
}
template <class T>
T __shfl_down_sync(unsigned, T value, unsigned delta) {
    const int lane = cuda_emulation::lane();
    return cuda_emulation::exchange(value, lane + static_cast<int>(delta) < 32 ? lane + static_cast<int>(delta) : lane);
}
template <class T>
T __shfl_xor_sync(unsigned, T value, int mask) {
    return cuda_emulation::exchange(value, cuda_emulation::lane() ^ mask);
}
unsigned __ballot_sync(unsigned mask, int predicate);

inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __ffs(unsigned x) { return __builtin_ffs(static_cast<int>(x)); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
// Fibers take turns on one thread, so a plain add is atomic here.
template <class T>
T atomicAdd(T* address, T value) {
    const T old = *address;
    *address = old + value;
    return old;
}
