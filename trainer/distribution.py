"""Multi-worker training from `TF_CONFIG`: the strategy, who exports, where the other workers write.

A `TF_CONFIG` that names a cluster of more than one task (Vertex AI sets it for a multi-pool custom
job and names the first pool `chief`; Kubeflow's TFJob does the same) trains under
`tf.distribute.MultiWorkerMirroredStrategy`: synchronous data parallelism, one replica per worker,
gradients all-reduced every step. Otherwise the default strategy (one process) applies.

- Batch: `batch_size` is per replica; the global batch is `batch_size × replicas`.
- Data: each worker reads every file and keeps its share of each global batch (`AutoShardPolicy.DATA`).
  Sharding by file would need at least as many files as workers, and Transform writes as many as
  Beam decides (one per split at the demo's size), so a worker could get nothing.
- In-batch ranking terms (RankNet pairs, ListNet lists, contrastive pairs) are computed within each
  replica's batch of `batch_size` examples, never across replicas: the pairs are those of a
  single-process run with batch `batch_size`, the reported loss is the mean of the replicas' losses,
  and the gradient is the mean of their gradients (`trainer.losses` scales the loss for it).
- Decisions: the validation metrics are aggregated across replicas before a callback reads them, so
  the learning-rate decay and early stopping decide the same on every worker.
- Files: only the chief writes the run's files and exports; another worker writes its copies into a
  temporary folder of its own (removed at the end), then waits for the chief's export, so TFX's
  check that `run_fn` produced a model holds on every worker.
- Shutdown (`finish`): the chief leads TensorFlow's coordination service, which every other task
  heartbeats until its process ends. A task that outlives the chief logs its heartbeat failing
  (`Coordination agent is set to ERROR: UNAVAILABLE`), which can fail a Vertex AI job; the chief in turn
  flags a task silent for the heartbeat timeout (10 s). So every task meets the others once the export is
  there, and the chief ends last: it waits until every other task's server has closed, for at most
  `SHUTDOWN_WAIT_SECONDS`, under that timeout.
"""
import contextlib
import json
import os
import shutil
import socket
import tempfile
import time
from typing import Iterator, List, Optional, Tuple

from absl import logging

import tensorflow as tf

EXPORT_WAIT_SECONDS = 1800
SHUTDOWN_WAIT_SECONDS = 8.0  # under the coordination service's heartbeat timeout (10 s)


def _tf_config() -> dict:
    return json.loads(os.environ.get("TF_CONFIG") or "{}")


def is_multi_worker() -> bool:
    """True when `TF_CONFIG` names a cluster of more than one task."""
    cluster = _tf_config().get("cluster", {})
    return sum(len(tasks) for name, tasks in cluster.items() if name != "evaluator") > 1


def is_chief() -> bool:
    """The task that writes: `chief` (or `master`), else worker 0 of a cluster without one; a lone process."""
    config = _tf_config()
    task = config.get("task", {})
    if not is_multi_worker():
        return True
    if task.get("type") in ("chief", "master"):
        return True
    has_chief = any(name in config["cluster"] for name in ("chief", "master"))
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0 and not has_chief


def make_strategy() -> tf.distribute.Strategy:
    """MultiWorkerMirroredStrategy for a cluster in `TF_CONFIG`, else the default strategy.
    Call it before TensorFlow runs anything else: collective ops are configured once per process."""
    if is_multi_worker():
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def barrier(strategy: tf.distribute.Strategy) -> None:
    """Returns once every worker of `strategy` has reached it (an all-reduce of a constant); at once alone."""
    strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.constant(1.0)), axis=None)


def shard_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """The dataset with `AutoShardPolicy.DATA` (see the module docstring)."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


@contextlib.contextmanager
def writable_dir(path: str) -> Iterator[str]:
    """`path` on the chief; elsewhere a temporary folder of this worker's own, removed afterwards."""
    if is_chief():
        yield path
        return
    own = tempfile.mkdtemp(prefix="rankloss_worker_")
    try:
        yield own
    finally:
        shutil.rmtree(own, ignore_errors=True)


def wait_for_export(serving_model_dir: str, timeout: Optional[float] = None) -> None:
    """Blocks until the chief's SavedModel is in `serving_model_dir` (a folder all workers share)."""
    deadline = time.time() + (EXPORT_WAIT_SECONDS if timeout is None else timeout)
    marker = os.path.join(serving_model_dir, "saved_model.pb")
    while not tf.io.gfile.exists(marker):
        if time.time() > deadline:
            raise TimeoutError(f"the chief exported nothing to {serving_model_dir} within the wait; see its log")
        time.sleep(2)


def _other_tasks() -> List[Tuple[str, int]]:
    """(host, port) of every task of the cluster but this one (the evaluator takes no part)."""
    config = _tf_config()
    me = (config.get("task", {}).get("type"), int(config.get("task", {}).get("index", 0)))
    return [(address.rsplit(":", 1)[0], int(address.rsplit(":", 1)[1]))
            for name, addresses in config.get("cluster", {}).items() if name != "evaluator"
            for index, address in enumerate(addresses) if (name, index) != me]


def _listening(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1.0)
        return probe.connect_ex((host, port)) == 0


def finish(strategy: tf.distribute.Strategy, serving_model_dir: str, timeout: float = SHUTDOWN_WAIT_SECONDS) -> None:
    """Ends a cluster's `run_fn` in the order TensorFlow's coordination service expects (module docstring):
    another worker waits for the chief's export, every task meets the others, and the chief returns once
    the other tasks' processes have ended (or `timeout` passed, which it logs). Alone, returns at once."""
    if not is_multi_worker():
        return
    if not is_chief():
        wait_for_export(serving_model_dir)
    barrier(strategy)
    if not is_chief():
        return
    deadline, waiting = time.time() + timeout, _other_tasks()
    while waiting and time.time() < deadline:
        waiting = [task for task in waiting if _listening(*task)]
        if waiting:
            time.sleep(0.2)
    if waiting:
        logging.warning("[trainer] the chief ends while %s still run (%.0f s after the last barrier)", waiting, timeout)
