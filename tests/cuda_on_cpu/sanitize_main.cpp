// Runs every kernel on awkward sizes, for a build with -fsanitize=address,undefined (out-of-bounds
// reads and writes) or -fsanitize=thread (races between the threads of a block, e.g. a missing
// __syncthreads). The values are checked by tests/test_kernels_on_cpu.py; here only the
// sanitizers' verdict counts: they print a report and the process exits non-zero.
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

extern "C" {
int attention_forward_cpu(int, int, const float*, const float*, const float*, float*, float*, int,
                          int, int, int);
int attention_backward_cpu(int, int, const float*, const float*, const float*, const float*,
                           const float*, const float*, float*, float*, float*, float*, int, int,
                           int, int);
void power_iteration_cpu(const unsigned long long*, const long long*, const long long*,
                         const float*, float*, float*, float*, int, int, float, int);
void hinge_d_cpu(const float*, int, const float*, int, float*, const float*, float*, float*, int);
void hinge_g_cpu(const float*, int, float*, const float*, float*, int);
}

static std::mt19937 rng(0);

static std::vector<float> random_vector(size_t n) {
    std::normal_distribution<float> normal;
    std::vector<float> v(n);
    for (auto& x : v) x = normal(rng);
    return v;
}

int main(int argc, char** argv) {
    if (argc != 4) return 2;  // block sizes: attention, power iteration, hinge
    const int threads_attention = std::atoi(argv[1]);
    const int threads_power = std::atoi(argv[2]);
    const int threads_hinge = std::atoi(argv[3]);
    const int head_sizes[][2] = {{8, 8}, {8, 32}, {16, 64}, {32, 128}};
    // (B, N, N_k): one query and key; one past the block and the tile; exact multiples
    const int shapes[][3] = {{1, 1, 1}, {2, 65, 33}, {1, 130, 31}, {2, 64, 32}};
    for (const auto& hs : head_sizes) {
        for (const auto& sh : shapes) {
            const int d_qk = hs[0], d_v = hs[1], B = sh[0], N = sh[1], N_k = sh[2];
            auto q = random_vector(B * N * d_qk), k = random_vector(B * N_k * d_qk);
            auto v = random_vector(B * N_k * d_v), d_o = random_vector(B * N * d_v);
            std::vector<float> o(B * N * d_v), lse(B * N), delta(B * N), dq(q.size()),
                dk(k.size()), dv(v.size());
            if (attention_forward_cpu(d_qk, d_v, q.data(), k.data(), v.data(), o.data(),
                                      lse.data(), B, N, N_k, threads_attention) != 0 ||
                attention_backward_cpu(d_qk, d_v, q.data(), k.data(), v.data(), o.data(),
                                       d_o.data(), lse.data(), delta.data(), dq.data(), dk.data(),
                                       dv.data(), B, N, N_k, threads_attention) != 0) {
                return 2;
            }
        }
    }
    // matrices: 1x1, wide, tall, square
    const int matrices[][2] = {{1, 1}, {3, 700}, {300, 2}, {64, 64}};
    std::vector<std::vector<float>> weights;
    std::vector<unsigned long long> addresses;
    std::vector<long long> row_offsets{0}, col_offsets{0};
    for (const auto& m : matrices) {
        weights.push_back(random_vector(m[0] * m[1]));
        addresses.push_back(reinterpret_cast<unsigned long long>(weights.back().data()));
        row_offsets.push_back(row_offsets.back() + m[0]);
        col_offsets.push_back(col_offsets.back() + m[1]);
    }
    auto u = random_vector(row_offsets.back());
    std::vector<float> u_out(u.size()), v_out(col_offsets.back()), sigma(4);
    power_iteration_cpu(addresses.data(), row_offsets.data(), col_offsets.data(), u.data(),
                        u_out.data(), v_out.data(), sigma.data(), 4, 2, 1e-12f, threads_power);
    for (int n : {1, 255, 257, 600}) {
        auto real = random_vector(n), fake = random_vector(n + 3);
        float loss = 0.0f, grad = 1.0f;
        std::vector<float> grad_real(real.size()), grad_fake(fake.size());
        hinge_d_cpu(real.data(), n, fake.data(), n + 3, &loss, &grad, grad_real.data(),
                    grad_fake.data(), threads_hinge);
        hinge_g_cpu(fake.data(), n + 3, &loss, &grad, grad_fake.data(), threads_hinge);
    }
    std::puts("all kernels ran");
    return 0;
}
