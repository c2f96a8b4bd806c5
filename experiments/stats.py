"""Seed statistics for study reports: mean, standard deviation and paired 95 % intervals.

A comparison pairs each run with the baseline run of the same seed (same data, same initial
draws), so the seed-to-seed variation common to both cancels:
    d_s = metric(variant, seed s) - metric(baseline, seed s),
    interval = mean(d) ± t_{0.975, n-1} · std(d) / √n     (Student's t, n = number of seeds).
A difference is significant when the interval excludes 0; its two-sided p-value is Student's t test's.
A report tests several claims at once: `holm` adjusts their p-values (Holm 1979, valid under any
dependence, e.g. comparisons that share one baseline's runs), and a claim survives at adjusted p < 0.05.
"""
import dataclasses
import math
from typing import Dict, List, Sequence

import numpy as np
from scipy import stats as scipy_stats


@dataclasses.dataclass(frozen=True)
class Summary:
    """Mean and sample standard deviation (ddof=1) of one cell's seeds."""

    mean: float
    std: float
    n: int


@dataclasses.dataclass(frozen=True)
class PairedDifference:
    """Mean paired difference (variant - baseline) with its two-sided interval."""

    mean: float
    low: float
    high: float
    n: int
    p: float = math.nan  # two-sided, H0: mean difference 0

    @property
    def significant(self) -> bool:
        return self.n >= 2 and (self.low > 0.0 or self.high < 0.0)

    def describe(self, digits: int = 4) -> str:
        if self.n < 2:
            return f"{self.mean:+.{digits}f} (1 seed: no interval)"
        verdict = "significant" if self.significant else "not significant"
        return f"{self.mean:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}] {verdict}"


def summarize(values: Sequence[float]) -> Summary:
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no values to summarize")
    std = float(values.std(ddof=1)) if values.size > 1 else float("nan")
    return Summary(float(values.mean()), std, int(values.size))


def paired_difference(variant: Dict[int, float], baseline: Dict[int, float],
                      confidence: float = 0.95) -> PairedDifference:
    """Paired difference over the seeds both have (dicts: seed -> metric)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    seeds = sorted(set(variant) & set(baseline))
    if not seeds:
        raise ValueError(f"no common seeds: variant has {sorted(variant)}, baseline {sorted(baseline)}")
    d = np.array([variant[s] - baseline[s] for s in seeds], dtype=np.float64)
    if d.size < 2:
        return PairedDifference(float(d.mean()), math.nan, math.nan, 1)
    error = d.std(ddof=1) / math.sqrt(d.size)
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2.0, d.size - 1) * error)
    if error > 0:
        p = float(2.0 * scipy_stats.t.sf(abs(d.mean()) / error, d.size - 1))
    else:
        p = 1.0 if d.mean() == 0 else 0.0
    return PairedDifference(float(d.mean()), float(d.mean()) - half, float(d.mean()) + half, int(d.size), p)


def one_sample(values: Dict[int, float], confidence: float = 0.95) -> PairedDifference:
    """The mean of per-seed values (e.g. a per-seed difference of lifts) with its interval against 0."""
    return paired_difference(values, {seed: 0.0 for seed in values}, confidence)


def holm(p_values: Sequence[float]) -> List[float]:
    """Holm's step-down adjusted p-values, in the input's order: the i-th smallest p times (m - i + 1),
    made non-decreasing in that order and capped at 1. NaN (an untested claim) stays NaN and does not count."""
    tested = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    adjusted, running = [math.nan] * len(p_values), 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - rank) * p))
        adjusted[i] = running
    return adjusted
