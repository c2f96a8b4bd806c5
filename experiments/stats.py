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
                      confidence: float = 0.95, extra_variance: float = 0.0) -> PairedDifference:
    """Paired difference over the seeds both have (dicts: seed -> metric). `extra_variance`, the variance of the
    mean difference from another source (the test rows' sampling, `delong`), adds to the seeds' std(d)²/n."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    seeds = sorted(set(variant) & set(baseline))
    if not seeds:
        raise ValueError(f"no common seeds: variant has {sorted(variant)}, baseline {sorted(baseline)}")
    d = np.array([variant[s] - baseline[s] for s in seeds], dtype=np.float64)
    if d.size < 2:
        return PairedDifference(float(d.mean()), math.nan, math.nan, 1)
    if extra_variance < 0:
        raise ValueError(f"extra_variance must be >= 0, got {extra_variance}")
    error = math.sqrt(d.var(ddof=1) / d.size + extra_variance)
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


def pre_registered_rule(low: float, high: float, paper_lift: float) -> int:
    """The decisive RQ1 rule on a lift's 95 % interval [low, high]: +1 when it lies above 0 (the lift is there),
    -1 when it ends below the paper's lift (no lift of the paper's size), 0 otherwise (inconclusive)."""
    if math.isnan(low) or math.isnan(high) or low > high:
        raise ValueError(f"need an interval, got [{low}, {high}]")
    if low > 0.0:
        return 1
    return -1 if high < paper_lift else 0


def delong(labels: np.ndarray, scores: np.ndarray):
    """AUCs of K models scored on the same rows and their covariance from the rows' sampling (DeLong, DeLong and
    Clarke-Pearson 1988, with midranks as Sun and Xu 2014): `scores` [K, N] -> (auc [K], covariance [K, K]).

    Per model, V10_i = the fraction of negatives a positive i outscores (ties ½), V01_j = the fraction of
    positives that outscore a negative j; AUC = mean(V10) and Cov = cov(V10)/m + cov(V01)/n (m positives,
    n negatives)."""
    labels, scores = np.asarray(labels).reshape(-1) > 0.5, np.atleast_2d(np.asarray(scores, np.float64))
    m, n = int(labels.sum()), int((~labels).sum())
    if scores.shape[1] != labels.size or m < 2 or n < 2:
        raise ValueError(f"need scores [K, {labels.size}] and at least 2 rows of each class, got {scores.shape}, "
                         f"{m} positives, {n} negatives")
    positives, negatives = scores[:, labels], scores[:, ~labels]
    combined = np.apply_along_axis(scipy_stats.rankdata, 1, np.concatenate([positives, negatives], axis=1))
    v10 = (combined[:, :m] - np.apply_along_axis(scipy_stats.rankdata, 1, positives)) / n
    v01 = 1.0 - (combined[:, m:] - np.apply_along_axis(scipy_stats.rankdata, 1, negatives)) / m
    covariance = np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n
    return v10.mean(axis=1), covariance
