"""End to end: the README's main command, the pushed SavedModel, and the tfx CLI path."""
import pytest
import os
import re
import subprocess
import sys

import ml_metadata as mlmd
import tensorflow as tf
from tfx import v1 as tfx

from settings import configs
from transforms import rows
from tests.helpers import DEMO_ROWS, ROOT, project_env

pytestmark = pytest.mark.e2e  # runs the pipeline, a server or a trainer end to end


def _trainer_executions(output_root):
    config = configs.PipelineConfig(output_root=output_root)
    store = mlmd.MetadataStore(tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path))
    return [e for e in store.get_executions_by_type("tfx.components.trainer.component.Trainer")]


def test_main_command_prints_stages_counts_metrics_and_pushed_path(demo_run):
    _, stdout = demo_run
    for stage in ("[1/3]", "[2/3]", "[3/3]", "Component RawLogsExampleGen is finished",
                  "Component Trainer is finished", "Component Pusher is finished"):
        assert stage in stdout
    total = re.search(r"^total\s+(\d+)\s+(\d+)\s+(\d+)$", stdout, re.M)
    assert total and int(total.group(1)) == DEMO_ROWS == int(total.group(2)) + int(total.group(3))
    auc = re.search(r"^\s+AUC\s+([\d.]+)\s+([\d.]+)\s+\(gap to the optimum: (-?[\d.]+)\)$", stdout, re.M)
    model_auc, bayes_auc, gap = (float(auc.group(i)) for i in (1, 2, 3))
    assert model_auc > 0.55 and 0.6 < bayes_auc < 1.0  # the tiny model learns something; the data has signal
    assert abs(gap - (bayes_auc - model_auc)) <= 1.5e-4
    stages = {m.group(1): (float(m.group(2)), float(m.group(3).replace(",", "")), float(m.group(4)))
              for m in re.finditer(r"^  (ingestion \(ExampleGen\)|StatisticsGen|Transform|raw -> transformed)"
                                   r"\s+([\d.]+)\s+([\d,]+)\s+([\d.]+) h$", stdout, re.M)}
    assert len(stages) == 4, stdout
    assert abs(stages["raw -> transformed"][0] - sum(stages[s][0] for s in ("ingestion (ExampleGen)",
                                                                           "StatisticsGen", "Transform"))) < 0.3
    for seconds, rate, hours in stages.values():  # rows/s and the Criteo_x1 hours follow from the seconds,
        # up to the printed rounding (seconds to 0.1, rows/s to 1, hours to 0.1)
        assert abs(rate * seconds - DEMO_ROWS) <= 0.5 * seconds + 0.05 * rate + 1
        assert abs(hours - 45_840_617 * seconds / DEMO_ROWS / 3600) <= 0.05 + 45_840_617 * 0.05 / DEMO_ROWS / 3600
    assert re.search(r"^pushed model: /\S+/serving/rankloss-tfx/\d+$", stdout, re.M)
    serving_root = os.path.dirname(re.search(r"^pushed model: (\S+)$", stdout, re.M).group(1))
    assert all(entry.isdigit() for entry in os.listdir(serving_root))  # the staged push left nothing behind


def test_pushed_model_scores_a_serialized_example(demo_run):
    _, stdout = demo_run
    pushed = re.search(r"^pushed model: (\S+)$", stdout, re.M).group(1)
    model = tf.saved_model.load(pushed)
    serve = model.signatures["serving_default"]
    line = "\t".join(["0", "1", "", "3"] + ["2"] * 10 + ["68fd1e64", "never-seen-token"] + [""] * 24)
    label, row = rows.parse_row(line, "\t")
    examples = tf.constant(rows.to_examples([(label, row), (label, {})]))
    probabilities = serve(examples=examples)["probabilities"].numpy()
    assert probabilities.shape == (2,)
    assert ((probabilities > 0) & (probabilities < 1)).all()


def test_tfx_cli_creates_and_runs_the_pipeline(demo_run, tmp_path):
    output_root, _ = demo_run
    before = len(_trainer_executions(output_root))
    # Flags come through RANKLOSS_FLAGS; a small model with another seed makes a new Trainer execution.
    env = project_env(RANKLOSS_OUTPUT_ROOT=output_root, LOCAL_HOME=str(tmp_path / "tfx_home"),
                      RANKLOSS_FLAGS="--dnn-units 32,32 --embedding-dim 4 --epochs 1 --batch-size 256 "
                                     "--train-seed 5 --min-eval-auc 0")
    tfx_cli = os.path.join(os.path.dirname(sys.executable), "tfx")
    create = subprocess.run([tfx_cli, "pipeline", "create", "--engine", "local",
                             "--pipeline_path", os.path.join("pipeline", "local_runner.py")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert create.returncode == 0 and "created successfully" in create.stdout, create.stdout + create.stderr[-3000:]
    run = subprocess.run([tfx_cli, "run", "create", "--engine", "local", "--pipeline_name", "rankloss-tfx"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-5000:]
    # A new Trainer execution with the flags from RANKLOSS_FLAGS; upstream steps are cached.
    executions = _trainer_executions(output_root)
    assert len(executions) == before + 1
    assert '"seed": 5' in executions[-1].custom_properties["custom_config"].string_value


def test_main_command_refuses_bad_trainer_settings_before_any_work(tmp_path):
    output_root = tmp_path / "out"
    flags = ["--loss", "hinge", "--alpha", "1.5", "--beta-pos", "0", "--negative-sampling-rate", "0",
             "--optimizer", "sgd", "--precision", "float16"]
    proc = subprocess.run([sys.executable, "-m", "demo", "--output-root", str(output_root)] + flags,
                          cwd=ROOT, env=project_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0, proc.stdout[-2000:]
    for message in ("valid choices: bce, combined_pair, combined_list, rcr, jrc, focal, focal_norm",
                    "alpha must be in [0, 1]", "beta_pos must be > 0", "negative_sampling_rate must be in (0, 1]",
                    "valid choices: adam, lazy_adam", "valid choices: float32, mixed_bfloat16"):
        assert message in proc.stderr, proc.stderr[-2000:]
    assert not output_root.exists()
