"""Shared test setup: the project root importable (its `settings` selects Keras 2), small data fixtures."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import settings  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import  (before TensorFlow loads)
import glob  # pylint: disable=g-import-not-at-top
import subprocess  # pylint: disable=g-import-not-at-top

import pytest  # pylint: disable=g-import-not-at-top

from tests.helpers import DEMO_ROWS, SMALL_MODEL, TRAIN_FILES, project_env  # pylint: disable=g-import-not-at-top


@pytest.fixture(scope="session")
def generated_tsv(tmp_path_factory):
    """500 generated Criteo rows and the generator's report."""
    from ingestion import generate

    path = str(tmp_path_factory.mktemp("gen") / "criteo.tsv")
    report = generate.generate(path, 500, ctr=0.256, seed=3)
    return path, report


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


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    output_root = str(tmp_path_factory.mktemp("demo"))
    command = [sys.executable, "-m", "demo", "--rows", str(DEMO_ROWS), "--output-root", output_root,
               "--min-eval-auc", "0.0"] + SMALL_MODEL
    proc = subprocess.run(command, cwd=ROOT, env=project_env(), capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return output_root, proc.stdout


@pytest.fixture(scope="session")
def exported_by_loss(demo_run, tmp_path_factory):
    """{run: SavedModel path}: one model per loss, plus BCE with negative sampling (r = 0.5),
    each trained by run_fn for 3 steps on the demo pipeline's Transform output."""
    from settings import configs
    from pipeline import results
    from trainer import losses, outside_pipeline

    runs = {name: {"name": name} for name in losses.LOSSES}
    runs["negative_sampling"] = {"name": "bce", "negative_sampling_rate": 0.5}
    output_root, _ = demo_run
    transform_output = results.latest_transform_output(configs.PipelineConfig(output_root=output_root))
    models = {}
    for run, loss_overrides in runs.items():
        trainer_settings = configs.TrainerSettings(
            model=configs.ModelConfig(dnn_units=(16, 16), embedding_dim=4, num_cross_layers=2),
            loss=configs.LossConfig(alpha=0.7, beta_pos=0.1, **loss_overrides),
            train=configs.TrainConfig(batch_size=256, epochs=1, steps_per_epoch=3, eval_steps=2))
        models[run] = outside_pipeline.train_and_export(transform_output, trainer_settings,
                                                        str(tmp_path_factory.mktemp(run)))
    return models
