"""The study runner end to end on the demo pipeline's Transform output: table, resume, report."""
import json
import subprocess
import sys

import pytest

from experiments import report, run as runner, study as study_lib
from tests.helpers import ROOT, project_env

pytestmark = pytest.mark.e2e  # runs the pipeline, a server or a trainer end to end

TINY_STUDY = {
    "title": "tiny", "report": "loss_table", "baseline": "BCE", "seeds": [1, 2],
    "flags": ["--dnn-units", "16,16", "--embedding-dim", "4", "--cross-layers", "1", "--batch-size", "256",
              "--epochs", "2", "--steps-per-epoch", "3", "--eval-steps", "2", "--gradient-diagnostics"],
    "variants": {"BCE": ["--loss", "bce"], "Combined-Pair": ["--loss", "combined_pair", "--alpha", "0.7"]},
    "sweep": {"--beta-pos": ["0.5"]},
}


def _run(args, timeout=600):
    proc = subprocess.run([sys.executable, "-m"] + args, cwd=ROOT, env=project_env(), capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def _table(path):
    return [json.loads(line) for line in open(path)]


def test_runner_writes_resumes_and_reports(demo_run, tmp_path):
    demo_root, demo_stdout = demo_run
    study = tmp_path / "tiny.json"
    study.write_text(json.dumps(TINY_STUDY))
    results = tmp_path / "results"
    command = ["experiments.run", str(study), "--from-pipeline", demo_root, "--output-root", str(tmp_path / "work"),
               "--results-dir", str(results)]

    first = _run(command + ["--max-runs", "1"])
    table_path = results / "tiny.jsonl"
    (finished,) = _table(table_path)
    assert "1/4 done, 3 left" in first and "stopping after 1 trained runs" in first

    with open(table_path, "a") as f:  # a kill in the middle of writing the second record
        f.write('{"run_id": "cut sh')
    second = _run(command)
    assert "dropped an unfinished last line" in second
    assert second.count("test AUC") == 3  # three trained now; the finished run is not redone
    records = _table(table_path)
    assert records[0] == finished and len({study_lib.record_id(r) for r in records}) == 4
    assert {r["train_input"] for r in records} == {"memory"}  # the demo's train split fits the default limit
    assert {(r["variant"], r["seed"]) for r in records} == {(v, s) for v in ("BCE", "Combined-Pair") for s in (1, 2)}
    assert {r["settings"]["loss"]["name"] for r in records} == {"bce", "combined_pair"}
    test_rows = int(next(line.split()[2] for line in demo_stdout.splitlines() if line.startswith("test ")))
    for record in records:
        assert record["test"]["examples"] == test_rows  # the whole test split, read once
        assert len(record["validation"]["history"]["val_auc"]) == 2
        assert len(record["gradients_first_epoch"]["grad_norm_negative_logits"]) == 3  # 3 batches in epoch 1
        assert record["batches_per_epoch"] == 3 and all(  # every batch of the 2 epochs, Fig. 3's measure too
            len(record["gradients_per_batch"][key]) == 6 for key in ("grad_norm_negative_logits",
                                                                     "grad_abs_p90_dnn_bottom"))
        assert record["settings"]["loss"]["beta_pos"] == 0.5

    path = report.write_report(study_lib.load(str(study)), str(table_path), str(tmp_path / "r"))
    text = open(path).read()
    assert "| 0.5 | Combined-Pair |" in text and "- **Combined-Pair**, AUC up" in text and "Runs**: 4 of 4" in text
    assert (tmp_path / "r" / "tiny" / "fig8_calibration_buckets.png").read_bytes()[:4] == b"\x89PNG"


TRUTH_STUDY = {
    "title": "tiny decisive", "report": "decisive", "baseline": "BCE", "seeds": [1], "truth": True,
    "seeds_at": {"--beta-pos=0.1": [1, 2]}, "data": ["--rows", "3000", "--max-cardinality", "300"],
    "flags": ["--dnn-units", "16,16", "--embedding-dim", "4", "--cross-layers", "1", "--batch-size", "256",
              "--epochs", "2"],
    "variants": {"BCE": ["--loss", "bce"], "Combined-Pair": ["--loss", "combined_pair"]},
    "variant_flags_at": {"--beta-pos=0.1": {"Combined-Pair": ["--alpha", "0.7"]}},
    "sweep": {"--beta-pos": ["0.1", "1.0"]},
    "rule": {"variant": "Combined-Pair", "metric": "expected_auc", "at": "--beta-pos=0.1", "paper_lift": 0.0008},
}


def test_a_truth_scored_study_on_generated_data_scores_the_served_model_row_by_row(tmp_path):
    study = tmp_path / "decisive.json"
    study.write_text(json.dumps(TRUTH_STUDY))
    results = tmp_path / "results"
    _run(["experiments.run", str(study), "--output-root", str(tmp_path / "work"), "--results-dir", str(results)])
    records = _table(results / "decisive.jsonl")
    assert [(r["variant"], r["sweep"]["--beta-pos"], r["seed"]) for r in records] == [
        ("BCE", "0.1", 1), ("Combined-Pair", "0.1", 1), ("BCE", "0.1", 2), ("Combined-Pair", "0.1", 2),
        ("BCE", "1.0", 1), ("Combined-Pair", "1.0", 1)]
    assert [r["settings"]["loss"]["alpha"] for r in records if r["variant"] == "Combined-Pair"] == [0.7, 0.7, None]
    for record in records:
        final, first = record["truth"]["final"], record["truth"]["first_epoch"]
        # the serving path (raw rows in line order) and the pipeline's test split score the same rows alike
        assert final["auc"] == pytest.approx(record["test"]["auc"], abs=1e-9)
        assert final["rows"] == first["rows"] == record["test"]["examples"] == record["data"]["truth"]["rows"]
        assert final["expected_auc"] < record["data"]["truth"]["bayes_expected_auc"]
        assert sum(b["rows"] for b in final["buckets"].values()) == final["rows"]
        assert len(record["validation"]["history"]["val_auc"]) == 2
    path = report.write_report(study_lib.load(str(study)), str(results / "decisive.jsonl"), str(tmp_path / "r"))
    text = open(path).read()
    assert "**Decision (pre-registered rule): " in text and "over 2 paired seeds" in text
    assert "| <5 |" in text and "Runs**: 6 of 6; seeds [1], at --beta-pos=0.1: [1, 2]" in text
    with pytest.raises(ValueError, match="only the generator's data has"):
        runner.run_study(study_lib.load(str(study)), str(tmp_path / "w2"), source=str(study))

    # Another study asking for some of the same trainings on the same data copies them, and its report says so;
    # a table sorted after, holding an older code's record of the same run (without the test scores), is passed over.
    stale = [dict(r, study="zz_old") for r in records]
    for record in stale:
        del record["test_scores"]
    (results / "zz_old.jsonl").write_text("".join(json.dumps(r) + "\n" for r in stale))
    subset = tmp_path / "subset.json"
    subset.write_text(json.dumps({**TRUTH_STUDY, "title": "subset", "sweep": {"--beta-pos": ["0.1"]}}))
    out = _run(["experiments.run", str(subset), "--output-root", str(tmp_path / "work"), "--results-dir",
                str(results)])
    assert out.count("copied from study decisive's table") == 4 and "test AUC" not in out
    assert {r["trained_for"] for r in _table(results / "subset.jsonl")} == {"decisive"}
    path = report.write_report(study_lib.load(str(subset)), str(results / "subset.jsonl"), str(tmp_path / "r"))
    assert "**Shared runs**: 4 trained for study decisive" in open(path).read()
