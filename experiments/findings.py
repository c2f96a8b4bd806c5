"""The report's sections, one builder per study kind, each ending with its findings' verdicts.

A verdict reads the paired intervals: reproduced when the paper's direction holds significantly,
not reproduced when the opposite holds significantly or the paper's direction holds nowhere, and
inconclusive otherwise. Every verdict is about this study's data, which the report's header names.
"""
import os
from typing import Callable, Dict, List, Optional

import numpy as np

from experiments import figures, stats


def _describe(difference: Optional[stats.PairedDifference], digits: int = 4) -> str:
    return "not measured yet (no paired runs)" if difference is None else difference.describe(digits)


def _paired(variant: Dict[int, float], baseline: Dict[int, float]) -> Optional[stats.PairedDifference]:
    return stats.paired_difference(variant, baseline) if set(variant) & set(baseline) else None


def _verdict(difference: Optional[stats.PairedDifference], paper_direction: float) -> str:
    if difference is None or difference.n < 2:
        return "inconclusive (fewer than 2 paired seeds)"
    if difference.significant and np.sign(difference.mean) == np.sign(paper_direction):
        return "reproduced"
    if difference.significant:
        return "not reproduced (significant in the opposite direction)"
    return "inconclusive (not significant)"


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


def beta_sweep(table, figure_dir: str) -> List[str]:
    """RQ1 (Fig. 4) and Findings 1-2 (Fig. 2, 3, 9)."""
    study, variants = table.study, list(table.study.variants)
    other = next(v for v in variants if v != study.baseline)
    beta = float
    lines = ["## RQ1: AUC and weighted BCE by β_pos (Fig. 4)", ""]
    for metric in ("auc", "weighted_bce"):
        lines += table.metric_table_lines(metric, variants) + [""]
    _figure(lines, figures.error_bar_panels(os.path.join(figure_dir, "fig4_auc_bce.png"), [
        ("test AUC", "AUC", {v: table.series(v, "auc", beta) for v in variants}),
        ("test weighted BCE (Eq. 15)", "BCE", {v: table.series(v, "weighted_bce", beta) for v in variants})],
        "β_pos", invert_x=True), "Fig. 4 on this data: mean ± std over seeds; sparser positives to the right.")
    sparse, dense = min(table.points, key=beta), max(table.points, key=beta)
    lift_sparse = table.versus_baseline(other, sparse, "auc")
    lift_dense = table.versus_baseline(other, dense, "auc")
    trend = ""
    if lift_sparse is not None and lift_dense is not None:
        trend = ("; the lift is larger at the sparsest β_pos." if lift_sparse.mean > lift_dense.mean else
                 "; the lift is not larger at the sparsest β_pos than at the densest.")
    lines += ["**Verdict, RQ1** (the paper: Combined-Pair's AUC lift over BCE is largest at the sparsest β_pos): "
              f"at β_pos = {sparse} the lift is {_describe(lift_sparse)}, at β_pos = {dense} "
              f"{_describe(lift_dense)}: **{_verdict(lift_sparse, +1)}**{trend}", ""]

    lines += ["## Findings 1-2: the gradient on the negatives' logits (Eq. 10, Fig. 2, 9)", "",
              "‖∂L/∂z_j‖₂ over a batch's negatives j, averaged over the first epoch's batches.", ""]
    lines += table.metric_table_lines("grad_negatives", variants, digits=6) + [""]
    panels = _mean_curves(table, variants, lambda r: r["gradients_first_epoch"]["grad_norm_negative_logits"])
    _figure(lines, figures.curves(os.path.join(figure_dir, "fig2_negative_gradients.png"), panels,
                                  "‖∂L/∂z‖ on negatives"),
            "Fig. 2 / 9 on this data: per-batch gradient norm on the negatives' logits, first epoch, mean over seeds.")
    bce_sparse = table.values(study.baseline, sparse, "grad_negatives")
    bce_dense = table.values(study.baseline, dense, "grad_negatives")
    shrink = _paired(bce_sparse, bce_dense)
    restore = table.versus_baseline(other, sparse, "grad_negatives")
    lines += [f"**Verdict, Finding 1** (BCE's gradient on the negatives shrinks as positives get sparser): "
              f"BCE at β_pos = {sparse} minus BCE at β_pos = {dense}: {_describe(shrink, 6)}: "
              f"**{_verdict(shrink, -1)}**.", "",
              f"**Verdict, Finding 2** ({other} restores it): {other} minus BCE at β_pos = {sparse}: "
              f"{_describe(restore, 6)}: **{_verdict(restore, +1)}**.", ""]

    lines += ["## Fig. 6: training error", ""]
    _figure(lines, figures.curves(os.path.join(figure_dir, "fig6_training_error.png"),
                                  _mean_curves(table, variants, lambda r: r["validation"]["history"]["weighted_bce"]),
                                  "train weighted BCE", xlabel="epoch", log_scale=False),
            "Fig. 6 on this data: the training loss's BCE part (Eq. 15) per epoch, mean over seeds (runs stop at "
            "different epochs; each curve ends with the shortest run).")
    lines += table.metric_table_lines("train_bce_epoch1", variants) + [""]
    faster = table.versus_baseline(other, sparse, "train_bce_epoch1")
    lines += [f"**Verdict, Fig. 6** (the paper: {other}'s training error falls faster than BCE's): {other} minus BCE "
              f"in the first epoch's training weighted BCE at β_pos = {sparse}: {_describe(faster)}: "
              f"**{_verdict(faster, -1)}**.", ""]
    lines += ["## Fig. 3: DNN and cross-network gradient norms", ""]
    for metric in ("grad_dnn", "grad_cross"):
        lines += table.metric_table_lines(metric, variants, digits=5) + [""]
    _figure(lines, figures.error_bar_panels(os.path.join(figure_dir, "fig3_dnn_cross_gradients.png"), [
        ("DNN", "gradient norm", {v: table.series(v, "grad_dnn", beta) for v in variants}),
        ("cross network", "gradient norm", {v: table.series(v, "grad_cross", beta) for v in variants})],
        "β_pos", invert_x=True), "Fig. 3 on this data: first-epoch mean gradient norms of the two towers.")
    dnn, cross = (table.versus_baseline(other, sparse, m) for m in ("grad_dnn", "grad_cross"))
    lines += [f"**Verdict, Fig. 3** (the paper: {other}'s gradient norms are higher than BCE's in the DNN and the "
              f"cross network; it plots the bottom layers, these are each tower's global norm): {other} minus BCE at "
              f"β_pos = {sparse}: DNN {_describe(dnn, 5)} → **{_verdict(dnn, +1)}**; cross network "
              f"{_describe(cross, 5)} → **{_verdict(cross, +1)}**.", ""]
    return lines


def alpha_sweep(table, figure_dir: str) -> List[str]:
    """RQ2 (Fig. 5): Combined-Pair's α at each β_pos."""
    study = table.study
    alphas = [v for v in study.variants if v != study.baseline]
    alpha_of = {v: float(v.split("=")[1]) for v in alphas}
    lines = ["## RQ2: the BCE weight α inside Combined-Pair (Fig. 5)", "",
             f"α = 1 is BCE (the baseline rows).", ""]
    for metric in ("auc", "weighted_bce"):
        lines += table.metric_table_lines(metric, list(study.variants)) + [""]
    panels = []
    for metric, name in (("auc", "test AUC"), ("weighted_bce", "test weighted BCE")):
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
    for point in table.points:
        differences = {v: table.versus_baseline(v, point, "auc") for v in alphas}
        differences = {v: d for v, d in differences.items() if d is not None}
        if not differences:
            continue
        best = max(differences, key=lambda v: differences[v].mean)
        better = sorted((v for v, d in differences.items() if d.significant and d.mean > 0), key=alpha_of.get)
        worse = sorted((v for v, d in differences.items() if d.significant and d.mean < 0), key=alpha_of.get)
        lines += [f"**Verdict at β_pos = {point}** (the paper: some α < 1 beats BCE on AUC; at β_pos = 0.1 every α "
                  f"does): best {best}, AUC {differences[best].describe()}: **{_verdict(differences[best], +1)}**. "
                  f"Significantly better than BCE: {', '.join(better) or 'none'}; significantly worse: "
                  f"{', '.join(worse) or 'none'}; the rest not significant.", ""]
    return lines


def loss_table(table, figure_dir: str) -> List[str]:
    """RQ3/RQ4 (Table 1, Table 2, Fig. 7-8): every loss against BCE at one β_pos."""
    study, variants = table.study, list(table.study.variants)
    lines = [f"## RQ3/RQ4: losses against {study.baseline} (Table 1, Table 2)", ""]
    for metric in ("auc", "weighted_bce", "logloss", "calibration", "grad_negatives"):
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
        claims = [f"{names.get(metric, metric)} {'up' if direction > 0 else 'down'}: "
                  f"{_describe(table.versus_baseline(variant, point, metric), 6 if metric.startswith('grad') else 4)}"
                  f" → **{_verdict(table.versus_baseline(variant, point, metric), direction)}**"
                  for metric, direction in study.expected(variant).items()]
        lines.append(f"- {variant}: " + "; ".join(claims) + ".")
    return lines + [""]


SECTIONS: Dict[str, Callable] = {"beta_sweep": beta_sweep, "alpha_sweep": alpha_sweep, "loss_table": loss_table}
