"""Input pipeline over the Transform output (gzipped TFRecords of transformed tf.Examples).

Files are read with a parallel interleave, records are batched before parsing
(one vectorised `parse_example` per batch), and batches are prefetched. `cache`
keeps the serialized records in memory after the first pass, for data that fits.
"""
from typing import Dict, List, Optional, Tuple

import tensorflow as tf

from transforms import features


def make_dataset(file_patterns: List[str], feature_spec: Dict[str, tf.io.FixedLenFeature], batch_size: int,
                 shuffle: bool = False, seed: Optional[int] = None, cache: bool = False,
                 shuffle_buffer: int = 100_000) -> tf.data.Dataset:
    """(features, label) batches; label is float32 [B, 1]. One pass (no repeat)."""
    files = tf.data.Dataset.list_files(file_patterns, shuffle=shuffle, seed=seed)
    records = files.interleave(lambda f: tf.data.TFRecordDataset(f, compression_type="GZIP"),
                               cycle_length=4, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if cache:
        records = records.cache()
    if shuffle:
        records = records.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    batches = records.batch(batch_size).map(
        lambda serialized: split_label(tf.io.parse_example(serialized, feature_spec)),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return batches.prefetch(tf.data.AUTOTUNE)


def negative_sampler(rate: float, seed: Optional[int] = None):
    """Batch map keeping every positive and each negative with probability `rate` (§4.5.2)."""

    def sample(batch_features: Dict[str, tf.Tensor], labels: tf.Tensor):
        keep = (labels[:, 0] > 0.5) | (tf.random.uniform(tf.shape(labels)[:1], seed=seed) < rate)
        return {k: tf.boolean_mask(v, keep) for k, v in batch_features.items()}, tf.boolean_mask(labels, keep)

    return sample


def split_label(parsed: Dict[str, tf.Tensor]) -> Tuple[Dict[str, tf.Tensor], tf.Tensor]:
    parsed = dict(parsed)
    label = tf.cast(parsed.pop(features.LABEL_KEY), tf.float32)
    return parsed, tf.reshape(label, [-1, 1])
