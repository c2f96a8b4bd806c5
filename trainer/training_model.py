"""The training-time view of the model: what each loss reads, built around the exported DCN V2.

The exported `DCNV2` always maps features to one click logit z. Losses that read more get it
here, from layers that are never exported, so the serving graph is the same whatever the loss:
- `two_logits` (JRC): z is the served z1 - z0; a training-only head gives s = z0 + z1, so
  [z0, z1] = [(s - z)/2, (s + z)/2] and σ(z) = softmax([z0, z1])[1], the JRC served probability.
- `logit_and_representation` (Combined-Contrastive): [z, penultimate representation].
Metrics always see the click logit z.
"""
from typing import Dict

import tensorflow as tf

from settings.configs import TrainerSettings
from trainer import losses, metrics, optimizers
from trainer.model import DCNV2


class TrainingModel(tf.keras.Model):
    """Wraps `ctr_model` (exported) with the loss's training-only inputs."""

    def __init__(self, ctr_model: DCNV2, loss_input: str = losses.LOGIT, **kwargs):
        super().__init__(**kwargs)
        if loss_input not in (losses.LOGIT, losses.TWO_LOGITS, losses.LOGIT_AND_REPRESENTATION):
            raise ValueError(f"unknown loss input {loss_input!r}")
        self.ctr_model = ctr_model
        self.loss_input = loss_input
        if loss_input == losses.TWO_LOGITS:
            self.logit_sum_head = tf.keras.layers.Dense(1, name="jrc_logit_sum", dtype="float32")

    def call(self, inputs: Dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        representation = self.ctr_model.representation(inputs, training=training)
        return self.loss_output(representation, self.ctr_model.logit_layer(representation))

    def loss_output(self, representation: tf.Tensor, logit: tf.Tensor) -> tf.Tensor:
        """What the loss reads, from the penultimate representation and the click logit [B, 1]."""
        if self.loss_input == losses.TWO_LOGITS:
            logit_sum = self.logit_sum_head(representation)
            return tf.concat([(logit_sum - logit) / 2.0, (logit_sum + logit) / 2.0], axis=1)
        if self.loss_input == losses.LOGIT_AND_REPRESENTATION:
            return tf.concat([logit, tf.cast(representation, logit.dtype)], axis=1)
        return logit

    def get_config(self) -> Dict:
        return {"ctr_model": tf.keras.utils.serialize_keras_object(self.ctr_model), "loss_input": self.loss_input}

    @classmethod
    def from_config(cls, config: Dict) -> "TrainingModel":
        return cls(DCNV2.from_config(config["ctr_model"]["config"]), config["loss_input"])

    def click_logit(self, y_pred: tf.Tensor) -> tf.Tensor:
        """[B, 1] served logit from this model's output."""
        if self.loss_input == losses.TWO_LOGITS:
            return y_pred[:, 1:2] - y_pred[:, 0:1]
        return y_pred[:, :1]

    # Keras traces these steps with AutoGraph, which rewrites every Python function they reach (layers,
    # loss, metrics, optimizer), a large fixed cost per run. Nothing here branches on tensor values, so they are traced
    # as plain Python; a tensor-dependent `if` would raise at trace time instead of being converted.
    train_step = tf.autograph.experimental.do_not_convert(tf.keras.Model.train_step)
    test_step = tf.autograph.experimental.do_not_convert(tf.keras.Model.test_step)
    predict_step = tf.autograph.experimental.do_not_convert(tf.keras.Model.predict_step)

    def compute_metrics(self, x, y, y_pred, sample_weight):
        return super().compute_metrics(x, y, self.click_logit(y_pred), sample_weight)


def compile_training_model(model: TrainingModel, settings: TrainerSettings, loss: tf.keras.losses.Loss) -> None:
    """Adam (or row-wise Adam) with global-norm clipping; AUC, logloss and the paper's β_pos-weighted BCE (Eq. 15)."""
    train = settings.train
    model.compile(
        optimizer=optimizers.make_optimizer(train.optimizer, train.learning_rate, train.clipnorm),
        loss=loss, jit_compile=train.jit_compile,
        metrics=[tf.keras.metrics.AUC(from_logits=True, name="auc"),
                 tf.keras.metrics.BinaryCrossentropy(from_logits=True, name="logloss"),
                 metrics.WeightedBCE(beta_pos=settings.loss.beta_pos, name="weighted_bce")])
