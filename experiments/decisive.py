"""The report section of a study with a pre-registered rule (report kind "decisive"): the decisive RQ1 study.

The primary result is the rule's, on one paired interval, and is not corrected: it is the one question the
study was registered to answer. Every other comparison (the other sweep values, the lift's growth as β_pos
falls, the one-epoch lift, the frequency buckets, the weighted BCE) is a secondary claim under Holm's
correction (`claims.render`).
"""
import os

import numpy as np

from experiments import claims, figures, findings, stats, truth

RULE_WORDS = {1: "reproduced", -1: "not reproduced", 0: "inconclusive"}


def _rule_lines(study) -> list:
    rule = study.rule
    return ["## The pre-registered rule", "",
            f"Fixed in `{study.path}` before any run (its git history shows the rule committed before the results): "
            f"with the paired 95 % t-interval over seeds of {rule['variant']}'s minus {study.baseline}'s "
            f"`{rule['metric']}` at {rule['at']}, the result is **reproduced** if the interval lies above 0, **not "
            f"reproduced** if its upper end is below the paper's lift (+{rule['paper_lift']}), and **inconclusive** "
            "otherwise.", ""]


def decision(table) -> str:
    """The rule's verdict on the finished runs, with its numbers."""
    rule, point = table.study.rule, table.study.rule_point
    difference = table.versus_baseline(rule["variant"], point, rule["metric"])
    if difference is None or difference.n < 2:
        return "**Decision: not yet measured** (fewer than 2 paired seeds)."
    word = RULE_WORDS[stats.pre_registered_rule(difference.low, difference.high, rule["paper_lift"])]
    return (f"**Decision (pre-registered rule): {word}.** {rule['variant']} minus {table.study.baseline} in "
            f"`{rule['metric']}` at {rule['at']}: {difference.mean:+.4f} "
            f"[{difference.low:+.4f}, {difference.high:+.4f}]"
            f" over {difference.n} paired seeds (p = {difference.p:.3g}); the paper's lift is +{rule['paper_lift']}.")


def _bucket_table(table, variant: str, point: str) -> list:
    lines = [f"| rarest id's train count | test rows | {table.study.baseline} expected AUC | {variant} expected AUC | "
             "paired Δ [95 % CI] |", "|---|---|---|---|---|"]
    for name, _, _ in truth.FREQUENCY_BUCKETS:
        metric = f"expected_auc_ids{name}"
        rows = {r["data"]["truth"]["buckets"][name]["rows"] for r in table.records}
        base, ours = table.summary(table.study.baseline, point, metric), table.summary(variant, point, metric)
        cells = [claims.cell(s, 4) for s in (base, ours)]
        lines.append(f"| {name} | {', '.join(map(str, sorted(rows)))} | {cells[0]} | {cells[1]} | "
                     f"{claims.describe(table.versus_baseline(variant, point, metric))} |")
    return lines


def _lift_figure(lines: claims.Lines, table, variant: str, point: str, figure_dir: str) -> None:
    """Bars: the paired expected-AUC lifts at the rule's point, with their 95 % intervals."""
    measured = [(label, table.versus_baseline(variant, point, metric)) for label, metric in
                [("final", "expected_auc"), ("one epoch", "expected_auc_first_epoch")] +
                [(f"ids {name}", f"expected_auc_ids{name}") for name, _, _ in truth.FREQUENCY_BUCKETS]]
    measured = [(label, d) for label, d in measured if d is not None and d.n >= 2]
    if not measured:
        return
    path = figures.bars(os.path.join(figure_dir, "expected_auc_lift.png"), [label for label, _ in measured],
                        [d.mean for _, d in measured], [d.high - d.mean for _, d in measured],
                        f"{variant} − {table.study.baseline}, expected AUC", f"{table.sweep_flag} = {point}")
    claims.figure(lines, path, f"The paired lifts in expected AUC at {table.sweep_flag} = {point}, mean over "
                                 "seeds with the 95 % t-interval: after training, after one epoch, and by bucket.")


def decisive(table, figure_dir: str) -> claims.Lines:
    """The rule and its decision, the truth-scored tables, the secondary claims, and the seconds per run."""
    study = table.study
    variant, point = study.rule["variant"], study.rule_point
    variants = list(study.variants)
    lines: claims.Lines = _rule_lines(study)
    lines += ["## Primary: the expected AUC (against the true probabilities)", ""]
    lines += table.metric_table_lines("expected_auc", variants) + ["", decision(table), ""]
    lines += ["## Secondary claims", "", "The AUC on the realised labels, beside the expected AUC:", ""]
    lines += table.metric_table_lines("auc", variants) + [""]
    lines += table.metric_table_lines("expected_weighted_bce_per_weight", variants) + [""]
    lines += table.metric_table_lines("expected_auc_first_epoch", variants) + [""]
    first = sum(1 for r in table.records if r["validation"]["best_epoch"] == 1)
    lines += [f"The validation schedule kept the first epoch's weights in {first} of {len(table.records)} runs "
              "(on this long tail the model overfits after one pass, as DCN V2 does on Criteo), so there the final "
              "model is the one-epoch model.", ""]
    others = [p for p in table.points if p != point]
    for other in others:
        lines += [claims.Claim(f"**Verdict, lift at {table.sweep_flag} = {other}**",
                                 f"{variant}'s expected AUC beats {study.baseline}'s (Fig. 4: by +0.0001 at 1.0)",
                                 f"{variant} minus {study.baseline} in expected AUC at {other}",
                                 table.versus_baseline(variant, other, "expected_auc"), +1), ""]
        growth = findings.lift_growth(table, variant, point, other, "expected_auc")
        lines += [claims.Claim("**Verdict, trend**", "the lift grows as positives get sparser (Fig. 4)",
                                 f"the lift at {point} minus the lift at {other}, seed by seed",
                                 stats.one_sample(growth) if growth else None, +1), ""]
    lines += [claims.Claim("**Verdict, one epoch**", f"{variant} learns faster: its lift after one pass",
                             f"{variant} minus {study.baseline} in expected AUC after exactly one epoch at {point}",
                             table.versus_baseline(variant, point, "expected_auc_first_epoch"), +1), "",
              claims.Claim("**Verdict, weighted BCE**", f"{variant}'s weighted BCE is lower (Fig. 4)",
                             f"{variant} minus {study.baseline} in expected weighted BCE per unit weight at {point}",
                             table.versus_baseline(variant, point, "expected_weighted_bce_per_weight"), -1), ""]
    lines += [f"## Where the lift sits: by how often the row's ids occur in train ({table.sweep_flag} = {point})", "",
              "Each test row is bucketed by the train count of its rarest categorical id (missing fields left out). "
              "The mechanism (Eq. 10) predicts the lift in the rare buckets, whose embeddings get few updates.", ""]
    lines += _bucket_table(table, variant, point) + [""]
    _lift_figure(lines, table, variant, point, figure_dir)
    for name, _, _ in truth.FREQUENCY_BUCKETS:
        lines += [claims.Claim(f"**Verdict, ids {name}**", f"{variant} lifts the expected AUC of rows whose rarest "
                                 f"id occurs {name} times in train", f"{variant} minus {study.baseline} at {point}",
                                 table.versus_baseline(variant, point, f"expected_auc_ids{name}"), +1), ""]
    lines += ["## Cost", "", "| variant | " + table.sweep_flag + " | runs | seconds per run: mean (min-max) |",
              "|---|---|---|---|"]
    for p in table.points:
        for v in variants:
            seconds = [r["train_seconds"] for r in table.cells.get((v, p), {}).values()]
            if seconds:
                lines.append(f"| {v} | {p} | {len(seconds)} | {np.mean(seconds):.0f} ({min(seconds):.0f}-"
                             f"{max(seconds):.0f}) |")
    return lines + [""]
