"""The CUDA source of every kernel, run on the CPU: its indexing, tiling, masking, block
reductions and formulas against NumPy, without a GPU.

tests/cuda_on_cpu/cuda_shim.h supplies the few CUDA names the kernels use (thread and block
indices, __syncthreads, warp shuffles) with std::thread and std::barrier; the .cu files are
compiled unchanged by g++ and launched with the same block sizes as the Python ops. This checks
the algorithm as written in CUDA (a wrong index, a missing tile mask, a wrong softmax rescale
fail here), not what only a GPU shows: the NVRTC build, memory-model or timing issues, speed.
The same build under AddressSanitizer and ThreadSanitizer checks for out-of-bounds accesses and
for races between the threads of a block (a missing __syncthreads).
"""

import ctypes
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from accelerated.kernels import attention, hinge, power_iteration
from accelerated.kernels.cupy_module import KERNEL_DIR
from reference import hinge as ref_hinge
from reference import spectral_norm as ref_sn

GXX = shutil.which("g++")
pytestmark = pytest.mark.skipif(GXX is None, reason="g++ (C++20) is not installed")
SHIM_DIR = Path(__file__).parent / "cuda_on_cpu"
HEAD_SIZES = [(8, 8), (8, 32), (16, 64), (32, 128)]  # the instantiations in kernels_on_cpu.cpp
F32 = np.float32


BUILD = [GXX, "-std=c++20", "-O1", "-pthread", f"-I{KERNEL_DIR}", f"-I{SHIM_DIR}"]


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    out = tmp_path_factory.mktemp("cuda_on_cpu") / "kernels_on_cpu.so"
    command = [*BUILD, "-shared", "-fPIC", str(SHIM_DIR / "kernels_on_cpu.cpp"), "-o", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return ctypes.CDLL(str(out))


@pytest.fixture(scope="module")
def lib_bf16(tmp_path_factory):
    """The same build with SAGAN_BF16: bfloat16 kernels too, from the toolkit's <cuda_bf16.h>."""
    include = Path(os.environ.get("CUDA_PATH", "/usr/local/cuda")) / "include"
    if not (include / "cuda_bf16.h").exists():
        pytest.skip(f"no cuda_bf16.h in {include} (set CUDA_PATH to a CUDA toolkit)")
    out = tmp_path_factory.mktemp("cuda_on_cpu_bf16") / "kernels_on_cpu_bf16.so"
    command = [
        *BUILD,
        "-DSAGAN_BF16",
        f"-I{include}",
        "-shared",
        "-fPIC",
        str(SHIM_DIR / "kernels_on_cpu.cpp"),
        "-o",
        str(out),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return ctypes.CDLL(str(out))


def to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns, rounding to nearest even (as __float2bfloat16)."""
    bits = x.astype(F32).view(np.uint32).astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def from_bf16_bits(b: np.ndarray) -> np.ndarray:
    return (b.astype(np.uint32) << 16).view(F32)


def ptr(a: np.ndarray):
    assert a.flags.c_contiguous
    return a.ctypes.data_as(ctypes.c_void_p)


def softmax_rows(s):
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def run_attention(lib, q, k, v, d_o, suffix="cpu"):
    """attention.cu's forward, then its two backward kernels; arrays are float32, or uint16
    bfloat16 bit patterns with suffix "bf16_cpu" (lse stays float32)."""
    forward = getattr(lib, f"attention_forward_{suffix}")
    backward = getattr(lib, f"attention_backward_{suffix}")
    B, N, d_qk = q.shape
    N_k, d_v = v.shape[1:]
    o, lse = np.empty((B, N, d_v), q.dtype), np.empty((B, N), F32)
    threads = attention.THREADS
    code = forward(d_qk, d_v, ptr(q), ptr(k), ptr(v), ptr(o), ptr(lse), B, N, N_k, threads)
    assert code == 0
    delta = np.empty((B, N), F32)
    dq, dk, dv = np.empty_like(q), np.empty_like(k), np.empty_like(v)
    code = backward(
        d_qk,
        d_v,
        ptr(q),
        ptr(k),
        ptr(v),
        ptr(o),
        ptr(d_o),
        ptr(lse),
        ptr(delta),
        ptr(dq),
        ptr(dk),
        ptr(dv),
        B,
        N,
        N_k,
        threads,
    )
    assert code == 0
    return o, lse, dq, dk, dv


@given(
    B=st.integers(1, 2),
    N=st.integers(1, 140),
    N_k=st.integers(1, 70),
    sizes=st.sampled_from(HEAD_SIZES),
    scale=st.sampled_from([0.2, 1.0, 3.0]),
    seed=st.integers(0, 2**16),
)
def test_attention_kernels(lib, B, N, N_k, sizes, scale, seed):
    d_qk, d_v = sizes
    rng = np.random.default_rng(seed)
    q = (scale * rng.standard_normal((B, N, d_qk))).astype(F32)
    k = rng.standard_normal((B, N_k, d_qk)).astype(F32)
    v = rng.standard_normal((B, N_k, d_v)).astype(F32)
    d_o = rng.standard_normal((B, N, d_v)).astype(F32)
    o, lse, dq, dk, dv = run_attention(lib, q, k, v, d_o)

    # float64 reference: forward, log-sum-exp, and the backward by the chain rule
    q64, k64, v64, do64 = (a.astype(np.float64) for a in (q, k, v, d_o))
    s = q64 @ k64.transpose(0, 2, 1)  # (B, N, N_k)
    beta = softmax_rows(s)
    d_beta = do64 @ v64.transpose(0, 2, 1)
    d_s = beta * (d_beta - (beta * d_beta).sum(-1, keepdims=True))
    tol = {"rtol": 2e-4, "atol": 2e-4}
    np.testing.assert_allclose(o, beta @ v64, **tol)
    lse_ref = s.max(-1) + np.log(np.exp(s - s.max(-1, keepdims=True)).sum(-1))
    np.testing.assert_allclose(lse, lse_ref, **tol)
    np.testing.assert_allclose(dq, d_s @ k64, **tol)
    np.testing.assert_allclose(dk, d_s.transpose(0, 2, 1) @ q64, **tol)
    np.testing.assert_allclose(dv, beta.transpose(0, 2, 1) @ do64, **tol)


@given(
    N=st.integers(1, 100),
    N_k=st.integers(1, 70),
    sizes=st.sampled_from(HEAD_SIZES),
    seed=st.integers(0, 2**16),
)
# the explore profile found it (1000 examples): dq off by 0.023 where a fixed tolerance of 0.02
# stood; D_j sums d_v = 128 products dO o, each rounded with o, so its error grows with d_v
@example(N=1, N_k=5, sizes=(32, 128), seed=0)
def test_attention_kernels_bfloat16(lib_bf16, N, N_k, sizes, seed):
    """The bfloat16 instantiations compute in float32 exactly like the float32 ones: on the
    same (bfloat16-valued) inputs the output is the float32 output rounded to bfloat16, bit for
    bit, and L is equal; the gradients differ only through D_j = dO_j . o_j with o rounded."""
    d_qk, d_v = sizes
    rng = np.random.default_rng(seed)
    bits = [
        to_bf16_bits(rng.standard_normal(shape))
        for shape in [(2, N, d_qk), (2, N_k, d_qk), (2, N_k, d_v), (2, N, d_v)]
    ]
    values = [from_bf16_bits(b) for b in bits]
    o32, lse32, *grads32 = run_attention(lib_bf16, *values)
    o16, lse16, *grads16 = run_attention(lib_bf16, *bits, suffix="bf16_cpu")
    np.testing.assert_array_equal(o16, to_bf16_bits(o32))
    np.testing.assert_array_equal(lse16, lse32)
    # The change of D_j, and what it does to dS = P (dP - D): dq = dS k, dk = dS^T q, dv none.
    # Beyond it, only the bfloat16 storing of each gradient: measured over 400 random cases,
    # at most 0.93 u of the largest entry (u = 2^-8; rounded once per tile of queries).
    q, k, _, d_o = (a.astype(np.float64) for a in values)
    d_D = np.sum(d_o * (from_bf16_bits(o16) - o32), axis=-1)  # (B, N)
    P = np.exp(q @ k.transpose(0, 2, 1) - lse32[..., None])  # (B, N, N_k)
    through_D = [-d_D[..., None] * (P @ k), -(P * d_D[..., None]).transpose(0, 2, 1) @ q, 0.0]
    for got, want, change in zip(grads16, grads32, through_D, strict=True):
        expected = want + change
        error = np.abs(from_bf16_bits(got) - expected).max()
        assert error <= 2 * 2.0**-8 * np.abs(expected).max()


@settings(max_examples=8)  # each example starts 256 threads per matrix
@given(
    shapes=st.lists(st.tuples(st.integers(1, 70), st.integers(1, 300)), min_size=1, max_size=3),
    n_steps=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_power_iteration_kernel(lib, shapes, n_steps, seed):
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal(shape).astype(F32) for shape in shapes]
    us = [rng.standard_normal(m).astype(F32) for m, _ in shapes]
    addresses = np.array([W.ctypes.data for W in weights], dtype=np.uint64)
    row_offsets = np.cumsum([0] + [m for m, _ in shapes]).astype(np.int64)
    col_offsets = np.cumsum([0] + [n for _, n in shapes]).astype(np.int64)
    u_in = np.concatenate(us)
    u_out, v_out = np.empty_like(u_in), np.empty(col_offsets[-1], F32)
    sigma = np.empty(len(shapes), F32)
    lib.power_iteration_cpu(
        ptr(addresses),
        ptr(row_offsets),
        ptr(col_offsets),
        ptr(u_in),
        ptr(u_out),
        ptr(v_out),
        ptr(sigma),
        len(shapes),
        n_steps,
        ctypes.c_float(1e-12),
        power_iteration.THREADS,
    )
    for b, (W, u) in enumerate(zip(weights, us, strict=True)):
        s_ref, u_ref, v_ref = ref_sn.power_iteration(W.astype(np.float64), u, n_steps)
        np.testing.assert_allclose(sigma[b], s_ref, rtol=1e-4)
        rows = slice(row_offsets[b], row_offsets[b + 1])
        cols = slice(col_offsets[b], col_offsets[b + 1])
        np.testing.assert_allclose(u_out[rows], u_ref, rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(v_out[cols], v_ref, rtol=1e-3, atol=1e-4)


@given(
    n_real=st.integers(1, 700),
    n_fake=st.integers(1, 700),
    grad=st.sampled_from([1.0, -0.5]),
    seed=st.integers(0, 2**16),
)
def test_hinge_kernels(lib, n_real, n_fake, grad, seed):
    rng = np.random.default_rng(seed)
    d_real = (2 * rng.standard_normal(n_real)).astype(F32)
    d_fake = (2 * rng.standard_normal(n_fake)).astype(F32)
    d_real[::4], d_fake[::4] = 1.0, -1.0  # on the hinges: gradient 0
    loss, g = np.empty(1, F32), np.array([grad], F32)
    grad_real, grad_fake = np.empty_like(d_real), np.empty_like(d_fake)
    lib.hinge_d_cpu(
        ptr(d_real),
        n_real,
        ptr(d_fake),
        n_fake,
        ptr(loss),
        ptr(g),
        ptr(grad_real),
        ptr(grad_fake),
        hinge.THREADS,
    )
    want = ref_hinge.hinge_loss_discriminator(d_real, d_fake)
    np.testing.assert_allclose(loss[0], want, rtol=1e-5, atol=1e-6)
    want_real, want_fake = ref_hinge.hinge_loss_discriminator_backward(d_real, d_fake)
    np.testing.assert_allclose(grad_real, grad * want_real, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(grad_fake, grad * want_fake, rtol=1e-5, atol=1e-9)

    lib.hinge_g_cpu(ptr(d_fake), n_fake, ptr(loss), ptr(g), ptr(grad_fake), hinge.THREADS)
    np.testing.assert_allclose(
        loss[0], ref_hinge.hinge_loss_generator(d_fake), rtol=1e-5, atol=1e-6
    )
    want_g = grad * ref_hinge.hinge_loss_generator_backward(d_fake)
    np.testing.assert_allclose(grad_fake, want_g, rtol=1e-5, atol=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("sanitizer", ["address,undefined", "thread"])
def test_kernels_have_no_out_of_bounds_access_or_race(sanitizer, tmp_path):
    exe = tmp_path / "sanitize_main"
    sources = [str(SHIM_DIR / "kernels_on_cpu.cpp"), str(SHIM_DIR / "sanitize_main.cpp")]
    flags = ["-g", f"-fsanitize={sanitizer}", "-fno-sanitize-recover=all"]
    build = subprocess.run(
        [*BUILD, *flags, *sources, "-o", str(exe)], capture_output=True, text=True, timeout=600
    )
    if build.returncode != 0 and "cannot find" in build.stderr:
        pytest.skip(f"the {sanitizer} sanitizer runtime is not installed: {build.stderr[:200]}")
    assert build.returncode == 0, build.stderr
    threads = [attention.THREADS, power_iteration.THREADS, hinge.THREADS]
    run = subprocess.run(
        [str(exe), *map(str, threads)], capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0 and "all kernels ran" in run.stdout, run.stderr[-3000:]
