"""Who is the chief under `TF_CONFIG`, and what an in-batch ranking loss means across replicas."""
import json
import subprocess
import sys

import pytest

from trainer import distribution
from tests.helpers import ROOT, project_env

pytestmark = pytest.mark.e2e  # runs the pipeline, a server or a trainer end to end


def _tf_config(monkeypatch, cluster, task_type, index=0):
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}}))


def test_one_process_without_tf_config_is_its_own_chief(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert not distribution.is_multi_worker() and distribution.is_chief()


@pytest.mark.parametrize("task_type,index,chief", [("chief", 0, True), ("worker", 0, False), ("worker", 1, False)])
def test_vertex_names_the_first_pool_chief(monkeypatch, task_type, index, chief):
    _tf_config(monkeypatch, {"chief": ["a:1"], "worker": ["b:1", "c:1"]}, task_type, index)
    assert distribution.is_multi_worker() and distribution.is_chief() == chief


@pytest.mark.parametrize("index,chief", [(0, True), (1, False)])
def test_without_a_chief_worker_zero_writes(monkeypatch, index, chief):
    _tf_config(monkeypatch, {"worker": ["a:1", "b:1"]}, "worker", index)
    assert distribution.is_chief() == chief


def test_a_cluster_of_one_is_not_multi_worker(monkeypatch):
    _tf_config(monkeypatch, {"worker": ["a:1"]}, "worker")
    assert not distribution.is_multi_worker() and distribution.is_chief()


def test_the_chief_waits_for_every_other_task_but_the_evaluator_and_gives_up_after_its_timeout(monkeypatch):
    import socket  # pylint: disable=import-outside-toplevel
    import time  # pylint: disable=import-outside-toplevel

    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    with socket.socket() as still_running, socket.socket() as gone:
        still_running.bind(("127.0.0.1", 0))
        still_running.listen()
        gone.bind(("127.0.0.1", 0))  # bound, not listening: a task whose process has ended
        cluster = {"chief": ["127.0.0.1:1"], "worker": [f"127.0.0.1:{still_running.getsockname()[1]}",
                                                       f"127.0.0.1:{gone.getsockname()[1]}"], "evaluator": ["e:9"]}
        _tf_config(monkeypatch, cluster, "chief")
        assert sorted(distribution._other_tasks()) == sorted(  # pylint: disable=protected-access
            ("127.0.0.1", int(a.rsplit(":", 1)[1])) for a in cluster["worker"])
        started = time.time()
        distribution.finish(tf.distribute.get_strategy(), "unused", timeout=1.0)
        assert 1.0 <= time.time() - started < 5.0     # the listening worker kept it waiting until the timeout
        still_running.close()
        started = time.time()
        distribution.finish(tf.distribute.get_strategy(), "unused", timeout=10.0)
        assert time.time() - started < 5.0            # both ended: it returns at once


# Two replicas on two logical CPUs: one compiled train step of Combined-Pair on a global batch whose
# halves go to different replicas, against the same step computed by hand.
REPLICA_SCRIPT = """
import numpy as np
import settings
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from trainer import losses

rng = np.random.default_rng(0)
x = rng.normal(size=(8, 3)).astype(np.float32)
y = np.array([1, 0, 0, 0, 1, 1, 0, 0], np.float32)[:, None]   # replica 0: 1 positive, replica 1: 2
w0 = rng.normal(size=(3, 1)).astype(np.float32)
loss = losses.CombinedPair(alpha=0.5, beta_pos=1.0)

def per_replica_mean(w):
    return 0.5 * (loss(y[:4], x[:4] @ w) + loss(y[4:], x[4:] @ w))

w = tf.Variable(w0)
with tf.GradientTape() as tape:
    expected_loss = per_replica_mean(w)
expected_w = w0 - tape.gradient(expected_loss, w).numpy()
global_loss = float(loss(y, x @ w0))

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    model = tf.keras.Sequential([tf.keras.layers.Dense(1, use_bias=False, input_shape=(3,))])
    model.compile(optimizer=tf.keras.optimizers.SGD(1.0), loss=losses.CombinedPair(alpha=0.5, beta_pos=1.0))
model.set_weights([w0])
evaluated = model.evaluate(x, y, batch_size=8, verbose=0)
model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
print(float(expected_loss), evaluated, global_loss)
np.testing.assert_allclose(evaluated, float(expected_loss), rtol=1e-5)
assert abs(global_loss - float(expected_loss)) > 1e-3, "the halves must make the pair sets differ"
np.testing.assert_allclose(model.get_weights()[0], expected_w, rtol=1e-5)
print("OK")
"""


def test_pairs_are_within_each_replica_and_the_step_follows_the_mean_of_the_replicas_losses():
    proc = subprocess.run([sys.executable, "-c", REPLICA_SCRIPT], cwd=ROOT, env=project_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("OK"), proc.stdout[-2000:] + proc.stderr[-4000:]
