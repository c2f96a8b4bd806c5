"""Serving signatures attached at export; identical whatever loss trained the model.

Both return `probabilities` [B], the click probability σ(z) through the model's calibration
layer (identity unless fitted), and run the Transform graph inside, so clients never preprocess:
- `serving_default`: serialized `tf.Example`s (input `examples`; base64 `{"b64": ...}` in JSON),
  what TF Serving's predict clients send; an absent feature, or one with no
  value list, is missing.
- `serving_raw`: one input per raw column, for JSON clients: `I1`..`I13` float64 (integer
  counts, rounded; NaN = missing) and `C1`..`C26` strings ("" = missing). Missing values take
  the training defaults (0 before the log, the `__missing__` category); unseen categories go
  to the OOV bucket.
"""
from typing import Dict

import tensorflow as tf
import tensorflow_transform as tft

from serving.contract import (CATEGORICAL_MISSING, DEFAULT_SIGNATURE, EXAMPLES_INPUT, PROBABILITY_KEY,
                              RAW_SIGNATURE)
from transforms import features


def _as_optional_feature(values: tf.Tensor, present: tf.Tensor) -> tf.SparseTensor:
    """[B] column -> [B, 1] SparseTensor holding only the present values, as parse_example gives."""
    rows = tf.where(present)
    return tf.SparseTensor(indices=tf.concat([rows, tf.zeros_like(rows)], axis=1),
                           values=tf.boolean_mask(values, present),
                           dense_shape=tf.stack([tf.shape(values, out_type=tf.int64)[0], 1]))


def raw_columns_to_features(columns: Dict[str, tf.Tensor]) -> Dict[str, tf.SparseTensor]:
    """`serving_raw` inputs -> the raw features `tf.io.parse_example` yields for the same row."""
    raw = {}
    for key in features.NUMERIC_FEATURES:
        x = columns[key]
        raw[key] = _as_optional_feature(tf.cast(tf.round(x), tf.int64), ~tf.math.is_nan(x))
    for key in features.CATEGORICAL_FEATURES:
        raw[key] = _as_optional_feature(columns[key], tf.not_equal(columns[key], CATEGORICAL_MISSING))
    return raw


def click_probability(model: tf.keras.Model, transformed_features: Dict[str, tf.Tensor]) -> tf.Tensor:
    """[B] served click probabilities of transformed features: σ(logit) through the model's calibration."""
    return model.calibration(tf.sigmoid(tf.reshape(model(transformed_features, training=False), [-1])))


def _click_probability(model: tf.keras.Model, raw_features: Dict[str, tf.Tensor]) -> tf.Tensor:
    return click_probability(model, model.tft_layer(raw_features))


def make_signatures(model: tf.keras.Model,
                    tf_transform_output: tft.TFTransformOutput) -> Dict[str, tf.types.experimental.ConcreteFunction]:
    """Serving functions for `model`; attaches the Transform layer so it is saved with it."""
    model.tft_layer = tf_transform_output.transform_features_layer()
    raw_spec = tf_transform_output.raw_feature_spec()
    raw_spec.pop(features.LABEL_KEY)

    # autograph=False: nothing branches on tensor values, and AutoGraph's rewrite of the model and the
    # Transform layer costs seconds per export.
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)], autograph=False)
    def serve_tf_examples(examples: tf.Tensor) -> Dict[str, tf.Tensor]:
        return {PROBABILITY_KEY: _click_probability(model, tf.io.parse_example(examples, raw_spec))}

    raw_signature = [tf.TensorSpec([None], tf.float64, name=k) for k in features.NUMERIC_FEATURES] + \
                    [tf.TensorSpec([None], tf.string, name=k) for k in features.CATEGORICAL_FEATURES]

    @tf.function(input_signature=raw_signature, autograph=False)
    def serve_raw_columns(*columns: tf.Tensor) -> Dict[str, tf.Tensor]:
        named = dict(zip(features.NUMERIC_FEATURES + features.CATEGORICAL_FEATURES, columns))
        return {PROBABILITY_KEY: _click_probability(model, raw_columns_to_features(named))}

    return {DEFAULT_SIGNATURE: serve_tf_examples.get_concrete_function(),
            RAW_SIGNATURE: serve_raw_columns.get_concrete_function()}


def export(model: tf.keras.Model, tf_transform_output: tft.TFTransformOutput, export_dir: str) -> None:
    """Writes the SavedModel with its serving signatures to `export_dir`."""
    signatures = make_signatures(model, tf_transform_output)
    tf.saved_model.save(model, export_dir, signatures=signatures)
