"""Isotonic calibration (paper §4.5.2: negative sampling is reported after isotonic regression).

`fit_isotonic` runs pool-adjacent-violators on (prediction, label) pairs of the eval split and
returns a fixed number of knots; `PiecewiseLinearCalibration` applies them inside the serving
graph. Every exported model carries this layer (identity knots when no calibration is fitted),
so the serving graph is identical whether or not a model was calibrated.
"""
from typing import Tuple

import numpy as np
import tensorflow as tf

NUM_KNOTS = 256


def pool_adjacent_violators(y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Non-decreasing least-squares fit of `y` (already sorted by the predictor)."""
    means, sizes, counts = [], [], []
    for value, weight in zip(y.astype(float), weights.astype(float)):
        means.append(value)
        sizes.append(weight)
        counts.append(1)
        while len(means) > 1 and means[-2] > means[-1]:
            total = sizes[-2] + sizes[-1]
            means[-2] = (means[-2] * sizes[-2] + means[-1] * sizes[-1]) / total
            sizes[-2], counts[-2] = total, counts[-2] + counts[-1]
            means.pop(), sizes.pop(), counts.pop()
    return np.repeat(means, counts)


def fit_isotonic(predictions: np.ndarray, labels: np.ndarray,
                 num_knots: int = NUM_KNOTS) -> Tuple[np.ndarray, np.ndarray]:
    """Knots (x, y) of the isotonic map from predicted to observed click rate, at prediction quantiles."""
    order = np.argsort(predictions, kind="mergesort")
    x_sorted, fitted = predictions[order], pool_adjacent_violators(labels[order], np.ones(len(order)))
    positions = np.linspace(0, len(order) - 1, num_knots).round().astype(int)
    x_knots = x_sorted[positions].astype(np.float32)
    x_knots[0], x_knots[-1] = 0.0, 1.0          # cover the whole probability range
    y_knots = np.maximum.accumulate(fitted[positions]).astype(np.float32)
    return x_knots, np.clip(y_knots, 1e-6, 1.0 - 1e-6)


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
