// Helpers shared by the SAGAN kernels.
//
// Compiled two ways: at run time by NVRTC through CuPy (`accelerated/kernels/cupy_module.py`) and
// by nvcc in `tests/test_kernels_compile.py`. So no host headers here (NVRTC has none); bfloat16
// support comes from <cuda_bf16.h> only when SAGAN_BF16 is defined, i.e. only the bfloat16
// instantiations need the CUDA toolkit headers.
#pragma once

#ifdef SAGAN_BF16
#include <cuda_bf16.h>
#endif

namespace sagan {

// Loads and stores: every kernel computes in float32, whatever the storage type T is.
__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ void store(float* p, float x) { *p = x; }
#ifdef SAGAN_BF16
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ void store(__nv_bfloat16* p, float x) { *p = __float2bfloat16(x); }
#endif

// -infinity without <cmath>: the start value of a running maximum.
__device__ __forceinline__ float negative_infinity() { return __int_as_float(0xff800000); }

// Sum over the 32 lanes of a warp; every lane gets the result. All 32 lanes must call it.
__device__ __forceinline__ float warp_sum(float x) {
    for (int offset = 16; offset > 0; offset /= 2) {
        x += __shfl_xor_sync(0xffffffffu, x, offset);
    }
    return x;
}

// Sum over the whole block; every thread gets the result. All threads must call it, and
// blockDim.x must be a multiple of 32 (at most 1024).
__device__ __forceinline__ float block_sum(float x) {
    __shared__ float partial[32];  // one slot per warp
    const int lane = threadIdx.x % 32;
    const int warp = threadIdx.x / 32;
    const int n_warps = blockDim.x / 32;
    x = warp_sum(x);
    if (lane == 0) partial[warp] = x;
    __syncthreads();
    x = (threadIdx.x < n_warps) ? partial[threadIdx.x] : 0.0f;
    if (warp == 0) x = warp_sum(x);
    if (threadIdx.x == 0) partial[0] = x;
    __syncthreads();
    const float total = partial[0];
    __syncthreads();  // nobody overwrites `partial` before everyone has read the total
    return total;
}

}  // namespace sagan
