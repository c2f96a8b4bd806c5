"""Seed statistics for study reports: mean, standard deviation and paired 95 % intervals.

A comparison pairs each run with the baseline run of the same seed (same data, same initial
draws), so the seed-to-seed variation common to both cancels:
    d_s = metric(variant, seed s) - metric(baseline, seed s),
    interval = mean(d) ± t_{0.975, n-1} · std(d) / √n     (Student's t, n = number of seeds).
A difference is significant when the interval excludes 0.
"""
import dataclasses
import math
from typing import Dict, Sequence

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
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2.0, d.size - 1) * d.std(ddof=1) / math.sqrt(d.size))
    return PairedDifference(float(d.mean()), float(d.mean()) - half, float(d.mean()) + half, int(d.size))
