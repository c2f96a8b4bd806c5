"""Optimizers of the Trainer: Keras Adam (the reference) and a row-wise (lazy) Adam.

tf-keras 2.16's Adam receives the embedding tables' gradients as `IndexedSlices` but still decays
both moments of every row of every table and updates every row on every step, so each step costs
three passes over all embeddings (~95 % of the parameters). `LazyAdam` updates the moments and
weights of only the rows in the batch, as PyTorch's `SparseAdam` and TF Addons' `LazyAdam` do: a
different optimizer (rows absent from a batch keep stale moments), offered as an opt-in mode whose
quality `benchmarks/trainer_speed.py` compares with Adam's.
"""
import tensorflow as tf

from settings.configs import OPTIMIZERS


@tf.keras.utils.register_keras_serializable(package="rankloss")
class LazyAdam(tf.keras.optimizers.Adam):
    """Adam with row-wise updates for sparse (`IndexedSlices`) gradients; dense gradients as Adam."""

    def update_step(self, gradient, variable):
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable)
        rows, positions = tf.unique(gradient.indices)
        values = tf.math.unsorted_segment_sum(gradient.values, positions, tf.shape(rows)[0])
        local_step = tf.cast(self.iterations + 1, variable.dtype)
        beta_1 = tf.cast(self.beta_1, variable.dtype)
        beta_2 = tf.cast(self.beta_2, variable.dtype)
        alpha = tf.cast(self.learning_rate, variable.dtype) * tf.sqrt(1 - tf.pow(beta_2, local_step)) / \
            (1 - tf.pow(beta_1, local_step))
        index = self._index_dict[self._var_key(variable)]
        m, v = self._momentums[index], self._velocities[index]
        m_rows = beta_1 * tf.gather(m, rows) + (1 - beta_1) * values
        v_rows = beta_2 * tf.gather(v, rows) + (1 - beta_2) * tf.square(values)
        m.scatter_update(tf.IndexedSlices(m_rows, rows))
        v.scatter_update(tf.IndexedSlices(v_rows, rows))
        variable.scatter_sub(tf.IndexedSlices(alpha * m_rows / (tf.sqrt(v_rows) + self.epsilon), rows))


def make_optimizer(name: str, learning_rate: float, clipnorm: float) -> tf.keras.optimizers.Optimizer:
    """`adam` or `lazy_adam`, clipping the gradients' global norm at `clipnorm` (FuxiCTR's clip_grad_norm_)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; valid choices: {', '.join(OPTIMIZERS)}")
    cls = LazyAdam if name == "lazy_adam" else tf.keras.optimizers.Adam
    return cls(learning_rate, global_clipnorm=clipnorm or None)
