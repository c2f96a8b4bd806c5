"""Turns a study's results table into `experiments/reports/<study>.md` with PNG figures.

    python -m experiments.report experiments/studies/rq1_sparsity.json [--results FILE]

Every cell is the mean ± standard deviation over seeds; every comparison is the paired difference to
the baseline at the same seed with its 95 % interval (experiments/stats.py), called significant only
when the interval excludes 0. The paper's number stands beside a cell where the paper gives one.
Each finding ends with a verdict: reproduced, not reproduced, or inconclusive, on this data.
"""
import argparse
import collections
import json
import os
import sys
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from experiments import claims, decisive, findings, metrics, results, run as runner, stats, study as study_lib, truth
from settings import configs

REPORTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reports")

def _over_training(record: Dict, key: str) -> float:
    """The mean of one gradient diagnostic over every batch of a run's training."""
    return float(np.mean(record["gradients_per_batch"][key]))


METRICS: Dict[str, Tuple[str, Callable[[Dict], float], Optional[bool]]] = {
    # name: (heading, value of a record, higher is better; None where neither direction is "better")
    "auc": ("test AUC", lambda r: r["test"]["auc"], True),
    "weighted_bce": ("test weighted BCE (Eq. 15, per row)", lambda r: r["test"]["weighted_bce"], False),
    "weighted_bce_per_weight": ("test weighted BCE per unit weight (÷ Σw, the paper's figures)",
                                lambda r: r["test"]["weighted_bce_per_weight"], False),
    "logloss": ("test logloss", lambda r: r["test"]["logloss"], False),
    "train_bce_epoch1": ("training weighted BCE, epoch 1", lambda r: r["validation"]["history"]["weighted_bce"][0],
                         False),
    "val_bce_epoch1": ("validation weighted BCE, epoch 1",
                       lambda r: r["validation"]["history"]["val_weighted_bce"][0], False),
    "calibration": ("calibration (mean p / its deciles' β-weighted click rates)",
                    lambda r: metrics.calibration(r["test"]["calibration_buckets"]), None),
    "expected_auc": ("expected test AUC (true probabilities)", lambda r: r["truth"]["final"]["expected_auc"], True),
    "expected_auc_first_epoch": ("expected test AUC after exactly one epoch",
                                 lambda r: r["truth"]["first_epoch"]["expected_auc"], True),
    "expected_weighted_bce_per_weight": ("expected test weighted BCE per unit weight",
                                         lambda r: r["truth"]["final"]["expected_weighted_bce_per_weight"], False),
    **{f"expected_auc_ids{name}": (f"expected test AUC, rarest id seen {name} times in train",
                                   lambda r, name=name: r["truth"]["final"]["buckets"].get(name, {}).get(
                                       "expected_auc", float("nan")), True) for name, _, _ in truth.FREQUENCY_BUCKETS},
    "grad_negatives": ("‖∂L/∂z‖ on negatives, first-epoch mean",
                       lambda r: float(np.mean(r["gradients_first_epoch"]["grad_norm_negative_logits"])), None),
    "grad_negative_representations": ("‖∂L/∂h‖ on negatives' representations, first-epoch mean",
                                      lambda r: float(np.mean(r["gradients_first_epoch"].get(
                                          "grad_norm_negative_representations", [float("nan")]))), None),
    "grad_negatives_all": ("‖∂L/∂z‖ on negatives, mean over the whole training",
                           lambda r: _over_training(r, "grad_norm_negative_logits"), None),
    **{f"grad_abs_{statistic}_{tower}": (f"{layer}, {statistic} |∂L/∂W| ×10⁻⁶, whole training",
                                         lambda r, key=f"grad_abs_{statistic}_{tower}_bottom": 1e6 * _over_training(
                                             r, key), None)
       for tower, layer in (("dnn", "bottom DNN layer"), ("cross", "first cross layer"))
       for statistic in ("mean", "p90")},
}


SECTIONS = {**findings.SECTIONS, "decisive": decisive.decisive}


def _identity_key(settings: configs.TrainerSettings) -> str:
    return json.dumps(settings.identity(), sort_keys=True)


class Table:
    """The study's finished runs, by (variant, sweep value) and seed."""

    def __init__(self, study: study_lib.Study, records: List[Dict]):
        self.study = study
        self.sweep_flag = next(iter(study.sweep), None)
        self.points = study.sweep.get(self.sweep_flag, [""]) if self.sweep_flag else [""]
        if study.report == "beta_sweep":  # densest first, whatever order the study runs them in
            self.points = sorted(self.points, key=float, reverse=True)
        self.cells: Dict[Tuple[str, str], Dict[int, Dict]] = collections.defaultdict(dict)
        wanted = {_identity_key(run.settings) for run in study.runs()}
        for record in records:  # runs of this study as configured now (not of an edited config's past runs)
            settings = configs.TrainerSettings.from_custom_config(record["settings"])
            if record["study"] == study.name and _identity_key(settings) in wanted:
                point = record["sweep"].get(self.sweep_flag, "") if self.sweep_flag else ""
                self.cells[(record["variant"], point)][record["seed"]] = record
        self.records = [r for cell in self.cells.values() for r in cell.values()]

    def values(self, variant: str, point: str, metric: str) -> Dict[int, float]:
        value = METRICS[metric][1]  # NaN: not measured in that run (e.g. a frequency bucket with no test rows)
        values = {seed: value(r) for seed, r in self.cells.get((variant, point), {}).items()}
        return {seed: v for seed, v in values.items() if not np.isnan(v)}

    def summary(self, variant: str, point: str, metric: str) -> Optional[stats.Summary]:
        values = self.values(variant, point, metric)
        return stats.summarize(list(values.values())) if values else None

    def versus_baseline(self, variant: str, point: str, metric: str) -> Optional[stats.PairedDifference]:
        variant_values = self.values(variant, point, metric)
        baseline = self.values(self.study.baseline, point, metric)
        if variant == self.study.baseline or not set(variant_values) & set(baseline):
            return None
        extra = self.auc_row_variance(variant, point) if metric == "auc" else 0.0
        return stats.paired_difference(variant_values, baseline, extra_variance=extra)

    def auc_row_variance(self, variant: str, point: str) -> float:
        """The test rows' sampling variance of the seed-mean AUC difference (DeLong over every run of both, on the
        same rows); 0 unless every paired run kept its test scores."""
        ours, base = self.cells.get((variant, point), {}), self.cells.get((self.study.baseline, point), {})
        seeds = sorted(set(ours) & set(base))
        runs = [r for seed in seeds for r in (ours[seed], base[seed])]
        if not runs or any("test_scores" not in r for r in runs):
            return 0.0
        decoded = [metrics.decode_scores(r["test_scores"]) for r in runs]
        if any(not np.array_equal(labels, decoded[0][0]) for labels, _ in decoded):
            raise ValueError(f"the runs of {variant} and {self.study.baseline} at {point} scored different test rows")
        _, covariance = stats.delong(decoded[0][0], np.stack([p for _, p in decoded]))
        weights = np.tile([1.0, -1.0], len(seeds)) / len(seeds)
        return float(weights @ covariance @ weights)

    def metric_table_lines(self, metric: str, variants: List[str], digits: int = 4) -> List[str]:
        return _metric_table(self, metric, variants, digits)

    def series(self, variant: str, metric: str, x: Callable[[str], float]):
        points = sorted((p for p in self.points if self.values(variant, p, metric)), key=x)
        summaries = [self.summary(variant, p, metric) for p in points]
        return [x(p) for p in points], [s.mean for s in summaries], [0.0 if s.n < 2 else s.std for s in summaries]


def _paper(study: study_lib.Study, metric: str, variant: str, point: str) -> str:
    value = study.paper.get(metric, {}).get(variant, {}).get(point)
    return "—" if value is None else f"{value:g}"


def _metric_table(table: Table, metric: str, variants: List[str], digits: int = 4) -> List[str]:
    """Markdown rows: one per (sweep value, variant), with the paired difference and the paper's number."""
    heading, _, higher_is_better = METRICS[metric]
    flag = table.sweep_flag or "setting"
    lines = [f"| {flag} | variant | {heading} | paired Δ vs {table.study.baseline} [95 % CI] | paper |",
             "|---|---|---|---|---|"]
    for point in table.points:
        for variant in variants:
            difference = table.versus_baseline(variant, point, metric)
            if variant == table.study.baseline:
                compared = "baseline"
            elif difference is None:
                compared = "—"
            else:
                compared = difference.describe(digits)
                if difference.significant and higher_is_better is not None:
                    compared += ", better" if (difference.mean > 0) == higher_is_better else ", worse"
            lines.append(f"| {point} | {variant} | {claims.cell(table.summary(variant, point, metric), digits)} | "
                         f"{compared} | {_paper(table.study, metric, variant, point)} |")
    return lines


def header(table: Table, results_path: str) -> List[str]:
    study, records = table.study, table.records
    data = records[0]["data"] if records else {}
    settings = records[0]["settings"] if records else {}
    seconds = [r["train_seconds"] for r in records]
    lines = [f"# {study.title}", "",
             f"Produced by `python -m experiments.run {os.path.relpath(study.path)}` then "
             f"`python -m experiments.report {os.path.relpath(study.path)}` (results: `{os.path.relpath(results_path)}`).",
             "", study.description, "",
             f"- **Data**: {data.get('source', '?')}; rows per split {data.get('rows', '?')}; "
             f"generator {data.get('generator', '—')}; Transform {data.get('transform', '—')}."]
    bayes, ceiling = data.get("bayes", {}).get("test"), data.get("truth", {}).get("bayes_expected_auc")
    if ceiling is not None:
        lines.append(f"- **Ceiling**: the true probabilities' expected AUC on the test split is {ceiling:.4f}.")
    if bayes:
        lines.append(f"- **Bayes-optimal** on the test split (the true click probabilities): AUC "
                     f"{bayes['bayes_auc']:.4f}, logloss {bayes['bayes_logloss']:.4f}.")
    if settings:
        model, train = settings["model"], settings["train"]
        lines.append(f"- **Model**: DCN V2 {model['structure']}, {model['num_cross_layers']} cross layers, DNN "
                     f"{'-'.join(map(str, model['dnn_units']))}, embeddings {model['embedding_dim']}, dropout "
                     f"{model['dropout']}, embedding L2 {model['embedding_l2']}; **training**: {train['optimizer']} "
                     f"{train['learning_rate']}, batch {train['batch_size']}, up to {train['epochs']} epochs under the "
                     f"Trainer's validation schedule (best epoch by validation AUC, min gain "
                     f"{train.get('min_improvement')}); the test split is read once per run.")
    seeds_at = "".join(f", at {point}: {seeds}" for point, seeds in study.seeds_at.items())
    lines.append(f"- **Runs**: {len(records)} of {len(study.runs())}; seeds {study.seeds}{seeds_at}; "
                 + (f"{np.mean(seconds):.0f} s per run on average ({3600 / np.mean(seconds):.0f} runs/hour)."
                    if seconds else "none finished yet."))
    shared = collections.Counter(r["trained_for"] for r in records if "trained_for" in r)
    if shared:
        lines.append("- **Shared runs**: " + "; ".join(
            f"{count} trained for study {other} (the same data and settings), copied from its table"
            for other, count in sorted(shared.items())) + ". Comparisons here and there rest on the same runs.")
    return lines + [""]


def on_the_configured_data(study: study_lib.Study, records: List[Dict]) -> List[Dict]:
    """The records of runs on the data the study's config names now: a config whose generator flags changed
    keeps its older runs in the table, and they are not this study's any more (data from --input or a
    pipeline is named by the table instead)."""
    if not records or any(r["data"].get("source") != "generator" for r in records):
        return records
    key = runner.data_key(study_lib.data_config(study), None)
    return [r for r in records if r["data"]["key"] == key]


def write_report(study: study_lib.Study, results_path: str, out_dir: str = REPORTS_DIR) -> str:
    """Writes `<out_dir>/<study>.md` and its figures under `<out_dir>/<study>/`; returns the report's path."""
    if study.rule and study.rule["metric"] not in METRICS:
        raise ValueError(f"{study.path}: the rule's metric {study.rule['metric']!r} is not one a report measures; "
                         f"valid: {', '.join(sorted(METRICS))}")
    table = Table(study, on_the_configured_data(study, list(results.read(results_path).values())))
    if not table.records:
        raise ValueError(f"no finished runs of study {study.name!r} in {results_path}: run experiments.run first")
    figure_dir = os.path.join(out_dir, study.name)
    body = claims.render(SECTIONS[study.report](table, figure_dir), study.notes)
    path = os.path.join(out_dir, f"{study.name}.md")
    os.makedirs(out_dir, exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(header(table, results_path) + body) + "\n")
    return path


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("study", help="a study config (experiments/studies/*.json)")
    parser.add_argument("--results", default=None, help="the results table (default: the study's under "
                                                        "experiments/results)")
    parser.add_argument("--out-dir", default=REPORTS_DIR, help="where the report and its figures go")
    args = parser.parse_args(argv)
    try:
        study = study_lib.load(args.study)
    except (OSError, study_lib.StudyError) as error:
        parser.error(str(error))
    table_path = args.results or results.table_path(study, results.RESULTS_DIR, None)
    try:
        print(f"[report] wrote {write_report(study, table_path, args.out_dir)}")
    except (OSError, ValueError) as error:
        print(f"[report] error: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
