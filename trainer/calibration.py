"""Isotonic calibration (paper §4.5.2: negative sampling is reported after isotonic regression).

`fit_isotonic` fits scikit-learn's isotonic regression on (prediction, label) pairs of the eval split
and keeps a fixed number of its knots; `PiecewiseLinearCalibration` applies them inside the serving
graph. Every exported model carries this layer (identity knots when no calibration is fitted), so the
serving graph is identical whether or not a model was calibrated.
"""
from typing import Tuple

import numpy as np
from sklearn.isotonic import IsotonicRegression
import tensorflow as tf

NUM_KNOTS = 256


def fit_isotonic(predictions: np.ndarray, labels: np.ndarray, beta_pos: float = 1.0,
                 num_knots: int = NUM_KNOTS) -> Tuple[np.ndarray, np.ndarray]:
    """Knots (x, y) of the isotonic map from predicted to observed click rate, at prediction quantiles. Each
    positive weighs `beta_pos` (Eq. 15), so the map targets the β-weighted click rate the model estimates."""
    weights = np.where(np.asarray(labels) > 0.5, beta_pos, 1.0)
    fitted = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(predictions, labels, weights)
    x_knots = np.quantile(predictions, np.linspace(0.0, 1.0, num_knots), method="nearest").astype(np.float32)
    y_knots = np.maximum.accumulate(fitted.predict(x_knots)).astype(np.float32)
    x_knots[0], x_knots[-1] = 0.0, 1.0          # cover the whole probability range
    return x_knots, np.clip(y_knots, 1e-6, 1.0 - 1e-6)


def fit_calibration(ctr_model: tf.keras.Model, eval_ds: tf.data.Dataset, beta_pos: float = 1.0) -> None:
    """Fits the isotonic map of σ(logit) on `eval_ds` (positives weighing `beta_pos`) into `ctr_model`'s
    calibration layer."""
    predictions, labels = [], []
    for batch_features, batch_labels in eval_ds:
        predictions.append(tf.sigmoid(ctr_model(batch_features)).numpy().ravel())
        labels.append(batch_labels.numpy().ravel())
    ctr_model.calibration.set_knots(*fit_isotonic(np.concatenate(predictions), np.concatenate(labels), beta_pos))


class PiecewiseLinearCalibration(tf.keras.layers.Layer):
    """p -> interpolation of (x_knots, y_knots) at p; identity until `set_knots` is called."""

    def __init__(self, num_knots: int = NUM_KNOTS, **kwargs):
        super().__init__(trainable=False, **kwargs)
        identity = np.linspace(0.0, 1.0, num_knots, dtype=np.float32)
        self.x_knots = self.add_weight(name="x_knots", shape=(num_knots,), trainable=False,
                                       initializer=tf.constant_initializer(identity))
        self.y_knots = self.add_weight(name="y_knots", shape=(num_knots,), trainable=False,
                                       initializer=tf.constant_initializer(identity))

    def set_knots(self, x_knots: np.ndarray, y_knots: np.ndarray) -> None:
        self.x_knots.assign(x_knots)
        self.y_knots.assign(y_knots)

    def call(self, probabilities: tf.Tensor) -> tf.Tensor:
        x, y = self.x_knots, self.y_knots
        p = tf.clip_by_value(probabilities, x[0], x[-1])
        right = tf.clip_by_value(tf.searchsorted(x, p, side="right"), 1, tf.size(x) - 1)
        x0, x1 = tf.gather(x, right - 1), tf.gather(x, right)
        y0, y1 = tf.gather(y, right - 1), tf.gather(y, right)
        t = tf.math.divide_no_nan(p - x0, x1 - x0)
        return y0 + t * (y1 - y0)
