r"""The probe's grid summarised: per depth, the receptive field of its convolutions, held-out
accuracy with and without attention over the seeds, the one-sided Mann-Whitney test that
attention helps (`accelerated.ablation.stats`), and the attention layer's twin mass; the figure of
accuracy against receptive field; the attention maps of one trained probe."""

from __future__ import annotations

import statistics
from pathlib import Path

import torch
from matplotlib.figure import Figure

from accelerated.ablation import results, stats
from accelerated.ablation.probe.data import examples
from accelerated.ablation.probe.model import Probe
from accelerated.figures.images import attention_figure


def summarise(runs: list[dict], fields: dict[int, dict]) -> list[dict]:
    """One row per depth (blocks): `fields` {blocks: receptive_field(...)}; `runs` every run's
    result (`train.run`)."""
    rows = []
    for blocks in sorted(fields):
        arm = {a: [r for r in runs if r["blocks"] == blocks and r["attention"] == a]
               for a in (False, True)}
        accs = {a: [r["test_accuracy"] for r in arm[a]] for a in arm}
        row = {"blocks": blocks, "receptive_field": fields[blocks],
               "params": {"without": arm[False][0]["params"], "with": arm[True][0]["params"]},
               "without": results.spread(accs[False]), "with": results.spread(accs[True]),
               "attention_helps": stats.compare(accs[True], accs[False]),
               "twin_mass": results.spread([r["twin_mass"] for r in arm[True]]),
               "twin_chance": statistics.fmean(r["twin_chance"] for r in arm[True]),
               "gamma": results.spread([r["gamma"] for r in arm[True]])}
        rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| blocks | receptive field (px) | a unit sees both twins | accuracy without "
             "attention | with attention | attention - without (95% CI) | one-sided p "
             "(smallest possible) | twin mass (chance) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        c, f = r["attention_helps"], r["receptive_field"]
        lines.append(
            f"| {r['blocks']} | {f['width']} | {'yes' if f['sees_both'] else 'no'} "
            f"| {r['without']['mean']:.3f} ({r['without']['min']:.3f}-{r['without']['max']:.3f}) "
            f"| {r['with']['mean']:.3f} ({r['with']['min']:.3f}-{r['with']['max']:.3f}) "
            f"| {c['difference']:+.3f} ({c['ci_low']:+.3f} to {c['ci_high']:+.3f}) "
            f"| {c['p']:.2g} ({c['smallest_p']:.1g}) "
            f"| {r['twin_mass']['mean']:.2f} ({r['twin_chance']:.2f}) |")
    return "\n".join(lines) + "\n"


def figure(rows: list[dict], runs: list[dict], path: Path, title: str) -> Path:
    """Held-out accuracy against the convolutions' receptive field: every seed a dot, the mean a
    line, without and with attention."""
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    widths = {r["blocks"]: r["receptive_field"]["width"] for r in rows}
    for i, (attention, label) in enumerate(((False, "convolutions only"),
                                            (True, "with one self-attention block"))):
        colour, shift = f"C{i}", (i - 0.5) * 0.4
        dots = [r for r in runs if r["attention"] == attention]
        ax.scatter([widths[r["blocks"]] + shift for r in dots],
                   [r["test_accuracy"] for r in dots], color=colour, alpha=0.5, s=18)
        key = "with" if attention else "without"
        ax.plot([widths[r["blocks"]] for r in rows], [r[key]["mean"] for r in rows],
                color=colour, marker="o", label=f"{label} (mean; dots: seeds)")
    ax.axhline(0.5, color="grey", linestyle=":", label="chance")
    both = [r["receptive_field"]["width"] for r in rows if r["receptive_field"]["sees_both"]]
    if both:
        ax.axvspan(min(both) - 1, max(widths.values()) + 1, color="grey", alpha=0.08,
                   label="some unit sees both twins")
    ax.set_xticks(sorted(widths.values()),
                  [f"{w} px\n({b} block{'s' * (b > 1)})" for b, w in sorted(widths.items())])
    ax.set_xlabel("receptive field of the convolutions (image columns one unit sees)")
    ax.set_ylabel("held-out accuracy: real vs mismatched twins")
    ax.set_ylim(0.4, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="lower right")
    fig.suptitle(title, fontsize="medium")
    fig.savefig(path, dpi=120)
    return path


def attention_maps(state: dict, channels: int, blocks: int, resolution: int, path: Path,
                   images: int = 4) -> Path:
    """Where a trained probe's attention looks, on `images` held-out real images (queries on the
    twins, as `accelerated.figures.images.attention_figure` picks them)."""
    net = Probe(channels, blocks, attention=True)
    net.load_state_dict(state)
    net.eval()
    x, y = examples(images, resolution, seed=10**6)
    real = x[y == 1]
    net.attention.store_attention = True
    with torch.no_grad():
        net.features(real)
    attention_figure(real, net.attention.last_attention, scale=12).save(path)
    return path
