"""The ablation's test of a baseline against a variant (`accelerated.ablation.stats`)."""

import math

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from accelerated.ablation import stats, variants


def test_fully_separated_seeds_reach_the_smallest_possible_p():
    a, b = [0.9, 0.8, 0.85, 0.95], [0.1, 0.2, 0.3, 0.15]
    found = stats.compare(a, b)
    assert found["p"] == pytest.approx(1 / math.comb(8, 4)) == pytest.approx(found["smallest_p"])
    assert found["superiority"] == 1.0 and found["u"] == 16
    assert found["difference"] == pytest.approx(0.875 - 0.1875)
    assert 0 < found["ci_low"] <= found["difference"] <= found["ci_high"]


def test_the_test_is_one_sided():
    a, b = [0.1, 0.2, 0.3], [0.7, 0.8, 0.9]
    found = stats.compare(a, b)
    assert found["p"] > 0.9 and found["superiority"] == 0.0 and found["ci_high"] < 0


def test_ties_use_scipys_corrected_test():
    a, b = [0.5, 0.5, 0.6, 0.4], [0.5, 0.4, 0.4, 0.3]
    found = stats.compare(a, b)
    assert found["p"] == pytest.approx(mannwhitneyu(a, b, alternative="greater").pvalue)
    assert 0.5 < found["superiority"] < 1


def test_eight_seeds_a_side_can_show_p_below_one_percent_three_cannot():
    assert stats.smallest_p(8, 8) < 1e-4
    assert stats.smallest_p(3, 3) == pytest.approx(0.05)


def test_the_detectable_difference_is_found_in_eighty_percent_of_fresh_studies():
    rng = np.random.default_rng(1)
    a, b = list(0.3 + 0.05 * rng.standard_normal(8)), list(0.3 + 0.05 * rng.standard_normal(8))
    found = stats.compare(a, b)
    sd = math.sqrt((np.var(a, ddof=1) + np.var(b, ddof=1)) / 2)
    # the normal-theory size (t test, Mann-Whitney's 95.5% efficiency) is a little below it
    assert 1.5 * sd < found["detectable"] < 2.2 * sd
    # fresh studies (other draws than the function's) at that difference: p < 0.01 about 80%
    x = rng.standard_normal((4000, 8)) * sd + found["detectable"]
    y = rng.standard_normal((4000, 8)) * sd
    hits = np.mean(mannwhitneyu(x, y, alternative="greater", axis=1).pvalue < stats.ALPHA)
    # measured over 30 seeds: hits mean 0.794, SD 0.0069 (binomial: 0.0063), from 0.780 to
    # 0.807; the bound is 3.5 SDs from the mean on the low side
    assert hits == pytest.approx(stats.POWER, abs=0.03)
    assert stats.compare(a[:3], b[:3])["detectable"] == math.inf  # 3 a side never reach 0.01


def test_one_seed_is_refused_and_the_table_names_every_comparison():
    with pytest.raises(ValueError, match="at least 2 seeds"):
        stats.compare([0.5], [0.1, 0.2])
    found = [{"variant": "no-attention", **stats.compare([0.9, 0.8], [0.1, 0.2])}]
    table = stats.markdown(found, "final_score", "sagan")
    assert "| sagan vs |" in table and "| no-attention | 2 vs 2 | +0.700 (" in table


def test_the_attention_study_is_sagan_against_no_attention_and_a_residual_block():
    names = [v.name for v in variants.by_name(study="attention")]
    assert names == ["sagan", "no-attention", "residual-8"]
    with pytest.raises(KeyError, match="unknown study"):
        variants.by_name(study="nope")
    with pytest.raises(KeyError, match="in study 'attention'"):
        variants.by_name(["equal-lr"], study="attention")


def test_the_recipe_study_ends_with_the_papers_rates_unchanged():
    chosen = variants.by_name(study="recipe")
    assert chosen[-1].name == "paper-rates" and chosen[-1].overrides == variants.BASELINE
    assert all(v.changes for v in chosen[:-1])
