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

template <int D_QK, int D_V>
void forward(const float* q, const float* k, const float* v, float* o, float* lse, int B, int N,
             int N_k, int threads) {
    launch(grid_for(N, B, threads), dim3{unsigned(threads)}, attention_forward<float, D_QK, D_V>,
           q, k, v, o, lse, N, N_k);
}

template <int D_QK, int D_V>
void backward(const float* q, const float* k, const float* v, const float* o, const float* d_o,
              const float* lse, float* delta, float* dq, float* dk, float* dv, int B, int N,
              int N_k, int threads) {
    launch(grid_for(N, B, threads), dim3{unsigned(threads)},
           attention_backward_dq<float, D_QK, D_V>, q, k, v, o, d_o, lse, delta, dq, N, N_k);
    launch(grid_for(N_k, B, threads), dim3{unsigned(threads)},
           attention_backward_dkdv<float, D_QK, D_V>, q, k, v, d_o, lse, delta, dk, dv, N, N_k);
}

}  // namespace

#define SAGAN_HEAD_SIZES(X) X(8, 8) X(8, 32) X(16, 64) X(32, 128)

extern "C" int attention_forward_cpu(int d_qk, int d_v, const float* q, const float* k,
                                     const float* v, float* o, float* lse, int B, int N, int N_k,
                                     int threads) {
#define SAGAN_CASE(A, C)                                  \
    if (d_qk == A && d_v == C) {                          \
        forward<A, C>(q, k, v, o, lse, B, N, N_k, threads); \
        return 0;                                         \
    }
    SAGAN_HEAD_SIZES(SAGAN_CASE)
#undef SAGAN_CASE
    return -1;
}

extern "C" int attention_backward_cpu(int d_qk, int d_v, const float* q, const float* k,
                                      const float* v, const float* o, const float* d_o,
                                      const float* lse, float* delta, float* dq, float* dk,
                                      float* dv, int B, int N, int N_k, int threads) {
#define SAGAN_CASE(A, C)                                                                \
    if (d_qk == A && d_v == C) {                                                        \
        backward<A, C>(q, k, v, o, d_o, lse, delta, dq, dk, dv, B, N, N_k, threads);   \
        return 0;                                                                       \
    }
    SAGAN_HEAD_SIZES(SAGAN_CASE)
#undef SAGAN_CASE
    return -1;
}

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
