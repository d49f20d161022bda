// Just enough of CUDA C++ to compile kernels/cuda/*.cu with a host C++ compiler and run each
// kernel launch on the CPU, one grid block after another (see cuda_emulator.py).
//
// * __global__ / __device__ functions become plain functions; blockIdx and threadIdx are
//   variables that the launcher sets before it runs the kernel body for a thread.
// * A kernel without __syncthreads runs its threads one after another on one CPU thread: the
//   threads of such a kernel do not talk to each other, so any order gives CUDA's result.
// * A kernel with __syncthreads runs the threads of each block as fibers that take turns
//   between __syncthreads; __shared__ arrays become function statics, shared by the threads
//   of the block being run (blocks run one after another).
// * A launch runs on one CPU thread, so atomicAdd is a plain read-add-write.
#pragma once

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <ucontext.h>

#include <functional>
#include <memory>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static

struct uint3 { unsigned x, y, z; };
struct dim3 { unsigned x, y, z; };

static uint3 threadIdx;
static uint3 blockIdx;
static dim3 blockDim;
static dim3 gridDim;

namespace emu {

// The threads of a block that synchronizes are fibers (ucontext): one CPU thread runs each in
// turn up to its next __syncthreads (or its end), and starts the next round when all have
// arrived -- a barrier, deterministic and without OS threads.
struct Block {
    std::vector<ucontext_t> threads;
    std::vector<std::unique_ptr<char[]>> stacks;
    std::vector<char> done;
    ucontext_t scheduler;
    unsigned current = 0;
    const std::function<void()>* body = nullptr;
};

static const size_t kStackBytes = 64 * 1024;
static Block* block_running = nullptr;   // set while a kernel with __syncthreads runs

static void set_indices(unsigned block, unsigned thread) {
    blockIdx = {block % gridDim.x, block / gridDim.x % gridDim.y, block / (gridDim.x * gridDim.y)};
    threadIdx = {thread % blockDim.x, thread / blockDim.x % blockDim.y,
                 thread / (blockDim.x * blockDim.y)};
}

static void fiber_main() {
    (*block_running->body)();
    block_running->done[block_running->current] = 1;   // then back to the scheduler (uc_link)
}

static void sync_threads() {
    Block& b = *block_running;
    swapcontext(&b.threads[b.current], &b.scheduler);
}

// Run body once for every (block, thread) of the launch.
static void launch(dim3 grid, dim3 block, bool synchronizing, const std::function<void()>& body) {
    gridDim = grid;
    blockDim = block;
    const unsigned blocks = grid.x * grid.y * grid.z, threads = block.x * block.y * block.z;
    if (!synchronizing) {   // the threads do not talk to each other: any order will do
        for (unsigned b = 0; b < blocks; ++b)
            for (unsigned t = 0; t < threads; ++t) {
                set_indices(b, t);
                body();
            }
        return;
    }
    Block run;
    run.body = &body;
    run.threads.resize(threads);
    run.done.resize(threads);
    for (unsigned t = 0; t < threads; ++t) run.stacks.emplace_back(new char[kStackBytes]);
    block_running = &run;
    for (unsigned b = 0; b < blocks; ++b) {
        for (unsigned t = 0; t < threads; ++t) {
            ucontext_t& c = run.threads[t];
            getcontext(&c);
            c.uc_stack.ss_sp = run.stacks[t].get();
            c.uc_stack.ss_size = kStackBytes;
            c.uc_link = &run.scheduler;
            makecontext(&c, fiber_main, 0);
            run.done[t] = 0;
        }
        for (unsigned left = threads; left > 0;) {   // one round per __syncthreads
            for (unsigned t = 0; t < threads; ++t) {
                if (run.done[t]) continue;
                run.current = t;
                set_indices(b, t);
                swapcontext(&run.scheduler, &run.threads[t]);
                if (run.done[t]) --left;
            }
        }
    }
    block_running = nullptr;
}

}  // namespace emu

static inline void __syncthreads() { emu::sync_threads(); }

template <typename T>
static inline T atomicAdd(T* address, T value) {
    const T old = *address;
    *address = old + value;
    return old;
}

static inline float __int_as_float(int bits) {
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline double __longlong_as_double(long long bits) {
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}
