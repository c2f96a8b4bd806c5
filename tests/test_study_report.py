"""Study configs and the report: every checked-in study loads; verdicts follow the paired intervals."""
import dataclasses
import glob
import json
import os
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest

from experiments import metrics, report, results, run as runner, stats, study as study_lib
from trainer import diagnostics
from tests.helpers import ROOT, project_env

STUDIES = sorted(glob.glob(os.path.join(ROOT, "experiments", "studies", "*.json")))


@pytest.mark.parametrize("path", STUDIES, ids=os.path.basename)
def test_checked_in_studies_load_with_at_least_three_seeds(path):
    study = study_lib.load(path)
    assert len(study.seeds) >= 3
    runs = study.runs()
    assert len({study_lib.run_id("data", r.settings, "memory") for r in runs}) == len(runs)  # no two train alike


def _write_study(tmp_path, **overrides):
    config = {"title": "t", "report": "beta_sweep", "variants": {"BCE": ["--loss", "bce"],
              "Combined-Pair": ["--loss", "combined_pair", "--alpha", "0.7"]}, "baseline": "BCE",
              "sweep": {"--beta-pos": ["1.0", "0.1"]}, "seeds": [1, 2, 3], "flags": ["--gradient-diagnostics"]}
    config.update(overrides)
    path = tmp_path / "s.json"
    path.write_text(json.dumps(config))
    return str(path)


@pytest.mark.parametrize("change,message", [
    ({"report": "pie"}, "unknown report"), ({"baseline": "X"}, "baseline 'X' is not a variant"),
    ({"seeds": [1, 1]}, "distinct"), ({"extra": 1}, "unknown key"),
    ({"variants": {"BCE": ["--loss", "bce", "--alpah", "1"]}, "baseline": "BCE"}, "invalid flags"),
    ({"variants": {"BCE": ["--loss", "bce", "--alpha", "0.5"]}, "baseline": "BCE"}, "invalid flags"),
    ({"expect": {"Nope": {"auc": 1}}}, r"unknown variants: \['Nope'\]"),
    ({"expect": {"BCE": {"auc": 2}}}, "directions -1 or 1"),
    ({"seeds_at": {"--beta-pos=0.5": [1, 2]}}, r"seeds_at names \['--beta-pos=0.5'\], not swept values"),
    ({"seeds_at": {"--beta-pos=0.1": [2, 2]}}, "distinct"),
    ({"variant_flags_at": {"--beta-pos=0.1": {"Nope": ["--alpha", "0.5"]}}}, r"names \['Nope'\], not variants"),
    ({"variant_flags_at": {"--beta-pos=0.1": {"BCE": ["--alpha", "0.5"]}}}, "invalid flags"),
    ({"rule": {"variant": "Combined-Pair"}}, "read by the 'decisive' report only"),
    ({"report": "decisive"}, "needs a rule with keys"),
    ({"report": "decisive", "rule": {"variant": "Combined-Pair", "metric": "auc", "at": "--beta-pos=0.1",
                                     "paper_lift": 0}}, "reads the truth-scored metrics"),
    ({"report": "decisive", "truth": True, "rule": {"variant": "BCE", "metric": "auc", "at": "--beta-pos=0.1",
                                                    "paper_lift": 0}}, "a variant other than the baseline"),
    ({"report": "decisive", "truth": True, "rule": {"variant": "Combined-Pair", "metric": "auc",
                                                    "at": "--beta-pos=0.3", "paper_lift": 0}}, "not a swept value"),
])
def test_bad_study_configs_are_named(tmp_path, change, message):
    with pytest.raises(study_lib.StudyError, match=message):
        study_lib.load(_write_study(tmp_path, **change))


def test_seeds_and_variant_flags_at_one_sweep_value_and_the_run_order(tmp_path):
    study = study_lib.load(_write_study(
        tmp_path, variants={"BCE": ["--loss", "bce"], "Combined-Pair": ["--loss", "combined_pair"]},
        seeds_at={"--beta-pos=0.1": [1, 2, 3, 4]}, seeds=[1, 2],
        variant_flags_at={"--beta-pos=0.1": {"Combined-Pair": ["--alpha", "0.7"]},
                          "--beta-pos=1.0": {"Combined-Pair": ["--alpha", "0.9"]}}))
    runs = study.runs()
    assert [r.label for r in runs[:3]] == ["BCE beta-pos=1.0 seed=1", "Combined-Pair beta-pos=1.0 seed=1",
                                           "BCE beta-pos=1.0 seed=2"]  # point, then seed, then variant
    assert len(runs) == 2 * 2 + 4 * 2
    alphas = {(r.variant, dict(r.sweep)["--beta-pos"]): r.settings.loss.alpha for r in runs}
    assert alphas == {("BCE", "1.0"): None, ("BCE", "0.1"): None, ("Combined-Pair", "1.0"): 0.9,
                      ("Combined-Pair", "0.1"): 0.7}


def _records(study, auc_of, grad_of):
    """A results table whose metrics follow the given functions of (variant, β, seed)."""
    out = []
    for run in study.runs():
        beta = dict(run.sweep)["--beta-pos"]
        value = auc_of(run.variant, float(beta), run.seed)
        out.append({"study": study.name, "variant": run.variant, "train_input": "memory",
                    "label": run.label, "sweep": dict(run.sweep), "seed": run.seed, "train_seconds": 10.0,
                    "settings": run.settings.to_custom_config(), "data": {"key": "d", "source": "test"},
                    "test": {"auc": value, "weighted_bce": 1 - value, "weighted_bce_per_weight": 1.1 - value,
                             "logloss": 1 - value, "calibration": 1.0,
                             "calibration_buckets": [{"relative_bias": 0.1 * i, "count": 10, "mean_prediction": 0.2,
                                                      "weighted_rate": 0.2 / (1 + 0.1 * i)} for i in range(3)]},
                    "validation": {"history": {"weighted_bce": [0.5, 0.4 + 0.01 * run.seed][:1 + run.seed % 2],
                                               "val_weighted_bce": [0.45 - 0.01 * value]}},
                    "gradients_first_epoch": {k: [grad_of(run.variant, float(beta), run.seed)] * 4
                                              for k in ("grad_norm_negative_logits", "grad_norm_dnn",
                                                        "grad_norm_cross")},
                    "gradients_per_batch": {k: [grad_of(run.variant, float(beta), run.seed)] * 8
                                            for k in diagnostics.GRADIENT_NORMS}})
    return out


def _report(tmp_path, study, records):
    results = tmp_path / "results.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in records))
    path = report.write_report(study, str(results), str(tmp_path / "reports"))
    return open(path).read()


def test_beta_sweep_verdicts_follow_the_intervals(tmp_path):
    study = study_lib.load(_write_study(tmp_path))
    noise = {1: 0.0, 2: 0.002, 3: -0.001}
    lift = {1.0: 0.0, 0.1: 0.01}  # Combined-Pair gains only at β = 0.1, identically on every seed

    def auc(variant, beta, seed):
        return 0.8 + noise[seed] + (lift[beta] + 0.0001 * seed if variant != "BCE" else 0.0)

    def grad(variant, beta, seed):  # BCE's shrinks with β; Combined-Pair's does not
        return (1.0 if variant != "BCE" else beta) + 0.01 * seed

    text = _report(tmp_path, study, _records(study, auc, grad))
    verdicts = {line.split(" (")[0]: line.rsplit("**", 2)[1] for line in text.splitlines()
                if line.startswith("**Verdict, ")}
    # The lift (+0.01 at β 0.1, nothing at 1.0) and its growth; Finding 1 follows the AUC (validation BCE
    # 0.45 - AUC/100); Finding 2's training BCE is flat; BCE's gradient shrinks with β and Combined-Pair's does
    # not; Fig. 3's constructed norms are higher for Combined-Pair.
    assert verdicts == {"**Verdict, RQ1**": "reproduced", "**Verdict, RQ1 trend**": "reproduced",
                        "**Verdict, Finding 1**": "reproduced", "**Verdict, Finding 2**": "inconclusive (not significant)",
                        "**Verdict, Finding 3**": "reproduced", "**Verdict, Finding 4**": "reproduced",
                        **{f"**Verdict, Fig. 3, {layer} {statistic}**": "reproduced"
                           for layer in ("bottom DNN layer", "first cross layer") for statistic in ("mean", "p90")}}
    assert "Holm's correction over this report's 10 tested claims" in text
    assert "Produced by `python -m experiments.run" in text
    for figure in ("fig4_auc_bce.png", "fig2_negative_gradients.png", "fig3_dnn_cross_gradients.png",
                   "fig6_training_error.png"):
        png = tmp_path / "reports" / study.name / figure
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", figure


def test_a_rule_on_a_metric_no_report_measures_is_named(tmp_path):
    study = study_lib.load(_write_study(tmp_path, report="decisive", truth=True, rule={
        "variant": "Combined-Pair", "metric": "expected_aux", "at": "--beta-pos=0.1", "paper_lift": 0.0008}))
    with pytest.raises(ValueError, match="the rule's metric 'expected_aux' is not one a report measures"):
        report.write_report(study, str(tmp_path / "none.jsonl"), str(tmp_path / "r"))


def test_runs_on_other_generated_data_than_the_config_names_are_left_out(tmp_path):
    study = study_lib.load(_write_study(tmp_path))
    records = _records(study, lambda v, b, s: 0.8, lambda v, b, s: 1.0)
    key = runner.data_key(study_lib.data_config(study), None)
    for record in records:
        record["data"] = {"key": key, "source": "generator"}
    older = [dict(r, data={"key": "other", "source": "generator"}) for r in records]
    assert report.on_the_configured_data(study, older + records) == records
    assert report.on_the_configured_data(study, older) == []


def test_a_studys_notes_follow_their_claims_and_a_note_for_no_claim_is_refused(tmp_path):
    study = study_lib.load(_write_study(tmp_path, notes={"RQ1 trend": "the easy data lets BCE catch up."}))
    records = _records(study, lambda v, b, s: 0.8 + 0.001 * s, lambda v, b, s: 1.0)
    lines = _report(tmp_path, study, records).splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("**Verdict, RQ1 trend**"))
    assert lines[at + 1] == "*Why it differs from the paper:* the easy data lets BCE catch up."
    study = study_lib.load(_write_study(tmp_path, notes={"RQ9": "typo"}))
    with pytest.raises(ValueError, match=r"notes name \['RQ9'\], which are not claims"):
        _report(tmp_path, study, records)


def test_auc_intervals_add_the_test_rows_delong_variance_when_runs_kept_their_scores(tmp_path):
    study = study_lib.load(_write_study(tmp_path))
    records = _records(study, lambda v, b, s: 0.8 + (0.001 * s if v == "BCE" else 0.001 * s + 0.002),
                       lambda v, b, s: 1.0)  # the same +0.002 lift on every seed: no seed variance
    seeds_only, logloss = (report.Table(study, records).versus_baseline("Combined-Pair", "0.1", metric)
                           for metric in ("auc", "logloss"))
    rng = np.random.default_rng(0)
    labels = (rng.uniform(size=400) < 0.3).astype(float)
    for record in records:
        record["test_scores"] = metrics.encode_scores(labels, rng.uniform(size=400) * 0.5 + 0.5 * labels)
    table = report.Table(study, records)
    with_rows = table.versus_baseline("Combined-Pair", "0.1", "auc")
    assert seeds_only.high - seeds_only.low == pytest.approx(0.0, abs=1e-12) and seeds_only.significant
    assert with_rows.mean == pytest.approx(seeds_only.mean)
    _, covariance = stats.delong(labels, np.stack([metrics.decode_scores(r["test_scores"])[1] for r in records
                                                   if r["sweep"]["--beta-pos"] == "0.1"]))  # BCE, CP per seed
    assert with_rows.high - with_rows.mean == pytest.approx(4.302653 * np.sqrt(  # t(0.975, 2); runs go seed, variant
        np.tile([-1.0, 1.0], 3) @ covariance @ np.tile([-1.0, 1.0], 3) / 9), rel=1e-5)
    assert table.versus_baseline("Combined-Pair", "0.1", "logloss") == logloss  # other metrics: seeds only
    sparse = [r for r in records if r["sweep"]["--beta-pos"] == "0.1"]
    sparse[0]["test_scores"] = metrics.encode_scores(1.0 - labels, rng.uniform(size=400))
    with pytest.raises(ValueError, match="scored different test rows"):
        report.Table(study, records).versus_baseline("Combined-Pair", "0.1", "auc")


def test_no_difference_is_reported_as_not_significant(tmp_path):
    study = study_lib.load(_write_study(tmp_path, report="loss_table", sweep={"--beta-pos": ["0.1"]}))
    noise = {1: 0.003, 2: -0.002, 3: 0.0}
    swap = {1: 0.002, 2: -0.002, 3: 0.001}  # Combined-Pair wins on one seed, loses on another

    text = _report(tmp_path, study, _records(study, lambda v, b, s: 0.8 + noise[s] + (swap[s] if v != "BCE" else 0),
                                             lambda v, b, s: 1.0))
    assert "- **Combined-Pair**, AUC up" in text and "not significant" in text
    assert "**inconclusive (not significant)**" in text and "**reproduced**" not in text
    assert (tmp_path / "reports" / study.name / "fig8_calibration_buckets.png").exists()


def test_alpha_sweep_report_names_the_significant_alphas(tmp_path):
    study = study_lib.load(os.path.join(ROOT, "experiments", "studies", "rq2_alpha.json"))
    gain = {0.9: 0.001, 0.7: 0.004, 0.1: -0.003}

    def auc(variant, beta, seed):
        alpha = 1.0 if variant == "BCE" else float(variant.split("=")[1])
        return 0.8 + 0.001 * seed + gain.get(alpha, 0.0) + 0.0002 * seed * (alpha != 1.0)

    text = _report(tmp_path, study, _records(study, auc, lambda v, b, s: 1.0))
    assert "the best α is alpha=0.7" in text and "**Verdict, RQ2 at β_pos = 0.1**" in text
    verdicts = {line.split(" at ")[0]: line.rsplit("**", 2)[1] for line in text.splitlines()
                if line.startswith("- **alpha=")}
    assert verdicts["- **alpha=0.7**"] == verdicts["- **alpha=0.9**"] == "reproduced"
    assert verdicts["- **alpha=0.1**"] == "not reproduced (significant in the opposite direction)"
    row = next(line for line in text.splitlines() if line.startswith("| 0.1 | alpha=0.7 |"))
    assert row.endswith("| 0.8139 |")  # the paper's stated cell sits beside ours


def test_a_table_without_this_studys_runs_is_refused(tmp_path):
    study = study_lib.load(_write_study(tmp_path))
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ValueError, match="no finished runs"):
        report.write_report(study, str(tmp_path / "empty.jsonl"), str(tmp_path / "r"))
    assert results.read(str(tmp_path / "missing.jsonl")) == {}


def test_report_command_writes_the_report_or_names_what_is_missing(tmp_path, capsys):
    path = _write_study(tmp_path, report="loss_table", sweep={"--beta-pos": ["0.1"]})
    records = _records(study_lib.load(path), lambda v, b, s: 0.8 + 0.001 * s, lambda v, b, s: 1.0)
    results = tmp_path / "results.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in records))
    report.main([path, "--results", str(results), "--out-dir", str(tmp_path / "out")])
    assert "wrote" in capsys.readouterr().out and (tmp_path / "out" / "s.md").exists()
    with pytest.raises(SystemExit) as stop:
        report.main([path, "--results", str(tmp_path / "none.jsonl"), "--out-dir", str(tmp_path / "out")])
    assert stop.value.code == 1 and "no finished runs of study 's'" in capsys.readouterr().err


def test_runs_of_an_edited_config_are_left_out(tmp_path):
    study = study_lib.load(_write_study(tmp_path, report="loss_table", sweep={"--beta-pos": ["0.1"]}))
    records = _records(study, lambda v, b, s: 0.8 + 0.001 * s, lambda v, b, s: 1.0)
    stale = dict(records[0], settings=dict(records[0]["settings"], train={**records[0]["settings"]["train"],
                                                                          "epochs": 7}), seed=9)
    assert "Runs**: 6 of 6" in _report(tmp_path, study, records + [stale])


@pytest.mark.e2e
@pytest.mark.parametrize("path", STUDIES, ids=os.path.basename)
def test_each_committed_report_regenerates_from_the_committed_results_by_the_command_at_its_top(path, tmp_path):
    name = os.path.splitext(os.path.basename(path))[0]
    reports = os.path.join(ROOT, "experiments", "reports")
    with open(os.path.join(reports, f"{name}.md")) as f:
        committed = f.read()
    command = shlex.split(re.search(r"then `python (-m experiments\.report [^`]+)`", committed).group(1))
    proc = subprocess.run([sys.executable, *command, "--out-dir", str(tmp_path)], cwd=ROOT, env=project_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / f"{name}.md").read_text() == committed
    figures = sorted(os.listdir(os.path.join(reports, name)))
    assert figures and sorted(os.listdir(tmp_path / name)) == figures
    for figure in figures:  # matplotlib is pinned: the same data draws the same bytes
        with open(os.path.join(reports, name, figure), "rb") as f:
            assert (tmp_path / name / figure).read_bytes() == f.read(), figure


def test_a_runs_id_holds_what_can_change_its_results_and_nothing_else():
    run = study_lib.load(STUDIES[0]).runs()[0]
    same = study_lib.run_id("d", run.settings, "memory")
    train = run.settings.train
    speed_only = dataclasses.replace(run.settings, train=dataclasses.replace(
        train, cache_dataset=not train.cache_dataset, cache_limit_mb=1, diagnostics_window=3))
    assert study_lib.run_id("d", speed_only, "memory") == same
    assert study_lib.run_id("d", run.settings, "stream") != same          # the streamed shuffle differs
    assert study_lib.run_id("e", run.settings, "memory") != same          # other data
    for section, field in (("train", "seed"), ("train", "batch_size"), ("model", "embedding_dim")):
        changed = dataclasses.replace(run.settings, **{section: dataclasses.replace(
            getattr(run.settings, section), **{field: getattr(getattr(run.settings, section), field) + 1})})
        assert study_lib.run_id("d", changed, "memory") != same, field
    # a record written before a setting existed (and with the Trainer's old copy of the Transform settings)
    settings = run.settings.to_custom_config()
    del settings["train"]["cache_limit_mb"]
    settings["transform"] = {"min_category_count": 1, "num_oov_buckets": 1}
    assert study_lib.record_id({"settings": settings, "data": {"key": "d"}, "train_input": "memory"}) == same


def test_a_study_whose_data_flags_cannot_apply_to_an_existing_pipeline_is_refused(tmp_path, capsys):
    path = _write_study(tmp_path, data=["--num-oov-buckets", "5"])
    with pytest.raises(SystemExit) as stop:
        runner.main([path, "--from-pipeline", str(tmp_path / "demo"), "--output-root", str(tmp_path / "work")])
    assert stop.value.code == 2
    assert "['--num-oov-buckets', '5'] cannot apply" in capsys.readouterr().err
    assert not (tmp_path / "work").exists()
