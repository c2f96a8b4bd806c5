"""`preprocessing_fn` through tf.Transform on Beam: vocabulary, OOV, missing values, numerics."""
import functools

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io

from transforms import rows
from transforms import features, preprocessing, schema
from tests.helpers import REAL_SAMPLE

pytestmark = pytest.mark.e2e  # runs the pipeline, a server or a trainer end to end

xf = features.transformed_name


def _instance(label, row):
    """A raw row as tf.Transform's instance dict (a missing feature is an empty list)."""
    instance = {features.LABEL_KEY: [label]}
    for name in features.NUMERIC_FEATURES + features.CATEGORICAL_FEATURES:
        instance[name] = [row[name]] if name in row else []
        if name in features.CATEGORICAL_FEATURES and name in row:
            instance[name] = [row[name].encode()]
    return instance


def _analyze_and_transform(instances, tmp_path, min_count=1, num_oov=1):
    fn = functools.partial(preprocessing.preprocessing_fn,
                           custom_config={"min_category_count": min_count, "num_oov_buckets": num_oov})
    metadata = dataset_metadata.DatasetMetadata(schema.build_schema())
    with tft_beam.Context(temp_dir=str(tmp_path)):
        (transformed, _), transform_fn = (instances, metadata) | tft_beam.AnalyzeAndTransformDataset(fn)
    return transformed, transform_fn


def _row(c1=None, i1=None, label=0):
    row = {f"C{k}": "aaaaaaaa" for k in range(2, 27)}
    if c1 is not None:
        row["C1"] = c1
    if i1 is not None:
        row["I1"] = i1
    return _instance(label, row)


@pytest.fixture(scope="module")
def analyzed(tmp_path_factory):
    """C1 values: 'frequent' ×3, 'rare' ×1, missing ×2; vocabulary threshold 2."""
    tmp_path = tmp_path_factory.mktemp("tft")
    instances = [_row("frequent", 5), _row("frequent", -1), _row("frequent", 0), _row("rare", None),
                 _row(None, 1_000_000), _row(None, 3)]
    transformed, transform_fn = _analyze_and_transform(instances, tmp_path, min_count=2)
    out_dir = str(tmp_path / "transform_fn")
    _ = transform_fn | tft_beam.WriteTransformFn(out_dir)
    return transformed, tft.TFTransformOutput(out_dir)


def test_vocabulary_threshold_oov_and_missing(analyzed):
    transformed, _ = analyzed
    ids = [t[xf("C1")] for t in transformed]
    frequent, rare, missing = ids[0], ids[3], ids[4]
    assert ids[0] == ids[1] == ids[2] and ids[4] == ids[5]
    # vocabulary = [frequent (3), __missing__ (2)]; 'rare' (1) is below the threshold -> OOV id 2
    assert (frequent, missing, rare) == (0, 1, 2)
    numeric = [t[xf("I1")] for t in transformed]
    np.testing.assert_allclose(numeric, [np.log1p(5), -np.log(2), 0.0, 0.0, np.log1p(1e6), np.log1p(3)], rtol=1e-6)
    assert [t[features.LABEL_KEY] for t in transformed] == [0] * 6


def test_unseen_category_and_missing_features_at_serving_time(analyzed):
    _, tf_transform_output = analyzed
    layer = tf_transform_output.transform_features_layer()
    raw = {name: tf.sparse.from_dense(tf.constant([[b"never-seen"]])) for name in features.CATEGORICAL_FEATURES}
    raw["I1"] = tf.SparseTensor(tf.zeros([0, 2], tf.int64), tf.zeros([0], tf.int64), [1, 1])  # missing
    for name in features.NUMERIC_FEATURES[1:]:
        raw[name] = tf.sparse.from_dense(tf.constant([[1]], tf.int64))
    out = layer(raw)  # no label at serving time
    vocab_size = tf_transform_output.vocabulary_size_by_name(preprocessing.vocabulary_name("C1"))
    assert vocab_size == 2
    assert int(out[xf("C1")][0]) == vocab_size  # the single OOV bucket sits after the vocabulary
    assert float(out[xf("I1")][0]) == 0.0


def test_real_criteo_sample_through_converter_parsing_and_transform(tmp_path):
    with open(REAL_SAMPLE) as f:
        lines = f.read().splitlines()[1:]
    instances = [_instance(*rows.parse_row(line, ",")) for line in lines]
    transformed, _ = _analyze_and_transform(instances, tmp_path)
    assert len(transformed) == 200
    assert sum(t[features.LABEL_KEY] for t in transformed) == 49
    for t in transformed:
        assert all(np.isfinite(t[xf(n)]) for n in features.NUMERIC_FEATURES)
        assert all(t[xf(n)] >= 0 for n in features.CATEGORICAL_FEATURES)


def test_tokens_past_the_vocabulary_cap_hash_into_the_buckets_transform_trainer_and_serving_agree(tmp_path):
    """C1: a ×5, b ×4, c ×3, d ×2, e ×1; at most 2 tokens get ids, the rest hash into 3 buckets."""
    from serving import signatures
    from settings.configs import ModelConfig
    from trainer import model as model_lib

    tokens = ["a"] * 5 + ["b"] * 4 + ["c"] * 3 + ["d"] * 2 + ["e"]
    fn = functools.partial(preprocessing.preprocessing_fn,
                           custom_config={"max_vocabulary_size": 2, "num_oov_buckets": 3})
    metadata = dataset_metadata.DatasetMetadata(schema.build_schema())
    with tft_beam.Context(temp_dir=str(tmp_path / "tmp")):
        (transformed, _), transform_fn = ([_row(t) for t in tokens], metadata) | tft_beam.AnalyzeAndTransformDataset(fn)
    _ = transform_fn | tft_beam.WriteTransformFn(str(tmp_path / "transform_fn"))
    metadata_io.write_metadata(metadata, str(tmp_path / "transform_fn" / "metadata"))  # the raw schema, as TFX's
    output = tft.TFTransformOutput(str(tmp_path / "transform_fn"))
    ids = {token: int(t[xf("C1")]) for token, t in zip(tokens, transformed)}
    # Transform: the two most frequent take ids 0 and 1; the others land in the buckets [2, 5).
    assert (ids["a"], ids["b"]) == (0, 1) and all(2 <= ids[t] < 5 for t in "cde")
    assert output.vocabulary_size_by_name(preprocessing.vocabulary_name("C1")) == 2
    # Trainer: the embedding's rows for C1 are the vocabulary and the buckets.
    sizes = model_lib.vocabulary_sizes_from_transform(output)
    assert sizes["C1"] == 5 and sizes["C2"] == 1 + 3
    # Serving: the exported graph maps every token as Transform did, and serves tokens past the cap.
    model = model_lib.DCNV2(sizes, ModelConfig(dnn_units=(8,), embedding_dim=2, num_cross_layers=1))
    served_rows = [(0, {**{f"C{k}": "aaaaaaaa" for k in range(2, 27)}, "C1": t}) for t in "abcde"]
    examples = tf.constant(rows.to_examples(served_rows))
    raw = tf.io.parse_example(examples, output.raw_feature_spec())
    assert output.transform_raw_features(raw)[xf("C1")].numpy().tolist() == [ids[t] for t in "abcde"]
    model(output.transform_raw_features(raw))
    signatures.export(model, output, str(tmp_path / "model"))
    serve = tf.saved_model.load(str(tmp_path / "model")).signatures["serving_default"]
    probabilities = serve(examples=examples)["probabilities"].numpy()
    assert probabilities.shape == (5,) and np.all(np.isfinite(probabilities))
