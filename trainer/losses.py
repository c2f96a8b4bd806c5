"""Training objectives as serializable `tf.keras.losses.Loss` classes, chosen by `get_loss`.

Every loss takes logits, never probabilities. Equation numbers refer to Lin et al.,
"Understanding the Ranking Loss for Recommendation with Sparse User Feedback", KDD'24.
"""
from typing import Dict, Optional

import tensorflow as tf

REGISTER_PACKAGE = "rankloss"


def _flat(x: tf.Tensor) -> tf.Tensor:
    """[B] or [B, 1] -> [B] float32."""
    return tf.reshape(tf.cast(x, tf.float32), [-1])


def weighted_bce_terms(labels: tf.Tensor, logits: tf.Tensor, beta_pos: float) -> tf.Tensor:
    """Per-example β_pos-weighted binary cross-entropy from logits (Eq. 15), stable for any logit."""
    per_example = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
    return per_example * (1.0 + (beta_pos - 1.0) * labels)


def _reduce_mean(terms: tf.Tensor, sample_weight: Optional[tf.Tensor]) -> tf.Tensor:
    """Mean over the batch of (optionally sample-weighted) terms; divides by the batch size."""
    if sample_weight is not None:
        terms = terms * _flat(sample_weight)
    return tf.reduce_sum(terms) / tf.maximum(tf.cast(tf.size(terms), tf.float32), 1.0)


@tf.keras.utils.register_keras_serializable(package=REGISTER_PACKAGE)
class WeightedBinaryCrossentropy(tf.keras.losses.Loss):
    """BCE with weight β_pos on positives (Eq. 15; Eq. 1 when β_pos = 1).

    L = -1/N Σ_i [β_pos·y_i·log σ(z_i) + (1 - y_i)·log(1 - σ(z_i))]. The sum is divided by
    the batch size N, not by the sum of weights (as in the paper's code).
    """

    def __init__(self, beta_pos: float = 1.0, name: str = "bce", **kwargs):
        super().__init__(name=name, reduction=tf.keras.losses.Reduction.NONE, **kwargs)
        self.beta_pos = beta_pos

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        return weighted_bce_terms(_flat(y_true), _flat(y_pred), self.beta_pos)

    def __call__(self, y_true, y_pred, sample_weight=None):
        return _reduce_mean(self.call(y_true, y_pred), sample_weight)

    def get_config(self) -> Dict:
        return {**super().get_config(), "beta_pos": self.beta_pos}


LOSSES = {"bce": WeightedBinaryCrossentropy}


def get_loss(name: str, **params) -> tf.keras.losses.Loss:
    """The loss called `name` with its parameters (alpha, beta_pos, gamma, tau, jrc_weight)."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid choices: {', '.join(sorted(LOSSES))}")
    return LOSSES[name](**params)
