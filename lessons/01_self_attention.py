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
# draw where the positions of a trained SAGAN look, and run the block's backward pass by hand.
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
import json
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

import accelerated
from accelerated.ablation.probe.data import examples as probe_examples
from accelerated.ablation.probe.model import receptive_field
from accelerated.ablation.probe.train import Settings, run
from accelerated.checkpoint import load_generator
from accelerated.data import builtin
from accelerated.figures.hidden import hidden_output
from accelerated.layers import SelfAttention
from accelerated.metrics.twins import twin_attention
from accelerated.models import build_models, named_attention_layers
from accelerated.ops import self_attention as torch_self_attention
from accelerated.training.attention_report import recording
from reference.attention import attention_dims, self_attention_backward
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
# ## Where does a position look? A trained SAGAN's attention
#
# The project's built-in data set, *Mirror twins*, draws two copies of one shape in one colour,
# mirrored about the centre line. A generator must make the two halves agree, and nothing near the
# left object says what colour the right one has: exactly the long-range structure attention is
# for. So what does attention learn there?
#
# The maps below were *learned*: they come from the SAGAN that `python -m accelerated.train`
# trains on *Mirror twins* by default (its weights are in the repository,
# `docs/trained/mirror-twins.pt`; lesson 5 loads it the same way, and the *Train* page shows how
# it was made). Its generator and its discriminator each have one official block, on their 8x8
# feature maps: 64 queries, each over 16 pooled keys (one key per 4x4 pixels of a 16x16 image).
#
# We draw D's attention on real images, and G's on its own samples, for one query on the left
# object (cyan cross), and the same for a freshly initialised SAGAN: the before and after of
# training. `twin_attention` (`accelerated.metrics.twins`) measures what the maps show: the share
# of the attention of queries on one twin that lands on the *other* twin, against the share a
# uniform map would give.

# %%
TRAINED = Path(accelerated.__file__).resolve().parents[1] / "docs" / "trained" / "mirror-twins.pt"
G_trained, model_cfg, _ = load_generator(TRAINED, torch.device("cpu"))
D_trained = build_models(model_cfg)[1]
D_trained.load_state_dict(torch.load(TRAINED, map_location="cpu", weights_only=True)["D"])
D_trained.eval()
_ = torch.manual_seed(1)
G_fresh, D_fresh = (net.eval() for net in build_models(model_cfg))

R16 = model_cfg.resolution
pixels, classes = builtin.generate(64, R16, seed=5)
real = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1  # (B, 3, R, R)
y_real = torch.from_numpy(classes).long()
z = torch.randn(64, model_cfg.z_dim, generator=torch.Generator().manual_seed(2))


def attention_maps(G, D):
    """Images and attention maps: D's on the real images, G's on its samples for y_real."""
    layers = named_attention_layers(G, D, model_cfg)
    with torch.no_grad(), recording(layers.values()):
        fake = G(z, y_real)
        maps = {"G8": layers["G8"].last_attention}
        D(real, y_real)
        maps["D8"] = layers["D8"].last_attention
    gammas = {name: layer.gamma.item() for name, layer in layers.items()}
    return {"G8": fake, "D8": real}, maps, gammas


TRAINED_VERDICT = {"G8": "above", "D8": "above"}  # what the text below says
trained = attention_maps(G_trained, D_trained)
fresh = attention_maps(G_fresh, D_fresh)
for title, (images, maps, gammas) in (("fresh", fresh), ("trained", trained)):
    for name in ("G8", "D8"):
        share = twin_attention(images[name], maps[name])
        verdict = "above" if share["mass"] > 1.1 * share["chance"] else "not above"
        print(f"{title:7s} {name}: gamma = {gammas[name]:+.3f}, on the other twin "
              f"{share['mass']:.2f}, uniform {share['chance']:.2f}: {verdict} chance")  # fmt: skip
        if title == "trained":  # what the text below says of this model
            assert verdict == TRAINED_VERDICT[name], "the committed model changed: update the text"


# %%
def left_object_query(image, side):
    """(row, col) on the side x side query grid of a query on the left object of `image`."""
    lit = image.amax(dim=0) > -0.9  # (R, R): not black (black is -1 in every channel)
    rows, cols = torch.nonzero(lit[:, : image.shape[-1] // 2], as_tuple=True)
    r, c = rows[len(rows) // 2].item(), cols[len(cols) // 2].item()
    scale = image.shape[-1] // side
    return r // scale, c // scale


def draw_attention(ax_image, ax_map, image, beta):
    """The image with the query marked, and the query's attention over the pooled keys."""
    N, N_k = beta.shape
    side, side_k = math.isqrt(N), math.isqrt(N_k)
    qr, qc = left_object_query(image, side)
    scale = R16 / side
    rgb = ((image.permute(1, 2, 0) + 1) / 2).clamp(0, 1)
    for ax in (ax_image, ax_map):
        ax.imshow(rgb, extent=(0, R16, R16, 0))
        ax.plot((qc + 0.5) * scale, (qr + 0.5) * scale, "x", color="cyan", ms=10, mew=3)
        ax.axis("off")
    row = beta[qr * side + qc].reshape(side_k, side_k)
    shown = ax_map.imshow(row, cmap="magma", alpha=0.75, extent=(0, R16, R16, 0), vmin=0)
    return shown


examples = [int(np.argmax(classes == c)) for c in range(3)]  # one image of each of 3 classes
rows = (("D, fresh: real image", fresh, "D8"), ("D, trained: real image", trained, "D8"),
        ("G, trained: its sample", trained, "G8"))  # fmt: skip
fig, axes = plt.subplots(3, 6, figsize=(12, 6.6))
for row_axes, (title, (images, maps, _), name) in zip(axes, rows, strict=True):
    for col, k in enumerate(examples):
        shown = draw_attention(row_axes[2 * col], row_axes[2 * col + 1], images[name][k],
                               maps[name][k])  # fmt: skip
        fig.colorbar(shown, ax=row_axes[2 * col + 1], fraction=0.046, pad=0.04)
        row_axes[2 * col].set_title(title, fontsize=8)
        row_axes[2 * col + 1].set_title("attention of the query", fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# Read the colour bars first. The fresh model's maps are almost flat: its $W_f, W_g$ are random,
# so every key gets about $1/16$, and $\gamma = 0$ means the block's output is not even used.
# Training makes $\gamma$ nonzero and the maps uneven, and where the weight goes is learned, not
# designed. The end of each line printed above says whether this model's queries on one twin
# look at the other twin more than a uniform map would. For this model, both do: G's by a wide
# margin (a query on one twin of a sample puts much more than the uniform share of its weight on
# the other twin, the one it must agree with in hue and row), D's by a small one. Lesson 5 shows
# this model's samples, and how $\gamma$ grew during training.

# %% [markdown]
# ## Could one block find the twin? A map built by hand
#
# How can one attention block find the twin at all, in one step across the image? We build one
# by hand, no training involved: nobody learned the weights below, we chose them.
# For a feature map we take what a first layer could easily compute: at every pixel, its colour
# (red, green, blue in $[0, 1]$) and a "background" channel, 1 on black pixels, on a 32x32
# image. With
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
    shown = ax.imshow(attention, cmap="magma", alpha=0.7, vmin=0)
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
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
# So the mechanism can do it by hand; the trained generator above found weights that do
# something like it.
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
# ## What attention adds, measured: a probe without a GAN
#
# The hand-built map shows that one block *can* reach the twin. Does a network *learn* to use
# that, and does it matter? A GAN hides the answer behind its dynamics (two networks, no fixed
# target), so we ask it in a setting with a plain right answer. A classifier built from SAGAN's
# own discriminator parts (`DBlock`, `SelfAttention`, spectral norm) must tell **real** Mirror
# twins from **mismatched** ones, whose right half comes from another real image. Each half
# alone is perfectly real; only the *agreement* of the two twins tells them apart. A
# convolutional unit sees a window of the image, its **receptive field**, measured below for a
# classifier of one, two and three D blocks: whether any unit holds a pixel of both twins
# depends on the depth. One attention block after the first block lets every position read
# every other one, whatever the depth. (`accelerated/ablation/probe/`; the whole grid:
# `python -m accelerated.ablation.probe`.)

# %%
shown, real_or_not = probe_examples(4, 16, seed=7)
fig, axes = plt.subplots(1, 8, figsize=(10, 1.7))
for ax, image, label in zip(axes, shown, real_or_not, strict=True):
    ax.imshow((image.permute(1, 2, 0).numpy() + 1) / 2)
    ax.set_title("real" if label else "mismatched", fontsize=9)
    ax.axis("off")
plt.show()
print(f"twins: {builtin.object_size(16)} px wide each, centres "
      f"{16 - builtin.object_size(16)} px apart, at the outer edges of a 16x16 image")
for blocks in (1, 2, 3):
    print(f"{blocks} block(s): a unit sees {receptive_field(blocks, 16, 16)}")

# %% [markdown]
# Train the shallowest classifier, one block, without and then with attention, with the grid's
# settings (printed first), and measure it on held-out images. This is seed 0 of the committed
# grid below, trained with the grid's thread count, so on the same kind of CPU it repeats the
# grid's numbers, printed beside it.
#
# **Predict first**: the held-out accuracy of each (chance is 0.5).

# %%
PROBE = Path(accelerated.__file__).resolve().parents[1] / "docs" / "probe"
probe = json.loads((PROBE / "probe.json").read_text())
print(Settings())
with hidden_output():
    threads = torch.get_num_threads()
    torch.set_num_threads(probe["threads"])
    for attention in (False, True):
        result, _ = run(blocks=1, attention=attention, seed=0, settings=Settings())
        grid = next(r for r in probe["runs"]
                    if (r["blocks"], r["attention"], r["seed"]) == (1, attention, 0))
        print(f"1 block, attention {attention!s:5}: held-out accuracy "
              f"{result['test_accuracy']:.3f} (the grid's seed 0: {grid['test_accuracy']:.3f})"
              + (f", gamma {result['gamma']:+.2f}, twin attention {result['twin_mass']:.2f} "
                 f"(chance {result['twin_chance']:.2f})" if attention else ""))
    torch.set_num_threads(threads)

# %% [markdown]
# One seed is an anecdote. The committed grid (`docs/probe/probe.json`) trained every depth with
# and without attention, several seeds each, and tests per depth whether attention helps (one-sided
# Mann-Whitney test of the seeds' held-out accuracies).
#
# **Predict**: at which depth do the two curves meet, i.e. attention stops adding anything?

# %%
with hidden_output():
    print(f"{probe['seeds']} seeds per cell\n")
    print((PROBE / "probe.md").read_text())

# %% [markdown]
# With one block no unit sees both twins and the convolutions stay at chance, on their training
# images too; one attention block lifts every seed far above chance, and its queries put more
# than the chance share of their weight on the other twin. Once the convolutions span the twins
# (two blocks and more) they learn the task alone and the curves meet. Attention buys in one
# layer the reach that convolutions only get through depth. (`tests/test_probe.py` holds these
# words against the file.)
#
# Left: held-out accuracy against the receptive field of the convolutions, every seed a dot.
# Right: where the attention of a one-block probe looks (the seed with the median accuracy): each
# row a held-out real image with its query dots, then one panel per query (black: no weight;
# red, yellow, white: more).

# %%
fig, axes = plt.subplots(1, 2, figsize=(13, 4.4), width_ratios=(1.4, 1))
for ax, name in zip(axes, ("probe.png", "probe-attention.png"), strict=True):
    ax.imshow(plt.imread(PROBE / name))
    ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## The backward pass, by hand
#
# PyTorch differentiates eqs. (1)-(3) for us, but the chain rule through them is short enough to
# write out, and doing it once shows where the gradients of the block come from. Given
# $\partial L / \partial y$ for some scalar loss $L$, we go through the equations backwards. We
# write $\bar{z}$ for $\partial L / \partial z$ and $a_j = \sum_i \beta_{j,i}\, h(x_i)$ for the
# attention-weighted values, so that $o_j = W_v a_j$.
#
# **Eq. (3)**, $y_j = \gamma o_j + x_j$: $\;\bar\gamma = \sum_j \bar y_j^\top o_j$,
# $\;\bar o_j = \gamma\, \bar y_j$, and $\bar y_j$ flows straight into $\bar x_j$ (the residual).
#
# **Eq. (2)**, $o_j = W_v a_j$: $\;\bar W_v = \sum_j \bar o_j a_j^\top$, $\;\bar a_j = W_v^\top
# \bar o_j$; then $a_j = \sum_i \beta_{j,i} h_i$ gives $\;\bar h_i = \sum_j \beta_{j,i}\, \bar a_j$
# and $\;\bar\beta_{j,i} = \bar a_j^\top h_i$.
#
# **Eq. (1), the softmax.** In row $j$, $\partial \beta_{j,i'} / \partial s_{ij} = \beta_{j,i'}
# (\delta_{ii'} - \beta_{j,i})$, so
#
# $$\bar s_{ij} = \sum_{i'} \bar\beta_{j,i'}\, \beta_{j,i'} (\delta_{ii'} - \beta_{j,i})
# = \beta_{j,i}\Big(\bar\beta_{j,i} - \sum_{i'} \beta_{j,i'}\, \bar\beta_{j,i'}\Big).$$
#
# A row's score gradients sum to zero: adding a constant to a whole row of scores changes no
# $\beta$, so no loss can care about it.
#
# **Eq. (1), the scores**, $s_{ij} = f_i^\top g_j$: $\;\bar g_j = \sum_i \bar s_{ij} f_i$ and
# $\;\bar f_i = \sum_j \bar s_{ij} g_j$.
#
# **The max-pool** of the official block (keys and values pooled 2x2): each window's gradient goes
# to the element that was the maximum, the other three get zero.
#
# **The 1x1 convolutions** $f = W_f x$ (and $g$, $h$ alike): $\;\bar W_f = \sum_n \bar f_n
# x_n^\top$, summed over positions and images, and $x_n$ collects $W_f^\top \bar f_n + W_g^\top
# \bar g_n + W_h^\top \bar h_n$ from the three maps.
#
# `reference.attention.self_attention_backward` is exactly these lines in NumPy (they are shown on
# the *Equations and code* page). We check it twice: against PyTorch's autograd through
# `accelerated.ops.self_attention`, and against finite differences, which need no calculus at
# all: $\partial L / \partial \theta \approx (L(\theta + \epsilon) - L(\theta - \epsilon)) /
# 2\epsilon$.

# %%
x_b = rng.standard_normal((2, 16, 4, 4))
c_qk_b, c_v_b, pool_b = attention_dims(16, "official")  # pooled keys and values
weights_b = {
    "W_f": rng.standard_normal((c_qk_b, 16)) / 4, "W_g": rng.standard_normal((c_qk_b, 16)) / 4,
    "W_h": rng.standard_normal((c_v_b, 16)) / 4, "W_v": rng.standard_normal((16, c_v_b)) / 3,
}  # fmt: skip
gamma_b = 0.5
r = rng.standard_normal(x_b.shape)  # the loss L = sum(r * y): so dL/dy = r


def loss(x, W_f, W_g, W_h, W_v, gamma):
    y, _ = numpy_self_attention(x, W_f, W_g, W_h, W_v, gamma, pool=pool_b)
    return np.sum(r * y)


grads = self_attention_backward(r, x_b, *weights_b.values(), gamma_b, pool=pool_b)

# autograd, in float64
leaves = {"x": torch.tensor(x_b, requires_grad=True)}
leaves |= {k: torch.tensor(w, requires_grad=True) for k, w in weights_b.items()}
leaves["gamma"] = torch.tensor(gamma_b, requires_grad=True)
y_t = torch_self_attention(*leaves.values(), pool=pool_b)
(y_t * torch.from_numpy(r)).sum().backward()


def finite_difference(name, index, eps=1e-6):
    """Central difference of the loss along one coordinate of one argument."""
    args = {"x": x_b, **weights_b, "gamma": gamma_b}
    plus, minus = dict(args), dict(args)
    if name == "gamma":
        plus[name], minus[name] = gamma_b + eps, gamma_b - eps
    else:
        plus[name], minus[name] = args[name].copy(), args[name].copy()
        plus[name][index] += eps
        minus[name][index] -= eps
    return (loss(**plus) - loss(**minus)) / (2 * eps)


print(f"{'':6s} {'|hand - autograd|':>18s}   a coordinate: hand, finite difference")
for name, grad in grads.items():
    auto = leaves[name].grad.numpy()
    index = np.unravel_index(np.argmax(np.abs(grad)), np.shape(grad))  # its largest entry
    fd = finite_difference(name, index)
    hand = np.asarray(grad)[index]
    print(f"{name:6s} {np.abs(grad - auto).max():18.1e}   {hand:+.6f}, {fd:+.6f}")
    assert np.allclose(grad, auto, atol=1e-10) and np.isclose(hand, fd, rtol=1e-5, atol=1e-8)

# %% [markdown]
# Every gradient agrees with autograd to rounding error and with the finite difference to about
# six digits (the finite difference's own error, of order $\epsilon^2$ plus rounding over
# $\epsilon$). The tests (`tests/test_reference_attention.py`) do this for random shapes with
# Hypothesis.
#
# **Predict, then run.** At initialisation $\gamma = 0$. Which of the block's gradients are zero
# then: $\bar\gamma$? $\bar W_v$? $\bar W_f, \bar W_g, \bar W_h$? Write your answer down, then
# open the output of the cell.

# %%
grads_at_init = self_attention_backward(r, x_b, *weights_b.values(), 0.0, pool=pool_b)
with hidden_output():
    for name, grad in grads_at_init.items():
        print(f"{name:6s} largest |gradient| at gamma = 0: {np.abs(grad).max():.3g}")

# %% [markdown]
# <details><summary>Why</summary>
#
# Every path to $W_f, W_g, W_h, W_v$ goes through $\bar o = \gamma\, \bar y = 0$, so their
# gradients vanish; $\bar\gamma = \sum_j \bar y_j^\top o_j$ does not, because $o$ is computed
# (and nonzero) even when it is multiplied by 0. So a fresh SAGAN first learns $\gamma$; only
# once $\gamma \ne 0$ do the attention weights start to learn, and $\bar x = \bar y$ exactly: the
# block is the identity, backwards too. The answer: $\bar W_f, \bar W_g, \bar W_h, \bar W_v$
# are exactly 0 (the output prints 0 for them), $\bar\gamma$ and $\bar x$ are not.
#
# </details>

# %% [markdown]
# ## Exercises
#
# Try each one before opening its solution.
#
# **1. Temperature.** In the hand-built map above, $s_{ij} = a^2\, x_i^\top x_j$. Predict how the
# object query's map changes when you set `a = 1` and `a = 6`, then change `a` in that cell and
# re-run it and the two cells after it.
#
# <details><summary>Solution</summary>
#
# $a^2$ is an inverse temperature of the softmax: $\beta_{j,\cdot} = \operatorname{softmax}(a^2
# s^{(1)}_{\cdot j})$ with $s^{(1)}$ the scores at $a = 1$. At $a = 1$ the scores differ by at
# most a few units and the map is nearly uniform (every pixel gets a similar share, the twin's
# share drops towards its area fraction); at $a = 6$ ($a^2 = 36$) the softmax is nearly a hard
# maximum and all the weight goes to the pixels of exactly the query's colour, in both objects.
#
# </details>
#
# **2. Cost.** Count the multiply-adds of eq. (1) and of eq. (2) for the paper's block on a
# $64 \times 64$ feature map with $C = 128$ channels. How do they grow when the side doubles?
#
# <details><summary>Solution</summary>
#
# With $N = 4096$ and $C/8 = 16$: eq. (1) takes $N^2 \cdot 16 = 268$ M multiply-adds per image (one
# dot product of length 16 per pair); eq. (2) takes $N^2 \cdot 16$ for $\sum_i \beta_{j,i} h_i$
# plus $N \cdot 16 \cdot 128 = 8.4$ M for $W_v$, 277 M in all. Both are quadratic in $N$, so
# doubling the side ($N \times 4$) multiplies them by 16: why the official code pools the keys and
# values, and why lesson 6 is about memory.
#
# ```python
# N, c = 64 * 64, 128 // 8
# print(N * N * c, N * N * c + N * c * 128)  # 268435456 276824064
# ```
#
# </details>
#
# **3. $\partial L / \partial \gamma$ by hand.** For the loss $L = \sum r \odot y$ of the backward
# section, write $\bar\gamma$ in terms of $r$ and the block's output, compute it with forward
# passes only (`numpy_self_attention`), and compare with `grads["gamma"]`.
#
# <details><summary>Solution</summary>
#
# $y = \gamma o + x$, so $\bar\gamma = \sum r \odot o$, and $o = y(\gamma{=}1) - x$:
#
# ```python
# W_args = [weights_b[k] for k in ("W_f", "W_g", "W_h", "W_v")]
# o = numpy_self_attention(x_b, *W_args, 1.0, pool=True)[0] - x_b
# print(np.sum(r * o), grads["gamma"])  # equal
# ```
#
# </details>
#
# **4. $\partial L / \partial W_v$ by hand.** Derive $\bar W_v$ for the same loss, compute it from
# the attention-weighted values $a$, and compare with `grads["W_v"]`.
#
# <details><summary>Solution</summary>
#
# $o_j = W_v a_j$ and $\bar o_j = \gamma r_j$, so $\bar W_v = \gamma \sum_{b, j} r_{b,j}\,
# a_{b,j}^\top$, one outer product per position and image:
#
# ```python
# W_f, W_g, W_h, W_v = (weights_b[k] for k in ("W_f", "W_g", "W_h", "W_v"))
# _, beta = numpy_self_attention(x_b, W_f, W_g, W_h, W_v, gamma_b, pool=True)
# X = x_b.reshape(2, 16, -1)
# h_pooled = (W_h @ X).reshape(2, -1, 4, 4)  # values, then the 2x2 max-pool
# h_pooled = h_pooled.reshape(2, -1, 2, 2, 2, 2).max(axis=(3, 5)).reshape(2, -1, 4)
# a = h_pooled @ np.swapaxes(beta, 1, 2)  # (B, c_v, N)
# dW_v = gamma_b * np.sum(r.reshape(2, 16, -1) @ np.swapaxes(a, 1, 2), axis=0)
# print(np.abs(dW_v - grads["W_v"]).max())  # ~1e-16
# ```
#
# </details>
#
# **5. Softmax gradients.** Predict the value of `d_s.sum(axis=-1)` (the score gradients of each
# query row) for any loss, then check it by adding a line `print(np.abs(d_s.sum(-1)).max())` to a
# copy of the softmax step of `self_attention_backward`.
#
# <details><summary>Solution</summary>
#
# Zero, up to rounding: $\sum_i \bar s_{ij} = \sum_i \beta_{j,i} \bar\beta_{j,i} - \sum_i
# \beta_{j,i} \sum_{i'} \beta_{j,i'} \bar\beta_{j,i'} = 0$ because $\sum_i \beta_{j,i} = 1$. The
# softmax cannot see a shift of a whole row of scores, so its gradient has no component along it.
#
# </details>
#
# **Try this** (a few minutes each on a CPU; compare the runs' `curves.png`):
#
# - attention at another size: G's at 16x16 and D's at 4x4 instead of both at 8x8,
#   `python -m accelerated.train --run.steps 300 --model.g_attention 16 --model.d_attention 4`
#   and, for comparison, the default placement with `--run.steps 300` alone;
# - $\gamma$ initialised to 1 instead of 0: change `torch.zeros(())` to `torch.ones(())` for
#   `self.gamma` in `accelerated/layers/attention.py`, run 300 steps, and look at the first
#   samples. Does the block still start as the identity?
