"""The report's sections, one builder per study kind, each ending with its findings' verdicts (`claims`)."""
import os
from typing import Callable, Dict, List

import numpy as np

from experiments import figures, stats
from experiments.claims import Claim, Lines, describe, figure, paired

PER_WEIGHT_NOTE = ("Weighted BCE in two normalisations, labelled: per unit weight (Σ w·ℓ / Σ w, as "
                   "`log_loss(sample_weight=w)`; the paper's figures, which stand beside it) and per row (Σ w·ℓ / N, "
                   "Eq. 15). Both models are scored on the same rows, so their paired differences differ only by "
                   "the factor N / Σ w, and the verdicts do not depend on the choice.")


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


def lift_growth(table, variant: str, sparse: str, dense: str, metric: str) -> Dict[int, float]:
    """Per seed, the variant's lift at the `sparse` sweep point minus its lift at the `dense` one: the
    interaction "the lift grows as positives get sparser", paired by seed."""
    lifts = {point: _lift_by_seed(table, variant, point, metric) for point in (sparse, dense)}
    return {seed: lifts[sparse][seed] - lifts[dense][seed] for seed in set(lifts[sparse]) & set(lifts[dense])}


def beta_sweep(table, figure_dir: str) -> Lines:
    """RQ1 (Fig. 4), Findings 1-2 (validation and training BCE, Fig. 1a, 6) and 3-4 (gradients, Fig. 2, 3, 9)."""
    study, variants = table.study, list(table.study.variants)
    other = next(v for v in variants if v != study.baseline)
    beta = float
    lines: Lines = ["## RQ1: AUC and weighted BCE by β_pos (Fig. 4)", "", PER_WEIGHT_NOTE, ""]
    for metric in ("auc", "weighted_bce_per_weight", "weighted_bce"):
        lines += table.metric_table_lines(metric, variants) + [""]
    figure(lines, figures.error_bar_panels(os.path.join(figure_dir, "fig4_auc_bce.png"), [
        ("test AUC", "AUC", {v: table.series(v, "auc", beta) for v in variants}),
        ("test weighted BCE ÷ Σw", "BCE", {v: table.series(v, "weighted_bce_per_weight", beta) for v in variants})],
        "β_pos", invert_x=True), "Fig. 4 on this data: mean ± std over seeds; sparser positives to the right.")
    sparse, dense = min(table.points, key=beta), max(table.points, key=beta)
    growth = lift_growth(table, other, sparse, dense, "auc")
    lines += [Claim("**Verdict, RQ1**", f"{other}'s AUC beats BCE's when positives are sparse",
                    f"{other} minus BCE in test AUC at β_pos = {sparse}", table.versus_baseline(other, sparse, "auc"),
                    +1), "",
              Claim("**Verdict, RQ1 trend**", "the lift grows as positives get sparser, Fig. 4",
                    f"{other}'s AUC lift at β_pos = {sparse} minus its lift at β_pos = {dense}, seed by seed "
                    f"(the lift at β_pos = {dense}: {describe(table.versus_baseline(other, dense, 'auc'))})",
                    stats.one_sample(growth) if growth else None, +1), ""]

    lines += ["## Findings 1-2: the BCE loss on the validation and training sets (Fig. 1a, 6)", ""]
    for metric in ("val_bce_epoch1", "train_bce_epoch1"):
        lines += table.metric_table_lines(metric, variants) + [""]
    figure(lines, figures.curves(os.path.join(figure_dir, "fig6_training_error.png"),
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
              "‖∂L/∂z_j‖₂ over a batch's negatives j, averaged over the first epoch's batches (Fig. 2) and over every "
              "batch of the whole training (Fig. 9); the verdicts take the whole training.", ""]
    for metric in ("grad_negatives", "grad_negatives_all"):
        lines += table.metric_table_lines(metric, variants, digits=6) + [""]
    panels = _mean_curves(table, variants, lambda r: r["gradients_per_batch"]["grad_norm_negative_logits"])
    figure(lines, figures.curves(os.path.join(figure_dir, "fig2_negative_gradients.png"), panels,
                                 "‖∂L/∂z‖ on negatives", xlabel="batch (whole training)"),
           "Fig. 2 / 9 on this data: per-batch gradient norm on the negatives' logits over the whole training, mean "
           "over seeds (each curve ends with the shortest run).")
    shrink = paired(table.values(study.baseline, sparse, "grad_negatives_all"),
                    table.values(study.baseline, dense, "grad_negatives_all"))
    lines += [Claim("**Verdict, Finding 3**", "BCE's gradient on the negatives vanishes as positives get sparser",
                    f"BCE at β_pos = {sparse} minus BCE at β_pos = {dense}, whole training", shrink, -1, digits=6), "",
              Claim("**Verdict, Finding 4**", f"{other} has larger gradients on the negatives than BCE",
                    f"{other} minus BCE at β_pos = {sparse}, whole training",
                    table.versus_baseline(other, sparse, "grad_negatives_all"), +1, digits=6), ""]
    return lines + _fig3(table, other, sparse, figure_dir)


FIG3_METRICS = (("grad_abs_mean_dnn", "bottom DNN layer", "mean"), ("grad_abs_p90_dnn", "bottom DNN layer", "p90"),
                ("grad_abs_mean_cross", "first cross layer", "mean"),
                ("grad_abs_p90_cross", "first cross layer", "p90"))


def _fig3(table, other: str, sparse: str, figure_dir: str) -> Lines:
    """Fig. 3 the paper's way: per batch over the whole training, the mean and the 90th percentile of the
    element-wise |∂L/∂W| of the bottom DNN layer's and the first cross layer's kernels."""
    variants = list(table.study.variants)
    alpha = table.cells.get((other, sparse), {})
    alpha = next(iter(alpha.values()))["settings"]["loss"]["alpha"] if alpha else None
    lines: Lines = ["## Fig. 3: the element-wise gradients of the bottom DNN and cross layers", "",
                    "Per batch, the mean and the nearest-rank 90th percentile of |∂L/∂W| over the kernel of the bottom "
                    "DNN layer and of the first cross layer, averaged over every batch of the training. The paper "
                    f"plots them at β_pos = 0.1 with α = 0.5; this study's {other} at β_pos = {sparse} has α = {alpha} "
                    "(the authors' α for that β_pos).", ""]
    for metric, _, _ in FIG3_METRICS:
        lines += table.metric_table_lines(metric, variants, digits=4) + [""]
    keys = {"grad_abs_mean_dnn": "grad_abs_mean_dnn_bottom", "grad_abs_p90_dnn": "grad_abs_p90_dnn_bottom",
            "grad_abs_mean_cross": "grad_abs_mean_cross_bottom", "grad_abs_p90_cross": "grad_abs_p90_cross_bottom"}
    panels = []
    for metric, layer, statistic in FIG3_METRICS:
        curves = _mean_curves(table, variants,
                              lambda r, key=keys[metric]: 1e6 * np.asarray(r["gradients_per_batch"][key]))
        panels.append((f"{layer}, {statistic}", next(lines_ for title, lines_ in curves
                                                     if title == f"β_pos = {sparse}")))
    figure(lines, figures.curves(os.path.join(figure_dir, "fig3_dnn_cross_gradients.png"), panels, "|∂L/∂W| ×10⁻⁶",
                                 xlabel="batch (whole training)"),
           f"Fig. 3 on this data at β_pos = {sparse}: per-batch mean and p90 of the element-wise gradients, mean over "
           "seeds.")
    for metric, layer, statistic in FIG3_METRICS:
        lines += [Claim(f"**Verdict, Fig. 3, {layer} {statistic}**", f"{other}'s gradients are higher than BCE's",
                        f"{other} minus BCE at β_pos = {sparse}, whole training",
                        table.versus_baseline(other, sparse, metric), +1, digits=4), ""]
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
    figure(lines, figures.error_bar_panels(os.path.join(figure_dir, "fig5_alpha.png"), panels, "α (BCE weight)",
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
    figure(lines, figures.bars(os.path.join(figure_dir, "fig7_negative_gradients.png"), [v for v, _ in present],
                                [s.mean for _, s in present], [0.0 if s.n < 2 else s.std for _, s in present],
                                "‖∂L/∂z‖ on negatives", f"first-epoch mean, β_pos = {point}"),
            "Fig. 7 (left) / Table 2 on this data: the gradient on the negatives' logits by loss.")
    buckets = {}
    for variant in variants:
        runs = list(table.cells.get((variant, point), {}).values())
        if runs:
            bias = np.mean([[b["relative_bias"] for b in r["test"]["calibration_buckets"]] for r in runs], axis=0)
            buckets[variant] = (list(range(1, len(bias) + 1)), list(bias), [0.0] * len(bias))
    figure(lines, figures.error_bar_panels(os.path.join(figure_dir, "fig8_calibration_buckets.png"), [
        ("calibration by predicted-CTR decile", "mean prediction / observed CTR - 1", buckets)],
        "decile of the predicted CTR"), "Fig. 8 on this data: relative calibration bias per predicted-CTR decile.")
    lines += ["**Verdicts** against the paper's claim for each variant (AUC up and weighted BCE down unless the "
              "study config's `expect` says otherwise):", ""]
    names = {"auc": "AUC", "weighted_bce": "weighted BCE", "grad_negatives": "gradient on the negatives",
             "grad_negative_representations": "gradient on the negatives' representations",
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
