// Error handling, device selection and device memory for the GPU engine.
#pragma once

#include <cuda_runtime.h>

#include <memory>
#include <string>
#include <utility>

#include "gpu_api.h"

namespace docent::gpu {

// Kernels are launched through launch(), and find their dynamic shared memory through
// dynamic_shared_memory(), so that these sources build with a host compiler too: the C++ tests
// run them on the CPU emulation in native/tests/cuda_emulation, which provides both.
#ifdef __CUDACC__
template <class... Params, class... Args>
void launch(dim3 grid, dim3 block, std::size_t shared_bytes, void (*kernel)(Params...), Args... args) {
    kernel<<<grid, block, shared_bytes>>>(args...);
}

__device__ inline unsigned char* dynamic_shared_memory() {
    extern __shared__ __align__(32) unsigned char memory[];
    return memory;
}
#else
using cuda_emulation::dynamic_shared_memory;
using cuda_emulation::launch;
#endif

inline std::string mib(std::size_t bytes) { return std::to_string((bytes + (1u << 20) - 1) >> 20) + " MiB"; }

inline std::string describe(cudaError_t err, const std::string& what) {
    switch (err) {
        case cudaErrorInsufficientDriver: {
            int runtime = 0, driver = 0;
            cudaRuntimeGetVersion(&runtime);
            cudaDriverGetVersion(&driver);
            if (driver == 0) return what + ": no NVIDIA driver is installed, so there is no GPU to use";
            return what + ": the NVIDIA driver (supports CUDA " + std::to_string(driver / 1000) + "." +
                   std::to_string(driver % 1000 / 10) + ") is too old for this build (CUDA " + std::to_string(runtime / 1000) +
                   "." + std::to_string(runtime % 1000 / 10) + "); update the driver";
        }
        case cudaErrorNoDevice: return what + ": no CUDA GPU was found";
        default: return what + ": " + cudaGetErrorString(err);
    }
}

inline void check(cudaError_t err, const std::string& what) {
    if (err != cudaSuccess) {
        cudaGetLastError();  // clears a non-sticky error so the next call starts clean
        throw GpuError(describe(err, what));
    }
}

// Makes `device` current for a scope, and restores the caller's device after.
class DeviceScope {
public:
    explicit DeviceScope(int device) {
        check(cudaGetDevice(&previous_), "selecting a GPU");
        check(cudaSetDevice(device), "selecting GPU " + std::to_string(device));
    }
    ~DeviceScope() { cudaSetDevice(previous_); }
    DeviceScope(const DeviceScope&) = delete;
    DeviceScope& operator=(const DeviceScope&) = delete;

private:
    int previous_ = 0;
};

// Frees a GPU index's state (whose `device` says where it lives) with that device current.
// For destructors, which never throw: on failure the memory goes with the CUDA context.
template <class State>
void release_on_device(std::unique_ptr<State>& state) noexcept {
    if (!state) return;
    try {
        DeviceScope scope(state->device);
        state.reset();
    } catch (...) {
    }
}

// An array in device memory. Running out says how much was asked for and how much was free.
template <class T>
class DeviceArray {
public:
    DeviceArray() = default;
    DeviceArray(std::size_t count, int device, const char* what) { allocate(count, device, what); }
    ~DeviceArray() { release(); }
    DeviceArray(DeviceArray&& other) noexcept { *this = std::move(other); }
    DeviceArray& operator=(DeviceArray&& other) noexcept {
        if (this != &other) {
            release();
            data_ = std::exchange(other.data_, nullptr);
            count_ = std::exchange(other.count_, 0);
        }
        return *this;
    }
    DeviceArray(const DeviceArray&) = delete;
    DeviceArray& operator=(const DeviceArray&) = delete;

    void allocate(std::size_t count, int device, const char* what) {
        release();
        if (count == 0) return;
        const std::size_t bytes = count * sizeof(T);
        cudaError_t err = cudaMalloc(&data_, bytes);
        if (err == cudaErrorMemoryAllocation) {
            cudaGetLastError();
            std::size_t free_bytes = 0, total = 0;
            cudaMemGetInfo(&free_bytes, &total);
            data_ = nullptr;
            throw GpuError(std::string(what) + ": out of GPU memory on device " + std::to_string(device) + ": needed " +
                           mib(bytes) + ", " + mib(free_bytes) + " free of " + mib(total));
        }
        check(err, what);
        count_ = count;
    }
    void release() {
        if (data_ != nullptr) cudaFree(data_);
        data_ = nullptr;
        count_ = 0;
    }
    T* data() { return data_; }
    const T* data() const { return data_; }
    std::size_t size() const { return count_; }
    std::size_t bytes() const { return count_ * sizeof(T); }

private:
    T* data_ = nullptr;
    std::size_t count_ = 0;
};

}  // namespace docent::gpu
