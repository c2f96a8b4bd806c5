"""The Transform `preprocessing_fn` for Criteo.

Choices (the same at training and serving, since the graph travels with the model):
- Categorical `C*`: a missing value becomes the token `__missing__` (a category of its
  own, as FuxiCTR's fill value); then a vocabulary over the train split keeps the
  tokens seen at least `min_category_count` times (FuxiCTR's `min_categr_count`: 1
  in BARS Criteo_x1, 10 in Criteo_x4), at most the `max_vocabulary_size` most frequent
  of them when set (MLPerf's DLRM caps Criteo 1TB's fields at 40M), and maps every other
  token, including ones first seen at serving time, to `num_oov_buckets` hashed
  out-of-vocabulary ids. All fields'
  vocabularies come from one analyzer pass (`transforms.vocabularies`), identical to
  `tft.compute_and_apply_vocabulary`'s per field.
- Numeric `I*`: missing -> 0, then sign(x)·log(1 + |x|). Raw Kaggle counts are heavy
  tailed (I5 reaches millions); the log keeps a field's embedding scale bounded
  (FuxiCTR multiplies a numeric field's embedding by this value). I2 can be -1 in
  real data, hence the sign.
- `label`: dense int64 0/1.
"""
from typing import Any, Dict, Optional

import tensorflow as tf
import tensorflow_transform as tft

from transforms import features, vocabularies


def _dense(x: tf.SparseTensor, default: Any) -> tf.Tensor:
    """[B] dense values of an optional single-valued feature, `default` where absent."""
    return tf.squeeze(tft.sparse_tensor_to_dense_with_shape(x, [None, 1], default), axis=1)


def signed_log1p(x: tf.Tensor) -> tf.Tensor:
    x = tf.cast(x, tf.float32)
    return tf.sign(x) * tf.math.log1p(tf.abs(x))


def vocabulary_name(key: str) -> str:
    """Vocabulary file name of a categorical feature (read back by the Trainer)."""
    return f"vocab_{key}"


def preprocessing_fn(inputs: Dict[str, Any], custom_config: Optional[Dict[str, Any]] = None) -> Dict[str, tf.Tensor]:
    """tf.Transform callback: raw Criteo features -> model inputs (see module docstring)."""
    config = custom_config or {}
    min_count = int(config.get("min_category_count", 1))
    num_oov = int(config.get("num_oov_buckets", 1))
    max_size = config.get("max_vocabulary_size")
    outputs = {}
    for key in features.NUMERIC_FEATURES:
        outputs[features.transformed_name(key)] = signed_log1p(
            _dense(inputs[key], tf.constant(features.MISSING_NUMERIC, tf.int64)))
    tokens = {key: _dense(inputs[key], features.MISSING_CATEGORY.encode())
              for key in features.CATEGORICAL_FEATURES}
    ids = vocabularies.compute_and_apply_vocabularies(
        tokens, {key: vocabulary_name(key) for key in tokens}, min_count, num_oov,
        int(max_size) if max_size is not None else None)
    outputs.update({features.transformed_name(key): ids[key] for key in tokens})
    outputs[features.LABEL_KEY] = _dense(inputs[features.LABEL_KEY], tf.constant(0, tf.int64))
    return outputs
