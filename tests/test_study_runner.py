"""The study runner end to end on the demo pipeline's Transform output: table, resume, report."""
import json
import subprocess
import sys

from experiments import report, study as study_lib
from tests.conftest import ROOT, project_env

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
