"""Row-wise Adam against Adam's closed form; mixed bfloat16 keeps the logit in float32."""
import numpy as np
import pytest
import tensorflow as tf

from settings.configs import ModelConfig
from trainer import model as model_lib, optimizers
from tests.helpers import SMALL_VOCAB, transformed_batch


def test_lazy_adam_updates_only_the_rows_in_the_batch_like_adam():
    table = tf.Variable(np.arange(12, dtype=np.float32).reshape(6, 2))
    dense = tf.Variable([1.0, -1.0])
    optimizer = optimizers.LazyAdam(0.1)
    rows = tf.constant([1, 4, 1])                     # row 1 twice: its gradients add up
    for _ in range(2):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.gather(table, rows) ** 2) + tf.reduce_sum(dense ** 2)
        optimizer.apply_gradients(zip(tape.gradient(loss, [table, dense]), [table, dense]))
    reference_table = np.arange(12, dtype=np.float64).reshape(6, 2)
    m = v = np.zeros_like(reference_table)
    for step in (1, 2):
        grad = np.zeros_like(reference_table)
        grad[1] = 2 * 2 * reference_table[1]
        grad[4] = 2 * reference_table[4]
        touched = [1, 4]
        m, v = m.copy(), v.copy()
        m[touched] = 0.9 * m[touched] + 0.1 * grad[touched]
        v[touched] = 0.999 * v[touched] + 0.001 * grad[touched] ** 2
        alpha = 0.1 * np.sqrt(1 - 0.999 ** step) / (1 - 0.9 ** step)
        reference_table[touched] -= alpha * m[touched] / (np.sqrt(v[touched]) + 1e-7)
    np.testing.assert_allclose(table.numpy(), reference_table, rtol=1e-5)
    assert table.numpy()[[0, 2, 3, 5]].tolist() == np.arange(12, dtype=np.float32).reshape(6, 2)[[0, 2, 3, 5]].tolist()
    adam_dense = tf.Variable([1.0, -1.0])
    adam = tf.keras.optimizers.Adam(0.1)
    for _ in range(2):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(adam_dense ** 2)
        adam.apply_gradients([(tape.gradient(loss, adam_dense), adam_dense)])
    np.testing.assert_allclose(dense.numpy(), adam_dense.numpy(), rtol=1e-6)   # dense variables: plain Adam


def test_unknown_optimizer_is_refused():
    with pytest.raises(ValueError, match="adam, lazy_adam"):
        optimizers.make_optimizer("sgd", 1e-3, 10.0)


def test_mixed_bfloat16_computes_cross_and_dnn_in_bfloat16_with_a_float32_logit():
    tf.keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = model_lib.DCNV2(SMALL_VOCAB, ModelConfig(dnn_units=(8,), embedding_dim=2, num_cross_layers=1))
        x, y = transformed_batch()
        logits = model(x)
        assert logits.dtype == tf.float32
        assert model.cross_layers[0]._dense.compute_dtype == "bfloat16"  # pylint: disable=protected-access
        assert model.dnn_layers[0].compute_dtype == "bfloat16"
        assert all(v.dtype == tf.float32 for v in model.trainable_variables)
        model.compile(optimizer=optimizers.make_optimizer("lazy_adam", 1e-2, 10.0),
                      loss=tf.keras.losses.BinaryCrossentropy(from_logits=True))
        assert np.isfinite(model.train_on_batch(x, y))
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")
