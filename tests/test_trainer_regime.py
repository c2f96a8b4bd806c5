"""run_fn's regime on real Transform output: repeatable with a seed, resumable after an interruption."""
import os

import numpy as np
import pytest
import tensorflow as tf

from settings import configs
from tests.test_schedule import _EpochRecorder, _Interrupt
from trainer import outside_pipeline, schedule


def _settings(seed=2024, epochs=2):
    return configs.TrainerSettings(
        model=configs.ModelConfig(dnn_units=(16, 16), embedding_dim=4, num_cross_layers=2),
        loss=configs.LossConfig(name="combined_pair"),
        train=configs.TrainConfig(batch_size=256, epochs=epochs, steps_per_epoch=3, eval_steps=2, seed=seed,
                                  early_stop_patience=5),
        transform=configs.TransformConfig())


def _variables(export_dir):
    return [v.numpy() for v in tf.saved_model.load(export_dir).variables]


@pytest.fixture(scope="module")
def pipeline_root(demo_run):
    return configs.PipelineConfig(output_root=demo_run[0]).pipeline_root


def test_same_seed_repeats_a_run_exactly_and_another_seed_does_not(pipeline_root, tmp_path):
    first, again, other = (_variables(outside_pipeline.train_and_export(pipeline_root, _settings(seed), str(tmp_path / n)))
                           for n, seed in (("a", 7), ("b", 7), ("c", 8)))
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, c) for a, c in zip(first, other))


def test_an_interrupted_trainer_resumes_from_its_last_epoch(pipeline_root, tmp_path, monkeypatch):
    settings, work = _settings(epochs=3), str(tmp_path / "trainer")
    original = schedule.callbacks
    monkeypatch.setattr(schedule, "callbacks", lambda *a, **k: original(*a, **k) + [_Interrupt(after_epoch=1)])
    with pytest.raises(KeyboardInterrupt):
        outside_pipeline.train_and_export(pipeline_root, settings, work)
    resume_root = os.path.join(work, "resume")
    assert len(os.listdir(resume_root)) == 1          # the backup of the interrupted run

    recorder = _EpochRecorder()
    monkeypatch.setattr(schedule, "callbacks", lambda *a, **k: original(*a, **k) + [recorder])
    export = outside_pipeline.train_and_export(pipeline_root, settings, work)
    assert recorder.epochs == [1, 2]                   # epoch 1 was not trained again
    assert os.listdir(resume_root) == []               # a finished run leaves nothing to resume
    assert len(_variables(export)) > 0
