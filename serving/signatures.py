"""Serving signatures attached at export; identical whatever loss trained the model.

`serving_default` takes serialized `tf.Example`s (input `examples`, what TF Serving's
classify/predict clients send) and returns `probabilities` [B], the click probability
σ(z). The Transform graph runs inside, so clients send raw features.
"""
from typing import Dict

import tensorflow as tf
import tensorflow_transform as tft

from transforms import features

PROBABILITY_KEY = "probabilities"
EXAMPLES_INPUT = "examples"


def _click_probability(model: tf.keras.Model, raw_features: Dict[str, tf.Tensor]) -> tf.Tensor:
    transformed = model.tft_layer(raw_features)
    return tf.sigmoid(tf.reshape(model(transformed, training=False), [-1]))


def make_signatures(model: tf.keras.Model, tf_transform_output: tft.TFTransformOutput) -> Dict[str, tf.types.experimental.ConcreteFunction]:
    """Serving functions for `model`; attaches the Transform layer so it is saved with it."""
    model.tft_layer = tf_transform_output.transform_features_layer()
    raw_spec = tf_transform_output.raw_feature_spec()
    raw_spec.pop(features.LABEL_KEY)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)])
    def serve_tf_examples(examples: tf.Tensor) -> Dict[str, tf.Tensor]:
        return {PROBABILITY_KEY: _click_probability(model, tf.io.parse_example(examples, raw_spec))}

    return {"serving_default": serve_tf_examples.get_concrete_function()}


def export(model: tf.keras.Model, tf_transform_output: tft.TFTransformOutput, export_dir: str) -> None:
    """Writes the SavedModel with its serving signatures to `export_dir`."""
    signatures = make_signatures(model, tf_transform_output)
    tf.saved_model.save(model, export_dir, signatures=signatures)
