"""DCN V2: shapes, parameter counts, structures, one training step."""
import numpy as np
import pytest
import tensorflow as tf

from settings.configs import ModelConfig
from trainer import model as model_lib
from transforms import features

VOCAB = {name: 7 + i for i, name in enumerate(features.CATEGORICAL_FEATURES)}


def _batch(n=16, seed=0):
    rng = np.random.default_rng(seed)
    x = {features.transformed_name(k): tf.constant(rng.integers(0, VOCAB[k], n)) for k in features.CATEGORICAL_FEATURES}
    x.update({features.transformed_name(k): tf.constant(rng.random(n), tf.float32) for k in features.NUMERIC_FEATURES})
    return x, tf.constant(rng.integers(0, 2, (n, 1)), tf.float32)


def _expected_parameters(config: ModelConfig) -> int:
    d = config.embedding_dim
    width = 39 * d
    embeddings = sum(VOCAB.values()) * d + 13 * d
    cross = config.num_cross_layers * (width * width + width)
    dnn, fan_in = 0, width
    for units in config.dnn_units:
        dnn += fan_in * units + units
        fan_in = units
    head_in = width + fan_in if config.structure == "parallel" else fan_in
    return embeddings + cross + dnn + head_in + 1


@pytest.mark.parametrize("structure", ["parallel", "stacked"])
def test_shapes_and_parameter_count(structure):
    config = ModelConfig(structure=structure, dnn_units=(32, 16), embedding_dim=4, num_cross_layers=2)
    model = model_lib.DCNV2(VOCAB, config)
    x, _ = _batch()
    assert model(x).shape == (16, 1)
    assert model_lib.count_parameters(model) == _expected_parameters(config)


def test_low_rank_cross_uses_projection():
    config = ModelConfig(dnn_units=(8,), embedding_dim=2, num_cross_layers=1, cross_projection_dim=3)
    model = model_lib.DCNV2(VOCAB, config)
    model(_batch()[0])
    width = 39 * 2
    full_rank = _expected_parameters(config)
    assert model_lib.count_parameters(model) == full_rank - width * width + 2 * width * 3


def test_parallel_and_stacked_differ_as_designed():
    x, _ = _batch()
    parallel = model_lib.DCNV2(VOCAB, ModelConfig(dnn_units=(8,), embedding_dim=2))
    stacked = model_lib.DCNV2(VOCAB, ModelConfig(structure="stacked", dnn_units=(8,), embedding_dim=2))
    assert parallel.representation(x).shape == (16, 39 * 2 + 8)  # cross output beside the DNN's
    assert stacked.representation(x).shape == (16, 8)            # the DNN reads the cross output


def test_unknown_structure_is_refused():
    with pytest.raises(ValueError, match="parallel"):
        model_lib.DCNV2(VOCAB, ModelConfig(structure="diagonal"))


def test_trains_one_step_and_loss_drops_on_repeated_batch():
    tf.keras.utils.set_random_seed(1)
    model = model_lib.DCNV2(VOCAB, ModelConfig(dnn_units=(16,), embedding_dim=4, dropout=0.0))
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-2), loss=tf.keras.losses.BinaryCrossentropy(from_logits=True))
    x, y = _batch(64)
    first = model.train_on_batch(x, y)
    for _ in range(20):
        last = model.train_on_batch(x, y)
    assert np.isfinite(first) and last < first


def test_model_config_round_trip_rebuilds_the_same_architecture():
    config = ModelConfig(structure="stacked", dnn_units=(8, 4), embedding_dim=3, num_cross_layers=1)
    model = model_lib.DCNV2(VOCAB, config)
    rebuilt = model_lib.DCNV2.from_config(model.get_config())
    x, _ = _batch()
    assert rebuilt.config == config and rebuilt(x).shape == model(x).shape
    assert model_lib.count_parameters(rebuilt) == model_lib.count_parameters(model)


@pytest.mark.parametrize("regularization,sparse", [("batch", True), ("table", False)])
def test_embedding_regularization_scope_decides_whether_the_table_gradient_is_sparse(regularization, sparse):
    model = model_lib.DCNV2(VOCAB, ModelConfig(dnn_units=(8,), embedding_dim=2, embedding_regularization=regularization))
    x, _ = _batch()
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(x, training=True)) + tf.add_n(model.losses)
    gradient = tape.gradient(loss, model.embedding.categorical_table)
    assert isinstance(gradient, tf.IndexedSlices) == sparse
    if regularization == "batch":  # λ Σ ||e||² over the looked-up rows
        rows = tf.gather(model.embedding.categorical_table, model.embedding._offsets + tf.stack(  # pylint: disable=protected-access
            [tf.cast(x[f"{k}_xf"], tf.int64) for k in model_lib.features.CATEGORICAL_FEATURES], axis=1))
        expected = 1e-5 * float(tf.reduce_sum(rows ** 2)) + 1e-5 * float(tf.reduce_sum(model.embedding.numeric_vectors ** 2))
        assert float(tf.add_n(model.losses)) == pytest.approx(expected, rel=1e-5)
