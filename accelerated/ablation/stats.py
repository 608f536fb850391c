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
  $1 / \binom{2n}{n}$: 8 seeds a side can reach $7.8 \times 10^{-5}$, 3 a side only 0.05. And
  the **detectable difference**: the smallest true difference of means that this test, with
  these seed counts, finds at $p < 0.01$ in 80% of studies, if each arm's values were normal
  with the two arms' pooled standard deviation (a simulation, `detectable_difference`). A study
  that finds nothing rules out effects of about that size, not smaller ones.
"""

from __future__ import annotations

import math
import statistics

import numpy as np
from scipy.stats import mannwhitneyu

BOOTSTRAP = 10_000
CONFIDENCE = 0.95
ALPHA, POWER = 0.01, 0.8  # the detectable difference: found at p < ALPHA in POWER of studies


def smallest_p(n: int, m: int) -> float:
    """The smallest one-sided p-value an exact Mann-Whitney test of n vs m values can give."""
    return 1 / math.comb(n + m, n)


def detectable_difference(a: list[float], b: list[float], trials: int = 2000,
                          seed: int = 0) -> float:
    """The smallest difference of means that the one-sided test of `len(a)` vs `len(b)` seeds
    finds at p < ALPHA in a share POWER of simulated studies, both arms normal with the pooled
    standard deviation of `a` and `b` (the same `trials` draws for every difference tried)."""
    n, m = len(a), len(b)
    sd = math.sqrt(((n - 1) * statistics.variance(a) + (m - 1) * statistics.variance(b))
                   / (n + m - 2))
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((trials, n)), rng.standard_normal((trials, m))

    def power(shift: float) -> float:  # in pooled standard deviations
        p = mannwhitneyu(x + shift, y, alternative="greater", axis=1).pvalue
        return float(np.mean(p < ALPHA))

    if sd == 0 or smallest_p(n, m) >= ALPHA or power(20.0) < POWER:
        return math.inf if sd else 0.0
    low, high = 0.0, 20.0
    for _ in range(30):  # bisection to 20 / 2^30 standard deviations
        middle = (low + high) / 2
        if power(middle) >= POWER:
            high = middle
        else:
            low = middle
    return high * sd


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
        "detectable": detectable_difference(a, b, seed=seed),
    }


def markdown(comparisons: list[dict], metric: str, baseline: str) -> str:
    """A table of `comparisons` (dicts of `compare` with a "variant" name)."""
    level = round(CONFIDENCE * 100)
    lines = [f"| {baseline} vs | seeds | {metric}: difference of means ({level}% CI) "
             "| P(baseline seed beats variant seed) | U | one-sided p (smallest possible) "
             f"| detectable at p < {ALPHA:g} ({POWER:.0%} power) |",
             "|---|---|---|---|---|---|---|"]
    for c in comparisons:
        lines.append(
            f"| {c['variant']} | {c['n_baseline']} vs {c['n_variant']} | {c['difference']:+.3f} "
            f"({c['ci_low']:+.3f} to {c['ci_high']:+.3f}) | {c['superiority']:.2f} | "
            f"{c['u']:.1f} | {c['p']:.2g} ({c['smallest_p']:.1g}) | {c['detectable']:.3f} |")
    return "\n".join(lines) + "\n"
