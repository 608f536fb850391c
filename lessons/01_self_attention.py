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
# # Lesson 1: self-attention from scratch
#
# A convolution mixes each position with its few neighbours. SAGAN's self-attention block lets
# every position look at *every* other position of a feature map in one layer. In this lesson we
# write the block in a dozen lines of NumPy, check it against the project's two implementations,
# and draw where a position of a real image looks.
#
# A feature map $x$ has $C$ channels at $N = HW$ positions; $x_i \in \mathbb{R}^C$ is the vector at
# position $i$. Three 1x1 convolutions (one matrix applied at every position) give keys
# $f(x) = W_f x$, queries $g(x) = W_g x$ and values $h(x) = W_h x$, and then (Zhang et al. 2019):
#
# $$s_{ij} = f(x_i)^\top g(x_j), \qquad
# \beta_{j,i} = \frac{\exp(s_{ij})}{\sum_{i'} \exp(s_{i'j})} \qquad (1)$$
#
# $$o_j = W_v \sum_i \beta_{j,i}\, h(x_i) \qquad (2), \qquad\qquad
# y_j = \gamma\, o_j + x_j \qquad (3)$$
#
# $\beta_{j,i}$ is how much the output at position $j$ takes from position $i$: each row
# $\beta_{j,\cdot}$ is a probability distribution over all $N$ positions.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

from accelerated.data import builtin
from accelerated.layers import SelfAttention
from accelerated.ops import self_attention as torch_self_attention
from reference.attention import attention_dims
from reference.attention import self_attention as numpy_self_attention

rng = np.random.default_rng(0)
_ = torch.manual_seed(0)

# %% [markdown]
# ## The block in a dozen lines
#
# We store a batch of feature maps as `(B, C, H, W)`, like PyTorch, and flatten the positions
# row-major ($n = hW + w$), so a 1x1 convolution is a matrix product `W @ X` with `X` of shape
# `(B, C, N)`. The scores are stored as `s[b, j, i]`, one row per query $j$, so that eq. (1) is a
# softmax along the last axis.


# %%
def softmax(s, axis=-1):
    e = np.exp(s - s.max(axis=axis, keepdims=True))  # subtracting the max avoids overflow
    return e / e.sum(axis=axis, keepdims=True)


def my_self_attention(x, W_f, W_g, W_h, W_v, gamma):
    B, C, H, W = x.shape
    X = x.reshape(B, C, H * W)  # (B, C, N)
    f, g, h = W_f @ X, W_g @ X, W_h @ X  # keys, queries (B, c_qk, N); values (B, c_v, N)
    s = np.swapaxes(g, 1, 2) @ f  # s[b, j, i] = g(x_j) . f(x_i): (B, N, N)
    beta = softmax(s)  # eq. (1): each row sums to 1
    o = W_v @ (h @ np.swapaxes(beta, 1, 2))  # eq. (2): (B, C, N)
    y = gamma * o + X  # eq. (3)
    return y.reshape(B, C, H, W), beta


# %% [markdown]
# The paper gives the keys, queries and values $C/8$ channels (`attention_dims(C, "paper")`). Let us
# try it on a random feature map and compare with the reference implementation
# (`reference/attention.py`) and the PyTorch one that trains the model
# (`accelerated/ops/attention.py`).

# %%
B, C, H, W = 2, 32, 8, 8
c_qk, c_v, pool = attention_dims(C, "paper")
print(f"C = {C}: queries/keys have {c_qk} channels, values {c_v}, pooling: {pool}")

x = rng.standard_normal((B, C, H, W))
W_f, W_g = rng.standard_normal((c_qk, C)) / np.sqrt(C), rng.standard_normal((c_qk, C)) / np.sqrt(C)
W_h, W_v = rng.standard_normal((c_v, C)) / np.sqrt(C), rng.standard_normal((C, c_v)) / np.sqrt(c_v)
gamma = 0.7

y_mine, beta_mine = my_self_attention(x, W_f, W_g, W_h, W_v, gamma)
y_ref, beta_ref = numpy_self_attention(x, W_f, W_g, W_h, W_v, gamma)
as_torch = [torch.from_numpy(a) for a in (x, W_f, W_g, W_h, W_v)]
y_torch, beta_torch = torch_self_attention(*as_torch, gamma, return_attention=True)

print("attention map shape (B, N, N):", beta_mine.shape)
print("max |mine - reference|:", np.abs(y_mine - y_ref).max())
print("max |mine - PyTorch|:  ", np.abs(y_mine - y_torch.numpy()).max())
assert np.allclose(y_mine, y_ref) and np.allclose(beta_mine, beta_ref)
assert np.allclose(y_mine, y_torch.numpy()) and np.allclose(beta_mine, beta_torch.numpy())
assert np.allclose(beta_mine.sum(axis=-1), 1.0)  # every row of beta is a distribution

# %% [markdown]
# Two properties follow straight from the equations.
#
# **$\gamma = 0$ makes the block the identity.** SAGAN initialises $\gamma$ to 0, so a new network
# first relies on its convolutions, and learns how much non-local evidence to let in.
#
# **Attention does not know where anything is.** Shuffle the positions of $x$, and the output is
# shuffled the same way: nothing in eqs. (1)-(3) depends on the index $i$ itself, only on the
# content $x_i$. (Convolutions around the block supply the position.)

# %%
y0, _ = my_self_attention(x, W_f, W_g, W_h, W_v, gamma=0.0)
assert np.array_equal(y0, x)

perm = rng.permutation(H * W)  # a random reordering of the N positions


def shuffle_positions(a):
    return a.reshape(B, C, H * W)[:, :, perm].reshape(B, C, H, W)


y_shuffled_input, _ = my_self_attention(shuffle_positions(x), W_f, W_g, W_h, W_v, gamma)
assert np.allclose(y_shuffled_input, shuffle_positions(y_mine))
print("gamma = 0 gives y = x; shuffling the input positions shuffles the output: checked")

# %% [markdown]
# ## Where does a position look? An attention map on a real image
#
# The project's built-in data set, *Mirror twins*, draws two copies of one shape in one colour,
# mirrored about the centre line. A generator must make the two halves agree, and nothing near the
# left object says what colour the right one has: exactly the long-range structure attention is
# for.
#
# For a feature map we use what a first layer could easily compute: at every pixel, its colour
# (red, green, blue in $[0, 1]$) and a "background" channel, 1 on black pixels. With
# $W_f = W_g = a I$, the score $s_{ij} = a^2\, x_i^\top x_j$ is large when pixels $i$ and $j$ have
# the same colour, so a query on the left object should attend to *both* objects, its twin on the
# far side included.

# %%
R = 32
images, labels = builtin.generate(8, R, seed=3)
index = int(np.argmax(labels == builtin.CLASS_NAMES.index("ring")))  # the first ring
image = images[index].astype(np.float64) / 255.0  # (R, R, 3) in [0, 1]
background = (image.max(axis=-1) == 0).astype(np.float64)
features = np.concatenate([image, background[..., None]], axis=-1)  # (R, R, 4)
x_img = features.transpose(2, 0, 1)[None]  # (1, 4, R, R)

a = 3.0
W_qk = a * np.eye(4)
y_img, beta_img = numpy_self_attention(x_img, W_qk, W_qk, np.eye(4), np.eye(4), gamma=1.0)
print("class:", builtin.CLASS_NAMES[labels[index]], "| attention map:", beta_img.shape)

# %%
fg_rows, fg_cols = np.nonzero(background == 0)
left = fg_cols < R // 2
queries = {
    "query on the left object": (fg_rows[left][0], fg_cols[left][0]),
    "query on the background": (R - 2, R // 2),
}
fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
axes[0].imshow(image)
axes[0].set_title("image")
for ax, (title, (qr, qc)) in zip(axes[1:], queries.items(), strict=True):
    j = qr * R + qc  # the query's flattened position
    attention = beta_img[0, j].reshape(R, R)  # row j of beta, back on the image grid
    ax.imshow(image.mean(axis=-1), cmap="gray")  # the image in grey, under the attention
    ax.imshow(attention, cmap="magma", alpha=0.7)
    ax.plot(qc, qr, marker="x", color="cyan", markersize=10, mew=3)
    ax.set_title(title)
for ax in axes:
    ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# The query on the left object (cyan cross) puts its weight on the pixels of its colour, in both
# halves of the image: in one layer it reaches its twin 10-20 pixels away, where a 3x3 convolution
# reaches one pixel. The background query spreads its attention over the whole black background.
#
# How much of the row goes to the twin? Let us measure it.

# %%
qr, qc = queries["query on the left object"]
row = beta_img[0, qr * R + qc].reshape(R, R)
weight_right_half = row[:, R // 2 :].sum()
weight_right_object = (row * (1 - background))[:, R // 2 :].sum()
print(f"weight on the right half: {weight_right_half:.2f}")
print(f"weight on the right object: {weight_right_object:.2f}")
assert weight_right_object > 0.3  # the twin gets a large share of the attention

# %% [markdown]
# ## The official code's block: pooled keys and values
#
# The released code differs from the paper's text: values have $C/2$ channels, and the keys and
# values are 2x2 max-pooled after their 1x1 convolution, so each query attends to $N_k = N/4$
# positions. The attention map becomes $N \times N/4$, four times smaller. The layer used by the
# models, `accelerated.layers.SelfAttention`, wraps the same op with spectrally normalised 1x1
# convolutions and $\gamma = 0$; with `store_attention` it keeps the last map.

# %%
layer = SelfAttention(64, variant="official")
layer.store_attention = True
features_64 = torch.randn(1, 64, 16, 16)
out = layer(features_64)
print("official:", attention_dims(64, "official"), "| beta:", tuple(layer.last_attention.shape))
assert layer.last_attention.shape == (1, 16 * 16, 8 * 8)  # N = 256 queries, N/4 = 64 keys
assert torch.equal(out, features_64)  # gamma starts at 0: the identity

# %% [markdown]
# ## Exercises
#
# 1. Change `a` above to 1 and to 6. How does the attention of the object query change, and why?
#    (Hint: $a$ is an inverse temperature of the softmax.)
# 2. Count the multiply-adds of eq. (1) and eq. (2) for the paper's block at $N = 64 \times 64$
#    and $C = 128$. Check your answer below.

# %%
N, C_ex = 64 * 64, 128
c_qk_ex, c_v_ex, _ = attention_dims(C_ex, "paper")
scores_macs = N * N * c_qk_ex  # s = g^T f: N x N dot products of length C/8
output_macs = N * N * c_v_ex + N * c_v_ex * C_ex  # beta h, then W_v
print(f"eq. (1): {scores_macs / 1e6:.0f} M multiply-adds per image")
print(f"eq. (2): {output_macs / 1e6:.0f} M multiply-adds per image")
assert scores_macs == 268_435_456

# %% [markdown]
# Both grow as $N^2$: doubling the side of the feature map multiplies them by 16. That is why the
# official code pools the keys and values, and why lesson 6 (`lessons/06_gpu_kernels.py`) is
# about memory.
