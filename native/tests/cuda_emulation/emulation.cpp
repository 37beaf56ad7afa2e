// The CPU emulation's runtime (see cuda_runtime.h): device memory with its bookkeeping, and the
// fiber scheduler that runs a grid, block after block, each block warp by warp.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "cuda_runtime.h"

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/common_interface_defs.h>
#endif

#if defined(__x86_64__)
// Switches stacks: saves the callee-saved registers on the current stack and its pointer in
// *from, then continues on the stack `to` (one made by make_context, or saved here before).
// Plain code rather than setjmp/longjmp, which ASan intercepts at a cost of a system call each.
extern "C" void docent_emulation_switch(void** from, void* to);
asm(R"(
    .pushsection .text
    .globl docent_emulation_switch
    .type docent_emulation_switch, @function
docent_emulation_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size docent_emulation_switch, .-docent_emulation_switch
    .popsection
)");

namespace {
struct Context {
    void* sp = nullptr;
};
// A context that starts entry() (which must never return) on the given stack.
void make_context(Context& c, char* stack, std::size_t size, void (*entry)()) {
    auto top = reinterpret_cast<std::uintptr_t>(stack + size) & ~std::uintptr_t{15};
    auto* slot = reinterpret_cast<void**>(top);
    *--slot = nullptr;                            // entry's return address: none (keeps the ABI's alignment)
    *--slot = reinterpret_cast<void*>(entry);     // where the first switch's `ret` goes
    for (int i = 0; i < 6; ++i) *--slot = nullptr;  // rbp, rbx, r12-r15
    c.sp = slot;
}
void switch_context(Context& from, Context& to) { docent_emulation_switch(&from.sp, to.sp); }
}  // namespace
#else
#include <ucontext.h>
namespace {
struct Context {
    ucontext_t uc;
};
void make_context(Context& c, char* stack, std::size_t size, void (*entry)()) {
    getcontext(&c.uc);
    c.uc.uc_stack.ss_sp = stack;
    c.uc.uc_stack.ss_size = size;
    c.uc.uc_link = nullptr;
    makecontext(&c.uc, entry, 0);
}
void switch_context(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }
}  // namespace
#endif

dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace cuda_emulation {

namespace {

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "CUDA emulation: %s (block %u,%u thread %u)\n", what, blockIdx.x, blockIdx.y, threadIdx.x);
    std::abort();
}

// Host threads may call in at once (the Python module releases the GIL): one grid runs at a
// time, and the allocation table has its own lock.
std::mutex& grid_lock() {
    static std::mutex m;
    return m;
}
std::mutex& memory_lock() {
    static std::mutex m;
    return m;
}

std::map<const char*, std::size_t>& allocations() {
    static std::map<const char*, std::size_t> live;
    return live;
}

// Whether [p, p + bytes) lies inside one live device allocation.
bool is_device_range(const void* p, std::size_t bytes) {
    const char* c = static_cast<const char*>(p);
    auto it = allocations().upper_bound(c);
    if (it == allocations().begin()) return false;
    --it;
    return c >= it->first && c + bytes <= it->first + it->second;
}

enum class State { Ready, AtWarpBarrier, AtBlockBarrier, Done };

struct Fiber {
    Context context;
    State state = State::Ready;
    unsigned exchanges = 0;  // picks the slot set of the next one
    void* fake_stack = nullptr;  // ASan's, while switched out
};

constexpr std::size_t kStackBytes = 64 * 1024;

struct Scheduler {
    std::vector<std::unique_ptr<char[]>> stacks;
    std::vector<Fiber> fibers;
    std::vector<std::uint64_t> slots;  // two sets of 32 per warp
    std::unique_ptr<unsigned char[]> shared;
    Context home;
    const std::function<void()>* body = nullptr;
    int current = -1;
    void* home_fake_stack = nullptr;
    const void* home_bottom = nullptr;
    std::size_t home_size = 0;
};
Scheduler scheduler;

void start_switch(void** fake_stack, const void* bottom, std::size_t size) {
#ifdef __SANITIZE_ADDRESS__
    __sanitizer_start_switch_fiber(fake_stack, bottom, size);
#else
    (void)fake_stack, (void)bottom, (void)size;
#endif
}

void finish_switch(void* fake_stack, const void** bottom_old, std::size_t* size_old) {
#ifdef __SANITIZE_ADDRESS__
    __sanitizer_finish_switch_fiber(fake_stack, bottom_old, size_old);
#else
    (void)fake_stack, (void)bottom_old, (void)size_old;
#endif
}

// From the running fiber back to the scheduler; returns when the scheduler resumes it.
void yield(State state) {
    Fiber& f = scheduler.fibers[scheduler.current];
    f.state = state;
    start_switch(&f.fake_stack, scheduler.home_bottom, scheduler.home_size);
    switch_context(f.context, scheduler.home);
    finish_switch(f.fake_stack, nullptr, nullptr);
}

void fiber_main() {
    finish_switch(nullptr, &scheduler.home_bottom, &scheduler.home_size);
    (*scheduler.body)();
    Fiber& f = scheduler.fibers[scheduler.current];
    f.state = State::Done;
    start_switch(nullptr, scheduler.home_bottom, scheduler.home_size);  // this stack is done with
    switch_context(f.context, scheduler.home);
    std::abort();  // never resumed
}

void set_thread_index(int i) {
    threadIdx = dim3(i % blockDim.x, i / blockDim.x % blockDim.y, i / (blockDim.x * blockDim.y));
}

// Runs fiber i until it waits at a barrier or ends.
void resume(int i) {
    scheduler.current = i;
    set_thread_index(i);
    Fiber& f = scheduler.fibers[i];
    f.state = State::Ready;
    start_switch(&scheduler.home_fake_stack, scheduler.stacks[i].get(), kStackBytes);
    switch_context(scheduler.home, f.context);
    finish_switch(scheduler.home_fake_stack, nullptr, nullptr);
}

// Runs one warp's lanes until each waits at __syncthreads or has ended. A warp barrier (every
// warp instruction) is passed only when every lane of the warp has reached one.
void run_warp(int first, int end) {
    for (;;) {
        for (int i = first; i < end; ++i)
            if (scheduler.fibers[i].state == State::Ready) resume(i);
        int at_warp = 0, done = 0;
        for (int i = first; i < end; ++i) {
            at_warp += scheduler.fibers[i].state == State::AtWarpBarrier;
            done += scheduler.fibers[i].state == State::Done;
        }
        if (at_warp == 0) return;
        if (at_warp != end - first) {
            scheduler.current = first;
            fail(done ? "a warp instruction was reached after some lanes of the warp had exited"
                      : "a warp instruction was reached by some lanes of the warp while others wait at __syncthreads");
        }
        for (int i = first; i < end; ++i) scheduler.fibers[i].state = State::Ready;
    }
}

void run_block(int threads) {
    Scheduler& s = scheduler;
    if (s.stacks.size() < static_cast<std::size_t>(threads)) {
        s.stacks.resize(threads);
        for (auto& stack : s.stacks)
            if (!stack) stack.reset(new char[kStackBytes]);
    }
    s.fibers.assign(threads, Fiber{});
    s.slots.assign((threads + 31) / 32 * 64, 0);
    for (int i = 0; i < threads; ++i) make_context(s.fibers[i].context, s.stacks[i].get(), kStackBytes, fiber_main);
    for (;;) {
        for (int first = 0; first < threads; first += 32) run_warp(first, std::min(threads, first + 32));
        bool all_done = true;
        for (Fiber& f : s.fibers) {
            if (f.state == State::AtBlockBarrier) f.state = State::Ready, all_done = false;
            else if (f.state != State::Done) fail("a fiber is neither waiting nor done");
        }
        if (all_done) return;
    }
}

}  // namespace

Device& device() {
    static Device d;
    return d;
}

cudaError_t allocate(void** pointer, std::size_t bytes) {
    std::lock_guard<std::mutex> lock(memory_lock());
    Device& d = device();
    if (bytes > d.memory - d.used) return cudaErrorMemoryAllocation;
    char* p = static_cast<char*>(std::malloc(bytes ? bytes : 1));
    if (p == nullptr) return cudaErrorMemoryAllocation;
    allocations()[p] = bytes;
    d.used += bytes;
    *pointer = p;
    return cudaSuccess;
}

cudaError_t release(void* pointer) {
    if (pointer == nullptr) return cudaSuccess;
    std::lock_guard<std::mutex> lock(memory_lock());
    auto it = allocations().find(static_cast<const char*>(pointer));
    if (it == allocations().end()) fail("cudaFree of memory that cudaMalloc did not give");
    device().used -= it->second;
    allocations().erase(it);
    std::free(pointer);
    return cudaSuccess;
}

std::size_t allocation_size(const void* pointer) {
    std::lock_guard<std::mutex> lock(memory_lock());
    auto it = allocations().find(static_cast<const char*>(pointer));
    return it == allocations().end() ? 0 : it->second;
}

void run_grid(dim3 grid, dim3 block, std::size_t shared_bytes, const std::function<void()>& body) {
    std::lock_guard<std::mutex> lock(grid_lock());
    if (scheduler.current >= 0) fail("a kernel launch from inside a kernel");
    if (block.x * block.y * block.z == 0 || block.x * block.y * block.z > 1024) fail("a block of 0 or more than 1024 threads");
    if (grid.y > 65535 || grid.z > 65535) fail("a grid dimension y or z over 65535");
    if (shared_bytes > static_cast<std::size_t>(device().shared_memory_per_block)) fail("more dynamic shared memory than a block may have");
    const int threads = static_cast<int>(block.x * block.y * block.z);
    gridDim = grid, blockDim = block;
    scheduler.body = &body;
    for (unsigned z = 0; z < grid.z; ++z)
        for (unsigned y = 0; y < grid.y; ++y)
            for (unsigned x = 0; x < grid.x; ++x) {
                blockIdx = dim3(x, y, z);
                // Exactly the size asked for, fresh for each block: reading past it, or reading what
                // no thread of this block wrote, is the kernel's bug (ASan sees the first).
                scheduler.shared.reset(shared_bytes ? new unsigned char[shared_bytes] : nullptr);
                run_block(threads);
            }
    scheduler.current = -1;
    scheduler.shared.reset();
}

unsigned char* dynamic_shared_memory() { return scheduler.shared.get(); }

void block_barrier() { yield(State::AtBlockBarrier); }
void warp_barrier() { yield(State::AtWarpBarrier); }
int lane() { return scheduler.current % 32; }
std::uint64_t* next_warp_slots() {
    const unsigned set = scheduler.fibers[scheduler.current].exchanges++ & 1u;
    return scheduler.slots.data() + scheduler.current / 32 * 64 + set * 32;
}

}  // namespace cuda_emulation

cudaError_t cudaMemcpy(void* target, const void* source, std::size_t bytes, cudaMemcpyKind kind) {
    const bool to_device = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    const bool from_device = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (bytes == 0) return cudaSuccess;
    std::unique_lock<std::mutex> lock(cuda_emulation::memory_lock());
    if (to_device && !cuda_emulation::is_device_range(target, bytes))
        cuda_emulation::fail("cudaMemcpy writes outside device memory");
    if (from_device && !cuda_emulation::is_device_range(source, bytes))
        cuda_emulation::fail("cudaMemcpy reads outside device memory");
    std::memmove(target, source, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemset(void* target, int value, std::size_t bytes) {
    std::unique_lock<std::mutex> lock(cuda_emulation::memory_lock());
    if (bytes && !cuda_emulation::is_device_range(target, bytes)) cuda_emulation::fail("cudaMemset outside device memory");
    std::memset(target, value, bytes);
    return cudaSuccess;
}

unsigned __ballot_sync(unsigned, int predicate) {
    std::uint64_t* slots = cuda_emulation::next_warp_slots();
    slots[cuda_emulation::lane()] = predicate ? 1 : 0;
    cuda_emulation::warp_barrier();
    unsigned mask = 0;
    for (int i = 0; i < 32; ++i) mask |= static_cast<unsigned>(slots[i] & 1u) << i;
    return mask;
}
