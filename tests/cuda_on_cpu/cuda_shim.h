// Just enough of CUDA to run the kernels of accelerated/kernels on a CPU, one thread per CUDA thread.
//
// A test aid, not a simulator: blocks run one after another; the threads of a block run as real
// std::threads, so __syncthreads is a std::barrier over the block and __shfl_xor_sync a barrier
// over the 32 threads of a warp with an exchange slot per lane. __shared__ becomes `static`,
// which is right because only one block exists at a time. With SAGAN_BF16 defined, bfloat16
// comes from <cuda_bf16.h> (pass the toolkit's include folder).
#pragma once

#ifdef SAGAN_BF16
// bfloat16 from the CUDA toolkit's own header, whose conversions also compile for the host; it
// brings the toolkit's dim3 with it.
#include <cuda_bf16.h>
#endif

#include <barrier>
#include <cmath>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static

#ifndef SAGAN_BF16
struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};
#endif

inline dim3 gridDim, blockDim;
inline thread_local dim3 threadIdx, blockIdx;

struct Warp {
    std::barrier<> barrier{32};
    float slot[32];
};
inline std::barrier<>* block_barrier = nullptr;
inline Warp* warps = nullptr;

inline void __syncthreads() { block_barrier->arrive_and_wait(); }

inline float __shfl_xor_sync(unsigned, float x, int offset) {
    Warp& warp = warps[threadIdx.x / 32];
    const unsigned lane = threadIdx.x % 32;
    warp.slot[lane] = x;
    warp.barrier.arrive_and_wait();
    const float other = warp.slot[lane ^ offset];
    warp.barrier.arrive_and_wait();
    return other;
}

inline float __int_as_float(unsigned bits) {
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

inline int min(int a, int b) { return a < b ? a : b; }

// kernel<<<grid, block>>>(args...)
template <typename Kernel, typename... Args>
void launch(dim3 grid, dim3 block, Kernel kernel, Args... args) {
    gridDim = grid;
    blockDim = block;
    for (unsigned by = 0; by < grid.y; ++by) {
        for (unsigned bx = 0; bx < grid.x; ++bx) {
            std::barrier<> barrier(block.x);
            std::unique_ptr<Warp[]> block_warps(new Warp[block.x / 32]);
            block_barrier = &barrier;
            warps = block_warps.get();
            std::vector<std::thread> threads;
            for (unsigned t = 0; t < block.x; ++t) {
                threads.emplace_back([=] {
                    threadIdx = dim3{t, 0, 0};
                    blockIdx = dim3{bx, by, 0};
                    kernel(args...);
                });
            }
            for (auto& thread : threads) thread.join();
        }
    }
}
