// The hinge loss of SAGAN, eq. (4): the smallest complete example of a fused forward and backward.
//
//     L_D = mean_i max(0, 1 - d_real_i) + mean_j max(0, 1 + d_fake_j)
//     L_G = -mean_j d_fake_j
//
// The inputs are the discriminator's logits: one float per image, a few hundred at most. So ONE
// block of threads is enough: each thread adds up a strided share of the terms, `block_sum`
// combines the shares, thread 0 writes the result. No atomics, so the result is deterministic.
// Launch every kernel here with grid (1,) and blockDim.x a multiple of 32.
//
// The backward of a mean of hinges is a step function times the incoming gradient g = dL/dL_D:
//     dL_D/d d_real_i = -1/n_real  if 1 - d_real_i > 0, else 0
//     dL_D/d d_fake_j = +1/n_fake  if 1 + d_fake_j > 0, else 0
// (at the kink the gradient is 0, as torch.relu has it). g is read from device memory, so
// the host never waits for the GPU.
#include "common.cuh"

extern "C" __global__ void hinge_discriminator_forward(const float* __restrict__ d_real,
                                                       int n_real,
                                                       const float* __restrict__ d_fake,
                                                       int n_fake, float* __restrict__ loss) {
    using namespace sagan;
    float local = 0.0f;
    // --8<-- [start:eq4-d-loss]
    // E[max(0, 1 - D(x, y))] + E[max(0, 1 + D(G(z), y))], each mean as a sum of terms / n
    for (int i = threadIdx.x; i < n_real; i += blockDim.x) local += fmaxf(0.0f, 1.0f - d_real[i]) / n_real;
    for (int j = threadIdx.x; j < n_fake; j += blockDim.x) local += fmaxf(0.0f, 1.0f + d_fake[j]) / n_fake;
    const float total = block_sum(local);
    // --8<-- [end:eq4-d-loss]
    if (threadIdx.x == 0) *loss = total;
}

extern "C" __global__ void hinge_discriminator_backward(const float* __restrict__ d_real,
                                                        int n_real,
                                                        const float* __restrict__ d_fake,
                                                        int n_fake,
                                                        const float* __restrict__ grad_loss,
                                                        float* __restrict__ grad_real,
                                                        float* __restrict__ grad_fake) {
    const float g = *grad_loss;
    for (int i = threadIdx.x; i < n_real; i += blockDim.x) {
        grad_real[i] = (1.0f - d_real[i] > 0.0f) ? -g / n_real : 0.0f;
    }
    for (int j = threadIdx.x; j < n_fake; j += blockDim.x) {
        grad_fake[j] = (1.0f + d_fake[j] > 0.0f) ? g / n_fake : 0.0f;
    }
}

extern "C" __global__ void hinge_generator_forward(const float* __restrict__ d_fake, int n_fake,
                                                   float* __restrict__ loss) {
    using namespace sagan;
    float local = 0.0f;
    // --8<-- [start:eq4-g-loss]
    // L_G = -E[D(G(z), y)]
    for (int j = threadIdx.x; j < n_fake; j += blockDim.x) local -= d_fake[j] / n_fake;
    const float total = block_sum(local);
    // --8<-- [end:eq4-g-loss]
    if (threadIdx.x == 0) *loss = total;
}

extern "C" __global__ void hinge_generator_backward(int n_fake, const float* __restrict__ grad_loss,
                                                    float* __restrict__ grad_fake) {
    // dL_G/d d_fake_j = -1/n_fake, times the incoming gradient
    const float g = *grad_loss;
    for (int j = threadIdx.x; j < n_fake; j += blockDim.x) grad_fake[j] = -g / n_fake;
}
