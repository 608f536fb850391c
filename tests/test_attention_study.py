"""The committed GAN attention study (docs/attention-study/, written by `python -m
accelerated.ablation --study attention`): what docs/ablation.md says of it in words holds for the
file. The page renders the numbers; this test holds the verdicts."""

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STUDY = json.loads((ROOT / "docs" / "attention-study" / "ablation.json").read_text())
FAMILY_ALPHA = 0.05


def comparison(metric: str, variant: str) -> dict:
    return next(c for c in STUDY["comparisons"][metric] if c["variant"] == variant)


def holm_rejected() -> set[tuple[str, str]]:
    """The (metric, variant) comparisons Holm's step-down procedure rejects at FAMILY_ALPHA."""
    tests = sorted(((c["p"], metric, c["variant"]) for metric, found in
                    STUDY["comparisons"].items() for c in found))
    rejected = set()
    for i, (p, metric, variant) in enumerate(tests):
        if p > FAMILY_ALPHA / (len(tests) - i):
            break
        rejected.add((metric, variant))
    return rejected


def test_the_study_has_eight_seeds_a_side_on_the_current_data_set():
    assert STUDY["study"] == "attention" and STUDY["preset"] == "builtin"
    assert [c["seeds"] for c in STUDY["configurations"]] == [8, 8, 8]
    assert sum(len(found) for found in STUDY["comparisons"].values()) == 4


def test_no_test_finds_sagan_better_than_no_attention():
    for metric in ("final_score", "final_agreement"):
        assert comparison(metric, "no-attention")["p"] > 0.05
    score = comparison("final_score", "no-attention")
    assert score["difference"] < 0 and score["ci_low"] < 0 < score["ci_high"]  # lower, within CI
    sagan, none = STUDY["configurations"][0], STUDY["configurations"][1]
    assert sagan["final_diversity"]["mean"] < none["final_diversity"]["mean"]


def test_against_a_residual_block_only_the_agreement_differs_and_survives_holm():
    assert comparison("final_agreement", "residual-8")["p"] < 0.01
    assert comparison("final_score", "residual-8")["p"] > 0.05
    assert holm_rejected() == {("final_agreement", "residual-8")}


def test_sagans_attention_looks_across_the_twins():
    for mass, chance in STUDY["configurations"][0]["final_twin"].values():
        assert mass > chance
