"""Helpers and constants that several test modules share (fixtures live in conftest.py)."""
import contextlib
import dataclasses
import glob
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import tensorflow as tf

from ingestion import convert
from settings import configs
from trainer import losses
from transforms import features, rows, splits

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def good_row(label="1", i1="5", c1="68fd1e64", separator="\t"):
    """A valid raw Criteo row (I2 and C26 missing)."""
    return separator.join([label, i1, "", "0"] + ["7"] * 10 + [c1] * 25 + [""])


def split_examples(output_dir, split):
    """The `tf.Example`s an ingestion wrote to one split."""
    files = glob.glob(os.path.join(output_dir, splits.split_dir_name(split), "*.tfrecord.gz"))
    return [tf.train.Example.FromString(r.numpy())
            for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def dead_letters(output_dir):
    """The dead letters an ingestion wrote, as dicts."""
    letters = []
    for path in glob.glob(os.path.join(output_dir, convert.DEAD_LETTER_DIR, "*")):
        with open(path) as f:
            letters += [json.loads(line) for line in f]
    return letters


DATA_DIR = os.path.join(ROOT, "tests", "data")


REAL_SAMPLE = os.path.join(DATA_DIR, "criteo_sample_deepctr.csv")


TRAIN_FILES = 2


def examples_artifact(uri, payload=None, file_format="tfrecords_gzip"):
    """An Examples artifact at `uri` holding our splits as `payload` (default `tf.Example`) in `file_format`."""
    from tfx.components.util import examples_utils
    from tfx.proto import example_gen_pb2
    from tfx.types import standard_artifacts

    from transforms.splits import SPLITS

    examples = standard_artifacts.Examples()
    examples.uri = uri
    examples.split_names = json.dumps(list(SPLITS))
    examples_utils.set_payload_format(examples, example_gen_pb2.FORMAT_TF_EXAMPLE if payload is None else payload)
    examples_utils.set_file_format(examples, file_format)
    return examples


DEMO_ROWS = 2500


SMALL_MODEL = ["--dnn-units", "32,32", "--embedding-dim", "4", "--epochs", "3", "--batch-size", "256"]


def project_env(**extra):
    """The environment of a process a test starts. Without pytest's PYTEST_CURRENT_TEST: it holds the test's
    id, parameters included, and one environment string over 128 KiB makes the start fail (E2BIG)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("PYTEST_CURRENT_TEST", None)
    env.update(extra)
    return env


def free_port() -> int:
    from pipeline import portable_beam  # pylint: disable=import-outside-toplevel

    return portable_beam.free_ports(1)[0]


def read_examples(path_pattern: str):
    """The `tf.Example`s of the gzipped TFRecord files `path_pattern` matches, files in name order."""
    import glob  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    files = sorted(glob.glob(path_pattern))
    assert files, path_pattern
    return [tf.train.Example.FromString(r) for r in tf.data.TFRecordDataset(files, compression_type="GZIP")
            .as_numpy_iterator()]


def _feature_values(example):
    values = {}
    for key, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        values[key] = list(getattr(feature, kind).value) if kind else []
    return values


def assert_same_examples(ours, theirs):
    """Same examples in the same order; floats to 1e-6 (TF's vectorised log1p may differ in the last
    bit with the batch boundaries), everything else exactly."""
    import numpy as np  # pylint: disable=import-outside-toplevel

    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        a, b = _feature_values(a), _feature_values(b)
        assert a.keys() == b.keys()
        for key in a:
            if a[key] and isinstance(a[key][0], float):
                np.testing.assert_allclose(a[key], b[key], rtol=1e-6, err_msg=key)
            else:
                assert a[key] == b[key], key


@contextlib.contextmanager
def running_server(models, log_path, *flags, env=None):
    """The server CLI on loopback over `models` ({name: base path}), its output in `log_path`; yields its URL."""
    from serving.client import ServingClient  # pylint: disable=import-outside-toplevel

    port = free_port()
    command = [sys.executable, "-m", "serving.server", "--rest_api_port", str(port), *flags]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command + [f"--model={k}={v}" for k, v in models.items()], cwd=ROOT,
                                env=env or project_env(), stdout=log, stderr=subprocess.STDOUT)
        url, deadline = f"http://127.0.0.1:{port}", time.time() + 120
        try:
            while True:
                try:
                    ServingClient(url, next(iter(models))).status()
                    break
                except (ConnectionError, OSError):
                    if proc.poll() is not None or time.time() > deadline:
                        pytest.fail("server did not start:\n" + open(log_path).read()[-3000:])
                    time.sleep(0.5)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=30)


SMALL_VOCAB = {name: 7 + i for i, name in enumerate(features.CATEGORICAL_FEATURES)}


def transformed_batch(n=16, seed=0):
    rng = np.random.default_rng(seed)
    x = {features.transformed_name(k): tf.constant(rng.integers(0, SMALL_VOCAB[k], n))
         for k in features.CATEGORICAL_FEATURES}
    x.update({features.transformed_name(k): tf.constant(rng.random(n), tf.float32) for k in features.NUMERIC_FEATURES})
    return x, tf.constant(rng.integers(0, 2, (n, 1)), tf.float32)


ENUMERATED = [(section, field) for section in configs.SECTIONS
              for field in dataclasses.fields(getattr(configs.PipelineConfig(), section))
              if field.metadata.get("choices")]


ALL_LOSSES = list(losses.LOSSES)
Y = np.array([1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0])  # labels of a small hand-checked batch, and its logits
Z = np.array([0.3, -1.2, 0.5, -0.4, 2.0, -3.0, 0.1])


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def bce(y, z, beta_pos=1.0):
    p = sigmoid(z)
    return -np.mean(beta_pos * y * np.log(p) + (1 - y) * np.log(1 - p))


def value(name, y, y_pred, sample_weight=None, **params):
    return float(losses.get_loss(name, **params)(tf.constant(y, tf.float32), tf.constant(y_pred, tf.float32),
                                                 sample_weight=sample_weight))


def y_pred_for(name, z=Z, representation=None):
    """What each loss reads: logits, JRC's [z0, z1], or [z, representation]."""
    cls = losses.LOSSES[name]
    if cls.INPUT == losses.TWO_LOGITS:
        return np.stack([-z / 2, z / 2], axis=1)  # z1 - z0 = z
    if cls.INPUT == losses.LOGIT_AND_REPRESENTATION:
        rep = representation if representation is not None else np.random.default_rng(0).normal(size=(len(z), 4))
        return np.concatenate([z[:, None], rep], axis=1)
    return z


SERVING_ROWS = [  # raw rows with missing features, one unseen category and one row with nothing at all
    {"I1": 3, "I2": -1, "I5": 1432, "C1": "68fd1e64", "C2": "80e26c9b", "C9": "a73ee510"},
    {"I3": 0, "C1": "never-seen-token", "C26": "e8b83407"},
    {},
]


def versioned(base, export_dir, version=1):
    os.makedirs(base, exist_ok=True)
    shutil.copytree(export_dir, os.path.join(base, str(version)))
    return str(base)


def copy_in_atomically(base, source_version, version):
    staging = os.path.join(base, f".tmp-{version}")  # not a version number: ignored while it is written
    shutil.copytree(os.path.join(base, str(source_version)), staging)
    os.rename(staging, os.path.join(base, str(version)))


def http(url, method="GET", body=None):
    request = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def raw_examples(raw_rows):
    return rows.to_examples([(0, row) for row in raw_rows])


def evaluate(executor_class, eval_config, config, out_dir, baseline=False, module_path=None,
             beam_pipeline_args=None):
    """Runs `executor_class` on the newest model and examples of `config`'s pipeline; returns its metrics
    {(name, model, is a difference): value}, calibration plots {model: buckets} and blessing files."""
    import tensorflow_model_analysis as tfma  # pylint: disable=import-outside-toplevel
    from google.protobuf import json_format  # pylint: disable=import-outside-toplevel
    from tfx.dsl.components.base.base_beam_executor import BaseBeamExecutor  # pylint: disable=import-outside-toplevel
    from tfx.types import standard_artifacts  # pylint: disable=import-outside-toplevel

    from pipeline import pipeline as pipeline_lib, results  # pylint: disable=import-outside-toplevel
    model, schema = standard_artifacts.Model(), standard_artifacts.Schema()
    model.uri, schema.uri = (results.latest_output(config, "Trainer", "model"),
                            results.latest_output(config, "ImportSchemaGen", "schema"))
    evaluation, blessing = standard_artifacts.ModelEvaluation(), standard_artifacts.ModelBlessing()
    evaluation.uri, blessing.uri = os.path.join(out_dir, "evaluation"), os.path.join(out_dir, "blessing")
    examples = examples_artifact(results.latest_output(config, results.EXAMPLE_GEN, "examples"))
    properties = {"eval_config": json_format.MessageToJson(eval_config),
                  "example_splits": json.dumps([pipeline_lib.EVALUATION_SPLIT])}
    if module_path:
        properties["module_path"] = module_path
    inputs = {"examples": [examples], "model": [model], "schema": [schema]}
    if baseline:
        inputs["baseline_model"] = [model]
    context = BaseBeamExecutor.Context(beam_pipeline_args=beam_pipeline_args) if beam_pipeline_args else None
    executor_class(context).Do(inputs, {"evaluation": [evaluation], "blessing": [blessing]}, properties)
    [result] = tfma.load_metrics(evaluation.uri)
    metrics = {(kv.key.name, kv.key.model_name, kv.key.is_diff):
               kv.value.double_value.value for kv in result.metric_keys_and_values}
    [plots] = tfma.load_plots(evaluation.uri)
    plots = {kv.key.model_name: kv.value.calibration_histogram_buckets for kv in plots.plot_keys_and_values}
    return metrics, plots, sorted(os.listdir(blessing.uri))


class Interrupt(tf.keras.callbacks.Callback):
    def __init__(self, after_epoch):
        super().__init__()
        self.after_epoch = after_epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.after_epoch:
            raise KeyboardInterrupt("simulated preemption")


class EpochRecorder(tf.keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


ALLOWED = {
    "settings": set(),
    "equations": {"settings"},
    "runtime": {"settings"},
    "transforms": {"settings"},
    "ingestion": {"settings", "runtime", "transforms"},
    "serving": {"settings", "runtime", "transforms"},
    "trainer": {"settings", "equations", "transforms", "serving"},
    "components": {"settings", "equations", "runtime", "transforms", "ingestion"},
    "pipeline": {"settings", "runtime", "transforms", "ingestion", "components"},
    "demo": {"settings", "runtime", "transforms", "ingestion", "pipeline"},
    "benchmarks": {"settings", "equations", "runtime", "transforms", "ingestion", "serving", "trainer", "components",
                   "pipeline"},
    "experiments": {"settings", "equations", "runtime", "transforms", "ingestion", "serving", "trainer", "pipeline"},
}
