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
# # Lesson 2: spectral normalisation
#
# A discriminator that can make its output arbitrarily steep gives the generator useless,
# exploding gradients. Spectral normalisation (Miyato et al. 2018) bounds how steep each layer
# can be: it divides every weight by its largest singular value,
#
# $$W_{SN} = \frac{W}{\sigma(W)}, \qquad \sigma(W) = \max_{\lVert a \rVert = 1} \lVert W a \rVert,$$
#
# so a linear layer stretches no input by more than a factor 1. SAGAN applies it to every layer of
# **both** networks. In this lesson we estimate $\sigma$ with the power iteration, watch it
# converge, see why one step per training step is enough, check what it does to a network, and
# find out why for a *convolution* the factor is not quite 1.

# %%
from itertools import pairwise
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.utils import parametrize

import accelerated
from accelerated.checkpoint import load_generator
from accelerated.data import builtin
from accelerated.data.arrays import to_model_range
from accelerated.figures.hidden import hidden_output
from accelerated.layers import sn_conv2d
from accelerated.models import build_models
from accelerated.ops import spectral_norm as torch_spectral_norm
from reference.spectral_norm import power_iteration, spectral_norm, spectral_norm_backward

rng = np.random.default_rng(0)
_ = torch.manual_seed(0)

# %% [markdown]
# ## The power iteration
#
# A 3x3 convolution from 64 to 64 channels has a kernel of shape (64, 64, 3, 3); spectral
# normalisation reads it as the matrix (64, 576). Computing $\sigma$ exactly needs a singular
# value decomposition, too expensive at every step for every layer. Algorithm 1 of Miyato et al.
# refines two vectors instead:
#
# $$v \leftarrow \frac{W^\top u}{\lVert W^\top u \rVert}, \qquad
# u \leftarrow \frac{W v}{\lVert W v \rVert}, \qquad \sigma \approx u^\top W v.$$
#
# Each step multiplies the error of the vectors $u, v$ by about $(\sigma_2 / \sigma_1)^2$, with
# $\sigma_2$ the second largest singular value; the error of $\sigma$, quadratic in theirs, by
# about $(\sigma_2 / \sigma_1)^4$.

# %%
def singular_values(W, k=2):
    """The k largest singular values of W read as (out, rest): square roots of W W^T's
    eigenvalues (cheaper than a full SVD for a wide matrix)."""
    M = np.asarray(W, dtype=np.float64).reshape(W.shape[0], -1)
    return np.sqrt(np.linalg.eigvalsh(M @ M.T)[::-1][:k])


kernel = rng.standard_normal((64, 64, 3, 3)) / np.sqrt(64 * 9)
sigma_true, sigma_2 = singular_values(kernel)
rate = (sigma_2 / sigma_true) ** 4  # per step, for the error of sigma
print(f"sigma = {sigma_true:.4f}, sigma_2 / sigma_1 = {sigma_2 / sigma_true:.3f}")

u = rng.standard_normal(64)
estimates = []
for _ in range(60):
    sigma, u, v = power_iteration(kernel, u, n_steps=1)  # u carried over: the persistent vector
    estimates.append(sigma)
errors = np.abs(np.array(estimates) - sigma_true) / sigma_true

steps = np.arange(1, len(errors) + 1)
plt.figure(figsize=(6, 3.2))
plt.semilogy(steps, errors, label="power iteration")
guide = errors[-1] * rate ** (steps - steps[-1])
plt.semilogy(steps, guide, "--", label=r"$\propto (\sigma_2/\sigma_1)^{4k}$")
plt.xlabel("steps $k$")
plt.ylabel(r"relative error of $\sigma$")
plt.legend()
plt.tight_layout()
plt.show()
assert errors[-1] < 1e-3 and errors[-1] < errors[0] / 100

# %% [markdown]
# The estimate always approaches $\sigma$ from below ($u^\top W v \le \sigma$ for unit $u, v$),
# and the closer $\sigma_2$ is to $\sigma_1$, the slower it gets. Dozens of steps per layer per
# training step would cost more than the layer itself.

# %% [markdown]
# ## One step per training step is enough
#
# The trick: $u$ is **persistent**. It is stored with the layer and carried from one training step
# to the next. The weights change little per step, so the vector from the last step is already an
# excellent start, and one step keeps it there. We simulate a training run: every step the weight
# drifts a little, and we run one power-iteration step on the new weight.

# %%
W = kernel.copy()
u = rng.standard_normal(64)
tracked, exact = [], []
direction = rng.standard_normal(W.shape) / np.sqrt(W.size)
for _ in range(300):
    W = W + 2e-3 * direction + 1e-3 * rng.standard_normal(W.shape) / np.sqrt(64 * 9)
    sigma, u, v = power_iteration(W, u, n_steps=1)
    tracked.append(sigma)
    exact.append(singular_values(W, k=1)[0])

plt.figure(figsize=(6, 3.2))
plt.plot(exact, label=r"exact $\sigma(W_t)$", lw=3, alpha=0.5)
plt.plot(tracked, label="one power-iteration step per training step")
plt.xlabel("training step $t$")
plt.ylabel(r"$\sigma$")
plt.legend()
plt.tight_layout()
plt.show()
relative_error = abs(tracked[-1] - exact[-1]) / exact[-1]
print(f"after 300 steps: relative error {relative_error:.1e}")
assert relative_error < 1e-2

# %% [markdown]
# ## What it does to a network
#
# For a network of linear layers and ReLUs (ReLU stretches nothing), the Lipschitz constant, the
# largest possible $\lVert D(a) - D(b) \rVert / \lVert a - b \rVert$, is at most the product of
# the layers' $\sigma$. With spectral normalisation every factor is 1. We build a small
# discriminator and measure its steepest input gradient over many inputs, with and without SN.


# %%
def make_mlp_weights(widths, rng):
    return [rng.standard_normal((o, i)) * np.sqrt(2.0 / i) for i, o in pairwise(widths)]


inputs = torch.randn(2000, 32, dtype=torch.float64)  # the same test inputs for every network


def max_input_gradient(weights):
    """The largest ||dD/dx|| over the test inputs x, for D = W_L relu(... relu(W_1 x))."""
    x = inputs.clone().requires_grad_()
    h = x
    for k, w in enumerate(weights):
        h = h @ torch.from_numpy(w).T
        if k < len(weights) - 1:
            h = torch.relu(h)
    (grad,) = torch.autograd.grad(h.sum(), x)
    return grad.norm(dim=1).max().item()


def normalised(weights):
    """Each weight divided by its sigma, estimated with 50 power-iteration steps from u = 1."""
    return [spectral_norm(w, np.ones(w.shape[0]), n_steps=50)[0] for w in weights]


weights = make_mlp_weights([32, 256, 256, 256, 1], rng)
bound = np.prod([singular_values(w, k=1)[0] for w in weights])
print(f"without SN: steepest gradient {max_input_gradient(weights):8.2f}  (bound {bound:.1f})")
print(f"with SN:    steepest gradient {max_input_gradient(normalised(weights)):8.2f}  (bound 1)")
assert max_input_gradient(normalised(weights)) <= 1.0 + 1e-6

# %% [markdown]
# With SN the bound is 1; the measured steepness is far below it, since the product of the
# layers' $\sigma$ only bounds the worst case.
#
# Now the reason it *stabilises training*. Without SN, a discriminator can sharpen its output
# just by growing its weights, and it does: the loss rewards confident outputs. Scale every
# weight by 3 and the gradients it hands the generator grow by $3^4 = 81$. With SN, scaling a
# weight changes nothing at all, because $W / \sigma(W)$ does not depend on the scale of $W$: D
# must change *what* it computes to change its output.

# %%
bigger = [3.0 * w for w in weights]
print(f"without SN, weights x3: {max_input_gradient(bigger) / max_input_gradient(weights):.1f}x")
ratio_sn = max_input_gradient(normalised(bigger)) / max_input_gradient(normalised(weights))
print(f"with SN,    weights x3: {ratio_sn:.3f}x")
assert np.isclose(ratio_sn, 1.0)

# %% [markdown]
# ## Spectral norm in the layers that train the model
#
# The models use PyTorch's own `torch.nn.utils.parametrizations.spectral_norm`, registered by
# `accelerated.layers.sn_conv2d` (and `sn_linear`, `sn_embedding`). `module.weight` is then
# $W/\sigma$, recomputed at each access; one power-iteration step runs per forward pass in
# training mode, none in eval mode; registration runs 15 steps, so $\sigma$ starts accurate.

# %%
conv = sn_conv2d(64, 64, 3, padding=1)
W_raw = conv.parametrizations.weight.original.detach()  # the W that is learned
print(f"sigma(W) = {singular_values(W_raw.numpy(), k=1)[0]:.4f}")


def sigma_of_used_weight():
    """The exact largest singular value of W / sigma, what the convolution multiplies by."""
    return singular_values(conv.weight.detach().numpy(), k=1)[0]


x = torch.randn(1, 64, 4, 4)
history = {0: sigma_of_used_weight()}
conv.train()
with torch.no_grad():
    for step in range(1, 101):
        conv(x)  # in training mode, each forward pass runs one power-iteration step
        if step in (10, 30, 100):
            history[step] = sigma_of_used_weight()
for step, sigma in history.items():
    print(f"after {step:3d} training forward passes: sigma(W_SN) = {sigma:.6f}")
assert history[100] < history[0] and abs(history[100] - 1.0) < 1e-4

# %% [markdown]
# After registration's 15 steps the estimate is still a little low (here $\sigma_2/\sigma_1$ is
# close to 1), so $W_{SN}$ has norm slightly above 1; the training steps then bring it to 1.
# In eval mode no step runs and the output is deterministic:

# %%
conv.eval()
with torch.no_grad():
    assert torch.equal(conv(x), conv(x))
    assert sigma_of_used_weight() == history[100]

# %% [markdown]
# ## In the trained discriminator
#
# What does SN do in a real SAGAN? The discriminator trained by default on *Mirror twins*
# (`docs/trained/mirror-twins.pt`, lessons 1 and 5) stores, for every layer, the weight $W$ that
# Adam learned, and computes with $W / \sigma$. We compare the exact $\sigma(W)$ of each learned
# weight with that of the weight the layer uses, and then the steepness of this D with that of an
# **unnormalised copy**: the same learned weights, without the division. (That copy is not a D
# trained without SN, which would have learned other weights: it shows how much the division
# does in this one.)

# %%
TRAINED = Path(accelerated.__file__).resolve().parents[1] / "docs" / "trained" / "mirror-twins.pt"
_, trained_cfg, _ = load_generator(TRAINED, torch.device("cpu"))


def trained_discriminator():
    D = build_models(trained_cfg)[1]
    D.load_state_dict(torch.load(TRAINED, map_location="cpu", weights_only=True)["D"])
    return D.eval()


D_sn = trained_discriminator()
layers = {name: m for name, m in D_sn.named_modules() if parametrize.is_parametrized(m, "weight")}
sigma_learned = [singular_values(m.parametrizations.weight.original.detach().numpy(), k=1)[0]
                 for m in layers.values()]  # fmt: skip
sigma_used = [singular_values(m.weight.detach().numpy(), k=1)[0] for m in layers.values()]

D_raw = trained_discriminator()  # the unnormalised copy: W instead of W / sigma in every layer
for m in D_raw.modules():
    if parametrize.is_parametrized(m, "weight"):
        parametrize.remove_parametrizations(m, "weight", leave_parametrized=False)

images, labels = builtin.generate(256, trained_cfg.resolution, seed=9)
x_real = torch.from_numpy(to_model_range(images)).requires_grad_()
steepness = {}
for name, net in (("with SN", D_sn), ("unnormalised copy", D_raw)):
    (grad,) = torch.autograd.grad(net(x_real, torch.from_numpy(labels)).sum(), x_real)
    steepness[name] = grad.flatten(1).norm(dim=1).median().item()

fig, ax = plt.subplots(figsize=(10, 3.4))
positions = np.arange(len(layers))
ax.bar(positions - 0.2, sigma_learned, 0.4, label=r"$\sigma(W)$, the learned weight")
ax.bar(positions + 0.2, sigma_used, 0.4, label=r"$\sigma(W / \hat\sigma)$, the weight used")
ax.axhline(1, color="gray", lw=0.5)
ax.set_xticks(positions, list(layers), rotation=45, ha="right", fontsize=8)
ax.set_ylabel(r"largest singular value")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()
print(f"learned weights: sigma from {min(sigma_learned):.2f} to {max(sigma_learned):.2f}; "
      f"used weights: from {min(sigma_used):.4f} to {max(sigma_used):.4f}")  # fmt: skip
print(f"median ||dD/dx|| on 256 real images: with SN {steepness['with SN']:.2f}, "
      f"unnormalised copy {steepness['unnormalised copy']:.1f} "
      f"({steepness['unnormalised copy'] / steepness['with SN']:.0f}x)")  # fmt: skip
assert max(sigma_learned) > 1.5 and all(abs(s - 1) < 0.05 for s in sigma_used)
assert steepness["unnormalised copy"] > 10 * steepness["with SN"]  # what the text says

# %% [markdown]
# Training let the learned weights grow past 1 (the printed range): nothing stops it, since the
# division undoes any scale. The weights the layers use stay at 1, or a hair above it: the power
# iteration's estimate approaches $\sigma$ from below, one step per training step, and the
# division by a slightly low $\hat\sigma$ leaves slightly more than 1. Undo the division and this
# D's input gradient is more than ten times steeper (the printed factor): the layers'
# stretches multiply through the network. That steepness is what SN keeps from the generator's
# gradients.

# %% [markdown]
# ## A convolution is not its reshaped kernel
#
# $\sigma(W_{SN}) = 1$ is a statement about the kernel read as a $64 \times 576$ matrix. The
# convolution is a different linear map: from a whole $64 \times 32 \times 32$ input to a whole
# output, each input pixel feeding 9 overlapping output positions. Its operator norm, the largest
# $\lVert \mathrm{conv}(a) \rVert / \lVert a \rVert$ over inputs $a$, is the largest singular value
# of that big map, and the power iteration finds it without ever writing the map down: the
# transpose of `conv2d` is `conv_transpose2d` with the same kernel, so
#
# $$a \leftarrow \frac{K^\top K a}{\lVert K^\top K a \rVert}, \qquad
# \lVert K \rVert \approx \lVert K a \rVert, \qquad K = \text{the convolution}.$$


# %%
def conv_operator_norm(weight, size, padding, steps=100):
    """The largest ||conv2d(a)|| / ||a|| over inputs a of shape (1, C_in, size, size)."""
    a = torch.randn(1, weight.shape[1], size, size, dtype=weight.dtype)
    for _ in range(steps):
        a = F.conv_transpose2d(F.conv2d(a, weight, padding=padding), weight, padding=padding)
        a = a / a.norm()  # conv^T conv a, normalised: the power iteration on conv^T conv
    return F.conv2d(a, weight, padding=padding).norm().item()


# the transpose really is conv_transpose2d: <conv(a), b> = <a, conv^T(b)> for any a, b
a, b = torch.randn(1, 64, 32, 32), torch.randn(1, 64, 32, 32)
w = conv.weight.detach()
lhs = (F.conv2d(a, w, padding=1) * b).sum()
assert torch.isclose(lhs, (a * F.conv_transpose2d(b, w, padding=1)).sum(), rtol=1e-4)

op_norm = conv_operator_norm(w.double(), 32, padding=1)
print(f"sigma of the kernel as a 64 x 576 matrix: {sigma_of_used_weight():.4f}")
print(f"operator norm of the convolution on 32x32 inputs: {op_norm:.4f}")
assert op_norm > 1.2

# %% [markdown]
# A spectrally normalised 3x3 convolution can stretch an input by about half as much again. The
# reshaped matrix acts on one $3 \times 3$ patch at a time, but the patches of neighbouring
# output positions overlap: each input pixel is used 9 times, and an input whose patches all
# line up with the kernel's top singular direction gets the gain of all 9 uses at once. The
# bound that always holds (Tsuzuku et al. 2018) is
# $\lVert \mathrm{conv} \rVert \le \sqrt{k_h k_w}\; \sigma(W_{mat}) = 3\,\sigma(W_{mat})$.
#
# So "spectral normalisation makes D 1-Lipschitz" is exact for linear layers and only
# approximately true for SAGAN's convolutions: every layer's gain is bounded by a small constant
# rather than by 1. What SN still guarantees is the property of the last section: D cannot grow
# its gain just by scaling its weights. Methods that normalise the true operator norm exist (they
# run this power iteration on the convolution itself), at a higher cost; SAGAN, like SNGAN, uses
# the reshaped kernel.

# %% [markdown]
# ## The gradient, by hand and by autograd
#
# In back-propagation $u$ and $v$ are held constant, so $\sigma = u^\top W v$ is linear in $W$,
# $\partial \sigma / \partial W = u v^\top$, and
#
# $$\frac{\partial L}{\partial W} = \frac{1}{\sigma} \frac{\partial L}{\partial W_{SN}}
# - \frac{\langle \partial L/\partial W_{SN},\, W \rangle}{\sigma^2}\, u v^\top.$$
#
# The NumPy reference writes this out (`spectral_norm_backward`); PyTorch's autograd finds the
# same through `accelerated.ops.spectral_norm`.

# %%
W = rng.standard_normal((16, 8, 3, 3))
u0 = rng.standard_normal(16)
W_sn, sigma, u, v = spectral_norm(W, u0, n_steps=3)
upstream = rng.standard_normal(W.shape)  # some dL/dW_SN
dW_numpy = spectral_norm_backward(upstream, W, u, v)

W_t = torch.from_numpy(W).requires_grad_()
W_sn_t, *_ = torch_spectral_norm(W_t, torch.from_numpy(u0), n_steps=3)
(W_sn_t * torch.from_numpy(upstream)).sum().backward()
print("max |NumPy - autograd|:", np.abs(dW_numpy - W_t.grad.numpy()).max())
assert np.allclose(W_sn, W_sn_t.detach().numpy()) and np.allclose(dW_numpy, W_t.grad.numpy())


# %% [markdown]
# ## Exercises
#
# **1. Scale invariance, in the gradient.** Since $L(cW) = L(W)$ for every $c > 0$, predict the
# value of $\langle \partial L / \partial W,\, W \rangle$, then open the output of the cell.

# %%
with hidden_output():
    print(f"<dL/dW, W> = {np.sum(dW_numpy * W):.2e}, against |dL/dW| |W| = "
          f"{np.linalg.norm(dW_numpy) * np.linalg.norm(W):.2e}")  # fmt: skip

# %% [markdown]
# <details><summary>Solution</summary>
#
# Zero (the output shows rounding error, many orders of magnitude below the product of the
# norms): $\frac{d}{dc} L(cW)\big|_{c=1} = \langle \partial L / \partial W, W \rangle = 0$. From the
# formula, with $\bar W_{SN} = \partial L / \partial W_{SN}$ and $u^\top W v = \sigma$:
#
# $$\Big\langle \frac{\partial L}{\partial W}, W\Big\rangle = \frac{\langle \bar W_{SN},
# W\rangle}{\sigma} - \frac{\langle \bar W_{SN}, W\rangle}{\sigma^2}\, u^\top W v = 0.$$
#
# So a plain gradient-descent (SGD) step $-\eta\, \partial L/\partial W$ is orthogonal to $W$:
# to first order it rotates $W$ and leaves its norm alone (the norm even grows slowly, at second
# order).
# Adam is different: it divides each coordinate of the gradient by its own running RMS, and that
# rescaled step is no longer orthogonal to $W$, so Adam does change the scale of $W$. With SN the
# scale changes nothing in the layer's output; it changes only how far the next steps turn $W$.
#
# </details>
#
# **2. When are the two norms equal?** Predict the operator norm of a spectrally normalised
# **1x1** convolution, then measure it with `conv_operator_norm`.
#
# <details><summary>Solution</summary>
#
# Exactly $\sigma(W_{mat})$: a 1x1 convolution applies the same $C_{out} \times C_{in}$ matrix to
# every pixel on its own, and no patches overlap. The input that is the top right singular vector
# at every pixel reaches the bound.
#
# ```python
# conv1 = sn_conv2d(64, 64, 1)
# print(conv_operator_norm(conv1.weight.detach().double(), 32, padding=0))  # ~1.0
# ```
#
# </details>
#
# **3. The worst case.** Build a 3x3 kernel whose operator norm is as close as possible to the
# bound $3\,\sigma(W_{mat})$. (Hint: what does a kernel with nine equal taps do to a constant
# image?)
#
# <details><summary>Solution</summary>
#
# Nine equal taps $M/3$: on a constant image every output pixel sums nine copies, a gain of
# $3\,\sigma(M)$, while the reshaped matrix $[M/3, \dots, M/3]$ has $\sigma = \sqrt{9}\,
# \sigma(M)/3 = \sigma(M)$. The zero padding at the border makes the measured ratio slightly below
# 3 on a $32 \times 32$ input, closer on larger ones.
#
# ```python
# M = torch.randn(64, 64, dtype=torch.float64)
# kernel = (M / 3)[:, :, None, None].expand(64, 64, 3, 3).contiguous()
# ratio = conv_operator_norm(kernel, 32, padding=1) / singular_values(kernel.numpy(), k=1)[0]
# print(ratio)  # just under 3
# ```
#
# </details>
#
# **Try this**: train the default model without spectral normalisation in G (SN in D only, one
# row of the paper's ablation) for 300 steps, and compare its `curves.png` with a run that keeps
# it: `python -m accelerated.train --run.steps 300 --model.sn_generator false`.
