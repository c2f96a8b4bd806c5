"""run_fn's regime on real Transform output: repeatable with a seed, resumable after an interruption."""
import os

import numpy as np
import pytest
import tensorflow as tf

from settings import configs
from pipeline import results
from trainer import outside_pipeline, schedule
from tests.helpers import EpochRecorder, Interrupt

pytestmark = pytest.mark.e2e  # runs the pipeline, a server or a trainer end to end


def _settings(seed=2024, epochs=2):
    return configs.TrainerSettings(
        model=configs.ModelConfig(dnn_units=(16, 16), embedding_dim=4, num_cross_layers=2),
        loss=configs.LossConfig(name="combined_pair"),
        train=configs.TrainConfig(batch_size=256, epochs=epochs, steps_per_epoch=3, eval_steps=2, seed=seed,
                                  early_stop_patience=5))


def _variables(export_dir):
    return [v.numpy() for v in tf.saved_model.load(export_dir).variables]


@pytest.fixture(scope="module")
def transform_output(demo_run):
    return results.latest_transform_output(configs.PipelineConfig(output_root=demo_run[0]))


def test_same_seed_repeats_a_run_exactly_and_another_seed_does_not(transform_output, tmp_path):
    first, again, other = (
        _variables(outside_pipeline.train_and_export(transform_output, _settings(seed), str(tmp_path / n)))
        for n, seed in (("a", 7), ("b", 7), ("c", 8)))
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, c) for a, c in zip(first, other))


def test_an_interrupted_trainer_resumes_from_its_last_epoch(transform_output, tmp_path, monkeypatch):
    settings, work = _settings(epochs=3), str(tmp_path / "trainer")
    original = schedule.callbacks
    monkeypatch.setattr(schedule, "callbacks", lambda *a, **k: original(*a, **k) + [Interrupt(after_epoch=1)])
    with pytest.raises(KeyboardInterrupt):
        outside_pipeline.train_and_export(transform_output, settings, work)
    resume_root = os.path.join(work, "resume")
    assert len(os.listdir(resume_root)) == 1          # the backup of the interrupted run

    recorder = EpochRecorder()
    monkeypatch.setattr(schedule, "callbacks", lambda *a, **k: original(*a, **k) + [recorder])
    export = outside_pipeline.train_and_export(transform_output, settings, work)
    assert recorder.epochs == [1, 2]                   # epoch 1 was not trained again
    assert os.listdir(resume_root) == []               # a finished run leaves nothing to resume
    assert len(_variables(export)) > 0


class _ScriptedValidation(tf.keras.callbacks.Callback):
    """Replaces each epoch's val_auc (before the schedule reads it) with a scripted value."""

    def __init__(self, values):
        super().__init__()
        self.values = values

    def on_epoch_end(self, epoch, logs=None):
        logs["val_auc"] = self.values[epoch]


class _TableAt(tf.keras.callbacks.Callback):
    """Keeps the embedding table's value at the end of one epoch."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch, self.table = epoch, None

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            self.table = next(v.numpy() for v in self.model.weights if "categorical_table" in v.name)


@pytest.mark.parametrize("attempts", [2, 3])
def test_a_trainer_resumed_in_new_executions_exports_the_best_epoch_from_before_the_interruption(
        transform_output, tmp_path, monkeypatch, attempts):
    """Each attempt is a new TFX execution (its own model_run and serving folders, the resume state shared);
    every attempt but the last is interrupted after one more epoch. The best epoch is the first, so the
    last attempt must load a checkpoint an earlier execution wrote."""
    from tfx.components.trainer.fn_args_utils import FnArgs  # pylint: disable=import-outside-toplevel

    from trainer import task  # pylint: disable=import-outside-toplevel

    epochs = attempts + 1
    settings = _settings(epochs=epochs)
    examples, transform_graph = transform_output
    scripted = _ScriptedValidation([0.9] + [0.5] * epochs)
    best = _TableAt(epoch=1)
    original = schedule.callbacks
    recorder = EpochRecorder()
    for attempt in range(1, attempts + 1):
        last = attempt == attempts
        extra = [recorder] if last else [Interrupt(after_epoch=attempt + 1)]
        monkeypatch.setattr(schedule, "callbacks",
                            lambda *a, extra=extra, **k: [scripted, best] + original(*a, **k) + extra)
        fn_args = FnArgs(
            train_files=[outside_pipeline.split_files(examples, "train")],
            eval_files=[outside_pipeline.split_files(examples, "eval")], transform_output=transform_graph,
            serving_model_dir=str(tmp_path / "trainer" / "model" / str(attempt) / "Format-Serving"),
            model_run_dir=str(tmp_path / "trainer" / "model_run" / str(attempt)),
            custom_config=settings.to_custom_config())
        if last:
            task.run_fn(fn_args)
        else:
            with pytest.raises(KeyboardInterrupt):
                task.run_fn(fn_args)
    assert recorder.epochs == [epochs - 1]                      # only the last epoch was trained again
    assert os.listdir(tmp_path / "trainer" / "resume") == []    # a finished run leaves nothing to resume
    exported = tf.saved_model.load(fn_args.serving_model_dir)
    table = next(v.numpy() for v in exported.variables if "categorical_table" in v.name)
    np.testing.assert_array_equal(table, best.table)            # the first epoch's weights were exported
