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
# # Lesson 5: training the built-in model and reading the metrics
#
# Everything so far comes together in `python -m accelerated.train`: the models of lesson 4,
# spectral normalisation (lesson 2), the hinge loss and TTUR (lesson 3). Its default trains a
# small SAGAN on the built-in *Mirror twins* data set in about ten minutes on a laptop CPU. Here we
# run a very short piece of such a run through the same entry point, then read what it writes:
# the losses, the samples, the attention maps, and the data set's exact quality measure.
#
# A hundred steps teach a GAN next to nothing: this lesson is about *reading* a run. The last
# section says what a full run shows.

# %%
import json
import shutil
import tempfile
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from accelerated.data import builtin

# tqdm.auto (the progress bar) warns in Jupyter without ipywidgets; the bar is off here anyway.
warnings.filterwarnings("ignore", message="IProgress not found")
from accelerated.train import main as train

# %% [markdown]
# ## The data: two mirrored twins
#
# Each image holds two copies of one shape (the class: ring, plus, cross or block), in one colour,
# mirrored about the centre line. Colour and position are random, so the generator must make the
# two halves agree across the image: the long-range structure that attention is for.

# %%
images, labels = builtin.generate(8, 16, seed=0)
fig, axes = plt.subplots(1, 8, figsize=(10, 1.6))
for ax, image, label in zip(axes, images, labels, strict=True):
    ax.imshow(image, interpolation="nearest")
    ax.set_title(builtin.CLASS_NAMES[label], fontsize=9)
    ax.axis("off")
plt.show()

# %% [markdown]
# ## A short run through the training entry point
#
# `accelerated.train.main` takes the same arguments as the command line. The default preset is
# `builtin` (16x16 images, base widths 16, batch 64, TTUR, hinge loss, an EMA of G); we shorten
# it to 100 steps and write into a temporary folder.

# %%
out_dir = Path(tempfile.mkdtemp(prefix="sagan-lesson5-"))
status = train([
    "--run.out_dir", str(out_dir), "--run.name", "lesson5",
    "--run.steps", "100", "--run.log_every", "10",
    "--run.sample_every", "100", "--run.eval_every", "50", "--run.eval_samples", "500",
    "--run.checkpoint_every", "100", "--run.progress", "false",
])  # fmt: skip
assert status == 0
run = out_dir / "lesson5"
print(sorted(p.name for p in run.iterdir()))

# %% [markdown]
# A run folder holds its full configuration (`config.toml`, enough to repeat it), the metrics
# (`metrics.jsonl`, and the same in `tensorboard/`), sample grids, attention figures and
# checkpoints.
#
# ## Reading the losses
#
# Each line of `metrics.jsonl` is one record. The `train` records carry:
#
# - `loss_d`: the hinge loss $L_D$. A discriminator that outputs 0 everywhere pays
#   $\max(0, 1 - 0) + \max(0, 1 + 0) = 2$; one that separates everything by the margin pays 0.
# - `loss_g`: $L_G = -\mathbb{E}[D(G(z))]$, i.e. minus `d_fake` on G's own batch.
# - `d_real`, `d_fake`: D's mean output on real and on generated images. Their gap is the
#   clearest picture of the game: D pushes them apart, G pulls `d_fake` up.
# - `skipped_d`, `skipped_g`, `rollbacks`: steps skipped for a non-finite loss, and restarts
#   from a checkpoint after too many (0 in a healthy run).

# %%
records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
train_log = [r for r in records if r["kind"] == "train"]
steps = [r["step"] for r in train_log]
fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
for key in ("loss_d", "loss_g"):
    axes[0].plot(steps, [r[key] for r in train_log], label=key)
for key in ("d_real", "d_fake"):
    axes[1].plot(steps, [r[key] for r in train_log], label=key)
axes[1].axhline(1, color="gray", lw=0.5)
axes[1].axhline(-1, color="gray", lw=0.5)
for ax in axes:
    ax.set_xlabel("step")
    ax.legend()
plt.tight_layout()
plt.show()
assert all(np.isfinite(r["loss_d"]) and np.isfinite(r["loss_g"]) for r in train_log)
assert train_log[-1]["rollbacks"] == 0

# %% [markdown]
# Unlike a classifier's loss, neither curve is supposed to go to zero: the two networks play
# against each other, and a GAN's losses mostly say whether the game is balanced. Warning signs
# are `loss_d` near 0 for long (D wins outright, G's gradients vanish) or `d_real` and `d_fake`
# drifting far beyond the margins.
#
# ## Samples and attention maps
#
# Every `sample_every` steps the run saves a grid of samples from the EMA generator (one row per
# class, the same noise every time, so grids from different steps compare) and, for the first
# sample of a few rows, the attention of G's self-attention block.

# %%
grids = sorted((run / "samples").glob("*.png"))
maps = sorted((run / "attention").glob("*.png"))
fig, axes = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [1, 1.4]})
axes[0].imshow(plt.imread(grids[-1]))
axes[0].set_title(f"samples, {grids[-1].stem}")
axes[1].imshow(plt.imread(maps[-1]))
axes[1].set_title(f"attention, {maps[-1].stem}")
for ax in axes:
    ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## The exact quality measure
#
# FID needs an Inception network and tens of thousands of samples. The built-in data set is drawn
# by a known recipe, so a sample can be *decoded* instead: `builtin.quality(images, labels)` finds
# the shape, colour and position in each half and reports fractions of the batch:
# `well_formed` (both halves are clean palette-coloured shapes), `class_match` (and of the
# requested class), `agreement` (the halves are mirror twins), `score` (both), and `diversity`
# (distinct correct images, relative to real data). First, calibration on images we understand:


# %%
def as_model_output(uint8_images):
    """uint8 (B, R, R, 3) -> float (B, 3, R, R) in [-1, 1], like G's output."""
    return torch.from_numpy(uint8_images).permute(0, 3, 1, 2).float() / 127.5 - 1


real, real_labels = builtin.generate(1000, 16, seed=1)
noise = np.random.default_rng(0).integers(0, 256, real.shape, dtype=np.uint8)
one_image = np.repeat(real[:1], len(real), axis=0)  # a generator that draws one image only
calibration = {
    "real data": builtin.quality(as_model_output(real), real_labels),
    "uniform noise": builtin.quality(as_model_output(noise), real_labels),
    "one image repeated": builtin.quality(as_model_output(one_image), real_labels),
}
keys = list(calibration["real data"])
print(f"{'':20s}" + "".join(f"{k:>13s}" for k in keys))
for name, q in calibration.items():
    print(f"{name:20s}" + "".join(f"{q[k]:13.3f}" for k in keys))
assert calibration["real data"]["score"] == 1.0 and calibration["uniform noise"]["score"] == 0.0

# %% [markdown]
# Real data scores 1 everywhere; noise 0; a generator that repeats one perfect image gets the
# class right a quarter of the time and no diversity. And our 100-step model:

# %%
evals = [r for r in records if r["kind"] == "eval"]
for r in evals:
    print(f"step {r['step']:4d}: " + ", ".join(f"{k} {r[k]:.3f}" for k in keys))
assert evals and all(0.0 <= r["score"] <= 1.0 for r in evals)

# %% [markdown]
# ## What a full run shows
#
# After 100 steps the samples are coloured blobs and the measure is near 0: that is expected.
# The full default run (`python -m accelerated.train`, 2500 steps, about ten minutes on a
# 2-core CPU) is the one to read with these tools. Watch `well_formed` (clean shapes on black),
# `class_match` (the conditional batch norm has learned the classes) and `agreement`, the
# long-range part: the two halves must match in colour and position, which is what attention is
# for. The attention figures show whether a query on one object looks at its twin. Comparing
# with a run without attention in G (`--model.g_attention ""`) or with a residual block in its
# place (`--model.attention_block residual`) is the paper's ablation in miniature.
#
# ## Exercise
#
# What is the hinge loss $L_D$ of a discriminator whose outputs are all exactly 0? Check your
# answer with the reference implementation.

# %%
from reference.hinge import hinge_loss_discriminator

assert hinge_loss_discriminator(np.zeros(64), np.zeros(64)) == 2.0

# %% [markdown]
# The run folder is temporary; to keep it (and open it with `tensorboard --logdir`), skip this:

# %%
shutil.rmtree(out_dir)
