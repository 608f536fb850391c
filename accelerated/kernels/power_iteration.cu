// Spectral normalisation (Miyato et al. 2018): power-iteration steps for many weights at once.
//
// A model has dozens of spectrally normalised weights; stepping each with PyTorch costs four or
// more small launches per weight (two matrix-vector products, two normalisations). Here ONE launch
// steps all of them: block b owns matrix b (m_b x n_b, float32, row-major, contiguous), found
// through a table of device pointers and offsets, and runs `n_steps` steps of
//
//     v <- W^T u / max(||W^T u||, eps)
//     u <- W v   / max(||W v||,   eps)
//
// then sigma = u^T W v (= ||W v||^2 / max(||W v||, eps), with the W v of the last step).
// The u and v vectors of all matrices are packed end to end: matrix b's u lives at
// u[row_offsets[b] : row_offsets[b + 1]], its v at v[col_offsets[b] : col_offsets[b + 1]].
// blockDim.x must be a multiple of 32.
#include "common.cuh"

extern "C" __global__ void power_iteration_batched(
    const unsigned long long* __restrict__ weights,  // (M,) device addresses of the W_b
    const long long* __restrict__ row_offsets,       // (M + 1,) prefix sums of m_b
    const long long* __restrict__ col_offsets,       // (M + 1,) prefix sums of n_b
    const float* __restrict__ u_in,                  // (sum m_b,) the starting u's
    float* __restrict__ u_out,                       // (sum m_b,) the new u's
    float* __restrict__ v_out,                       // (sum n_b,) the new v's
    float* __restrict__ sigma,                       // (M,) u^T W v
    int n_steps, float eps) {
    using namespace sagan;
    const int b = blockIdx.x;
    const float* W = reinterpret_cast<const float*>(weights[b]);
    const long long m = row_offsets[b + 1] - row_offsets[b];
    const long long n = col_offsets[b + 1] - col_offsets[b];
    float* u = u_out + row_offsets[b];
    float* v = v_out + col_offsets[b];
    const int lane = threadIdx.x % 32;
    const int warp = threadIdx.x / 32;
    const int n_warps = blockDim.x / 32;

    for (long long r = threadIdx.x; r < m; r += blockDim.x) u[r] = u_in[row_offsets[b] + r];
    __syncthreads();

    float wv_norm = 0.0f;
    for (int step = 0; step < n_steps; ++step) {
        // --8<-- [start:sn-power-iteration]
        // v = W^T u: thread c sums column c (neighbouring threads read neighbouring columns)
        float local = 0.0f;
        for (long long c = threadIdx.x; c < n; c += blockDim.x) {
            float s = 0.0f;
            for (long long r = 0; r < m; ++r) s += W[r * n + c] * u[r];
            v[c] = s;
            local += s * s;
        }
        // v <- v / max(||v||, eps)
        const float inv_v = 1.0f / fmaxf(sqrtf(block_sum(local)), eps);
        for (long long c = threadIdx.x; c < n; c += blockDim.x) v[c] *= inv_v;
        __syncthreads();

        // u = W v: one warp per row, lanes stride along the row, then a warp sum
        local = 0.0f;
        for (long long r = warp; r < m; r += n_warps) {
            float s = 0.0f;
            for (long long c = lane; c < n; c += 32) s += W[r * n + c] * v[c];
            s = warp_sum(s);
            if (lane == 0) {
                u[r] = s;
                local += s * s;
            }
        }
        // u <- u / max(||u||, eps)
        wv_norm = sqrtf(block_sum(local));
        const float inv_u = 1.0f / fmaxf(wv_norm, eps);
        for (long long r = threadIdx.x; r < m; r += blockDim.x) u[r] *= inv_u;
        __syncthreads();
        // --8<-- [end:sn-power-iteration]
    }
    // --8<-- [start:sn-sigma]
    // sigma = u^T (W v) = ||W v||^2 / max(||W v||, eps)
    if (threadIdx.x == 0) sigma[b] = wv_norm * wv_norm / fmaxf(wv_norm, eps);
    // --8<-- [end:sn-sigma]
}
