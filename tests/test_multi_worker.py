"""Multi-worker training: a chief and a worker on loopback run `run_fn` under MultiWorkerMirroredStrategy."""
import glob
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

import numpy as np
import tensorflow as tf

from pipeline import portable_beam
from tests.helpers import ROOT, project_env
from transforms import rows

pytestmark = pytest.mark.e2e  # runs the pipeline, a server or a trainer end to end

# Runs run_fn as one task of the cluster; keeps the trained weights (to compare workers) and the log.
TASK_SCRIPT = """
import json, os, sys, time
import numpy as np
import settings
from absl import logging
from tfx import v1 as tfx
from trainer import outside_pipeline, task

out, examples, transform_graph, custom_config, work = sys.argv[1:6]
logging.set_verbosity(logging.INFO)
trained = {}
original_train = task.train
def keep_weights(*args, **kwargs):
    result = original_train(*args, **kwargs)
    trained["weights"] = [w.numpy() for w in result.ctr_model.weights]
    trained["epochs"] = len(result.validation.history)
    return result
task.train = keep_weights
task.run_fn(tfx.components.FnArgs(
    train_files=[outside_pipeline.split_files(examples, "train")],
    eval_files=[outside_pipeline.split_files(examples, "eval")], transform_output=transform_graph,
    serving_model_dir=work + "/serving", model_run_dir=work + "/model_run/1",
    custom_config=json.loads(custom_config)))
np.savez(out + ".npz", *trained["weights"])
print("EPOCHS", trained["epochs"], flush=True)
if json.loads(os.environ["TF_CONFIG"])["task"]["type"] != "chief":
    time.sleep(6)  # a worker's process outlives run_fn (the executor's own work) past a coordination heartbeat
"""
# What TensorFlow's coordination service logs when a task outlives the service's leader (the chief), or the
# leader outlives a task's last heartbeat: on Vertex AI such a task can fail the job.
COORDINATION_ERRORS = re.compile(r"Coordination agent is set to ERROR|set to ERROR in coordination service|"
                                 r"heartbeat timeout|StartAbort")


def test_chief_and_worker_train_in_step_and_only_the_chief_exports(demo_run, tmp_path):
    from settings import configs
    from pipeline import results

    output_root, _ = demo_run
    transformed, transform_graph = results.latest_transform_output(configs.PipelineConfig(output_root=output_root))
    # The train split in two files (one per worker: sharded by file), the eval split in its one (by data).
    examples = str(tmp_path / "examples")
    shutil.copytree(transformed, examples)
    (train_file,) = glob.glob(os.path.join(examples, "Split-train", "*"))
    records = list(tf.data.TFRecordDataset(train_file, compression_type="GZIP").as_numpy_iterator())
    os.remove(train_file)
    for i in range(2):
        with tf.io.TFRecordWriter(os.path.join(examples, "Split-train", f"part-{i}.gz"), "GZIP") as writer:
            for record in records[i::2]:
                writer.write(record)
    settings = configs.TrainerSettings(
        model=configs.ModelConfig(dnn_units=(16, 16), embedding_dim=4, num_cross_layers=2),
        loss=configs.LossConfig(name="combined_pair", alpha=0.7, beta_pos=0.5),
        train=configs.TrainConfig(batch_size=128, epochs=2, steps_per_epoch=4, eval_steps=2))
    ports = portable_beam.free_ports(2)
    cluster = {"chief": [f"localhost:{ports[0]}"], "worker": [f"localhost:{ports[1]}"]}
    work = str(tmp_path / "trainer")
    tasks = {}
    for task_type in ("chief", "worker"):
        env = project_env(TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": task_type, "index": 0}}))
        log = open(tmp_path / f"{task_type}.log", "w")
        tasks[task_type] = (subprocess.Popen(
            [sys.executable, "-c", TASK_SCRIPT, str(tmp_path / task_type), examples, transform_graph,
             json.dumps(settings.to_custom_config()), work],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT), log)
    for task_type, (process, log) in tasks.items():
        returncode = process.wait(timeout=600)
        log.close()
        output = (tmp_path / f"{task_type}.log").read_text()
        assert returncode == 0, f"{task_type} failed:\n{output[-6000:]}"
        assert not COORDINATION_ERRORS.search(output), f"{task_type}:\n{output[-6000:]}"
        assert re.search(r"\[trainer\] 2 replicas \(\w+\): global batch 256", output), output[-3000:]
        assert "[trainer] 2 file(s) for 2 workers: input sharded by FILE" in output
        assert "[trainer] 1 file(s) for 2 workers: input sharded by DATA" in output

    # Both workers ran the same schedule and ended with the same weights (synchronous all-reduce).
    epochs = {t: (tmp_path / f"{t}.log").read_text().split("EPOCHS ")[1].split()[0] for t in tasks}
    assert epochs["chief"] == epochs["worker"]
    chief, worker = np.load(tmp_path / "chief.npz"), np.load(tmp_path / "worker.npz")
    assert len(chief.files) == len(worker.files) > 10
    for name in chief.files:
        np.testing.assert_allclose(chief[name], worker[name], rtol=1e-5, atol=1e-6, err_msg=name)

    # Only the chief wrote the run's files and the export; the export serves.
    written = [os.path.relpath(os.path.join(d, n), work) for d, dirs, files in os.walk(work) for n in dirs + files]
    assert not [p for p in written if "worker" in p], written
    assert "model_run/1/best_weights.index" in written and "serving/saved_model.pb" in written
    assert not [p for p in written if p.startswith("resume/")], written  # finished: nothing left to resume
    serve = tf.saved_model.load(os.path.join(work, "serving")).signatures["serving_default"]
    label, row = rows.parse_row("\t".join(["1", "4", "", "3"] + ["2"] * 10 + ["68fd1e64"] * 26), "\t")
    probabilities = serve(examples=tf.constant(rows.to_examples([(label, row), (label, {})])))
    values = probabilities["probabilities"].numpy()
    assert values.shape == (2,) and np.all((values > 0) & (values < 1))
