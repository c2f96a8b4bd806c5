"""The report's sections, one builder per study kind, each ending with its findings' verdicts.

Each finding is a `Claim`: the paper's claim, the paired comparison that tests it, and the paper's
direction. A section returns its lines with the claims among them; `render` adjusts every claim's
p-value for the report's multiplicity (Holm, `stats.holm`) and only then writes each verdict:
reproduced when the paper's direction holds at Holm-adjusted p < 0.05, not reproduced when the opposite
does, inconclusive otherwise (and said so when a claim is significant alone but not after the
correction). Every verdict is about this study's data, which the report's header names.
"""
import dataclasses
import math
import os
from typing import Callable, Dict, List, Optional, Union

import numpy as np

from experiments import figures, stats

SURVIVES = 0.05  # Holm-adjusted p below which a claim holds
PER_WEIGHT_NOTE = ("Weighted BCE in two normalisations, labelled: per unit weight (Σ w·ℓ / Σ w, as "
                   "`log_loss(sample_weight=w)`; the paper's figures, which stand beside it) and per row (Σ w·ℓ / N, "
                   "Eq. 15). Both models are scored on the same rows, so their paired differences differ only by "
                   "the factor N / Σ w, and the verdicts do not depend on the choice.")


def _describe(difference: Optional[stats.PairedDifference], digits: int = 4) -> str:
    return "not measured yet (no paired runs)" if difference is None else difference.describe(digits)


def _paired(variant: Dict[int, float], baseline: Dict[int, float]) -> Optional[stats.PairedDifference]:
    return stats.paired_difference(variant, baseline) if set(variant) & set(baseline) else None


@dataclasses.dataclass
class Claim:
    """One claim of the paper, tested by one paired comparison; its verdict waits for the report's correction."""

    label: str                      # the verdict's markdown label, e.g. "**Verdict, Finding 3**"
    paper: str                      # the paper's claim, in words
    measured: str                   # what `difference` measures
    difference: Optional[stats.PairedDifference]
    direction: int                  # the sign the paper claims
    digits: int = 4
    adjusted_p: float = math.nan    # set by `render`

    @property
    def p(self) -> float:
        return self.difference.p if self.difference is not None and self.difference.n >= 2 else math.nan

    def verdict(self) -> str:
        if math.isnan(self.p):
            return "inconclusive (fewer than 2 paired seeds)"
        if self.adjusted_p < SURVIVES:
            if np.sign(self.difference.mean) == np.sign(self.direction):
                return "reproduced"
            return "not reproduced (significant in the opposite direction)"
        if self.difference.significant:
            return "inconclusive (significant alone, not after Holm's correction)"
        return "inconclusive (not significant)"

    def line(self) -> str:
        tested = "" if math.isnan(self.p) else f"; p = {self.p:.3g}, Holm-adjusted p = {self.adjusted_p:.3g}"
        return (f"{self.label} ({self.paper}): {self.measured}: {_describe(self.difference, self.digits)}{tested}: "
                f"**{self.verdict()}**.")


Lines = List[Union[str, Claim]]


def render(lines: Lines) -> List[str]:
    """The section's lines with every claim's verdict, corrected over all of them, and the correction's table."""
    claims = [line for line in lines if isinstance(line, Claim)]
    for claim, adjusted in zip(claims, stats.holm([c.p for c in claims])):
        claim.adjusted_p = adjusted
    out = [line.line() if isinstance(line, Claim) else line for line in lines]
    tested = [c for c in claims if not math.isnan(c.p)]
    out += [f"## Multiplicity: Holm's correction over this report's {len(tested)} tested claims", "",
            "The intervals in the tables are per comparison, uncorrected. Each verdict is taken at Holm-adjusted "
            f"p < {SURVIVES} over the report's claims, a correction that holds whatever their dependence: the "
            "comparisons at one β_pos all share that β_pos's baseline runs (the same seeds), so they are not "
            "independent. The intervals carry seed-to-seed variance only, not the test split's sampling variance.",
            "", "| claim | paired Δ [95 % CI] | p | Holm-adjusted p | verdict |", "|---|---|---|---|---|"]
    for claim in tested:
        out.append(f"| {_name(claim)} | {_describe(claim.difference, claim.digits)} | {claim.p:.3g} | "
                   f"{claim.adjusted_p:.3g} | {claim.verdict()} |")
    def names(verdict: str) -> str:
        return ", ".join(_name(c) for c in tested if c.verdict() == verdict) or "none"

    return out + ["", f"After the correction, reproduced: {names('reproduced')}; contradicted: "
                      f"{names('not reproduced (significant in the opposite direction)')}; the rest inconclusive.", ""]


def _name(claim: Claim) -> str:
    return claim.label.replace("**", "").replace("Verdict, ", "").lstrip("- ")


def _figure(lines: List[str], path: str, caption: str) -> None:
    lines += [f"![{caption}]({os.path.join(os.path.basename(os.path.dirname(path)), os.path.basename(path))})",
              f"*{caption}*", ""]


def _mean_curves(table, variants: List[str], series_of: Callable) -> List:
    """Per β_pos (densest first): variant -> the seeds' mean curve, cut to the shortest run."""
    panels = []
    for point in sorted(table.points, key=float, reverse=True):
        lines = {}
        for variant in variants:
            series = [series_of(r) for r in table.cells.get((variant, point), {}).values()]
            if series:
                length = min(len(s) for s in series)
                lines[variant] = np.mean([s[:length] for s in series], axis=0)
        panels.append((f"β_pos = {point}", lines))
    return panels


def _lift_by_seed(table, variant: str, point: str, metric: str) -> Dict[int, float]:
    """variant - baseline at one sweep point, per seed both ran."""
    ours, base = table.values(variant, point, metric), table.values(table.study.baseline, point, metric)
    return {seed: ours[seed] - base[seed] for seed in set(ours) & set(base)}


def beta_sweep(table, figure_dir: str) -> Lines:
    """RQ1 (Fig. 4), Findings 1-2 (validation and training BCE, Fig. 1a, 6) and 3-4 (gradients, Fig. 2, 3, 9)."""
    study, variants = table.study, list(table.study.variants)
    other = next(v for v in variants if v != study.baseline)
    beta = float
    lines: Lines = ["## RQ1: AUC and weighted BCE by β_pos (Fig. 4)", "", PER_WEIGHT_NOTE, ""]
    for metric in ("auc", "weighted_bce_per_weight", "weighted_bce"):
        lines += table.metric_table_lines(metric, variants) + [""]
    _figure(lines, figures.error_bar_panels(os.path.join(figure_dir, "fig4_auc_bce.png"), [
        ("test AUC", "AUC", {v: table.series(v, "auc", beta) for v in variants}),
        ("test weighted BCE ÷ Σw", "BCE", {v: table.series(v, "weighted_bce_per_weight", beta) for v in variants})],
        "β_pos", invert_x=True), "Fig. 4 on this data: mean ± std over seeds; sparser positives to the right.")
    sparse, dense = min(table.points, key=beta), max(table.points, key=beta)
    lifts = {point: _lift_by_seed(table, other, point, "auc") for point in (sparse, dense)}
    growth = {seed: lifts[sparse][seed] - lifts[dense][seed] for seed in set(lifts[sparse]) & set(lifts[dense])}
    lines += [Claim("**Verdict, RQ1**", f"{other}'s AUC beats BCE's when positives are sparse",
                    f"{other} minus BCE in test AUC at β_pos = {sparse}", table.versus_baseline(other, sparse, "auc"),
                    +1), "",
              Claim("**Verdict, RQ1 trend**", "the lift grows as positives get sparser, Fig. 4",
                    f"{other}'s AUC lift at β_pos = {sparse} minus its lift at β_pos = {dense}, seed by seed "
                    f"(the lift at β_pos = {dense}: {_describe(table.versus_baseline(other, dense, 'auc'))})",
                    stats.one_sample(growth) if growth else None, +1), ""]

    lines += ["## Findings 1-2: the BCE loss on the validation and training sets (Fig. 1a, 6)", ""]
    for metric in ("val_bce_epoch1", "train_bce_epoch1"):
        lines += table.metric_table_lines(metric, variants) + [""]
    _figure(lines, figures.curves(os.path.join(figure_dir, "fig6_training_error.png"),
                                  _mean_curves(table, variants, lambda r: r["validation"]["history"]["weighted_bce"]),
                                  "train weighted BCE", xlabel="epoch", log_scale=False),
            "Fig. 6 on this data: the training loss's BCE part (Eq. 15) per epoch, mean over seeds (runs stop at "
            "different epochs; each curve ends with the shortest run).")
    lines += [Claim("**Verdict, Finding 1**", f"{other} gets a lower BCE loss than BCE on the validation set",
                    f"{other} minus BCE in the first epoch's validation weighted BCE at β_pos = {sparse}",
                    table.versus_baseline(other, sparse, "val_bce_epoch1"), -1), "",
              Claim("**Verdict, Finding 2**", f"{other} gets a lower BCE loss than BCE on the training set, Fig. 6",
                    f"{other} minus BCE in the first epoch's training weighted BCE at β_pos = {sparse}",
                    table.versus_baseline(other, sparse, "train_bce_epoch1"), -1), ""]

    lines += ["## Findings 3-4: the gradient on the negatives' logits (Eq. 10, Fig. 2, 9)", "",
              "‖∂L/∂z_j‖₂ over a batch's negatives j, averaged over the first epoch's batches.", ""]
    lines += table.metric_table_lines("grad_negatives", variants, digits=6) + [""]
    panels = _mean_curves(table, variants, lambda r: r["gradients_first_epoch"]["grad_norm_negative_logits"])
    _figure(lines, figures.curves(os.path.join(figure_dir, "fig2_negative_gradients.png"), panels,
                                  "‖∂L/∂z‖ on negatives"),
            "Fig. 2 / 9 on this data: per-batch gradient norm on the negatives' logits, first epoch, mean over seeds.")
    shrink = _paired(table.values(study.baseline, sparse, "grad_negatives"),
                     table.values(study.baseline, dense, "grad_negatives"))
    lines += [Claim("**Verdict, Finding 3**", "BCE's gradient on the negatives vanishes as positives get sparser",
                    f"BCE at β_pos = {sparse} minus BCE at β_pos = {dense}", shrink, -1, digits=6), "",
              Claim("**Verdict, Finding 4**", f"{other} has larger gradients on the negatives than BCE",
                    f"{other} minus BCE at β_pos = {sparse}", table.versus_baseline(other, sparse, "grad_negatives"),
                    +1, digits=6), ""]

    lines += ["## Fig. 3: DNN and cross-network gradient norms", ""]
    for metric in ("grad_dnn", "grad_cross"):
        lines += table.metric_table_lines(metric, variants, digits=5) + [""]
    _figure(lines, figures.error_bar_panels(os.path.join(figure_dir, "fig3_dnn_cross_gradients.png"), [
        ("DNN", "gradient norm", {v: table.series(v, "grad_dnn", beta) for v in variants}),
        ("cross network", "gradient norm", {v: table.series(v, "grad_cross", beta) for v in variants})],
        "β_pos", invert_x=True), "Fig. 3 on this data: first-epoch mean gradient norms of the two towers.")
    for metric, tower in (("grad_dnn", "DNN"), ("grad_cross", "cross network")):
        lines += [Claim(f"**Verdict, Fig. 3, {tower}**", f"{other}'s gradients are higher than BCE's in the {tower}; "
                        "the paper plots the bottom layer's element-wise gradients, this is the tower's global norm",
                        f"{other} minus BCE at β_pos = {sparse}", table.versus_baseline(other, sparse, metric), +1,
                        digits=5), ""]
    return lines


def _curvature_by_seed(table, point: str, alpha_of: Dict[str, float]) -> Dict[int, float]:
    """Per seed, the quadratic coefficient of test AUC as a function of α (BCE at α = 1), over every α it ran."""
    by_seed: Dict[int, Dict[float, float]] = {}
    for variant, alpha in alpha_of.items():
        for seed, value in table.values(variant, point, "auc").items():
            by_seed.setdefault(seed, {})[alpha] = value
    return {seed: float(np.polyfit(list(curve), list(curve.values()), 2)[0])
            for seed, curve in by_seed.items() if len(curve) == len(alpha_of)}


def alpha_sweep(table, figure_dir: str) -> Lines:
    """RQ2 (Fig. 5): Combined-Pair's α at each β_pos."""
    study = table.study
    alphas = [v for v in study.variants if v != study.baseline]
    alpha_of = {v: float(v.split("=")[1]) for v in alphas}
    lines: Lines = ["## RQ2: the BCE weight α inside Combined-Pair (Fig. 5)", "",
                    "α = 1 is BCE (the baseline rows).", "", PER_WEIGHT_NOTE, ""]
    for metric in ("auc", "weighted_bce_per_weight", "weighted_bce"):
        lines += table.metric_table_lines(metric, list(study.variants)) + [""]
    panels = []
    for metric, name in (("auc", "test AUC"), ("weighted_bce_per_weight", "test weighted BCE ÷ Σw")):
        series = {}
        for point in table.points:
            xs, means, stds = [], [], []
            for variant in [study.baseline] + alphas:
                summary = table.summary(variant, point, metric)
                if summary:
                    xs.append(alpha_of.get(variant, 1.0))
                    means.append(summary.mean)
                    stds.append(0.0 if summary.n < 2 else summary.std)
            series[f"β_pos = {point}"] = (xs, means, stds)
        panels.append((name, name, series))
    _figure(lines, figures.error_bar_panels(os.path.join(figure_dir, "fig5_alpha.png"), panels, "α (BCE weight)",
                                            invert_x=True), "Fig. 5 on this data: mean ± std over seeds; α = 1 is BCE.")
    sparse = min(table.points, key=float)
    with_bce = {**alpha_of, study.baseline: 1.0}
    for point in table.points:
        differences = {v: table.versus_baseline(v, point, "auc") for v in alphas}
        differences = {v: d for v, d in differences.items() if d is not None}
        if not differences:
            continue
        best = max(differences, key=lambda v: differences[v].mean)
        curvature = _curvature_by_seed(table, point, with_bce)
        lines += [f"At β_pos = {point} the best α is {best} (AUC {differences[best].describe()}); picking the best of "
                  f"{len(differences)} is itself a multiple comparison, so the claim tested is the curve's shape.", "",
                  Claim(f"**Verdict, RQ2 at β_pos = {point}**", "AUC is an inverted U in α: it rises from α = 1 (BCE) "
                        "to a peak below 1 and falls towards α = 0",
                        "the quadratic coefficient of AUC in α (α = 1 for BCE), fitted seed by seed",
                        stats.one_sample(curvature) if curvature else None, -1, digits=5), ""]
        if point == sparse:
            lines += [Claim(f"- **{v}** at β_pos = {point}", "at the sparsest β_pos every α beats BCE",
                            "minus BCE in test AUC", d, +1) for v, d in sorted(differences.items(),
                                                                                 key=lambda item: alpha_of[item[0]])]
            lines.append("")
    return lines


def loss_table(table, figure_dir: str) -> Lines:
    """RQ3/RQ4 (Table 1, Table 2, Fig. 7-8): every loss against BCE at one β_pos."""
    study, variants = table.study, list(table.study.variants)
    lines: Lines = [f"## RQ3/RQ4: losses against {study.baseline} (Table 1, Table 2)", ""]
    lines += [PER_WEIGHT_NOTE, ""]
    for metric in ("auc", "weighted_bce_per_weight", "weighted_bce", "logloss", "calibration", "grad_negatives"):
        lines += table.metric_table_lines(metric, variants, digits=6 if metric == "grad_negatives" else 4) + [""]
    point = table.points[0]
    summaries = [table.summary(v, point, "grad_negatives") for v in variants]
    present = [(v, s) for v, s in zip(variants, summaries) if s]
    _figure(lines, figures.bars(os.path.join(figure_dir, "fig7_negative_gradients.png"), [v for v, _ in present],
                                [s.mean for _, s in present], [0.0 if s.n < 2 else s.std for _, s in present],
                                "‖∂L/∂z‖ on negatives", f"first-epoch mean, β_pos = {point}"),
            "Fig. 7 (left) / Table 2 on this data: the gradient on the negatives' logits by loss.")
    buckets = {}
    for variant in variants:
        runs = list(table.cells.get((variant, point), {}).values())
        if runs:
            bias = np.mean([[b["relative_bias"] for b in r["test"]["calibration_buckets"]] for r in runs], axis=0)
            buckets[variant] = (list(range(1, len(bias) + 1)), list(bias), [0.0] * len(bias))
    _figure(lines, figures.error_bar_panels(os.path.join(figure_dir, "fig8_calibration_buckets.png"), [
        ("calibration by predicted-CTR decile", "mean prediction / observed CTR - 1", buckets)],
        "decile of the predicted CTR"), "Fig. 8 on this data: relative calibration bias per predicted-CTR decile.")
    lines += ["**Verdicts** against the paper's claim for each variant (AUC up and weighted BCE down unless the "
              "study config's `expect` says otherwise):", ""]
    names = {"auc": "AUC", "weighted_bce": "weighted BCE", "grad_negatives": "gradient on the negatives",
             "logloss": "logloss", "calibration": "calibration"}
    for variant in variants:
        if variant == study.baseline or table.versus_baseline(variant, point, "auc") is None:
            continue
        lines += [Claim(f"- **{variant}**, {names.get(metric, metric)} {'up' if direction > 0 else 'down'}",
                        f"the paper's direction against {study.baseline}", f"minus {study.baseline} at β_pos = {point}",
                        table.versus_baseline(variant, point, metric), direction,
                        digits=6 if metric.startswith("grad") else 4)
                  for metric, direction in study.expected(variant).items()]
    return lines + [""]


SECTIONS: Dict[str, Callable[..., Lines]] = {"beta_sweep": beta_sweep, "alpha_sweep": alpha_sweep,
                                             "loss_table": loss_table}
