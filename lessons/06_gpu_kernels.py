# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 6: what the GPU kernels save
#
# The readable attention of lesson 1 builds the whole $N \times N_k$ matrix $\beta$ and keeps it
# for the backward pass. On a 64x64 feature map at batch 256 that is gigabytes per layer. A
# *fused* kernel computes the same output without ever storing $\beta$. This lesson does the
# arithmetic from the shapes alone, measures the saving on a CPU where PyTorch allows it, and
# reads the project's CUDA kernel.
#
# **What was measured where.** No code of this project has run on a GPU yet, so no figure here
# comes from one. Each figure in this lesson is one of three kinds, and says which:
#
# - **arithmetic** from the shapes: the bytes of $\beta$, and of what a fused kernel keeps;
# - **measured on a CPU**: the bytes autograd keeps, measured by the machine that builds this
#   page, each time it builds it;
# - **estimates**: compute times as lower bounds from an H100's published peak rates.
#
# Timing the CuPy kernels (`accelerated/kernels/`) needs a CUDA GPU; the plan for that run is in
# the practitioners' section of the *Performance* page.

# %%
import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.patches import Rectangle

from accelerated.backend import kernel_for
from accelerated.kernels import attention as kernel
from accelerated.ops import self_attention
from reference.attention import attention_dims

_ = torch.manual_seed(0)
GiB = 2**30

# %% [markdown]
# ## The shapes
#
# With the attention at 64x64 (BigGAN-PyTorch's and StudioGAN's placement, 128x128 images), the
# official block has $N = 4096$ queries and $N_k = N/4 = 1024$ pooled keys per image. The head
# sizes follow from the channels at that resolution: $C = 128$ in G and $C = 64$ in D.

# %%
B = 256
N = 64 * 64
N_k = N // 4
blocks = {"G": 128, "D": 64}  # channels at 64x64 in the 128x128 model (g_ch = d_ch = 64)
for net, C in blocks.items():
    c_qk, c_v, pool = attention_dims(C, "official")
    print(f"{net}: C = {C}, query/key size {c_qk}, value size {c_v}, pooled keys: {pool}")

# %% [markdown]
# ## Memory: the matrix nobody needs to keep
#
# The plain path stores, per attention layer and for the backward pass, the $B \times N \times
# N_k$ matrix $\beta$ (the softmax's output, needed by both its own backward and that of
# $\beta h$). A fused kernel keeps only its output $o$ ($B \times N \times c_v$) and one number
# per query, the log-sum-exp $\log \sum_i e^{s_{ij}}$, and recomputes $\beta$ tile by tile in the
# backward pass.


# %%
def attention_memory(B, N, N_k, c_v, bytes_per_value):
    """Bytes kept for the backward pass: the plain path's beta vs a fused kernel's o and LSE."""
    plain = B * N * N_k * bytes_per_value
    fused = B * N * c_v * bytes_per_value + B * N * 4  # o, and the LSE in float32
    return plain, fused


print(f"{'':4s} {'dtype':9s} {'beta (plain)':>13s} {'o + LSE (fused)':>16s} {'ratio':>6s}")
for net, C in blocks.items():
    _, c_v, _ = attention_dims(C, "official")
    for dtype, size in (("float32", 4), ("bfloat16", 2)):
        plain, fused = attention_memory(B, N, N_k, c_v, size)
        print(f"{net:4s} {dtype:9s} {plain / GiB:10.2f} GiB {fused / GiB:13.3f} GiB "
              f"{plain / fused:6.0f}x")  # fmt: skip

plain_bf16, _ = attention_memory(B, N, N_k, 64, 2)
assert plain_bf16 == 2 * GiB  # 256 * 4096 * 1024 values of 2 bytes

# %% [markdown]
# Two gigabytes per layer and per pass in bfloat16, four in float32. A training iteration keeps
# it for backward passes three times: in D's attention in the D step (on real and generated
# images) and in the G step, and in G's attention in the G step (the D step runs G without
# gradients). A fused kernel keeps 16 to 30 times less: about a tenth of a gigabyte.
#
# ## Measured on a CPU: what autograd keeps
#
# PyTorch can show what it saves for the backward pass (`saved_tensors_hooks`). We compare the
# plain path with `scaled_dot_product_attention` (SDPA), PyTorch's fused attention, at a size a
# CPU handles. One catch: PyTorch's fused CPU kernel (like its flash backend on GPUs) needs the
# same head size for queries, keys *and* values. SAGAN's official block has values 4 times wider
# than keys, so we measure with equal sizes first, then with SAGAN's.


# %%
def saved_bytes(fn):
    """Bytes of distinct storage autograd keeps for the backward pass of fn()."""
    storages = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(storages.values())


def plain(q, k, v):
    return torch.softmax(q @ k.transpose(-1, -2), dim=-1) @ v  # stores beta


def fused(q, k, v):
    return F.scaled_dot_product_attention(q, k, v, scale=1.0)  # SAGAN: no 1/sqrt(d)


b, n, n_k = 4, 32 * 32, 16 * 16  # 32x32 maps, pooled keys
MiB = 2**20
print(f"beta alone: {b * n * n_k * 4 / MiB:.2f} MiB")
for d_qk, d_v in ((16, 16), (16, 64)):
    q = torch.randn(b, 1, n, d_qk, requires_grad=True)
    k = torch.randn(b, 1, n_k, d_qk, requires_grad=True)
    v = torch.randn(b, 1, n_k, d_v, requires_grad=True)
    assert torch.allclose(plain(q, k, v), fused(q, k, v), atol=1e-5)
    kept_plain = saved_bytes(lambda q=q, k=k, v=v: plain(q, k, v))
    kept_fused = saved_bytes(lambda q=q, k=k, v=v: fused(q, k, v))
    print(f"d_qk={d_qk}, d_v={d_v}: plain keeps {kept_plain / MiB:.2f} MiB, "
          f"SDPA keeps {kept_fused / MiB:.2f} MiB")  # fmt: skip
    if d_qk == d_v:
        assert kept_fused < kept_plain / 4

# %% [markdown]
# With equal head sizes the fused CPU kernel keeps a fraction of the plain path's memory. With
# SAGAN's head sizes PyTorch falls back to its plain "math" path on this CPU, and keeps $\beta$
# all the same. On a GPU, PyTorch's memory-efficient and cuDNN backends accept $d_{qk} \ne d_v$
# (flash does not); the project's own CUDA kernel is written for these small, unequal heads.
#
# ## Compute: exponentials, not matrix products
#
# Per image, the two matrix products of attention cost $2 N N_k (c_{qk} + c_v)$ floating-point
# operations, and the softmax takes $N N_k$ exponentials. At SAGAN's tiny head sizes that is
# few multiply-adds per exponential. An H100 SXM does about 989 TFLOP/s of bfloat16 matrix
# products, but only about 3.9 T exponentials/s on its special-function units (the figures the
# FlashAttention-3 paper, Shah et al. 2024, works with):

# %%
MATMUL_FLOPS = 989e12  # H100 SXM, dense bfloat16
EXP_PER_S = 3.9e12  # H100 SXM, special-function units
print(f"estimates (lower bounds from peak rates), per attention layer, forward, B = {B}:")
print(f"{'':4s} {'matmul time':>12s} {'exp time':>10s}")
for net, C in blocks.items():
    c_qk, c_v, _ = attention_dims(C, "official")
    t_matmul = 2 * B * N * N_k * (c_qk + c_v) / MATMUL_FLOPS
    t_exp = B * N * N_k / EXP_PER_S
    print(f"{net:4s} {t_matmul * 1e3:9.2f} ms {t_exp * 1e3:7.2f} ms")
    assert t_exp > t_matmul  # at these head sizes the exponentials bound the kernel

# %% [markdown]
# These are lower bounds from peak rates, not measurements: they say what a good kernel should
# optimise (the exponentials, and reading $q, k, v$ once). How close the project's kernels come is
# for `python -m accelerated.bench attention` on a GPU to say.
#
# ## How the project's kernel works
#
# `accelerated/kernels/attention.cu` (shown next to eqs. (1)-(2) on the *Equations and code*
# page) gives each thread one query $j$. The keys and values come in tiles through shared memory;
# for each tile the thread computes its scores $s_{ij}$, and keeps three running quantities: the
# maximum score $m$ so far, the sum $\ell = \sum_i e^{s_{ij} - m}$, and the weighted sum of values
# $a = \sum_i e^{s_{ij} - m}\, h(x_i)$. When a tile raises the maximum to $m'$, both sums are
# rescaled by $e^{m - m'}$ (the "online softmax"). At the end, $o_j = a / \ell$ and
# $\log \sum_i e^{s_{ij}} = m + \log \ell$ is stored for the backward pass, which recomputes each
# $\beta_{j,i} = e^{s_{ij} - \mathrm{LSE}_j}$ as it needs it. Here is the same computation in a
# few lines of PyTorch, checked against the plain path:


# %%
def online_softmax_attention(q, k, v, tile=64):
    """o = softmax(q k^T) v, one tile of keys at a time, never holding more than (n, tile)."""
    m = torch.full(q.shape[:-1], float("-inf"))  # running max of the scores, per query
    ell = torch.zeros(q.shape[:-1])  # running sum of exp(s - m)
    acc = torch.zeros(*q.shape[:-1], v.shape[-1])  # running sum of exp(s - m) v
    for start in range(0, k.shape[-2], tile):
        s = q @ k[..., start : start + tile, :].transpose(-1, -2)  # (..., n, tile)
        m_new = torch.maximum(m, s.amax(dim=-1))
        rescale = torch.exp(m - m_new)  # the old sums were relative to the old maximum
        p = torch.exp(s - m_new[..., None])
        ell = ell * rescale + p.sum(dim=-1)
        acc = acc * rescale[..., None] + p @ v[..., start : start + tile, :]
        m = m_new
    return acc / ell[..., None], m + torch.log(ell)  # o, and the LSE for the backward


with torch.no_grad():
    o, lse = online_softmax_attention(q, k, v)
    assert torch.allclose(o, plain(q, k, v), atol=1e-5)
    assert torch.allclose(lse, torch.logsumexp(q @ k.transpose(-1, -2), dim=-1), atol=1e-4)
print("online softmax == plain attention; it never held the (n, n_k) matrix")

# %% [markdown]
# ### The schedule, drawn from the kernel's own parameters
#
# Two numbers set the kernel's schedule: how many queries a thread block takes (`THREADS` in
# `accelerated/kernels/attention.py`, one thread per query) and how many keys it stages in
# shared memory at a time (`TILE` in `attention.cu`). The cell reads both from the project's
# files. On the left, the schedule for G's attention at 64x64: every block runs at once, and
# each sweeps the key tiles in order. In the middle, the online softmax of one query of the
# small example above, tile by tile: whenever a tile holds a larger score, the maximum $m$ rises
# and the running sum $\ell$, kept relative to $m$, is multiplied by $e^{m - m'}$ and drops. On
# the right, what one image's forward pass reads and writes in the GPU's memory (bfloat16): the
# plain path writes the scores and $\beta$ and reads them back; the kernel keeps them in
# registers, and instead reads every key and value once per block of queries. That is an upper
# bound: a GPU's L2 cache can serve the repeated reads of one image's keys and values.

# %%
source = Path(kernel.__file__).with_name(kernel.SOURCE).read_text()
TILE = int(re.search(r"constexpr int TILE = (\d+);", source).group(1))  # keys per tile
THREADS = kernel.THREADS  # queries per block, one thread each
c_qk, c_v, _ = attention_dims(blocks["G"], "official")
query_blocks, key_tiles = N // THREADS, N_k // TILE
print(f"kernel: {THREADS} queries per block, {TILE} keys per tile; G's attention at 64x64: "
      f"{query_blocks} blocks per image, each sweeping {key_tiles} tiles; shared memory per "
      f"block {TILE * (c_qk + c_v) * 4 / 1024:.0f} KiB (k and v of one tile, float32)")



def traffic(N, N_k, c_qk, c_v, size, threads):
    """Bytes read and written in device memory by one image's forward pass, by kind."""
    plain = {"q, k, v": (N * c_qk + N_k * (c_qk + c_v)) * size,
             "scores s (written, read)": 2 * N * N_k * size,
             "beta (written, read)": 2 * N * N_k * size,
             "o": N * c_v * size}
    fused = {"q, k, v": (N * c_qk) * size + (N // threads) * N_k * (c_qk + c_v) * size,
             "o": N * c_v * size + N * 4}  # and the log-sum-exp, float32
    return plain, fused


# one query's running maximum and sum, tile by tile
scores = (q @ k.transpose(-1, -2))[0, 0]  # (n, n_k): image 0's scores
tile_max = scores.unflatten(-1, (-1, TILE)).amax(-1)  # (n, tiles)
rises = (tile_max.cummax(-1).values.diff(dim=-1) > 0).sum(-1)  # how often each query's m rises
s = scores[rises.argmax()]  # the query whose maximum rises most often
m, ell, ms, ells = -np.inf, 0.0, [], []
for start in range(0, n_k, TILE):
    tile = s[start : start + TILE]
    m_new = max(m, tile.max().item())
    ell = ell * np.exp(m - m_new) + torch.exp(tile - m_new).sum().item()
    m = m_new
    ms.append(m)
    ells.append(ell)
assert np.isclose(m + np.log(ell), torch.logsumexp(s, 0).item(), rtol=1e-5)

fig, axes = plt.subplots(1, 3, figsize=(14, 4), gridspec_kw={"width_ratios": [1.1, 1, 1]})
ax = axes[0]
ax.imshow(np.tile(np.arange(key_tiles), (query_blocks, 1)), cmap="viridis", aspect="auto",
          extent=(0, N_k, N, 0))
ax.add_patch(Rectangle((5 * TILE, 10 * THREADS), TILE, THREADS, fill=False, ec="red", lw=2))
ax.annotate(f"one block, one step:\n{THREADS} queries x {TILE} keys", (6 * TILE, 11 * THREADS),
            (N_k * 0.3, N * 0.35), color="white", fontsize=9, arrowprops={"color": "white"})
ax.set_xlabel(f"keys i ({key_tiles} tiles of {TILE})")
ax.set_ylabel(f"queries j ({query_blocks} blocks of {THREADS})")
ax.set_title("schedule: each block sweeps the tiles\nleft to right (colour: step)", fontsize=10)
ax = axes[1]
steps = np.arange(1, len(ms) + 1)
ax.plot(steps, ms, "o-", label="running max m")
ax.set_xlabel(f"tiles of {TILE} keys seen")
ax.set_ylabel("m")
twin = ax.twinx()
twin.plot(steps, ells, "s--", color="C1", label=r"running sum $\ell$ (relative to m)")
twin.set_ylabel(r"$\ell$")
ax.set_title("one query's online softmax:\nwhen m rises, $\\ell$ is rescaled down", fontsize=10)
lines = ax.get_lines() + twin.get_lines()
ax.legend(lines, [line.get_label() for line in lines], fontsize=8, loc="upper left")
ax = axes[2]
COLOURS = {"q, k, v": "C0", "scores s (written, read)": "C3", "beta (written, read)": "C1",
           "o": "C2"}
plain, fused = traffic(N, N_k, c_qk, c_v, 2, THREADS)
for x, parts in enumerate((plain, fused)):
    bottom = 0
    for name, nbytes in parts.items():
        ax.bar(x, nbytes / 2**20, bottom=bottom, label=name if x == 0 else None,
               color=COLOURS[name])
        bottom += nbytes / 2**20
ax.set_xticks([0, 1], ["plain PyTorch", "fused kernel\n(k, v read once per block)"])
ax.set_ylabel("MiB per image, forward, bfloat16")
ax.set_title("device-memory traffic of G's attention at 64x64", fontsize=10)
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()
total_plain, total_fused = sum(plain.values()), sum(fused.values())
print(f"per image: plain {total_plain / 2**20:.1f} MiB, fused {total_fused / 2**20:.1f} MiB "
      f"({total_plain / total_fused:.1f}x less), of which re-reading k and v "
      f"{(fused['q, k, v'] - N * c_qk * 2) / total_fused:.0%}")  # fmt: skip
assert fused["q, k, v"] > fused["o"] and total_fused < total_plain

# %% [markdown]
# ## Kernel or plain PyTorch: one place decides
#
# Every op asks `accelerated.backend.kernel_for` first. On CPU tensors the answer is always
# `None`, and the readable PyTorch path runs: the code the tests compare with the NumPy reference.

# %%
x = torch.randn(2, 64, 16, 16)
c_qk, c_v, pool = attention_dims(64, "official")
weights = [torch.randn(c_qk, 64), torch.randn(c_qk, 64), torch.randn(c_v, 64), torch.randn(64, c_v)]
print("kernel for CPU tensors:", kernel_for("self_attention", x, *weights))
print("CUDA available here:", torch.cuda.is_available())
y = self_attention(x, *[w / 8 for w in weights], 0.5, pool=pool)
assert kernel_for("self_attention", x, *weights) is None and y.shape == x.shape

# %% [markdown]
# On a CUDA machine the same call takes PyTorch's SDPA route by default (fused where one of its
# backends takes these heads). The project's CuPy kernel (`pip install -e ".[cuda13]"`) runs
# only where it is chosen (`SAGAN_BACKEND=cupy`): a review of its code *estimates* it slower than
# SDPA's fused backends, since it uses no tensor cores, and no GPU has measured it yet.
# `python -m accelerated.bench attention` will: it times the plain path, each SDPA backend and
# the kernel at the shapes above, forward and backward, with peak memory.
#
# ## Exercises
#
# **1. The paper's block.** The paper's block (no pooling, values of $C/8$) at 64x64 in G: how
# many bytes does $\beta$ take at batch 256 in bfloat16? Use `attention_memory` to check.
#
# <details><summary>Solution</summary>
#
# Without pooling $N_k = N = 4096$: $256 \times 4096 \times 4096 \times 2$ bytes = 8 GiB per
# layer and pass, four times the official block's.
#
# ```python
# _, c_v_paper, _ = attention_dims(128, "paper")
# print(attention_memory(B, N, N, c_v_paper, 2)[0] / GiB)  # 8.0
# ```
#
# </details>
#
# **2. The paper's placement.** SAGAN's 128x128 model puts attention at 32x32, not 64x64. Predict
# the size of $\beta$ there (official block, batch 256, bfloat16) before computing it.
#
# <details><summary>Solution</summary>
#
# $N = 1024$, $N_k = 256$: $256 \times 1024 \times 256 \times 2$ bytes = 128 MiB, 16 times less
# than at 64x64 (the map grows as the fourth power of the side). At 32x32 the plain path is
# affordable; the fused kernel matters for attention on larger maps.
#
# ```python
# print(attention_memory(B, 32 * 32, 16 * 16, 64, 2)[0] / 2**20)  # 128.0
# ```
#
# </details>
#
# **3. Predict, then run: the rescale.** In `online_softmax_attention`, what goes wrong if you
# drop the two multiplications by `rescale`? For which tile size would the result still be right?
# Try it on a copy of the function.
#
# <details><summary>Solution</summary>
#
# The sums of earlier tiles stay relative to an old, smaller maximum while new terms are relative
# to the new one, so they are weighted $e^{m' - m}$ times too much and the output is wrong
# whenever a later tile raises the maximum. With one tile holding every key (`tile=n_k`) there is
# no earlier tile, and the result is right.
#
# </details>
#
# **4. When would the matrix products dominate?** With the peak rates above, at what head size
# $c_{qk} + c_v$ would the two matrix products take as long as the exponentials?
#
# <details><summary>Solution</summary>
#
# Equal when $2 (c_{qk} + c_v) / 989 \times 10^{12} = 1 / 3.9 \times 10^{12}$, i.e.
# $c_{qk} + c_v \approx 127$. SAGAN's blocks (16 + 64 in G at 64x64, 8 + 32 in D) are below it,
# so their kernels are bound by exponentials; a transformer head (64 + 64 or more) is at or above.
#
# ```python
# print(MATMUL_FLOPS / (2 * EXP_PER_S))  # 126.8
# ```
#
# </details>
