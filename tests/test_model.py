"""DCN V2: shapes, parameter counts, structures, one training step."""
import numpy as np
import pytest
import tensorflow as tf

from settings.configs import ModelConfig
from trainer import model as model_lib
from transforms import features
from tests.helpers import SMALL_VOCAB, transformed_batch


def _expected_parameters(config: ModelConfig) -> int:
    d = config.embedding_dim
    width = 39 * d
    embeddings = sum(SMALL_VOCAB.values()) * d + 13 * d
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
    model = model_lib.DCNV2(SMALL_VOCAB, config)
    x, _ = transformed_batch()
    assert model(x).shape == (16, 1)
    assert model_lib.count_parameters(model) == _expected_parameters(config)


def test_low_rank_cross_uses_projection():
    config = ModelConfig(dnn_units=(8,), embedding_dim=2, num_cross_layers=1, cross_projection_dim=3)
    model = model_lib.DCNV2(SMALL_VOCAB, config)
    model(transformed_batch()[0])
    width = 39 * 2
    full_rank = _expected_parameters(config)
    assert model_lib.count_parameters(model) == full_rank - width * width + 2 * width * 3


def test_parallel_and_stacked_differ_as_designed():
    x, _ = transformed_batch()
    parallel = model_lib.DCNV2(SMALL_VOCAB, ModelConfig(dnn_units=(8,), embedding_dim=2))
    stacked = model_lib.DCNV2(SMALL_VOCAB, ModelConfig(structure="stacked", dnn_units=(8,), embedding_dim=2))
    assert parallel.representation(x).shape == (16, 39 * 2 + 8)  # cross output beside the DNN's
    assert stacked.representation(x).shape == (16, 8)            # the DNN reads the cross output


def test_unknown_structure_is_refused():
    with pytest.raises(ValueError, match="parallel"):
        model_lib.DCNV2(SMALL_VOCAB, ModelConfig(structure="diagonal"))


@pytest.mark.e2e
def test_trains_one_step_and_loss_drops_on_repeated_batch():
    tf.keras.utils.set_random_seed(1)
    model = model_lib.DCNV2(SMALL_VOCAB, ModelConfig(dnn_units=(16,), embedding_dim=4, dropout=0.0))
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-2), loss=tf.keras.losses.BinaryCrossentropy(from_logits=True))
    x, y = transformed_batch(64)
    first = model.train_on_batch(x, y)
    for _ in range(20):
        last = model.train_on_batch(x, y)
    assert np.isfinite(first) and last < first


def test_model_config_round_trip_rebuilds_the_same_architecture():
    config = ModelConfig(structure="stacked", dnn_units=(8, 4), embedding_dim=3, num_cross_layers=1)
    model = model_lib.DCNV2(SMALL_VOCAB, config)
    rebuilt = model_lib.DCNV2.from_config(model.get_config())
    x, _ = transformed_batch()
    assert rebuilt.config == config and rebuilt(x).shape == model(x).shape
    assert model_lib.count_parameters(rebuilt) == model_lib.count_parameters(model)


@pytest.mark.parametrize("regularization,sparse", [("batch", True), ("table", False)])
def test_embedding_regularization_scope_decides_whether_the_table_gradient_is_sparse(regularization, sparse):
    model = model_lib.DCNV2(SMALL_VOCAB, ModelConfig(dnn_units=(8,), embedding_dim=2, embedding_regularization=regularization))
    x, _ = transformed_batch()
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(x, training=True)) + tf.add_n(model.losses)
    gradient = tape.gradient(loss, model.embedding.categorical_table)
    assert isinstance(gradient, tf.IndexedSlices) == sparse
    if regularization == "batch":  # λ Σ ||e||² over the looked-up rows
        rows = tf.gather(model.embedding.categorical_table, model.embedding._offsets + tf.stack(  # pylint: disable=protected-access
            [tf.cast(x[f"{k}_xf"], tf.int64) for k in model_lib.features.CATEGORICAL_FEATURES], axis=1))
        expected = 1e-5 * float(tf.reduce_sum(rows ** 2)) + 1e-5 * float(tf.reduce_sum(model.embedding.numeric_vectors ** 2))
        assert float(tf.add_n(model.losses)) == pytest.approx(expected, rel=1e-5)


def _transform_output_with_oov_buckets(tmp_path, num_oov_buckets):
    """A Transform output (transforms.preprocessing) analysed on three rows, each field's tokens 'a' and 'b'."""
    import tensorflow_transform as tft  # pylint: disable=import-outside-toplevel
    import tensorflow_transform.beam as tft_beam  # pylint: disable=import-outside-toplevel
    from tensorflow_transform.tf_metadata import dataset_metadata  # pylint: disable=import-outside-toplevel

    from transforms import preprocessing, schema  # pylint: disable=import-outside-toplevel

    instances = [{features.LABEL_KEY: [label], **{k: [] for k in features.NUMERIC_FEATURES},
                  **{k: [token] for k in features.CATEGORICAL_FEATURES}}
                 for label, token in ((0, b"a"), (1, b"b"), (0, b"a"))]
    fn = lambda inputs: preprocessing.preprocessing_fn(inputs, {"num_oov_buckets": num_oov_buckets})  # noqa: E731
    with tft_beam.Context(temp_dir=str(tmp_path / "tmp")):
        transform_fn = ((instances, dataset_metadata.DatasetMetadata(schema.build_schema()))
                        | tft_beam.AnalyzeDataset(fn))
    _ = transform_fn | tft_beam.WriteTransformFn(str(tmp_path / "transform_fn"))
    return tft.TFTransformOutput(str(tmp_path / "transform_fn"))


@pytest.mark.e2e
def test_with_several_oov_buckets_every_fields_unseen_tokens_read_that_fields_own_rows(tmp_path):
    """The Trainer sizes each field from the Transform output (2 tokens + 5 OOV buckets), never from a second
    copy of the setting; an unseen token of any field then reads a row of that field's block."""
    from tensorflow_transform.tf_metadata import schema_utils  # pylint: disable=import-outside-toplevel

    from transforms import rows, schema  # pylint: disable=import-outside-toplevel

    output = _transform_output_with_oov_buckets(tmp_path, num_oov_buckets=5)
    sizes = model_lib.vocabulary_sizes_from_transform(output)
    assert sizes == {k: 2 + 5 for k in features.CATEGORICAL_FEATURES}
    unseen = [(0, {k: f"never-seen-{k}-{n}" for k in features.CATEGORICAL_FEATURES}) for n in range(40)]
    raw_spec = schema_utils.schema_as_feature_spec(schema.build_schema()).feature_spec
    transformed = output.transform_raw_features(tf.io.parse_example(rows.to_examples(unseen), raw_spec))
    ids = np.stack([transformed[features.transformed_name(k)].numpy() for k in features.CATEGORICAL_FEATURES], axis=1)
    assert ids.min() >= 2 and ids.max() < 7 and len(np.unique(ids)) > 1   # all out of vocabulary, several buckets

    embedding = model_lib.FieldEmbedding(list(sizes.values()), len(features.NUMERIC_FEATURES), embedding_dim=1)
    embedding(tf.constant(ids), tf.zeros([len(unseen), len(features.NUMERIC_FEATURES)]))
    field_of_row = np.repeat(np.arange(len(sizes)), list(sizes.values())).astype(np.float32)
    embedding.categorical_table.assign(field_of_row[:, None])            # each row holds its field's number
    read = embedding(tf.constant(ids), tf.zeros([len(unseen), len(features.NUMERIC_FEATURES)])).numpy()
    fields_read = read[:, len(features.NUMERIC_FEATURES):]
    np.testing.assert_array_equal(fields_read, np.tile(np.arange(len(sizes)), (len(unseen), 1)))


@pytest.mark.parametrize("field,bad_id", [(0, 7), (13, -1), (25, 7)])
def test_an_id_outside_its_fields_range_is_refused_naming_the_field(field, bad_id):
    sizes = [7] * len(features.CATEGORICAL_FEATURES)
    embedding = model_lib.FieldEmbedding(sizes, len(features.NUMERIC_FEATURES), embedding_dim=2)
    ids = np.zeros([4, len(sizes)], np.int64)
    ids[2, field] = bad_id
    message = rf"categorical id \[{bad_id}\] is outside \[0, \[7\]\), the ids of field C\[{field + 1}\]"
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        embedding(tf.constant(ids), tf.zeros([4, len(features.NUMERIC_FEATURES)]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):   # the same inside a traced graph
        tf.function(embedding)(tf.constant(ids), tf.zeros([4, len(features.NUMERIC_FEATURES)]))


def _tiny_batch(sizes, bad=None):
    ids = {features.transformed_name(name): tf.constant([1, 2, 0, 3], tf.int64)
           for name in features.CATEGORICAL_FEATURES}
    if bad is not None:
        ids[features.transformed_name(features.CATEGORICAL_FEATURES[bad])] = tf.constant([1, sizes, 0, 3], tf.int64)
    numeric = {features.transformed_name(name): tf.ones([4]) for name in features.NUMERIC_FEATURES}
    return {**ids, **numeric}, tf.constant([[1.0], [0.0], [0.0], [1.0]])


def test_jit_compile_trains_and_its_input_pipeline_refuses_an_id_outside_its_field():
    """XLA cannot raise inside a compiled step, so under --jit-compile the ids are checked in the input pipeline."""
    from settings import configs  # pylint: disable=import-outside-toplevel
    from trainer import data, losses, training_model  # pylint: disable=import-outside-toplevel

    sizes = 5
    vocabulary = {name: sizes for name in features.CATEGORICAL_FEATURES}
    settings = configs.TrainerSettings(model=configs.ModelConfig(dnn_units=(4,), embedding_dim=2, num_cross_layers=1),
                                       loss=configs.LossConfig(), train=configs.TrainConfig(jit_compile=True))
    ctr_model = model_lib.DCNV2(vocabulary, settings.model, check_ids=not settings.train.jit_compile)
    model = training_model.TrainingModel(ctr_model, losses.LOGIT)
    training_model.compile_training_model(model, settings, losses.build_loss(settings.loss))
    good = tf.data.Dataset.from_tensors(_tiny_batch(sizes))
    history = model.fit(data.with_checked_ids(good, vocabulary), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    bad = data.with_checked_ids(tf.data.Dataset.from_tensors(_tiny_batch(sizes, bad=3)), vocabulary)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"outside \[0, 5\), the ids of field C4"):
        model.fit(bad, epochs=1, verbose=0)
