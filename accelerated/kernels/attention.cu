// Fused self-attention for SAGAN, flash-attention style: eqs. (1)-(2) without storing beta.
//
//   s_ij       = f(x_i)^T g(x_j)                        (scores; no 1/sqrt(d) scaling in SAGAN)
//   beta_{j,i} = exp(s_ij) / sum_i' exp(s_i'j)          (eq. 1, softmax over the keys i)
//   o_j        = sum_i beta_{j,i} h(x_i)                (eq. 2, before the output map v)
//
// Layout (contiguous, one "head"):  q = g(x): (B, N, D_QK)    k = f(x): (B, N_k, D_QK)
//                                   v = h(x): (B, N_k, D_V)   o: (B, N, D_V)
// j indexes queries (outputs), i keys/values. The 1x1 convolutions, the optional 2x2 max-pool of
// keys and values, the output map W_v and the residual (eq. 3) happen outside, in PyTorch.
//
// Forward, one thread per query j, a block of blockDim.x queries of one image (blockIdx.y = b):
// the block streams over the keys in tiles of TILE, staged in shared memory as float32. Each
// thread keeps a running maximum m, a running sum l and an accumulator acc (online softmax), so
// the N x N_k matrix never exists. It also writes the log-sum-exp L_j = m + log(l) for the
// backward. T is float or __nv_bfloat16 (storage only: all arithmetic is float32).
//
// Backward, two passes, no atomics (each output element has exactly one writer):
//   1. attention_backward_dq, query-parallel: D_j = dO_j . O_j, then over all keys
//      P = exp(s - L), dP = dO_j . h(x_i), dS = P (dP - D_j), dQ_j += dS f(x_i).
//   2. attention_backward_dkdv, key-parallel (one thread per key i), over all queries:
//      dV_i += P dO_j, dK_i += dS g(x_j)  (P, dS recomputed; D_j comes from pass 1).
// Recomputing P costs a second set of exponentials; in exchange there is no N x N_k buffer and
// no atomic accumulation, which keeps the kernel simple and deterministic.
//
// D_QK and D_V are template parameters (8..64 and 8..128) so the per-thread rows live in
// registers. blockDim.x is chosen by the caller (a multiple of 32).
#include "common.cuh"

namespace sagan {

constexpr int TILE = 32;  // keys (forward, dq) or queries (dkdv) staged in shared memory at once

// s = a . b over D entries (a, b in registers or shared memory).
template <int D>
__device__ __forceinline__ float dot(const float* a, const float* b) {
    float s = 0.0f;
#pragma unroll
    for (int d = 0; d < D; ++d) s += a[d] * b[d];
    return s;
}

// Row `src` (D entries) into registers; zeros for an inactive thread (past the last row).
template <int D, typename T>
__device__ __forceinline__ void load_row(float* dst, const T* src, bool active) {
#pragma unroll
    for (int d = 0; d < D; ++d) dst[d] = active ? to_float(src[d]) : 0.0f;
}

// n_rows contiguous rows of D entries into a shared-memory tile, all threads of the block helping.
template <int D, typename T>
__device__ __forceinline__ void load_tile(float (*tile)[D], const T* src, int n_rows) {
    for (int idx = threadIdx.x; idx < n_rows * D; idx += blockDim.x) {
        tile[idx / D][idx % D] = to_float(src[idx]);
    }
}

}  // namespace sagan

// Forward: o (B, n_q, D_V) and lse (B, n_q) float32. Grid (ceil(n_q / blockDim.x), B).
template <typename T, int D_QK, int D_V>
__global__ void attention_forward(const T* __restrict__ q, const T* __restrict__ k,
                                  const T* __restrict__ v, T* __restrict__ o,
                                  float* __restrict__ lse, int n_q, int n_k) {
    using namespace sagan;
    __shared__ float k_tile[TILE][D_QK];  // f(x_i) for the keys of this tile
    __shared__ float v_tile[TILE][D_V];   // h(x_i) for the keys of this tile

    const int b = blockIdx.y;
    const int j = blockIdx.x * blockDim.x + threadIdx.x;  // this thread's query
    const bool active = j < n_q;  // inactive threads still help to load the tiles
    const long long row = (long long)b * n_q + j;
    const T* k_b = k + (long long)b * n_k * D_QK;
    const T* v_b = v + (long long)b * n_k * D_V;

    float g_j[D_QK];  // the query g(x_j)
    load_row<D_QK>(g_j, q + row * D_QK, active);
    float m = negative_infinity();  // running max_i s_ij over the keys seen so far
    float l = 0.0f;                 // running sum_i exp(s_ij - m)
    float acc[D_V];                 // running sum_i exp(s_ij - m) h(x_i)
#pragma unroll
    for (int d = 0; d < D_V; ++d) acc[d] = 0.0f;

    for (int start = 0; start < n_k; start += TILE) {
        const int n_tile = min(TILE, n_k - start);
        load_tile<D_QK>(k_tile, k_b + (long long)start * D_QK, n_tile);
        load_tile<D_V>(v_tile, v_b + (long long)start * D_V, n_tile);
        __syncthreads();

        // The tile's largest score first, so each exponential below is taken once, at m_new.
        float m_tile = negative_infinity();
        for (int i = 0; i < n_tile; ++i) {
            // --8<-- [start:eq1-scores]
            // s_ij = f(x_i)^T g(x_j)
            const float s_ij = dot<D_QK>(k_tile[i], g_j);
            // --8<-- [end:eq1-scores]
            m_tile = fmaxf(m_tile, s_ij);
        }
        // --8<-- [start:eq1-softmax]
        // Online softmax: move the running sums from max m to m_new (on the first tile
        // m = -inf, so rescale = 0 and the empty sums stay 0) ...
        const float m_new = fmaxf(m, m_tile);
        const float rescale = expf(m - m_new);
        l *= rescale;
#pragma unroll
        for (int d = 0; d < D_V; ++d) acc[d] *= rescale;
        for (int i = 0; i < n_tile; ++i) {
            // ... then add this tile's terms: exp(s_ij - m_new), beta_{j,i} up to 1/l
            const float p = expf(dot<D_QK>(k_tile[i], g_j) - m_new);
            l += p;
            // --8<-- [end:eq1-softmax]
            // --8<-- [start:eq2-output]
            // o_j = sum_i beta_{j,i} h(x_i): accumulate exp(s_ij - m) h(x_i), divide by l at the end
#pragma unroll
            for (int d = 0; d < D_V; ++d) acc[d] += p * v_tile[i][d];
            // --8<-- [end:eq2-output]
        }
        m = m_new;
        __syncthreads();  // everyone is done with this tile before the next one overwrites it
    }

    if (active) {
        // o_j = acc / l; L_j = log sum_i exp(s_ij) = m + log(l), kept for the backward
        const float inv_l = 1.0f / l;
#pragma unroll
        for (int d = 0; d < D_V; ++d) store(o + row * D_V + d, acc[d] * inv_l);
        lse[row] = m + logf(l);
    }
}

// Backward pass 1 (query-parallel): dq (B, n_q, D_QK) and delta (B, n_q) float32,
// delta_j = dO_j . O_j. Grid (ceil(n_q / blockDim.x), B).
template <typename T, int D_QK, int D_V>
__global__ void attention_backward_dq(const T* __restrict__ q, const T* __restrict__ k,
                                      const T* __restrict__ v, const T* __restrict__ o,
                                      const T* __restrict__ d_o, const float* __restrict__ lse,
                                      float* __restrict__ delta, T* __restrict__ d_q, int n_q,
                                      int n_k) {
    using namespace sagan;
    __shared__ float k_tile[TILE][D_QK];
    __shared__ float v_tile[TILE][D_V];

    const int b = blockIdx.y;
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    const bool active = j < n_q;
    const long long row = (long long)b * n_q + j;
    const T* k_b = k + (long long)b * n_k * D_QK;
    const T* v_b = v + (long long)b * n_k * D_V;

    float g_j[D_QK];   // query
    float do_j[D_V];   // dL/dO_j
    load_row<D_QK>(g_j, q + row * D_QK, active);
    load_row<D_V>(do_j, d_o + row * D_V, active);
    const float L_j = active ? lse[row] : 0.0f;
    // D_j = sum_i P_ji dP_ji = dO_j . O_j
    float D_j = 0.0f;
    if (active) {
#pragma unroll
        for (int d = 0; d < D_V; ++d) D_j += do_j[d] * to_float(o[row * D_V + d]);
    }
    float dq[D_QK];
#pragma unroll
    for (int d = 0; d < D_QK; ++d) dq[d] = 0.0f;

    for (int start = 0; start < n_k; start += TILE) {
        const int n_tile = min(TILE, n_k - start);
        load_tile<D_QK>(k_tile, k_b + (long long)start * D_QK, n_tile);
        load_tile<D_V>(v_tile, v_b + (long long)start * D_V, n_tile);
        __syncthreads();
        for (int i = 0; i < n_tile; ++i) {
            // P_ji = exp(s_ij - L_j) = beta_{j,i}
            const float p = expf(dot<D_QK>(k_tile[i], g_j) - L_j);
            // dP_ji = dO_j . h(x_i);  dS_ji = P_ji (dP_ji - D_j)
            const float ds = p * (dot<D_V>(v_tile[i], do_j) - D_j);
            // dQ_j += dS_ji f(x_i)
#pragma unroll
            for (int d = 0; d < D_QK; ++d) dq[d] += ds * k_tile[i][d];
        }
        __syncthreads();
    }

    if (active) {
#pragma unroll
        for (int d = 0; d < D_QK; ++d) store(d_q + row * D_QK + d, dq[d]);
        delta[row] = D_j;
    }
}

// Backward pass 2 (key-parallel): dk (B, n_k, D_QK), dv (B, n_k, D_V).
// Grid (ceil(n_k / blockDim.x), B). Needs lse and delta (pass 1) for all queries.
template <typename T, int D_QK, int D_V>
__global__ void attention_backward_dkdv(const T* __restrict__ q, const T* __restrict__ k,
                                        const T* __restrict__ v, const T* __restrict__ d_o,
                                        const float* __restrict__ lse,
                                        const float* __restrict__ delta, T* __restrict__ d_k,
                                        T* __restrict__ d_v, int n_q, int n_k) {
    using namespace sagan;
    __shared__ float q_tile[TILE][D_QK];   // g(x_j) for the queries of this tile
    __shared__ float do_tile[TILE][D_V];   // dO_j
    __shared__ float lse_tile[TILE];       // L_j
    __shared__ float delta_tile[TILE];     // D_j

    const int b = blockIdx.y;
    const int i = blockIdx.x * blockDim.x + threadIdx.x;  // this thread's key
    const bool active = i < n_k;
    const long long row = (long long)b * n_k + i;
    const T* q_b = q + (long long)b * n_q * D_QK;
    const T* do_b = d_o + (long long)b * n_q * D_V;
    const float* lse_b = lse + (long long)b * n_q;
    const float* delta_b = delta + (long long)b * n_q;

    float f_i[D_QK];  // key
    float h_i[D_V];   // value
    load_row<D_QK>(f_i, k + row * D_QK, active);
    load_row<D_V>(h_i, v + row * D_V, active);
    float dk[D_QK];
    float dv[D_V];
#pragma unroll
    for (int d = 0; d < D_QK; ++d) dk[d] = 0.0f;
#pragma unroll
    for (int d = 0; d < D_V; ++d) dv[d] = 0.0f;

    for (int start = 0; start < n_q; start += TILE) {
        const int n_tile = min(TILE, n_q - start);
        load_tile<D_QK>(q_tile, q_b + (long long)start * D_QK, n_tile);
        load_tile<D_V>(do_tile, do_b + (long long)start * D_V, n_tile);
        for (int t = threadIdx.x; t < n_tile; t += blockDim.x) {
            lse_tile[t] = lse_b[start + t];
            delta_tile[t] = delta_b[start + t];
        }
        __syncthreads();
        for (int jj = 0; jj < n_tile; ++jj) {
            // P_ji = exp(s_ij - L_j)
            const float p = expf(dot<D_QK>(f_i, q_tile[jj]) - lse_tile[jj]);
            // dS_ji = P_ji (dO_j . h(x_i) - D_j)
            const float ds = p * (dot<D_V>(h_i, do_tile[jj]) - delta_tile[jj]);
            // dV_i += P_ji dO_j;  dK_i += dS_ji g(x_j)
#pragma unroll
            for (int d = 0; d < D_V; ++d) dv[d] += p * do_tile[jj][d];
#pragma unroll
            for (int d = 0; d < D_QK; ++d) dk[d] += ds * q_tile[jj][d];
        }
        __syncthreads();
    }

    if (active) {
#pragma unroll
        for (int d = 0; d < D_QK; ++d) store(d_k + row * D_QK + d, dk[d]);
#pragma unroll
        for (int d = 0; d < D_V; ++d) store(d_v + row * D_V + d, dv[d]);
    }
}
