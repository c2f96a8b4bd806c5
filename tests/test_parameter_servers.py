"""Parameter-server training: a chief, two workers and two parameter servers on loopback run `run_fn` under
ParameterServerStrategy, with the embedding table sharded across the parameter servers."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from pipeline import portable_beam
from tests.helpers import ROOT, project_env
from transforms import rows

pytestmark = pytest.mark.e2e  # runs a trainer end to end

# Runs run_fn as one task (or alone); the chief keeps where the table's shards live and its validation AUCs.
TASK_SCRIPT = """
import json, sys
import settings
from absl import logging
from trainer import outside_pipeline, task

out, examples, transform_graph, custom_config, work = sys.argv[1:6]
logging.set_verbosity(logging.INFO)
kept = {}
original_train = task.train
def keep(*args, **kwargs):
    result = original_train(*args, **kwargs)
    table = result.ctr_model.embedding.categorical_table
    kept["shards"] = [[v.device, v.shape.as_list()] for v in getattr(table, "variables", [table])]
    kept["val_auc"] = result.validation.history
    return result
task.train = keep
outside_pipeline.train_and_export((examples, transform_graph),
                                  task.TrainerSettings.from_custom_config(json.loads(custom_config)), work)
with open(out, "w") as f:
    json.dump(kept, f)
"""


def _run_tasks(tmp_path, cluster, transform_output, settings, work):
    """Starts every task of `cluster` (none: one process) and waits; {task name: log text}."""
    tasks = [(name, index) for name, addresses in cluster.items() for index in range(len(addresses))] or [("single", 0)]
    processes = {}
    for name, index in tasks:
        tf_config = {"cluster": cluster, "task": {"type": name, "index": index}} if cluster else {}
        log_path = tmp_path / f"{name}{index}.log"
        with open(log_path, "w") as log:
            processes[f"{name}{index}"] = (subprocess.Popen(
                [sys.executable, "-c", TASK_SCRIPT, str(tmp_path / f"{name}{index}.json"), *transform_output,
                 json.dumps(settings.to_custom_config()), work],
                cwd=ROOT, env=project_env(TF_CONFIG=json.dumps(tf_config)), stdout=log, stderr=subprocess.STDOUT),
                log_path)
    logs = {}
    for task, (process, log_path) in processes.items():
        returncode = process.wait(timeout=300)
        logs[task] = log_path.read_text()
        assert returncode == 0, f"{task} failed:\n{logs[task][-6000:]}"
    return logs


def test_chief_two_workers_two_parameter_servers_shard_the_table_and_converge_like_one_process(demo_run, tmp_path):
    from settings import configs
    from pipeline import results

    output_root, _ = demo_run
    transform_output = results.latest_transform_output(configs.PipelineConfig(output_root=output_root))
    settings = configs.TrainerSettings(
        model=configs.ModelConfig(dnn_units=(32, 32), embedding_dim=8, num_cross_layers=2),
        loss=configs.LossConfig(name="combined_pair", alpha=0.7),
        train=configs.TrainConfig(batch_size=256, epochs=3, steps_per_epoch=40, eval_steps=1, ps_min_shard_kb=1))
    ports = portable_beam.free_ports(5)
    cluster = {"chief": [f"localhost:{ports[0]}"], "worker": [f"localhost:{p}" for p in ports[1:3]],
               "ps": [f"localhost:{p}" for p in ports[3:5]]}
    logs = _run_tasks(tmp_path, cluster, transform_output, settings, str(tmp_path / "cluster"))
    _run_tasks(tmp_path, {}, transform_output, settings, str(tmp_path / "single"))

    chief = json.loads((tmp_path / "chief0.json").read_text())
    single = json.loads((tmp_path / "single0.json").read_text())
    # The table is split by rows, one shard on each parameter server, and nothing of it is on the chief.
    devices = sorted(device for device, _ in chief["shards"])
    assert [re.search(r"/job:(\w+)/replica:0/task:(\d)", d).groups() for d in devices] == [("ps", "0"), ("ps", "1")]
    rows_per_shard = [shape[0] for _, shape in chief["shards"]]
    assert single["shards"][0][1] == [sum(rows_per_shard), 8] and min(rows_per_shard) > 0
    for worker in ("worker0", "worker1", "ps0", "ps1"):
        assert "serves the chief" in logs[worker]
    # Asynchronous training reaches the single process's validation AUC within 0.02.
    print("validation AUC per epoch: parameter servers", chief["val_auc"], "single process", single["val_auc"])
    assert max(chief["val_auc"]) > max(single["val_auc"]) - 0.02

    # The export's serving signature is the single process's, and it serves.
    exported = {run: tf.saved_model.load(str(tmp_path / run / "serving")).signatures["serving_default"]
                for run in ("cluster", "single")}
    assert [str(s.structured_input_signature) for s in exported.values()] == \
        [str(exported["single"].structured_input_signature)] * 2
    assert exported["cluster"].structured_outputs.keys() == exported["single"].structured_outputs.keys()
    label, row = rows.parse_row("\t".join(["1", "4", "", "3"] + ["2"] * 10 + ["68fd1e64"] * 26), "\t")
    values = exported["cluster"](examples=tf.constant(rows.to_examples([(label, row), (label, {})])))["probabilities"]
    assert values.shape == (2,) and np.all(np.isfinite(values.numpy()))
