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
# # Lesson 5: a trained SAGAN, and how to read a training run
#
# Everything so far comes together in `python -m accelerated.train`: the models of lesson 4,
# spectral normalisation (lesson 2), the hinge loss and TTUR (lesson 3). With no arguments it
# trains a small SAGAN on the built-in *Mirror twins* data set on a laptop CPU. A model trained
# by that command ships with the course (`docs/trained/`), so we start with a **trained** SAGAN:
# its samples, its learned attention, its numbers. Then we run a short piece of training through
# the same entry point and learn to read what a run writes.

# %%
import json
import math
import shutil
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

import accelerated
from accelerated.checkpoint import load_generator
from accelerated.data import builtin
from accelerated.data.arrays import to_model_range
from accelerated.figures.hidden import hidden_output
from accelerated.figures.panels import split_panels
from accelerated.metrics.twins import twin_attention, twin_cells
from accelerated.models import build_models, named_attention_layers
from accelerated.train import main as train
from accelerated.training.attention_report import recording

TRAINED = Path(accelerated.__file__).resolve().parents[1] / "docs" / "trained"

# %% [markdown]
# ## A trained SAGAN
#
# `docs/trained/mirror-twins.pt` holds the weights of G and D at the end of a default run
# (weights only: `torch.load(weights_only=True)` reads it, and so does
# `python -m accelerated.sample docs/trained/mirror-twins.pt --out samples/ --grid`). Loading it
# and drawing 32 fresh samples takes a second:

# %%
G, model_cfg, _ = load_generator(TRAINED / "mirror-twins.pt", torch.device("cpu"))
state = torch.load(TRAINED / "mirror-twins.pt", weights_only=True)
_, D = build_models(model_cfg)
D.load_state_dict(state["D"])
D.eval()
print(f"trained for {state['step']} steps; {model_cfg.resolution}x{model_cfg.resolution} images, "
      f"g_ch = {model_cfg.g_ch}, d_ch = {model_cfg.d_ch}, attention at "
      f"{model_cfg.g_attention_sizes} in G and {model_cfg.d_attention_sizes} in D")

gen = torch.Generator().manual_seed(0)
z = torch.randn(32, model_cfg.z_dim, generator=gen)
y = torch.arange(32) // 8  # one row per class
with torch.no_grad():
    samples = G(z, y)
fig, axes = plt.subplots(4, 8, figsize=(8, 4.4))
for ax, image in zip(axes.flat, samples, strict=True):
    ax.imshow(((image.permute(1, 2, 0) + 1) / 2).clamp(0, 1), interpolation="nearest")
    ax.axis("off")
for row, name in enumerate(builtin.CLASS_NAMES):
    axes[row, 0].set_title(name, fontsize=8, loc="left")
plt.tight_layout()
plt.show()

# %% [markdown]
# The exact quality measure (below, "The exact quality measure", says how it decodes a sample)
# on `n` fresh samples, drawn here, and the same measure as `docs/trained/quality.json` records
# it:

# %%
n = 2000
z_eval = torch.randn(n, model_cfg.z_dim, generator=gen)
y_eval = torch.arange(n) % model_cfg.num_classes
with torch.no_grad():
    trained_quality = builtin.quality(G(z_eval, y_eval), y_eval)
shipped = json.loads((TRAINED / "quality.json").read_text())
print(f"measured here ({n:,} samples):",
      ", ".join(f"{k} {v:.3f}" for k, v in trained_quality.items()))
print(f"quality.json ({shipped['samples']:,} samples):",
      ", ".join(f"{k} {shipped[k]:.3f}" for k in trained_quality))
assert trained_quality["score"] > 0.3  # far above an untrained G's 0

# %% [markdown]
# Both lines measure the same weights, the run's last checkpoint. The first is a fresh measure,
# on noise this lesson draws; the second is the one `benchmarks/showcase.py` made on other noise
# when it copied the run into `docs/trained/`, and which the training page quotes. They differ by
# sampling noise only, in the last digits. Read the numbers as the
# [training page](../training.md) does: `well_formed` (clean shapes on black),
# `class_match` (the class-conditional batch norm has learned the classes), `agreement` (the two
# halves are mirror twins: the long-range part), `score` (all of it) and `diversity`, which is
# low when the generator repeats a few configurations. Look at the grid for the weakest class.
#
# ### Before and after
#
# The run saved a grid every `run.sample_every` steps, from the same noise, so the grids compare;
# the steps of those in `docs/trained/`, the first and the last of them drawn:

# %%
grids = sorted(TRAINED.glob("samples-step-*.png"))
print("grids at steps", ", ".join(str(int(path.stem.split("-")[-1])) for path in grids))
fig, axes = plt.subplots(1, 2, figsize=(11, 3))
for ax, path in zip(axes, [grids[0], grids[-1]], strict=True):
    ax.imshow(plt.imread(path))
    ax.set_title(path.stem.replace("samples-", ""))
    ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# ### What the attention learned
#
# Each attention block ends in $y = \gamma o + x$ (eq. 3): $\gamma$ starts at 0 and training
# decides how much of the attention output to let in. The run logs every $\gamma$ (the curves
# below); the trained values:

# %%
layers = named_attention_layers(G, D, model_cfg)
for name, layer in layers.items():
    print(f"{name}: gamma = {layer.gamma.item():+.3f}")

# %% [markdown]
# Now the maps, as in the paper's figure 1: a query position on one twin (the dot) and its
# attention weights $\beta_{j,i}$ over the keys, for G's block on one of its samples and for D's
# block on a real image. (The official layout pools keys 2x2, so the map is coarser than the
# queries.)


# %%
def attention_of(layer, run, image_for_cells):
    """The layer's attention map for one image, and a query cell on the left twin."""
    with torch.no_grad(), recording([layer]):
        run()
        beta = layer.last_attention[0]  # (N, N_k)
    side = int(beta.shape[0] ** 0.5)
    left, _ = twin_cells(image_for_cells[None], side)
    query = int(left[0].nonzero()[len(left[0].nonzero()) // 2])
    return beta, query, side


real_np, real_y = builtin.generate(8, model_cfg.resolution, seed=5)
real = torch.from_numpy(to_model_range(real_np))  # (B, 3, R, R) in [-1, 1]
real_y = torch.from_numpy(real_y)
panels = [
    ("G8 on a sample", samples[8], attention_of(layers["G8"], lambda: G(z[8:9], y[8:9]),
                                                samples[8])),
    ("D8 on a real image", real[1], attention_of(layers["D8"], lambda: D(real[1:2], real_y[1:2]),
                                                 real[1])),
]
fig, axes = plt.subplots(1, 4, figsize=(12, 3.2))
R = model_cfg.resolution
for k, (title, image, (beta, query, side)) in enumerate(panels):
    picture = ((image.permute(1, 2, 0) + 1) / 2).clamp(0, 1)
    qy, qx = ((query // side + 0.5) * R / side, (query % side + 0.5) * R / side)
    side_k = int(beta.shape[1] ** 0.5)
    ax_img, ax_map = axes[2 * k], axes[2 * k + 1]
    ax_img.imshow(picture, interpolation="nearest")
    ax_img.set_title(title, fontsize=9)
    ax_map.imshow(picture * 0.5, interpolation="nearest")
    heat = ax_map.imshow(beta[query].reshape(side_k, side_k), extent=(-0.5, R - 0.5, R - 0.5, -0.5),
                         cmap="magma", alpha=0.75, interpolation="nearest")
    fig.colorbar(heat, ax=ax_map, fraction=0.046, label="attention weight")
    ax_map.set_title("its query's attention", fontsize=9)
    for ax in (ax_img, ax_map):
        ax.plot(qx - 0.5, qy - 0.5, "o", color="cyan", markeredgecolor="black")
        ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# A map tells about one query. A number for all of them: the **twin attention** of a layer is
# the weight that queries on one twin put on the *other* twin, averaged over queries and images,
# next to its chance level, the share of key positions that lie on the other twin
# (`accelerated.metrics.twins`). Every run logs it at each evaluation.

# %%
with torch.no_grad(), recording([layers["G8"]]):
    g_found = twin_attention(G(z_eval[:256], y_eval[:256]), layers["G8"].last_attention)
real_many, real_many_y = builtin.generate(256, model_cfg.resolution, seed=6)
real_many = torch.from_numpy(real_many).permute(0, 3, 1, 2).float() / 127.5 - 1
with torch.no_grad(), recording([layers["D8"]]):
    D(real_many, torch.from_numpy(real_many_y))
    d_found = twin_attention(real_many, layers["D8"].last_attention)
for name, found in (("G8", g_found), ("D8", d_found)):
    print(f"{name}: twin attention {found['mass']:.3f}, chance {found['chance']:.3f}")

# %% [markdown]
# Compare the two numbers of each layer before reading the maps into the model: a layer whose
# twin attention is near or below chance does not single out the other twin, whatever one map
# seems to show. [Training](../training.md) reads these numbers for the default run, and the
# [ablation](../ablation.md) asks whether the model does better with attention than without,
# with several seeds a side and a test.
# The run's curves (losses, $\gamma$, quality, twin attention) as it trained:

# %%
panels = split_panels(plt.imread(TRAINED / "curves.png"))  # the run's one-row figure, cut apart
columns = 3
fig, axes = plt.subplots(math.ceil(len(panels) / columns), columns, figsize=(12, 6.4))
for ax in axes.flat:
    ax.axis("off")
for ax, panel in zip(axes.flat, panels, strict=False):
    ax.imshow(panel, interpolation="lanczos")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## The data: two mirrored twins
#
# Each image holds two copies of one shape (the class: ring, plus, x or tee), in one hue,
# mirrored about the centre line. Hue and row are random, so the generator must make the two
# halves agree across the image: the long-range structure that attention is for.

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
# `builtin` (its settings are in `accelerated/presets/builtin.toml`, and every run writes them
# to its `config.toml`); we shorten it to 100 steps and write into a temporary folder. A hundred
# steps teach a GAN next to nothing: this part is about *reading* a run.

# %%
out_dir = Path(tempfile.mkdtemp(prefix="sagan-lesson5-"))
status = train([
    "--run.out_dir", str(out_dir), "--run.name", "lesson5",
    "--run.steps", "100", "--run.log_every", "1",
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
# - `loss_g`: $L_G = -\mathbb{E}[D(G(z))]$, on the G step's own batch of generated images,
#   scored by D *after* this iteration's D update;
# - `d_real`, `d_fake`: D's mean output on the real and the generated images of the D step,
#   scored *before* that update (the same forward pass as `loss_d`). Their gap is the clearest
#   picture of the game: D pushes them apart, G pulls `d_fake` up.
# - `skipped_d`, `skipped_g`, `rollbacks`: steps skipped for a non-finite loss, and restarts
#   from a checkpoint after too many (0 in a healthy run);
# - `gamma/G8`, `gamma/D8`: each attention block's $\gamma$.

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
# ### Why `loss_g` is not minus `d_fake`
#
# Both are D's scores of generated images, and $L_G$ is minus a mean score, so one expects
# `loss_g` to mirror `d_fake`. In the plot it does not: the two often move *together*. The
# reason is the order of one iteration (`accelerated/training/gan_step.py`): the D step scores
# its batch (`d_fake`), *then* updates D; the G step then scores a fresh batch with the
# updated D (`loss_g`). Adam without momentum moves every weight of D by about its learning rate
# in one step, which can shift D's scores by a whole unit, and the next D step corrects it
# the other way: the scores swing from step to step. So `loss_g` of iteration $t$ is read by the
# same D as `d_fake` of iteration $t + 1$ (only G's one small update and the noise differ), and
# with the swing, `d_fake` of $t + 1$ tends to be the opposite of `d_fake` of $t$. The run logged
# every step, so we can check both pairings:

# %%
loss_g = np.array([r["loss_g"] for r in train_log])
d_fake = np.array([r["d_fake"] for r in train_log])
same_step = np.corrcoef(loss_g, -d_fake)[0, 1]
next_step = np.corrcoef(loss_g[:-1], -d_fake[1:])[0, 1]
print(f"correlation of loss_g(t) with -d_fake(t):     {same_step:+.2f}")
print(f"correlation of loss_g(t) with -d_fake(t + 1): {next_step:+.2f}")
print(f"mean |loss_g(t) + d_fake(t + 1)| = {np.abs(loss_g[:-1] + d_fake[1:]).mean():.2f}, "
      f"mean |loss_g(t) + d_fake(t)| = {np.abs(loss_g + d_fake).mean():.2f}")  # fmt: skip
fig, ax = plt.subplots(figsize=(10, 3))
ax.plot(steps, loss_g, label="loss_g(t)")
ax.plot(steps[:-1], -d_fake[1:], "--", label="-d_fake(t + 1): D after the same update")
ax.plot(steps, -d_fake, ":", color="gray", label="-d_fake(t): D before it")
ax.set_xlabel("step t")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()
assert next_step > 0.9 and next_step > same_step  # what the text above says

# %% [markdown]
# `loss_g` is minus `d_fake`, one step later. Logged every `run.log_every` steps, as a full run
# logs them, the two are single snapshots of a quantity that swings every step, which is why
# the losses of a GAN are plotted as noisy bands rather than read point by point.
#
# Unlike a classifier's loss, neither curve is supposed to go to zero: the two networks play
# against each other, and a GAN's losses mostly say whether the game is balanced. Warning signs
# are `loss_d` near 0 for long (D wins outright, G's gradients vanish) or `d_real` and `d_fake`
# drifting far beyond the margins.
#
# ## Samples and attention maps
#
# Every `sample_every` steps the run saves a grid of samples (from the EMA of G when `optim.ema`
# is on; one row per class, the same noise every time, so grids from different steps compare)
# and, for the first sample of a few rows, the attention of G's self-attention block.

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
# the shape, hue and row in each half and reports fractions of the batch:
# `well_formed` (both halves are clean, vividly coloured shapes on black), `class_match` (and of
# the requested class), `agreement` (the halves are mirror twins: same shape, hues within 30
# degrees, rows within a pixel), `score` (both), and `diversity` (how many of the 144 cells of
# class, hue bin and row bin the correct samples cover, relative to real data). First,
# calibration on images we understand:


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
# Real data scores 1 on the four fractions and about 1 on diversity (1,000 draws cover nearly
# all 144 cells); noise scores 0; a generator that repeats one perfect image gets the class right
# a quarter of the time and almost no diversity. And our 100-step model:

# %%
evals = [r for r in records if r["kind"] == "eval"]
for r in evals:
    print(f"step {r['step']:4d}: " + ", ".join(f"{k} {r[k]:.3f}" for k in keys))
assert evals and all(0.0 <= r["score"] <= 1.0 for r in evals)

# %% [markdown]
# After 100 steps the samples are coloured blobs and the measure is near 0, as expected: compare
# with the trained model at the top of the page.
#
# ## Exercises
#
# **1. Predict, then run.** What is the hinge loss $L_D$ of a discriminator whose outputs are
# all exactly 0? Write your number down, then check it with `reference.hinge`.
#
# <details><summary>Solution</summary>
#
# $\max(0, 1 - 0) + \max(0, 1 + 0) = 2$: the margin is missed by 1 on both sides.
# `hinge_loss_discriminator(np.zeros(64), np.zeros(64))` returns 2.0 (the cell below checks it).
#
# </details>

# %%
from reference.hinge import hinge_loss_discriminator

assert hinge_loss_discriminator(np.zeros(64), np.zeros(64)) == 2.0

# %% [markdown]
# **2. Predict, then run.** A layer that attends uniformly (every weight $1/N_k$): what is its
# twin attention? Check with `twin_attention(real_many, torch.full((256, 64, 16), 1 / 16))`.
#
# <details><summary>Solution</summary>
#
# Exactly its chance level: each query puts $|\text{other twin}| / N_k$ of its weight on the
# other twin, which is how chance is defined. That is why the number is always read next to its
# chance level.
#
# </details>
#
# **3. How much does the trained G use its attention?** Set $\gamma$ of G's block to 0 (the block
# becomes the identity, as at initialisation) and measure the score again on the same `n`
# samples. Predict first: a little worse, much worse, or better? Then open the output of the
# cell below.

# %%
trained_gamma = layers["G8"].gamma.detach().clone()
with torch.no_grad(), hidden_output():
    layers["G8"].gamma.zero_()
    without = builtin.quality(G(z_eval, y_eval), y_eval)
    layers["G8"].gamma.copy_(trained_gamma)  # the trained model again
    print(f"score with G's attention: {trained_quality['score']:.3f}, "
          f"with gamma = 0: {without['score']:.3f}")  # fmt: skip
    print("the other fractions with gamma = 0:",
          ", ".join(f"{k} {v:.3f}" for k, v in without.items() if k != "score"))  # fmt: skip
assert without["score"] < trained_quality["score"]

# %% [markdown]
# <details><summary>Solution</summary>
#
# The rest of the network was trained *with* the attention output added, so removing it shifts
# every later layer's input: the drop measures how much the trained generator relies on the
# block, not how much attention helps a model trained without it (that is the ablation's
# question). The answer is in the output above: the score with $\gamma = 0$ is below the
# trained model's, and the other fractions show which part of the picture breaks.
#
# </details>
#
# **4. Try this (a few minutes on a CPU).** Train the default run without attention in G,
# `python -m accelerated.train --model.g_attention "" --run.steps 1000`, and with a residual block
# in its place, `--model.attention_block residual`. Compare `symmetry` and `agreement` in their
# `metrics.jsonl` with a run of the default settings of the same length. One seed each proves
# nothing: the [ablation](../ablation.md) runs several and tests the difference.
#
# The run folder of the short run is temporary; to keep it (and open it with
# `tensorboard --logdir`), skip this:

# %%
shutil.rmtree(out_dir)
