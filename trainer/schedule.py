"""The BARS / FuxiCTR validation schedule, as one resumable Keras callback, and the Trainer's callbacks.

After every epoch the validation metric (`val_auc`) decides:
- improved (by more than `min_delta` over the best so far): save the
  weights as the best checkpoint;
- not improved: multiply the learning rate by `decay_factor` (floor `min_learning_rate`), and stop
  once `patience` epochs in a row have not improved.
The schedule's state is the list of per-epoch metric values (everything else follows from it); it
is written to `state_path` after each epoch, so a run resumed by `tf.keras.callbacks.BackupAndRestore`
(model, optimizer, learning rate and epoch counter) continues the same schedule.
"""
import hashlib
import json
import math
import os
from typing import Any, List, Optional

import tensorflow as tf

from settings.configs import TrainConfig
from trainer import diagnostics

BEST_CHECKPOINT = "best_weights"  # a TensorFlow checkpoint prefix: loads under any distribution strategy
SCHEDULE_STATE = "schedule.json"


class ValidationSchedule(tf.keras.callbacks.Callback):
    """Best checkpoint, learning rate decay on plateau and early stopping on one metric (higher is better)."""

    def __init__(self, best_weights_path: str, state_path: Optional[str] = None, monitor: str = "val_auc",
                 decay_factor: float = 0.1, min_learning_rate: float = 1e-6, patience: int = 2,
                 min_delta: float = 0.0, write_state: bool = True):
        super().__init__()
        if patience < 1:
            raise ValueError(f"early stop patience must be >= 1, got {patience}")
        if min_delta < 0:
            raise ValueError(f"min_delta must be >= 0, got {min_delta}")
        self.best_weights_path, self.state_path, self.monitor = best_weights_path, state_path, monitor
        self.decay_factor, self.min_learning_rate, self.patience = decay_factor, min_learning_rate, patience
        self.min_delta, self.write_state = min_delta, write_state
        self.history: List[float] = []

    @property
    def best_epoch(self) -> int:
        """1-based epoch of the last improvement (the saved checkpoint); 0 before any epoch."""
        best = 0
        for epoch, value in enumerate(self.history, 1):
            if best == 0 or value > self.history[best - 1] + self.min_delta:
                best = epoch
        return best

    @property
    def best(self) -> float:
        return self.history[self.best_epoch - 1] if self.history else -math.inf

    @property
    def epochs_without_improvement(self) -> int:
        return len(self.history) - self.best_epoch

    def on_train_begin(self, logs=None):
        if self.state_path and tf.io.gfile.exists(self.state_path):
            with tf.io.gfile.GFile(self.state_path) as f:
                self.history = json.load(f)["history"]

    def on_epoch_begin(self, epoch, logs=None):
        # A resumed fit starts at the last backed-up epoch; forget values recorded after it.
        del self.history[epoch:]

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor not in (logs or {}):
            raise KeyError(f"the validation schedule needs {self.monitor!r} in the epoch logs; got {sorted(logs or {})}")
        value = float(logs[self.monitor])
        self.history.append(value)
        if self.best_epoch == len(self.history):
            self.model.save_weights(self.best_weights_path)
        else:
            learning_rate = self.model.optimizer.learning_rate
            learning_rate.assign(max(float(learning_rate.numpy()) * self.decay_factor, self.min_learning_rate))
            if self.epochs_without_improvement >= self.patience:
                self.model.stop_training = True
        if self.state_path and self.write_state:
            tf.io.gfile.makedirs(os.path.dirname(self.state_path))
            with tf.io.gfile.GFile(self.state_path, "w") as f:
                json.dump({"history": self.history}, f)


def resume_dir(fn_args: Any) -> str:
    """Where an interrupted Trainer's backup lives: beside the Trainer's executions, keyed by its inputs and
    settings, so the re-run of a failed Trainer (a new execution, same `FnArgs` inputs) finds it and resumes."""
    key = json.dumps([fn_args.custom_config, sorted(fn_args.train_files), fn_args.transform_output], sort_keys=True)
    trainer_dir = os.path.dirname(os.path.dirname(fn_args.model_run_dir.rstrip("/")))
    return os.path.join(trainer_dir, "resume", hashlib.sha256(key.encode()).hexdigest()[:16])


def best_weights_path(backup_dir: str) -> str:
    """The best checkpoint: kept with the resume state, so that a run resumed by a new Trainer execution
    (another `model_run` folder) still finds the best epoch an earlier execution saved."""
    return os.path.join(backup_dir, BEST_CHECKPOINT)


def callbacks(train: TrainConfig, run_dir: str, backup_dir: str,
              write_state: bool = True) -> List[tf.keras.callbacks.Callback]:
    """Optional gradient diagnostics, TensorBoard, the validation schedule and backup/resume; `write_state`
    False on all but one worker of a cluster (the others read the shared schedule state and best checkpoint,
    never write them: they save their own copies under `run_dir`, their private folder)."""
    diagnostics_logger = ([diagnostics.GradientDiagnosticsLogger(run_dir, train.diagnostics_window)]
                          if train.gradient_diagnostics else [])
    return diagnostics_logger + [
        tf.keras.callbacks.TensorBoard(log_dir=run_dir, update_freq="epoch"),
        ValidationSchedule(best_weights_path(backup_dir) if write_state else os.path.join(run_dir, BEST_CHECKPOINT),
                           os.path.join(backup_dir, SCHEDULE_STATE),
                           decay_factor=train.lr_decay_factor, min_learning_rate=train.min_learning_rate,
                           patience=train.early_stop_patience, min_delta=train.min_improvement,
                           write_state=write_state),
        tf.keras.callbacks.BackupAndRestore(backup_dir, delete_checkpoint=True),
    ]
