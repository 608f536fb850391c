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
# # Lesson 4: the SAGAN architecture, paper versus official code
#
# SAGAN's networks are the residual generator and discriminator of SNGAN-projection (Miyato &
# Koyama 2018) with one self-attention block each. In this lesson we build them from the
# project's architecture tables, read the code of their blocks, count their parameters, find where
# the attention sits, and compare the block the paper describes with the one its authors released.

# %%
import inspect
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import SVG, Code, display
from matplotlib.colors import rgb_to_hsv

import accelerated
from accelerated.checkpoint import load_generator
from accelerated.data import builtin
from accelerated.figures.hidden import hidden_output
from accelerated.layers import ConditionalBatchNorm2d, ProjectionHead, SelfAttention
from accelerated.models import ARCHITECTURES, ModelConfig, attention_layers, build_models
from accelerated.models.blocks import DBlock, GBlock
from accelerated.models.param_count import count_parameters, parameter_count_formula
from reference.attention import attention_dims

_ = torch.manual_seed(0)
ROOT = Path(accelerated.__file__).resolve().parents[1]  # the repository


def show_code(obj):
    """The source of a class or function of the project, highlighted."""
    display(Code(inspect.getsource(obj), language="python"))


# %% [markdown]
# ## The two networks at a glance
#
# The diagram shows the small model that `python -m accelerated.train` trains on the built-in
# data set (16x16 images, 4 classes); the 128x128 model of the paper has the same structure with
# more blocks and wider layers. Orange: the self-attention block of lesson 1. Green: where the
# class label enters.

# %%
display(SVG(filename=ROOT / "docs" / "images" / "architecture.svg"))

# %% [markdown]
# ## Architectures as data
#
# Each resolution has a table (`accelerated/models/architectures.py`): the channels leaving every
# block, as multiples of a base width ($g_f = d_f = 64$ in the paper), and the feature-map sizes
# after which an attention block sits. The 128x128 entry is the official code's model.

# %%
arch = ARCHITECTURES[128]
g_ch = d_ch = 64
print("generator: 4x4 input, then up-blocks")
sizes = (4, *arch.g_sizes())
for size, mult in zip(sizes, arch.g_channels, strict=True):
    note = "  <- self-attention" if size in arch.g_attention else ""
    print(f"  {size:3d} x {size:<3d} {mult * g_ch:5d} channels{note}")
print("discriminator: blocks")
for size, mult in zip(arch.d_sizes(128), arch.d_channels, strict=True):
    note = "  <- self-attention" if size in arch.d_attention else ""
    print(f"  {size:3d} x {size:<3d} {mult * d_ch:5d} channels{note}")

# %% [markdown]
# ## The full 128x128 model: parameter counts
#
# `build_models` reads the table and returns $G$ and $D$, every convolution, linear layer and
# embedding spectrally normalised. The counts agree with a formula written from the official
# code's layer list (`parameter_count_formula`), which the tests check for every table.

# %%
cfg = ModelConfig(resolution=128, num_classes=1000)
G, D = build_models(cfg)
n_G, n_D = count_parameters(G), count_parameters(D)
print(f"G: {n_G / 1e6:.2f} M parameters, D: {n_D / 1e6:.2f} M parameters")
assert (n_G, n_D) == parameter_count_formula(cfg)

for name, net in (("G", G), ("D", D)):
    for layer in attention_layers(net):
        C = layer.v.out_channels
        share = count_parameters(layer) / count_parameters(net)
        print(f"{name}: attention on {C} channels ({layer.extra_repr()}), {share:.2%} of {name}")

# %% [markdown]
# The attention blocks are a fraction of a percent of the parameters: SAGAN's gain does not come
# from capacity. Most of G's parameters sit in the wide low-resolution blocks (1024 channels at
# 4x4 and 8x8), and a good share in the class-conditional batch norm (a gain and a bias per class
# and channel: 1000 classes).
#
# ## Paper versus official code: the attention block
#
# | | paper text | official code |
# |---|---|---|
# | query $g$, key $f$ | $C \to C/8$ | $C \to C/8$ |
# | value $h$, output $v$ | $C \to C/8 \to C$ | $C \to C/2 \to C$ |
# | keys and values | all $N$ positions | 2x2 max-pooled: $N/4$ |
#
# With no biases, the four 1x1 convolutions hold $C \cdot C/8 \cdot 3 + C/8 \cdot C = C^2/2$
# weights in the paper's block and $2 C \cdot C/8 + 2 C \cdot C/2 = 1.25\, C^2$ in the official
# one, plus $\gamma$.

# %%
print(f"{'C':>5} {'variant':>9} {'c_qk':>5} {'c_v':>5} {'pool':>5} {'parameters':>11}")
for C in (128, 256):
    for variant in ("paper", "official"):
        c_qk, c_v, pool = attention_dims(C, variant)
        n = count_parameters(SelfAttention(C, variant=variant))
        print(f"{C:5d} {variant:>9} {c_qk:5d} {c_v:5d} {pool!s:>5} {n:11,d}")
        expected = C * C // 2 if variant == "paper" else 5 * C * C // 4
        assert n == expected + 1  # + gamma

# %% [markdown]
# The official block has 2.5 times more weights, but its attention map is 4 times smaller: with
# pooled keys, each of the $N$ queries attends to $N/4$ positions. At SAGAN's 32x32 attention
# that is the difference between a $1024 \times 1024$ and a $1024 \times 256$ matrix per image.

# %% [markdown]
# ## The blocks, as code
#
# **The generator's block** is a pre-activation residual block: conditional batch norm, ReLU,
# nearest-neighbour upsampling and a 3x3 convolution, twice, added to a shortcut (a 1x1
# convolution when the size or the width changes).

# %%
show_code(GBlock)

# %% [markdown]
# **Conditional batch norm** is how the class $y$ enters $G$: batch statistics normalise each
# channel, then a gain and a bias *looked up for the class* rescale it,
#
# $$\mathrm{CBN}(x, y) = \gamma_y \odot \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta_y.$$
#
# With 1000 classes and wide layers, these tables are a large part of $G$ (exercise 1 below).

# %%
show_code(ConditionalBatchNorm2d)

# %% [markdown]
# **The discriminator's block** mirrors G's: ReLU and 3x3 convolutions, then 2x2 average
# pooling, with no batch norm and no class input.

# %%
show_code(DBlock)

# %% [markdown]
# **The projection head** is how the class enters $D$ (Miyato & Koyama 2018). With $\phi(x)$ the
# features after the last block summed over positions,
#
# $$D(x, y) = \psi(\phi(x)) + \mathrm{embed}(y)^\top \phi(x),$$
#
# $\psi$ a linear layer: an unconditional "is it real" score plus the inner product of the
# features with a learned vector per class, which rewards images whose features match their
# class.

# %%
show_code(ProjectionHead)

# %% [markdown]
# ## Following a batch through a small model
#
# A 32x32 model (the CIFAR-sized table, narrow so that it runs in a blink on a CPU) shows the
# shapes block by block. We hook every block and record what comes out.

# %%
small = ModelConfig(resolution=32, num_classes=4, g_ch=16, d_ch=16)
G_small, D_small = build_models(small)
shapes = []


def record(name):
    def hook(module, inputs, output):
        shapes.append((name, type(module).__name__, tuple(output.shape)))

    return hook


for net_name, blocks in (("G", G_small.blocks), ("D", D_small.blocks)):
    for i, block in enumerate(blocks):
        block.register_forward_hook(record(f"{net_name}.blocks[{i}]"))

z = torch.randn(2, small.z_dim)
y = torch.tensor([0, 3])
with torch.no_grad():
    images = G_small(z, y)
    scores = D_small(images, y)
for name, kind, shape in shapes:
    print(f"{name:13s} {kind:14s} -> {shape}")
print("images:", tuple(images.shape), "scores:", tuple(scores.shape))
assert images.shape == (2, 3, 32, 32) and scores.shape == (2,)
assert images.abs().max() <= 1.0  # tanh output

# %% [markdown]
# The attention blocks keep the shape: $y = \gamma o + x$. At initialisation $\gamma = 0$, so they
# pass $x$ through unchanged. What they learn to attend to shows in a trained model: here is the
# discriminator of the SAGAN trained on *Mirror twins* by default (`docs/trained/mirror-twins.pt`,
# the model of the *Train* page), on real images. Its block sits on D's 8x8 feature maps, so its
# 64 queries each weigh 16 pooled keys, one per 4x4 pixels. For each image we place three queries
# (crosses): on the left object, on the right object, and on the background.

# %%
TRAINED = ROOT / "docs" / "trained" / "mirror-twins.pt"
G_trained, trained_cfg, _ = load_generator(TRAINED, torch.device("cpu"))
D_trained = build_models(trained_cfg)[1]
D_trained.load_state_dict(torch.load(TRAINED, map_location="cpu", weights_only=True)["D"])
D_trained.eval()
R = trained_cfg.resolution
pixels, classes = builtin.generate(16, R, seed=11)
real = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1  # (B, 3, R, R) in [-1, 1]
[attention] = attention_layers(D_trained)
attention.store_attention = True
with torch.no_grad():
    D_trained(real, torch.from_numpy(classes).long())
beta = attention.last_attention  # (B, N, N_k)
attention.store_attention = False
N, N_k = beta.shape[1:]
side, side_k = math.isqrt(N), math.isqrt(N_k)
print(f"trained D: gamma = {attention.gamma.item():+.3f}; {N} queries ({side}x{side}) over "
      f"{N_k} pooled keys ({side_k}x{side_k})")  # fmt: skip


def queries_of(image):
    """Query cells (row, col) on the side x side grid: left object, right object, background."""
    lit = (image.amax(dim=0) > -0.9).reshape(side, R // side, side, R // side).any(3).any(1)
    rows, cols = torch.nonzero(lit, as_tuple=True)
    left, right = cols < side // 2, cols >= side // 2
    dark_rows, dark_cols = torch.nonzero(~lit, as_tuple=True)
    return {"left object": (rows[left][0].item(), cols[left][0].item()),
            "right object": (rows[right][-1].item(), cols[right][-1].item()),
            "background": (dark_rows[0].item(), dark_cols[0].item())}  # fmt: skip


examples = [int(np.argmax(classes == c)) for c in range(2)]  # a ring and a plus
fig, axes = plt.subplots(len(examples), 4, figsize=(12, 2.9 * len(examples)))
for row_axes, k in zip(axes, examples, strict=True):
    rgb = ((real[k].permute(1, 2, 0) + 1) / 2).clamp(0, 1)
    row_axes[0].imshow(rgb)
    row_axes[0].set_title(f"real image: {builtin.CLASS_NAMES[classes[k]]}", fontsize=9)
    for ax, (where, (qr, qc)) in zip(row_axes[1:], queries_of(real[k]).items(), strict=True):
        ax.imshow(rgb, extent=(0, R, R, 0))
        weights = beta[k, qr * side + qc].reshape(side_k, side_k)
        shown = ax.imshow(weights, cmap="magma", alpha=0.75, extent=(0, R, R, 0), vmin=0)
        cell = R / side
        ax.plot((qc + 0.5) * cell, (qr + 0.5) * cell, "x", color="cyan", ms=10, mew=3)
        ax.set_title(f"query on the {where}", fontsize=9)
        fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
    for ax in row_axes:
        ax.axis("off")
plt.tight_layout()
plt.show()
assert torch.allclose(beta.sum(dim=-1), torch.ones(beta.shape[:2]))

# %% [markdown]
# Each colour bar gives the weights of one query's row of $\beta$ (it sums to 1 over the 16
# keys). Lesson 1 compares these maps with those of an untrained model, and measures how much of
# each query's attention lands on the other twin.

# %% [markdown]
# ## The class label, made visible
#
# The class enters G only through the conditional batch norm's gains and biases, and D only
# through the projection. What does the label change in an image? Give the trained generator the
# *same* noise $z$ with each of the four labels: one row per $z$, one column per class.

# %%
n_z, K = 6, trained_cfg.num_classes
z_rows = torch.randn(n_z, trained_cfg.z_dim, generator=torch.Generator().manual_seed(4))
labels = torch.arange(K).repeat(n_z)  # 0, 1, 2, 3, 0, 1, ...
with torch.no_grad():
    grid = G_trained(z_rows.repeat_interleave(K, dim=0), labels)  # (n_z * K, 3, R, R)
pixels = ((grid.permute(0, 2, 3, 1) + 1) / 2).clamp(0, 1).numpy()  # (n_z * K, R, R, 3)
fig, axes = plt.subplots(n_z, K, figsize=(4.6, 6.6))
for ax, image in zip(axes.flat, pixels, strict=True):
    ax.imshow(image, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
for c, ax in enumerate(axes[0]):
    ax.set_title(builtin.CLASS_NAMES[c], fontsize=9)
for r, ax in enumerate(axes[:, 0]):
    ax.set_ylabel(f"z number {r}", fontsize=8)
plt.tight_layout()
plt.show()

lit = pixels.max(axis=-1) > 0.5  # (n_z * K, R, R): the objects
colour = (pixels * lit[..., None]).sum(axis=(1, 2)) / lit.sum(axis=(1, 2))[:, None]
hue = (rgb_to_hsv(colour)[:, 0] * 360).reshape(n_z, K)  # degrees
height = np.array([np.flatnonzero(m.any(axis=1)).mean() for m in lit]).reshape(n_z, K)


def circular_range(degrees):
    """The shortest arc of the colour wheel that holds all the hues."""
    ordered = np.sort(degrees)
    gaps = np.diff(np.concatenate([ordered, [ordered[0] + 360]]))
    return 360 - gaps.max()


hue_ranges = [circular_range(row) for row in hue]
height_ranges = np.ptp(height, axis=1)
for r in range(n_z):
    print(f"z number {r}: hues of the 4 classes within {hue_ranges[r]:3.0f} degrees, "
          f"heights within {height_ranges[r]:.1f} px")  # fmt: skip
quality = builtin.quality(grid, labels)
print(f"class match of the grid: {quality['class_match']:.2f}")
assert quality["class_match"] > 0.9 and np.all(height_ranges <= 3)  # what the text says
assert np.mean(np.array(hue_ranges) < 60) >= 0.5

# %% [markdown]
# Along a row the shape follows the label, and it is drawn as the class demands (the printed
# class match). What stays is what $z$ decides: the height of the twins (within a few pixels
# across the four classes, in every row) and, in most rows, the colour (within one sixth of
# the colour wheel). So the generator has separated the two: the label chooses *what*, the noise
# chooses *how*. Where a row's colour changes with the class, the conditional batch norm's
# per-class gains and biases also shift the colours: nothing in the loss asks the two to be
# independent.

# %% [markdown]
# ## Where should the attention go?
#
# The paper's ablation moves the block from the 8x8 to the 32x32 feature maps: FID improves from
# 22.98 to 18.28, and a plain residual block at 8x8 instead of attention gives 42.13. Attention
# pays off on larger maps, where convolutions see the smallest fraction of the image, and that is
# also where it costs most: the map has $N \cdot N_k$ entries, growing as the fourth power of the
# side. `ModelConfig(g_attention=..., d_attention=...)` places it anywhere; the `attention_block`
# field swaps it for a residual block, as in the ablation.

# %%
print(f"{'size':>6} {'N':>6} {'N_k':>6} {'map entries per image':>22}")
for size in (8, 16, 32, 64):
    N, N_k = size * size, size * size // 4
    print(f"{size:>3}x{size:<2} {N:6d} {N_k:6d} {N * N_k:22,d}")

moved = ModelConfig(resolution=128, g_attention=(64,), d_attention=(64,))
print("BigGAN-PyTorch / StudioGAN placement (64x64):", moved.g_attention_sizes, moved.d_attention)

# %% [markdown]
# ## Exercises
#
# **1. The class tables.** How many parameters do the class-conditional batch-norm tables of the
# 128x128 generator hold? Each CBN layer has a gain and a bias per class and per channel; each
# up-block has two CBN layers, on its input channels and on its output channels. Compute it from
# `arch.g_channels`, then compare with the model: the tables are the `nn.Embedding`s inside `G`,
# so `sum(m.weight.numel() for m in G.modules() if isinstance(m, torch.nn.Embedding))`.
#
# <details><summary>Solution</summary>
#
# ```python
# cbn = sum(2 * cfg.num_classes * (c_in + c_out) * g_ch
#           for c_in, c_out in zip(arch.g_channels, arch.g_channels[1:]))
# in_model = sum(m.weight.numel() for m in G.modules() if isinstance(m, torch.nn.Embedding))
# print(cbn, in_model, f"{cbn / n_G:.0%} of G")  # equal: 9.9 M, about a quarter of G
# ```
#
# A quarter of G's parameters at 1000 classes are a lookup table per class.
#
# </details>
#
# **2. What the projection term sees.** Predict $D(x, y) - D(x, y')$ for one image $x$ and two
# labels, in terms of the head's weights and $\phi(x)$; check it on `D_small`, whose head is
# `D_small.head` and whose features are `phi = torch.relu(D_small.blocks(images)).sum(dim=(2, 3))`.
#
# <details><summary>Solution</summary>
#
# $\psi(\phi(x))$ cancels: $D(x, y) - D(x, y') = (\mathrm{embed}(y) - \mathrm{embed}(y'))^\top
# \phi(x)$. The label can only move the score along the directions the class embeddings span.
#
# ```python
# D_small.eval()  # no power-iteration step per forward pass: sigma stays put between calls
# with torch.no_grad():
#     phi = torch.relu(D_small.blocks(images)).sum(dim=(2, 3))
#     e = D_small.head.embed.weight  # (classes, F), already divided by its sigma
#     diff = D_small(images, torch.tensor([0, 0])) - D_small(images, torch.tensor([1, 1]))
#     print(diff, ((e[0] - e[1]) * phi).sum(dim=1))  # equal
# ```
#
# </details>
#
# **3. Predict, then run: shapes.** Write down the shape of G's output after each block of a
# **64x64** model with `g_ch=8` (its table is `ARCHITECTURES[64]`), and which block is the
# attention; then open the output of the cell below.

# %%
cfg_64 = ModelConfig(resolution=64, num_classes=4, g_ch=8, d_ch=8)
G_64, _ = build_models(cfg_64)
h = G_64.linear(torch.randn(1, cfg_64.z_dim)).reshape(1, -1, 4, 4)
with hidden_output():
    print(f"{'input':14s} -> {tuple(h.shape)}")
    for block in G_64.blocks:
        h = block(h, torch.tensor([0])) if isinstance(block, GBlock) else block(h)
        print(f"{type(block).__name__:14s} -> {tuple(h.shape)}")
    print("g_channels x g_ch:", [m * cfg_64.g_ch for m in ARCHITECTURES[64].g_channels])
    print("attention after the up-block of size", cfg_64.g_attention_sizes)

# %% [markdown]
# <details><summary>Solution</summary>
#
# Each GBlock doubles the side and sets the width to `g_channels[k] * g_ch`; the self-attention
# block keeps the shape it receives ($y = \gamma o + x$), and sits after the up-block whose output
# size is in `cfg_64.g_attention_sizes`. The answer is the output above: one line per block,
# the side doubling from 4 to 64 while the width follows the table, and one `SelfAttention`
# line with the same shape as the line before it.
#
# </details>
#
# **4. Attention's share.** Using `count_parameters`, what fraction of the 128x128 G's
# parameters would the attention block hold if it sat at 64x64 (128 channels) instead of 32x32?
# Predict first: more or less than at 32x32?
#
# <details><summary>Solution</summary>
#
# Less: the official block has $1.25\, C^2$ weights and G is narrower at 64x64 (128 channels
# against 256), so the block shrinks by 4 while its attention map grows by 16. Parameters and
# compute of attention are unrelated.
#
# ```python
# print(count_parameters(SelfAttention(128)) / n_G, count_parameters(SelfAttention(256)) / n_G)
# ```
#
# </details>
#
# **Try this**: move the attention of the default model to another size and train it for 300
# steps, `python -m accelerated.train --run.steps 300 --model.g_attention 16 --model.d_attention 4`,
# or replace it by a residual block (the paper's ablation): `--model.attention_block residual`.
