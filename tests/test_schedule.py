"""The validation schedule on scripted metric sequences, and resuming an interrupted fit."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from trainer.schedule import ValidationSchedule
from tests.helpers import EpochRecorder, Interrupt


def _model(learning_rate=1.0):
    model = tf.keras.Sequential([tf.keras.layers.Dense(1, input_shape=(3,))])
    model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate), loss="mse")
    return model


def _play(schedule, values):
    """Feeds a scripted val_auc sequence; returns (saved epochs, learning rates, stop epoch)."""
    saved, rates, stopped_at = [], [], None
    schedule.on_train_begin()
    for epoch, value in enumerate(values):
        schedule.on_epoch_begin(epoch)
        mtime = os.path.getmtime(schedule.best_weights_path) if os.path.exists(schedule.best_weights_path) else None
        schedule.on_epoch_end(epoch, {"val_auc": value})
        if os.path.exists(schedule.best_weights_path) and os.path.getmtime(schedule.best_weights_path) != mtime:
            saved.append(epoch + 1)
        rates.append(round(float(schedule.model.optimizer.learning_rate.numpy()), 8))
        if schedule.model.stop_training:
            stopped_at = epoch + 1
            break
    return saved, rates, stopped_at


def test_best_checkpoint_decay_on_plateau_and_early_stop(tmp_path):
    schedule = ValidationSchedule(str(tmp_path / "best.weights.h5"), patience=2)
    schedule.set_model(_model())
    saved, rates, stopped_at = _play(schedule, [0.70, 0.72, 0.71, 0.73, 0.72, 0.71, 0.90])
    assert saved == [1, 2, 4]
    assert rates == [1.0, 1.0, 0.1, 0.1, 0.01, 0.001]
    assert stopped_at == 6 and schedule.best_epoch == 4 and schedule.best == pytest.approx(0.73)


def test_gains_below_min_delta_are_not_improvements(tmp_path):
    schedule = ValidationSchedule(str(tmp_path / "best.weights.h5"), patience=2, min_delta=1e-3)
    schedule.set_model(_model())
    saved, rates, stopped_at = _play(schedule, [0.700, 0.720, 0.7205, 0.7209, 0.80])
    assert saved == [1, 2] and rates == [1.0, 1.0, 0.1, 0.01]   # +0.0005 and +0.0009 over 0.720 do not count
    assert stopped_at == 4 and schedule.best_epoch == 2 and schedule.best == pytest.approx(0.72)
    with pytest.raises(ValueError, match="min_delta"):
        ValidationSchedule(str(tmp_path / "x.h5"), min_delta=-1.0)


def test_learning_rate_floor_and_patience_one(tmp_path):
    schedule = ValidationSchedule(str(tmp_path / "best.weights.h5"), min_learning_rate=0.05, patience=1)
    schedule.set_model(_model())
    saved, rates, stopped_at = _play(schedule, [0.6, 0.6])
    assert saved == [1] and rates == [1.0, 0.1] and stopped_at == 2   # equal is not an improvement
    schedule = ValidationSchedule(str(tmp_path / "b2.weights.h5"), min_learning_rate=0.05, patience=3)
    schedule.set_model(_model())
    _, rates, _ = _play(schedule, [0.6, 0.5, 0.5])
    assert rates == [1.0, 0.1, 0.05]


def test_state_is_written_each_epoch_and_trimmed_on_resume(tmp_path):
    state = tmp_path / "resume" / "schedule.json"
    schedule = ValidationSchedule(str(tmp_path / "best.weights.h5"), str(state))
    schedule.set_model(_model())
    _play(schedule, [0.5, 0.6, 0.55])
    assert json.loads(state.read_text())["history"] == [0.5, 0.6, 0.55]
    resumed = ValidationSchedule(str(tmp_path / "best.weights.h5"), str(state))
    resumed.set_model(_model())
    resumed.on_train_begin()
    resumed.on_epoch_begin(2)                 # the backup was taken after epoch 2
    assert resumed.history == [0.5, 0.6] and resumed.best_epoch == 2


@pytest.mark.e2e
def test_an_interrupted_fit_resumes_with_model_optimizer_and_schedule(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype(np.float32)
    y = (x[:, :1] > 0).astype(np.float32)

    def fit(extra_callbacks):
        tf.keras.utils.set_random_seed(1)
        model = tf.keras.Sequential([tf.keras.layers.Dense(1, input_shape=(3,))])
        model.compile(optimizer=tf.keras.optimizers.Adam(0.05), loss=tf.keras.losses.BinaryCrossentropy(True),
                      metrics=[tf.keras.metrics.AUC(from_logits=True, name="auc")])
        schedule = ValidationSchedule(str(tmp_path / "best.weights.h5"), str(tmp_path / "backup" / "schedule.json"),
                                      patience=10)
        recorder = EpochRecorder()
        callbacks = [schedule, tf.keras.callbacks.BackupAndRestore(str(tmp_path / "backup")), recorder]
        model.fit(x, y, validation_data=(x, y), epochs=5, batch_size=16, verbose=0,
                  callbacks=callbacks + extra_callbacks)
        return model, schedule, recorder

    with pytest.raises(KeyboardInterrupt):
        fit([Interrupt(after_epoch=3)])
    model, schedule, recorder = fit([])
    assert recorder.epochs == [3, 4]              # epochs 1-3 were not trained again
    assert len(schedule.history) == 5
    assert int(model.optimizer.iterations.numpy()) == 5 * 4   # the optimizer's step counter was restored
