// The CUDA sources of accelerated/kernels compiled as C++ for the CPU (see cuda_shim.h), behind
// a C interface for ctypes. Each function launches the kernels the way the Python op does.
#include "cuda_shim.h"

#include "attention.cu"
#include "hinge.cu"
#include "power_iteration.cu"

namespace {

dim3 grid_for(int rows, int batch, int threads) {
    return dim3{unsigned((rows + threads - 1) / threads), unsigned(batch), 1};
}

template <typename T, int D_QK, int D_V>
void forward(const void* q, const void* k, const void* v, void* o, float* lse, int B, int N,
             int N_k, int threads) {
    launch(grid_for(N, B, threads), dim3{unsigned(threads)}, attention_forward<T, D_QK, D_V>,
           static_cast<const T*>(q), static_cast<const T*>(k), static_cast<const T*>(v),
           static_cast<T*>(o), lse, N, N_k);
}

template <typename T, int D_QK, int D_V>
void backward(const void* q, const void* k, const void* v, const void* o, const void* d_o,
              const float* lse, float* delta, void* dq, void* dk, void* dv, int B, int N,
              int N_k, int threads) {
    const T *q_ = static_cast<const T*>(q), *k_ = static_cast<const T*>(k);
    const T *v_ = static_cast<const T*>(v), *do_ = static_cast<const T*>(d_o);
    launch(grid_for(N, B, threads), dim3{unsigned(threads)}, attention_backward_dq<T, D_QK, D_V>,
           q_, k_, v_, static_cast<const T*>(o), do_, lse, delta, static_cast<T*>(dq), N, N_k);
    launch(grid_for(N_k, B, threads), dim3{unsigned(threads)},
           attention_backward_dkdv<T, D_QK, D_V>, q_, k_, v_, do_, lse, delta,
           static_cast<T*>(dk), static_cast<T*>(dv), N, N_k);
}

}  // namespace

#define SAGAN_HEAD_SIZES(X) X(8, 8) X(8, 32) X(16, 64) X(32, 128)

// attention_forward_cpu / attention_backward_cpu for float32 tensors and, in a build with
// SAGAN_BF16, attention_forward_bf16_cpu / attention_backward_bf16_cpu for bfloat16 ones
// (buffers of bfloat16 bit patterns; lse and delta stay float32).
#define SAGAN_ATTENTION_ENTRY_POINTS(SUFFIX)                                                      \
    extern "C" int attention_forward##SUFFIX(int d_qk, int d_v, const void* q, const void* k,   \
                                             const void* v, void* o, float* lse, int B, int N,  \
                                             int N_k, int threads) {                            \
        SAGAN_HEAD_SIZES(SAGAN_FORWARD_CASE_##SUFFIX)                                           \
        return -1;                                                                              \
    }                                                                                           \
    extern "C" int attention_backward##SUFFIX(                                                  \
        int d_qk, int d_v, const void* q, const void* k, const void* v, const void* o,          \
        const void* d_o, const float* lse, float* delta, void* dq, void* dk, void* dv, int B,   \
        int N, int N_k, int threads) {                                                          \
        SAGAN_HEAD_SIZES(SAGAN_BACKWARD_CASE_##SUFFIX)                                          \
        return -1;                                                                              \
    }

#define SAGAN_FORWARD_CASE(T, A, C)                                \
    if (d_qk == A && d_v == C) {                                   \
        forward<T, A, C>(q, k, v, o, lse, B, N, N_k, threads);     \
        return 0;                                                  \
    }
#define SAGAN_BACKWARD_CASE(T, A, C)                                                         \
    if (d_qk == A && d_v == C) {                                                             \
        backward<T, A, C>(q, k, v, o, d_o, lse, delta, dq, dk, dv, B, N, N_k, threads);      \
        return 0;                                                                            \
    }

#define SAGAN_FORWARD_CASE__cpu(A, C) SAGAN_FORWARD_CASE(float, A, C)
#define SAGAN_BACKWARD_CASE__cpu(A, C) SAGAN_BACKWARD_CASE(float, A, C)
SAGAN_ATTENTION_ENTRY_POINTS(_cpu)

#ifdef SAGAN_BF16
#define SAGAN_FORWARD_CASE__bf16_cpu(A, C) SAGAN_FORWARD_CASE(__nv_bfloat16, A, C)
#define SAGAN_BACKWARD_CASE__bf16_cpu(A, C) SAGAN_BACKWARD_CASE(__nv_bfloat16, A, C)
SAGAN_ATTENTION_ENTRY_POINTS(_bf16_cpu)
#endif

extern "C" void power_iteration_cpu(const unsigned long long* weights, const long long* row_offsets,
                                    const long long* col_offsets, const float* u_in, float* u_out,
                                    float* v_out, float* sigma, int M, int n_steps, float eps,
                                    int threads) {
    launch(dim3{unsigned(M)}, dim3{unsigned(threads)}, power_iteration_batched, weights,
           row_offsets, col_offsets, u_in, u_out, v_out, sigma, n_steps, eps);
}

extern "C" void hinge_d_cpu(const float* d_real, int n_real, const float* d_fake, int n_fake,
                            float* loss, const float* grad_loss, float* grad_real,
                            float* grad_fake, int threads) {
    launch(dim3{1}, dim3{unsigned(threads)}, hinge_discriminator_forward, d_real, n_real, d_fake,
           n_fake, loss);
    launch(dim3{1}, dim3{unsigned(threads)}, hinge_discriminator_backward, d_real, n_real, d_fake,
           n_fake, grad_loss, grad_real, grad_fake);
}

extern "C" void hinge_g_cpu(const float* d_fake, int n_fake, float* loss, const float* grad_loss,
                            float* grad_fake, int threads) {
    launch(dim3{1}, dim3{unsigned(threads)}, hinge_generator_forward, d_fake, n_fake, loss);
    launch(dim3{1}, dim3{unsigned(threads)}, hinge_generator_backward, n_fake, grad_loss,
           grad_fake);
}
