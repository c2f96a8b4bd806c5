"""The paper's reported "BCE loss": the β_pos-weighted loss of Eq. 15, as a Keras metric.

The Trainer's, on logits; the Evaluator computes it from served probabilities (components/batch_metrics.py),
both through `equations.weighted_bce`.
"""
from typing import Dict

import tensorflow as tf

from trainer import losses


@tf.keras.utils.register_keras_serializable(package=losses.REGISTER_PACKAGE)
class WeightedBCE(tf.keras.metrics.Mean):
    """Mean over examples of -[β_pos·y·log p + (1 - y)·log(1 - p)] (Eq. 15)."""

    def __init__(self, beta_pos: float = 1.0, name: str = "weighted_bce", **kwargs):
        super().__init__(name=name, **kwargs)
        self.beta_pos = beta_pos

    def update_state(self, y_true, y_pred, sample_weight=None):
        """`y_pred` are logits."""
        labels = tf.reshape(tf.cast(y_true, tf.float32), [-1])
        logits = tf.reshape(tf.cast(y_pred, tf.float32), [-1])
        return super().update_state(losses.weighted_bce_terms(labels, logits, self.beta_pos),
                                    sample_weight=sample_weight)

    def get_config(self) -> Dict:
        return {**super().get_config(), "beta_pos": self.beta_pos}
