"""Shared test setup: the project root importable (its `settings` selects Keras 2), small data fixtures."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import settings  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import  (before TensorFlow loads)
import contextlib  # pylint: disable=g-import-not-at-top
import glob  # pylint: disable=g-import-not-at-top
import json  # pylint: disable=g-import-not-at-top
import subprocess  # pylint: disable=g-import-not-at-top
import time  # pylint: disable=g-import-not-at-top

import pytest  # pylint: disable=g-import-not-at-top

DATA_DIR = os.path.join(ROOT, "tests", "data")
REAL_SAMPLE = os.path.join(DATA_DIR, "criteo_sample_deepctr.csv")


@pytest.fixture(scope="session")
def generated_tsv(tmp_path_factory):
    """500 generated Criteo rows and the generator's report."""
    from ingestion import generate

    path = str(tmp_path_factory.mktemp("gen") / "criteo.tsv")
    report = generate.generate(path, 500, ctr=0.256, seed=3)
    return path, report


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


@pytest.fixture(scope="session")
def ingested(generated_tsv, tmp_path_factory):
    """The 500 generated rows ingested, the train split re-written as two files; and the schema folder."""
    import shutil

    import tensorflow as tf

    from ingestion import convert
    from transforms.schema import SCHEMA_PATH

    root = tmp_path_factory.mktemp("ingested")
    examples = str(root / "examples")
    convert.run([generated_tsv[0]], examples)
    train_dir = os.path.join(examples, "Split-train")
    (source,) = glob.glob(os.path.join(train_dir, "*"))
    records = list(tf.data.TFRecordDataset(source, compression_type="GZIP").as_numpy_iterator())
    os.remove(source)
    for i in range(TRAIN_FILES):
        path = os.path.join(train_dir, f"data_tfrecord-{i:05d}-of-{TRAIN_FILES:05d}.gz")
        with tf.io.TFRecordWriter(path, "GZIP") as writer:
            for record in records[i::TRAIN_FILES]:
                writer.write(record)
    schema_dir = root / "schema"
    schema_dir.mkdir()
    shutil.copy(SCHEMA_PATH, schema_dir)
    return examples, str(schema_dir)


ROWS = 2500
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


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    output_root = str(tmp_path_factory.mktemp("demo"))
    command = [sys.executable, "-m", "pipeline.demo", "--rows", str(ROWS), "--output-root", output_root,
               "--min-eval-auc", "0.0"] + SMALL_MODEL
    proc = subprocess.run(command, cwd=ROOT, env=project_env(), capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return output_root, proc.stdout


@pytest.fixture(scope="session")
def exported_by_loss(demo_run, tmp_path_factory):
    """{run: SavedModel path}: one model per loss, plus BCE with negative sampling (r = 0.5),
    each trained by run_fn for 3 steps on the demo pipeline's Transform output."""
    from settings import configs
    from trainer import losses, outside_pipeline

    runs = {name: {"name": name} for name in losses.LOSSES}
    runs["negative_sampling"] = {"name": "bce", "negative_sampling_rate": 0.5}
    output_root, _ = demo_run
    pipeline_root = configs.PipelineConfig(output_root=output_root).pipeline_root
    models = {}
    for run, loss_overrides in runs.items():
        settings = configs.TrainerSettings(
            model=configs.ModelConfig(dnn_units=(16, 16), embedding_dim=4, num_cross_layers=2),
            loss=configs.LossConfig(alpha=0.7, beta_pos=0.1, **loss_overrides),
            train=configs.TrainConfig(batch_size=256, epochs=1, steps_per_epoch=3, eval_steps=2))
        models[run] = outside_pipeline.train_and_export(pipeline_root, settings, str(tmp_path_factory.mktemp(run)))
    return models
