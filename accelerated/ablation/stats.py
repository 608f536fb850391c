r"""Is the baseline better than a variant, beyond seed noise? One stated test per comparison.

For a metric measured once per seed (the final score, say), with baseline values $a_1..a_n$ and
variant values $b_1..b_m$ from independent seeds:

- **test**: the one-sided Mann-Whitney U test of "the baseline's values tend to be larger"
  (`scipy.stats.mannwhitneyu(a, b, alternative="greater")`, exact p-value when there are no ties,
  else the normal approximation with a tie correction). It assumes nothing about the shape of
  the distributions, which for GAN runs (a few collapse, most do not) is the honest choice;
- **effect size**: the difference of the means $\bar a - \bar b$ with a 95% percentile bootstrap
  confidence interval (resampling the seeds of each arm, `BOOTSTRAP` times, fixed seed), and the
  probability of superiority $U / (nm)$, the chance that a random baseline seed beats a random
  variant seed (ties count half);
- **power**: with $n = m$ seeds and no ties, the smallest p-value the test can give is
  $1 / \binom{2n}{n}$: 8 seeds a side can reach $7.8 \times 10^{-5}$, 3 a side only 0.05.
"""

from __future__ import annotations

import math
import statistics

import numpy as np
from scipy.stats import mannwhitneyu

BOOTSTRAP = 10_000
CONFIDENCE = 0.95


def smallest_p(n: int, m: int) -> float:
    """The smallest one-sided p-value an exact Mann-Whitney test of n vs m values can give."""
    return 1 / math.comb(n + m, n)


def compare(a: list[float], b: list[float], seed: int = 0) -> dict[str, float]:
    """Baseline values `a` against variant values `b` (one per seed): the one-sided Mann-Whitney
    U test that `a` tends to be larger, the difference of means with its bootstrap interval,
    and the probability of superiority. Needs at least 2 values on each side."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"a comparison needs at least 2 seeds a side, got {len(a)} and {len(b)}")
    test = mannwhitneyu(a, b, alternative="greater")
    rng = np.random.default_rng(seed)
    x, y = np.asarray(a, float), np.asarray(b, float)
    means = [rng.choice(v, (BOOTSTRAP, len(v))).mean(1) for v in (x, y)]  # (BOOTSTRAP,) each
    diffs = means[0] - means[1]
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(diffs, [tail, 100 - tail])
    return {
        "n_baseline": len(a), "n_variant": len(b),
        "u": float(test.statistic), "p": float(test.pvalue),
        "smallest_p": smallest_p(len(a), len(b)),
        "difference": statistics.fmean(a) - statistics.fmean(b),
        "ci_low": float(low), "ci_high": float(high),
        "superiority": float(test.statistic) / (len(a) * len(b)),
    }


def markdown(comparisons: list[dict], metric: str, baseline: str) -> str:
    """A table of `comparisons` (dicts of `compare` with a "variant" name)."""
    level = round(CONFIDENCE * 100)
    lines = [f"| {baseline} vs | seeds | {metric}: difference of means ({level}% CI) "
             "| P(baseline seed beats variant seed) | U | one-sided p (smallest possible) |",
             "|---|---|---|---|---|---|"]
    for c in comparisons:
        lines.append(
            f"| {c['variant']} | {c['n_baseline']} vs {c['n_variant']} | {c['difference']:+.3f} "
            f"({c['ci_low']:+.3f} to {c['ci_high']:+.3f}) | {c['superiority']:.2f} | "
            f"{c['u']:.1f} | {c['p']:.2g} ({c['smallest_p']:.1g}) |")
    return "\n".join(lines) + "\n"
