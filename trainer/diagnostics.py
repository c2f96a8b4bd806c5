"""Gradient diagnostics (paper §3, Fig. 2, 3 and 9): is the ranking term restoring the gradient?

Per training batch, `DiagnosedTrainingModel` reports
- `grad_norm_negative_logits`: ‖∂L/∂z_j‖₂ over the batch's negatives j (for BCE, ∂L/∂z_j = p̂_j / N, Eq. 10);
- `grad_norm_negative_representations`: ‖∂L/∂h_j‖ (Frobenius) over the negatives' penultimate vectors h_j,
  where Combined-Contrastive's extra term acts (Eq. 18-19): on the logits its gradient is α times BCE's;
- `grad_norm_dnn`, `grad_norm_cross`: the global L2 norm of the loss gradient w.r.t. the DNN's and
  the cross network's parameters;
- `grad_abs_{mean,p90}_{dnn,cross}_bottom`: what the paper plots in Fig. 3, the mean and the 90th
  percentile (nearest rank) of the element-wise |∂L/∂W| over the kernel of the bottom DNN layer and of
  the first cross layer (NaN where the model has no such layer).
`GradientDiagnosticsLogger` writes every batch's values to `gradient_norms.csv` and TensorBoard and,
every `window` batches, their mean and 90th percentile (`gradient_norms_window.csv`, TensorBoard).

Switched by `TrainConfig.gradient_diagnostics` (off by default). When off, the Trainer uses the plain
`TrainingModel` and Keras's own `train_step`: the feature costs nothing.
"""
import csv
import os
from typing import Dict, List

import numpy as np
import tensorflow as tf

from trainer.training_model import TrainingModel

GRADIENT_NORMS = ("grad_norm_negative_logits", "grad_norm_negative_representations", "grad_norm_dnn",
                  "grad_norm_cross", "grad_abs_mean_dnn_bottom", "grad_abs_p90_dnn_bottom",
                  "grad_abs_mean_cross_bottom", "grad_abs_p90_cross_bottom")
BATCH_CSV, WINDOW_CSV = "gradient_norms.csv", "gradient_norms_window.csv"


def _layer_variable_refs(layers: List[tf.keras.layers.Layer]) -> set:
    return {v.ref() for layer in layers for v in layer.trainable_variables}


def nearest_rank_quantile(values: tf.Tensor, q: float) -> tf.Tensor:
    """The q-quantile of all of `values` by nearest rank: the ⌈q·n⌉-th smallest."""
    flat = tf.sort(tf.reshape(values, [-1]))
    rank = tf.cast(tf.math.ceil(q * tf.cast(tf.size(flat), tf.float32)), tf.int32)
    return flat[tf.maximum(rank, 1) - 1]


def _bottom_kernel(layers: List[tf.keras.layers.Layer]):
    """The first kernel of the first of `layers` that has one (the bottom DNN layer, the first cross layer)."""
    return next((v for layer in layers for v in layer.trainable_variables if "kernel" in v.name), None)


class DiagnosedTrainingModel(TrainingModel):
    """`TrainingModel` whose train step also returns the gradient norms in `GRADIENT_NORMS`.

    The update itself is Keras's: the same loss, the same gradients, the same optimizer call.
    """

    def train_step(self, data):
        x, y, sample_weight = tf.keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            representation = self.ctr_model.representation(x, training=True)
            logit = self.ctr_model.logit_layer(representation)
            y_pred = self.loss_output(representation, logit)
            loss = self.compute_loss(x, y, y_pred, sample_weight)
        variables = self.trainable_variables
        logit_gradient, representation_gradient, *gradients = tape.gradient(loss, [logit, representation] + variables)
        self.optimizer.apply_gradients(zip(gradients, variables))

        results = self.compute_metrics(x, y, y_pred, sample_weight)
        negatives = tf.reshape(tf.cast(y, tf.float32), [-1]) < 0.5
        results["grad_norm_negative_logits"] = tf.norm(tf.boolean_mask(tf.reshape(logit_gradient, [-1]), negatives))
        results["grad_norm_negative_representations"] = tf.norm(tf.boolean_mask(representation_gradient, negatives))
        by_variable = {v.ref(): g for g, v in zip(gradients, variables)}
        for tower, layers in (("dnn", self.ctr_model.dnn_layers), ("cross", self.ctr_model.cross_layers)):
            refs = _layer_variable_refs(layers)
            results[f"grad_norm_{tower}"] = tf.linalg.global_norm([g for g, v in zip(gradients, variables)
                                                                   if v.ref() in refs])
            kernel = _bottom_kernel(layers)
            magnitude = tf.abs(tf.convert_to_tensor(by_variable[kernel.ref()])) if kernel is not None else None
            results[f"grad_abs_mean_{tower}_bottom"] = (tf.reduce_mean(magnitude) if kernel is not None
                                                        else tf.constant(float("nan")))
            results[f"grad_abs_p90_{tower}_bottom"] = (nearest_rank_quantile(magnitude, 0.9) if kernel is not None
                                                       else tf.constant(float("nan")))
        return results


class GradientDiagnosticsLogger(tf.keras.callbacks.Callback):
    """Writes the per-batch gradient norms and their windowed mean / p90 to CSV and TensorBoard."""

    def __init__(self, log_dir: str, window: int = 50):
        super().__init__()
        if window < 1:
            raise ValueError(f"gradient diagnostics window must be >= 1, got {window}")
        self.log_dir, self.window = log_dir, window
        self._step = 0
        self._pending: List[Dict[str, float]] = []

    def on_train_begin(self, logs=None):
        tf.io.gfile.makedirs(self.log_dir)  # local, gs:// or s3:// (the Trainer's model_run folder)
        self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "gradient_diagnostics"))
        self._batch_file = tf.io.gfile.GFile(os.path.join(self.log_dir, BATCH_CSV), "w")
        self._window_file = tf.io.gfile.GFile(os.path.join(self.log_dir, WINDOW_CSV), "w")
        self._batch_csv = csv.writer(self._batch_file)
        self._window_csv = csv.writer(self._window_file)
        self._batch_csv.writerow(("step",) + GRADIENT_NORMS)
        self._window_csv.writerow(("last_step", "batches") + tuple(f"{k}_{s}" for k in GRADIENT_NORMS
                                                                   for s in ("mean", "p90")))

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        values = {k: float(logs[k]) for k in GRADIENT_NORMS}
        self._batch_csv.writerow([self._step] + [values[k] for k in GRADIENT_NORMS])
        with self._writer.as_default(step=self._step):
            for key, value in values.items():
                tf.summary.scalar(f"batch/{key}", value)
        self._pending.append(values)
        if len(self._pending) == self.window:
            self._flush_window()

    def on_train_end(self, logs=None):
        if self._pending:
            self._flush_window()
        self._writer.close()
        self._batch_file.close()
        self._window_file.close()

    def _flush_window(self) -> None:
        row = [self._step, len(self._pending)]
        with self._writer.as_default(step=self._step):
            for key in GRADIENT_NORMS:
                series = np.array([values[key] for values in self._pending])
                mean, p90 = float(series.mean()), float(np.percentile(series, 90))
                tf.summary.scalar(f"window_mean/{key}", mean)
                tf.summary.scalar(f"window_p90/{key}", p90)
                row += [mean, p90]
        self._window_csv.writerow(row)
        self._window_file.flush()
        self._batch_file.flush()
        self._pending = []
