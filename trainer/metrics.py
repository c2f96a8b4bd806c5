"""The paper's reported "BCE loss": the β_pos-weighted loss of Eq. 15, as a Keras metric.

Used by the Trainer (on logits) and by the Evaluator (TFMA, on served probabilities).
"""
from typing import Dict

import tensorflow as tf

from trainer import losses


@tf.keras.utils.register_keras_serializable(package=losses.REGISTER_PACKAGE)
class WeightedBCE(tf.keras.metrics.Mean):
    """Mean over examples of -[β_pos·y·log p + (1 - y)·log(1 - p)] (Eq. 15)."""

    def __init__(self, beta_pos: float = 1.0, from_logits: bool = True, name: str = "weighted_bce", **kwargs):
        super().__init__(name=name, **kwargs)
        self.beta_pos, self.from_logits = beta_pos, from_logits

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels = tf.reshape(tf.cast(y_true, tf.float32), [-1])
        y_pred = tf.reshape(tf.cast(y_pred, tf.float32), [-1])
        if not self.from_logits:
            p = tf.clip_by_value(y_pred, 1e-7, 1.0 - 1e-7)
            y_pred = tf.math.log(p) - tf.math.log1p(-p)
        terms = losses.weighted_bce_terms(labels, y_pred, self.beta_pos)
        return super().update_state(terms, sample_weight=sample_weight)

    def get_config(self) -> Dict:
        return {**super().get_config(), "beta_pos": self.beta_pos, "from_logits": self.from_logits}
