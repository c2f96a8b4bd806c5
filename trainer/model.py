"""DCN V2 (Wang et al., WWW'21) on per-field embeddings, as in BARS DCNv2_criteo_x1.

Input: the Transform output, `C*_xf` int64 ids [B] and `I*_xf` float [B].
Every field becomes a `embedding_dim` vector: categorical ids index one shared table
(one row block per field), numeric values scale a learned per-field vector (FuxiCTR's
numeric embedding). The flat [B, 39·d] vector x0 feeds
- parallel: a cross network (x_{l+1} = x0 ⊙ (W x_l + b) + x_l, `tfrs.layers.dcn.Cross`)
  beside a ReLU DNN, concatenated, then one logit;
- stacked: the cross network, then the DNN, then one logit.

`DCNV2` is what gets exported; its output is always one click logit per example, and its
`calibration` layer maps σ(logit) to the served probability (identity unless fitted).
"""
import contextlib
import dataclasses
from typing import Dict, Iterator, List, Sequence

import tensorflow as tf
import tensorflow_recommenders as tfrs

from settings.configs import EMBEDDING_REGULARIZATIONS, STRUCTURES, ModelConfig
from trainer.calibration import PiecewiseLinearCalibration
from transforms import features


class FieldEmbedding(tf.keras.layers.Layer):
    """Per-field embeddings: [B] ids and values of F fields -> [B, F·d].

    L2 on the categorical table (`embedding_l2`) applies either to the whole table (`table`, as
    FuxiCTR does; its gradient touches every row) or to the rows looked up in the batch (`batch`;
    the gradient stays sparse, which row-wise optimizers need). The numeric vectors always take
    the table-wide L2 (13 rows).

    An id outside its field's range is refused (`check_ids`); a step compiled by XLA cannot raise, so under
    `--jit-compile` the input pipeline checks the ids instead (`trainer.data.with_checked_ids`).
    """

    def __init__(self, vocabulary_sizes: Sequence[int], num_numeric: int, embedding_dim: int,
                 embedding_l2: float = 0.0, regularization: str = "table", check_ids: bool = True, **kwargs):
        super().__init__(**kwargs)
        if regularization not in EMBEDDING_REGULARIZATIONS:
            raise ValueError(f"embedding regularization must be one of {EMBEDDING_REGULARIZATIONS}, "
                             f"got {regularization!r}")
        self.vocabulary_sizes = [int(v) for v in vocabulary_sizes]
        self.num_numeric = num_numeric
        self.embedding_dim = embedding_dim
        self.embedding_l2 = embedding_l2
        self.regularization = regularization
        self.check_ids = check_ids
        offsets = [0]
        for size in self.vocabulary_sizes[:-1]:
            offsets.append(offsets[-1] + size)
        self._offsets = tf.constant(offsets, dtype=tf.int64)
        self._sizes = tf.constant(self.vocabulary_sizes, dtype=tf.int64)
        regularizer = tf.keras.regularizers.l2(embedding_l2) if embedding_l2 else None
        self.categorical_table = self.add_weight(
            name="categorical_table", shape=(sum(self.vocabulary_sizes), embedding_dim),
            initializer=tf.keras.initializers.RandomNormal(stddev=1e-4),
            regularizer=regularizer if regularization == "table" else None)
        self.numeric_vectors = self.add_weight(
            name="numeric_vectors", shape=(num_numeric, embedding_dim),
            initializer=tf.keras.initializers.RandomNormal(stddev=1e-4), regularizer=regularizer)

    def call(self, categorical_ids: tf.Tensor, numeric_values: tf.Tensor, training: bool = False) -> tf.Tensor:
        """categorical_ids [B, C] int64, numeric_values [B, N] float -> [B, (N + C)·d]. An id outside its
        field's range [0, size) is refused (it would read another field's rows of the shared table)."""
        ids = self._checked(categorical_ids) if self.check_ids else categorical_ids
        # embedding_lookup (`tf.gather` on one variable) looks up each id on the shard that holds it when the table
        # is partitioned across parameter servers (`trainer.distribution`), where a gather would copy the whole table.
        rows = tf.nn.embedding_lookup(self.categorical_table, ids + self._offsets)        # [B, C, d]
        if training and self.regularization == "batch" and self.embedding_l2:
            self.add_loss(self.embedding_l2 * tf.reduce_sum(tf.square(rows)))
        numeric = numeric_values[:, :, tf.newaxis] * tf.cast(self.numeric_vectors, numeric_values.dtype)
        fields = tf.concat([tf.cast(numeric, rows.dtype), rows], axis=1)               # [B, F, d]
        return tf.reshape(fields, [-1, (self.num_numeric + len(self.vocabulary_sizes)) * self.embedding_dim])

    def _checked(self, categorical_ids: tf.Tensor) -> tf.Tensor:
        """The ids, once the check that each is inside its field's range has passed: in a traced graph the
        lookup depends on the check, which otherwise may run after it (and the lookup fail first, or read)."""
        outside = (categorical_ids < 0) | (categorical_ids >= self._sizes)                  # [B, C]
        first = tf.where(outside)[:1]                                                      # [row, field]
        message = tf.strings.format("categorical id {} is outside [0, {}), the ids of field C{}", (
            tf.gather_nd(categorical_ids, first), tf.gather(self._sizes, first[:, 1]), first[:, 1] + 1))
        check = tf.debugging.Assert(tf.logical_not(tf.reduce_any(outside)), [message])
        with tf.control_dependencies([check] if check is not None else []):
            return tf.identity(categorical_ids)

    def get_config(self) -> Dict:
        return {**super().get_config(), "vocabulary_sizes": self.vocabulary_sizes,
                "num_numeric": self.num_numeric, "embedding_dim": self.embedding_dim,
                "embedding_l2": self.embedding_l2, "regularization": self.regularization, "check_ids": self.check_ids}


@contextlib.contextmanager
def precision_policy(precision: str) -> Iterator[None]:
    """Builds the layers made inside under Keras' `precision` policy (variables float32, compute
    bfloat16 for `mixed_bfloat16`), then restores the global policy: other components may share the process."""
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy(precision)
    try:
        yield
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)


class Cross(tfrs.layers.dcn.Cross):
    """`tfrs.layers.dcn.Cross` whose inner Dense layers follow this layer's dtype policy.

    TFRS 0.7.7 builds them with `dtype=self.dtype` (the variable dtype), so under `mixed_bfloat16`
    the cross network would still compute in float32. Same math, same variables.
    """

    def build(self, input_shape):
        super().build(input_shape)
        for name in ("_dense", "_dense_u", "_dense_v"):
            if hasattr(self, name):
                getattr(self, name)._set_dtype_policy(self.dtype_policy)  # pylint: disable=protected-access


class DCNV2(tf.keras.Model):
    """Deep & Cross Network V2 producing one click logit per example ([B, 1])."""

    def __init__(self, vocabulary_sizes: Dict[str, int], config: ModelConfig, check_ids: bool = True, **kwargs):
        super().__init__(**kwargs)
        if config.structure not in STRUCTURES:
            raise ValueError(f"model structure must be one of {STRUCTURES}, got {config.structure!r}")
        self.config = config
        self.embedding = FieldEmbedding(
            [vocabulary_sizes[k] for k in features.CATEGORICAL_FEATURES], len(features.NUMERIC_FEATURES),
            config.embedding_dim, config.embedding_l2, config.embedding_regularization, check_ids=check_ids,
            name="field_embedding")
        self.cross_layers: List[tf.keras.layers.Layer] = [
            Cross(projection_dim=config.cross_projection_dim, kernel_initializer="glorot_uniform", name=f"cross_{i}")
            for i in range(config.num_cross_layers)]
        self.dnn_layers: List[tf.keras.layers.Layer] = []
        for i, units in enumerate(config.dnn_units):
            self.dnn_layers.append(tf.keras.layers.Dense(units, activation="relu", name=f"dnn_{i}"))
            if config.dropout:
                self.dnn_layers.append(tf.keras.layers.Dropout(config.dropout, name=f"dropout_{i}"))
        self.logit_layer = tf.keras.layers.Dense(1, name="logit", dtype="float32")  # float32 under mixed precision
        # Applied to σ(logit) at serving time only; identity unless a calibration is fitted.
        self.calibration = PiecewiseLinearCalibration(name="calibration", dtype="float32")

    def embed(self, inputs: Dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        ids = tf.stack([tf.cast(inputs[features.transformed_name(k)], tf.int64)
                        for k in features.CATEGORICAL_FEATURES], axis=1)
        values = tf.stack([tf.cast(inputs[features.transformed_name(k)], tf.float32)
                           for k in features.NUMERIC_FEATURES], axis=1)
        return self.embedding(ids, values, training=training)

    def representation(self, inputs: Dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        """The penultimate layer [B, R]: what the logit layer reads."""
        x0 = self.embed(inputs, training=training)
        cross = x0
        for layer in self.cross_layers:
            cross = layer(x0, cross)
        if self.config.structure == "stacked":
            deep = cross
            for layer in self.dnn_layers:
                deep = layer(deep, training=training)
            return deep
        deep = x0
        for layer in self.dnn_layers:
            deep = layer(deep, training=training)
        return tf.concat([cross, deep], axis=1)

    def call(self, inputs: Dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        return self.logit_layer(self.representation(inputs, training=training))

    def get_config(self) -> Dict:
        return {"vocabulary_sizes": dict(zip(features.CATEGORICAL_FEATURES, self.embedding.vocabulary_sizes)),
                "config": dataclasses.asdict(self.config)}

    @classmethod
    def from_config(cls, config: Dict) -> "DCNV2":
        model_config = dict(config["config"], dnn_units=tuple(config["config"]["dnn_units"]))
        return cls(config["vocabulary_sizes"], ModelConfig(**model_config))


def vocabulary_sizes_from_transform(tf_transform_output) -> Dict[str, int]:
    """Rows each categorical field needs: the size of its id range, [0, max], as the Transform output's own
    schema records it (its vocabulary plus the out-of-vocabulary buckets Transform was run with)."""
    domains = {f.name: f for f in tf_transform_output.transformed_metadata.schema.feature}
    sizes = {}
    for key in features.CATEGORICAL_FEATURES:
        feature = domains.get(features.transformed_name(key))
        if feature is None or not feature.HasField("int_domain") or feature.int_domain.min != 0:
            raise ValueError(f"the Transform output's schema gives no id range [0, max] for "
                             f"{features.transformed_name(key)}: it was not made by transforms.preprocessing")
        sizes[key] = int(feature.int_domain.max) + 1
    return sizes


def zero_row() -> Dict[str, tf.Tensor]:
    """One transformed row of zeros (id 0 in every field): enough to build a model's variables."""
    return {**{features.transformed_name(k): tf.zeros([1], tf.int64) for k in features.CATEGORICAL_FEATURES},
            **{features.transformed_name(k): tf.zeros([1]) for k in features.NUMERIC_FEATURES}}


def whole_copy(model: DCNV2) -> DCNV2:
    """`model` rebuilt outside any distribution strategy, its weights copied: each variable whole where
    parameter servers held `model`'s in shards. What is exported then, so the SavedModel is the one a single
    process exports (a SavedModel of sharded variables does not load back whole)."""
    with precision_policy(model.dtype_policy.name):
        copy = DCNV2(dict(zip(features.CATEGORICAL_FEATURES, model.embedding.vocabulary_sizes)), model.config,
                     check_ids=model.embedding.check_ids)
    copy(zero_row())
    shards = iter(model.weights)  # Keras lists a sharded variable's shards, in order, where the variable was
    for target in copy.weights:
        parts = [next(shards)]
        while target.shape.rank and sum(p.shape[0] for p in parts) < target.shape[0]:
            parts.append(next(shards))
        target.assign(tf.concat(parts, axis=0) if len(parts) > 1 else parts[0])
    if next(shards, None) is not None:
        raise ValueError("whole_copy: the model has more weights than its copy")
    return copy


def count_parameters(model: tf.keras.Model) -> int:
    return int(sum(tf.size(v).numpy() for v in model.trainable_variables))
