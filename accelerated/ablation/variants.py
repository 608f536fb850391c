r"""The configurations the ablation compares, as data: each is SAGAN with one thing changed.

Every variant is the baseline's `--section.field` settings with its own changes on top, so a
variant states in full what it trains and nothing depends on a preset's defaults. The feature-map
sizes are those of the 16x16 architecture of the built-in data set: G's up-blocks output 8x8 and
16x16 maps, D's blocks 8x8, 4x4, 4x4 (`accelerated.models.architectures`). 8x8 is the only size
both networks have, so the baseline puts attention there; the paper's baseline is at 32x32 of a
128x128 model (SPEC section 4), the same *relative* place (a quarter of the image side).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from reference.ttur import TTUR_LR_D, TTUR_LR_G

# --8<-- [start:variants]
BASELINE: dict[str, str] = {
    "model.g_attention": "8",
    "model.d_attention": "8",
    "model.attention_block": "attention",
    "model.sn_generator": "true",
    "optim.lr_d": str(TTUR_LR_D),
    "optim.lr_g": str(TTUR_LR_G),
    "optim.d_steps": "1",
}
"""SAGAN: self-attention after G's and D's 8x8 blocks, SN on G and D, TTUR, 1:1 steps."""


@dataclass(frozen=True)
class Variant:
    name: str
    """Short name: run folders, `--configs`, table rows."""
    summary: str
    """What it trains, in a few words (table and legend)."""
    paper: str
    """The comparison of the paper it stands for."""
    changes: dict[str, str] = field(default_factory=dict)
    """Settings that differ from `BASELINE`."""

    @property
    def overrides(self) -> dict[str, str]:
        """Every setting the variant fixes: `BASELINE` with `changes` on top."""
        return {**BASELINE, **self.changes}


VARIANTS: tuple[Variant, ...] = (
    Variant("sagan", "attention at 8x8 in G and D; SN on G and D; TTUR 4e-4/1e-4",
            "SAGAN as published (attention at feat32 of 128)"),
    Variant("no-attention", "no attention block", "Table 1: the model without attention",
            {"model.g_attention": "", "model.d_attention": ""}),
    Variant("attention-16", "attention at 16x16 in G (D: 8x8, its largest map)",
            "Table 1: attention on larger maps (feat8 -> feat32)",
            {"model.g_attention": "16"}),
    Variant("residual-8", "a residual block instead of attention at 8x8",
            "Table 1: a residual block of the same size instead of attention",
            {"model.attention_block": "residual"}),
    Variant("sn-d-only", "SN on D only (G without SN)", "Figure 3: 'SN on D' vs 'SN on G/D'",
            {"model.sn_generator": "false"}),
    Variant("equal-lr", "equal learning rates 1e-4/1e-4 (no TTUR)",
            "Figure 3: 'SN on G/D' without vs with TTUR",
            {"optim.lr_d": "1e-4"}),
)
"""The paper's comparisons: the baseline first, then one change each."""
# --8<-- [end:variants]

TTUR_2X = {"optim.lr_d": "8e-4", "optim.lr_g": "2e-4"}
RECIPE: tuple[Variant, ...] = (
    Variant("ttur-2x", "TTUR at twice the rates (D 8e-4, G 2e-4), raw G: the builtin preset",
            "the default run's recipe", TTUR_2X),
    Variant("ttur-2x-ema", "the same with an EMA of G from step 2000 (decay 0.999)",
            "recipe candidate: averaged generator",
            {**TTUR_2X, "optim.ema": "true", "optim.ema_start": "2000",
             "optim.ema_decay": "0.999"}),
    Variant("ttur-2x-mbstd", "the same with D's minibatch-std feature (group 4)",
            "recipe candidate: against mode collapse",
            {**TTUR_2X, "model.d_minibatch_std": "4"}),
    Variant("paper-rates", "the paper's TTUR rates (D 4e-4, G 1e-4)",
            "recipe candidate: the paper's rates", {}),
)
"""Candidates for the default run's recipe, against the preset (the study's first row). An EMA
changes only the generator that is evaluated, not training: an EMA run's checkpoints hold the
raw generator of the same run too (`benchmarks/collect_runs.py` scores it)."""

STUDIES: dict[str, tuple[Variant, ...]] = {
    "paper": VARIANTS,
    "attention": tuple(
        replace(v, changes={**TTUR_2X, **v.changes},
                summary=v.summary.replace("; TTUR 4e-4/1e-4", "") + "; TTUR 8e-4/2e-4")
        for v in VARIANTS if v.name in ("sagan", "no-attention", "residual-8")),
    "recipe": RECIPE,
}
"""Named sets of configurations (`--study`): "paper" is every comparison above; "attention" is
SAGAN against no attention and against a residual block of the same size in the same place, the
comparison that asks whether attention itself helps (with enough seeds for a test), trained at
the default recipe's rates (D 8e-4, G 2e-4), which learn the data set best; "recipe" are
candidates for the default run's settings."""


def by_name(names: list[str] | None = None, study: str = "paper") -> list[Variant]:
    """The variants of `study` called `names` (all when None), in the study's order; KeyError
    names an unknown study or configuration."""
    if study not in STUDIES:
        raise KeyError(f"unknown study {study!r}; studies are {', '.join(STUDIES)}")
    chosen = STUDIES[study]
    if names is None:
        return list(chosen)
    known = {v.name for v in chosen}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise KeyError(f"unknown configuration {', '.join(unknown)} in study {study!r}; "
                       f"configurations are {', '.join(sorted(known))}")
    return [v for v in chosen if v.name in names]
