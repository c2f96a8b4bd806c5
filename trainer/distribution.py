"""Training on a cluster named by `TF_CONFIG`: the strategy, how input is sharded, who exports, how tasks end.

Vertex AI (and Kubeflow's TFJob) give every task a `TF_CONFIG` naming the cluster and the task.
- No cluster (one process): the default strategy.
- Workers only (`chief` + `worker`): `tf.distribute.MultiWorkerMirroredStrategy`, synchronous data
  parallelism: one replica per worker, gradients all-reduced every step, every variable whole on every
  worker. `batch_size` is per replica; the global batch is `batch_size × replicas`.
- With parameter servers (`ps` tasks): `tf.distribute.ParameterServerStrategy`. Variables live on the
  parameter servers, each split along its rows into up to one shard per server, no shard under
  `--ps-min-shard-kb` (`variable_partitioner`), so the embedding table is spread across them and a
  worker fetches only the rows its batch looks up (`tf.nn.embedding_lookup` on the sharded table). The
  chief coordinates Keras `fit`: it schedules steps on the workers, which update the variables
  asynchronously, each step with `batch_size` examples. The `worker` and `ps` tasks serve (`serve`) until
  the chief's export lands. Keras needs the epoch's length (`--steps-per-epoch`) and the validation's
  (`--eval-steps`): each validation takes that many batches of the eval split from the workers, each
  worker's reader going on round the split where the last left it.

Input (`file_shard`, `shard_input`): under MultiWorkerMirroredStrategy each worker reads files of its own
(worker i of n: the sorted files i, i + n, ...) when there are at least as many files as workers, else
every file, keeping its share of each global batch (`AutoShardPolicy.DATA`); which one is logged. Under
parameter servers every worker reads the whole split, each in its own order (`trainer.data`,
`per_worker_order`).

- In-batch ranking terms (RankNet pairs, ListNet lists, contrastive pairs) are computed within each
  replica's batch of `batch_size` examples, never across replicas: the pairs are those of a
  single-process run with batch `batch_size`, the reported loss is the mean of the replicas' losses,
  and the gradient is the mean of their gradients (`trainer.losses` scales the loss for it).
- Decisions: the validation metrics are aggregated across replicas before a callback reads them, so
  the learning-rate decay and early stopping decide the same on every worker.
- Files: only the chief writes the run's files and exports; another worker writes its copies into a
  temporary folder of its own (removed at the end), then waits for the chief's export, so TFX's
  check that `run_fn` produced a model holds on every worker.
- Shutdown (`finish`, MultiWorkerMirroredStrategy): the chief leads TensorFlow's coordination service,
  which every other task heartbeats until its process ends. A task that outlives the chief logs its
  heartbeat failing (`Coordination agent is set to ERROR: UNAVAILABLE`), which can fail a Vertex AI job;
  the chief in turn flags a task silent for the heartbeat timeout (10 s). So every task meets the others
  once the export is there, and the chief ends last: it waits until every other task's server has closed,
  for at most `SHUTDOWN_WAIT_SECONDS`, under that timeout.
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

from settings.configs import TrainConfig

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


def uses_parameter_servers() -> bool:
    """True when `TF_CONFIG`'s cluster has `ps` tasks."""
    return bool(_tf_config().get("cluster", {}).get("ps"))


def serves_coordinator() -> bool:
    """True for a `worker` or `ps` task of a parameter-server cluster: it serves the chief, trains nothing itself."""
    return uses_parameter_servers() and _tf_config().get("task", {}).get("type") in ("worker", "ps")


def make_strategy(train: TrainConfig) -> tf.distribute.Strategy:
    """The strategy for `TF_CONFIG`'s cluster (module docstring); `train.ps_min_shard_kb` sizes the parameter
    servers' shards. Call it before TensorFlow runs anything else: collective ops are configured once per process."""
    if uses_parameter_servers():
        if not (train.steps_per_epoch and train.eval_steps):
            raise ValueError("training with parameter servers needs --steps-per-epoch and --eval-steps: Keras fit "
                             "under ParameterServerStrategy cannot find where an epoch or a validation ends")
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        partitioner = tf.distribute.experimental.partitioners.MinSizePartitioner(
            min_shard_bytes=train.ps_min_shard_kb << 10, max_shards=len(resolver.cluster_spec().as_dict()["ps"]))
        return tf.distribute.ParameterServerStrategy(resolver, variable_partitioner=partitioner)
    if is_multi_worker():
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def barrier(strategy: tf.distribute.Strategy) -> None:
    """Returns once every worker of a MultiWorkerMirroredStrategy has reached it (an all-reduce of a constant);
    at once under any other strategy, where only this process runs the Trainer's code."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.constant(1.0)), axis=None)


def _input_workers() -> List[Tuple[str, int]]:
    """The tasks that read input under MultiWorkerMirroredStrategy, in its order: the chief, then the workers."""
    cluster = _tf_config().get("cluster", {})
    return [(name, index) for name in ("chief", "master", "worker") for index in range(len(cluster.get(name, [])))]


def file_shard(files: int, strategy: tf.distribute.Strategy) -> Optional[Tuple[int, int]]:
    """(this worker's index, workers) when each worker of a MultiWorkerMirroredStrategy is to read files of
    its own (`files` at least the workers), else None; logs the choice (module docstring)."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return None
    workers = _input_workers()
    by_file = files >= len(workers)
    logging.info("[trainer] %d file(s) for %d workers: input sharded by %s", files, len(workers),
                 "FILE" if by_file else "DATA")
    task = _tf_config().get("task", {})
    return (workers.index((task.get("type"), int(task.get("index", 0)))), len(workers)) if by_file else None


def shard_input(dataset: tf.data.Dataset, shard: Optional[Tuple[int, int]],
                strategy: tf.distribute.Strategy) -> tf.data.Dataset:
    """`dataset` as MultiWorkerMirroredStrategy is to distribute it: as it is when it reads this worker's
    files alone (`shard`, `file_shard`), else each worker keeping its share of every global batch
    (`AutoShardPolicy.DATA`). Unchanged under any other strategy (parameter servers: every worker reads
    every file)."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return dataset
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.OFF if shard else tf.data.experimental.AutoShardPolicy.DATA)
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


def serve(serving_model_dir: str, poll_seconds: float = 2.0, chief_gone_seconds: float = 60.0) -> None:
    """A parameter-server cluster's `worker` or `ps` task: serves the chief's coordinator until the chief's
    export is in `serving_model_dir`; raises when the chief, once seen, stays away `chief_gone_seconds`
    without exporting, or is never seen within `EXPORT_WAIT_SECONDS`."""
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    server = tf.distribute.Server(resolver.cluster_spec(), job_name=resolver.task_type, task_index=resolver.task_id,
                                  protocol=resolver.rpc_layer or "grpc", start=True)
    logging.info("[trainer] %s %d serves the chief at %s", resolver.task_type, resolver.task_id, server.target)
    chief_host, chief_port = _address(resolver.cluster_spec().as_dict()["chief"][0])
    marker = os.path.join(serving_model_dir, "saved_model.pb")
    started, last_seen = time.time(), None
    while not tf.io.gfile.exists(marker):
        now = time.time()
        if _listening(chief_host, chief_port):
            last_seen = now
        elif last_seen is not None and now - last_seen > chief_gone_seconds:
            raise RuntimeError(f"the chief stopped without exporting to {serving_model_dir}; see its log")
        elif last_seen is None and now - started > EXPORT_WAIT_SECONDS:
            raise TimeoutError(f"no chief at {chief_host}:{chief_port} within {EXPORT_WAIT_SECONDS} s")
        time.sleep(poll_seconds)


def _address(address: str) -> Tuple[str, int]:
    host, port = address.rsplit(":", 1)
    return host, int(port)


def _other_tasks() -> List[Tuple[str, int]]:
    """(host, port) of every task of the cluster but this one (the evaluator takes no part)."""
    config = _tf_config()
    me = (config.get("task", {}).get("type"), int(config.get("task", {}).get("index", 0)))
    return [_address(address) for name, addresses in config.get("cluster", {}).items() if name != "evaluator"
            for index, address in enumerate(addresses) if (name, index) != me]


def _listening(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1.0)
        return probe.connect_ex((host, port)) == 0


def finish(strategy: tf.distribute.Strategy, serving_model_dir: str, timeout: float = SHUTDOWN_WAIT_SECONDS) -> None:
    """Ends a cluster's `run_fn` in the order TensorFlow's coordination service expects (module docstring):
    another worker waits for the chief's export, every task meets the others, and the chief returns once
    the other tasks' processes have ended (or `timeout` passed, which it logs). Alone, or as a parameter-server
    cluster's chief, returns at once (that cluster's other tasks end on the export, `serve`)."""
    if not is_multi_worker() or uses_parameter_servers():
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
