"""The verdict command: cross-fitting folds, the paired bootstrap, the rule, and the command end to end."""
import json
import subprocess
import sys

import numpy as np
import pytest

from experiments import verdict
from tests.helpers import REAL_SAMPLE, ROOT, project_env


def test_folds_cover_every_row_once_in_near_equal_seeded_parts():
    fold = verdict.fold_of_rows(103, 5, seed=4)
    assert sorted(np.bincount(fold)) == [20, 20, 21, 21, 21]
    np.testing.assert_array_equal(fold, verdict.fold_of_rows(103, 5, seed=4))
    assert not np.array_equal(fold, verdict.fold_of_rows(103, 5, seed=5))


@pytest.mark.e2e
def test_the_paired_bootstrap_sees_a_real_lift_and_no_lift_where_there_is_none():
    rng = np.random.default_rng(0)
    labels = (rng.random(3000) < 0.3).astype(float)
    noise = {s: rng.normal(size=labels.size) for s in (1, 2)}
    bce = {s: labels + 1.5 * noise[s] for s in noise}
    better = {s: labels + 1.0 * noise[s] for s in noise}           # less noise, the same draws: a clear lift
    found = verdict.lift_interval(labels, bce, better, resamples=200)
    assert 0 < found["low"] < found["lift"] < found["high"]
    same = verdict.lift_interval(labels, bce, bce, resamples=200)
    assert same == {"lift": 0.0, "low": 0.0, "high": 0.0}


@pytest.mark.parametrize("low,high,said", [(0.0001, 0.004, "helps"), (-0.004, 0.0007, "no help of the paper's size"),
                                           (-0.002, 0.003, "inconclusive"), (0.0, 0.001, "inconclusive")])
def test_the_rule_is_the_preregistered_one(low, high, said):
    assert verdict.rule({"lift": (low + high) / 2, "low": low, "high": high}).startswith(said)


@pytest.mark.e2e
def test_the_command_gives_a_verdict_on_the_real_criteo_sample(tmp_path):
    out = tmp_path / "verdict.json"
    command = [sys.executable, "-m", "experiments.verdict", "--input", REAL_SAMPLE, "--format", "csv",
               "--folds", "3", "--seeds", "1", "2", "--epochs", "1", "--batch-size", "64", "--dnn-units", "8",
               "--embedding-dim", "2", "--cross-layers", "1", "--bootstrap", "200",
               "--output-root", str(tmp_path / "work"), "--json", str(out)]
    proc = subprocess.run(command, cwd=ROOT, env=project_env(), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["rows"] == 200 and result["ctr"] == pytest.approx(49 / 200)   # every row scored, once
    assert set(result["auc"]) == {"BCE", "Combined-Pair"} and set(result["auc"]["BCE"]) == {"1", "2"}
    lift = result["lift"]
    assert lift["low"] <= lift["lift"] <= lift["high"] and result["verdict"] == verdict.rule(lift)
    assert all(value > 0 for v in ("BCE", "Combined-Pair") for value in result["gradient_negatives"][v].values())
    assert f"verdict: {result['verdict']}" in proc.stdout


def test_the_command_refuses_what_it_cannot_do(tmp_path, capsys):
    for argv, message in ((["--folds", "2", "--input", REAL_SAMPLE], "--folds must be at least 3"),
                          ([], "give the data once"), (["--input", REAL_SAMPLE, "--from-pipeline", "x"],
                                                       "give the data once"),
                          (["--input", REAL_SAMPLE, "--alpha", "1.5"], "--alpha")):
        with pytest.raises(SystemExit) as stop:
            verdict.main(argv + ["--output-root", str(tmp_path)])
        assert stop.value.code == 2 and message in capsys.readouterr().err
