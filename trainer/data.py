"""Input pipeline over the Transform output (gzipped TFRecords of transformed tf.Examples).

Files are read with an interleave, shuffled a window of records at a time, batched before parsing (one
vectorised `parse_example` per batch), and two batches are prefetched, on a fixed number of threads. `cache`
parses a split once into in-memory columns, for data that fits: on a 2-core machine
parsing competes with training for the same cores.
"""
import os
from typing import Dict, List, Optional, Tuple

import tensorflow as tf

from settings.configs import TrainerSettings
from transforms import features


def make_dataset(file_patterns: List[str], feature_spec: Dict[str, tf.io.FixedLenFeature], batch_size: int,
                 shuffle: bool = False, seed: Optional[int] = None, cache: bool = False,
                 shuffle_window: int = 100_000) -> tf.data.Dataset:
    """(features, label) batches; label is float32 [B, 1]. One pass (no repeat).

    With `shuffle`, streamed records are shuffled `shuffle_window` at a time (`_shuffled_batches`). With
    `cache`, the split is parsed once into in-memory columns and each epoch only gathers shuffled rows
    from them (a full shuffle), for data that fits in memory.
    """
    if cache:
        return _in_memory_dataset(file_patterns, feature_spec, batch_size, shuffle, seed)
    threads = _input_threads()
    files = tf.data.Dataset.list_files(file_patterns, shuffle=shuffle, seed=seed)
    records = files.interleave(lambda f: tf.data.TFRecordDataset(f, compression_type="GZIP"),
                               cycle_length=4, num_parallel_calls=threads if threads > 1 else None,
                               deterministic=True)
    batches = _shuffled_batches(records, batch_size, shuffle_window, seed) if shuffle else records.batch(batch_size)
    batches = batches.map(lambda serialized: split_label(tf.io.parse_example(serialized, feature_spec)),
                          num_parallel_calls=threads, deterministic=True)
    return batches.prefetch(2).with_options(_without_autotune())


def _shuffled_batches(records: tf.data.Dataset, batch_size: int, window: int, seed: Optional[int]) -> tf.data.Dataset:
    """Batches of `records`, each run of `window` records in a uniformly random order, another each pass.

    One permutation per window instead of tf.data's `shuffle` buffer of `window` records, which moved
    each record through a 100,000-record buffer at about 3 µs a record (cache misses), a third of the
    streaming input's cost: read, permute and cut into batches, then parse, 6.4-6.8 µs a record against
    8.5-8.8 (one thread, the 2M benchmark's train split); `model.fit` streaming at 0.83-0.88 of the bare
    step against 0.83-0.84 (benchmarks.trainer_speed (a), three alternating runs, BUILD.md). Each window
    is a uniform permutation, and no record leaves its window, where the buffer let some travel further;
    up to three windows of serialized records are in memory (about 200 MB for 100,000 Criteo records).
    """
    def permuted(chunk: tf.Tensor, seed_pair: tf.Tensor) -> tf.Tensor:
        return tf.random.experimental.stateless_shuffle(chunk, seed=seed_pair)

    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    # the next window is read and permuted while this one's batches are taken
    return tf.data.Dataset.zip((records.batch(window), seeds)).map(permuted).prefetch(1).rebatch(batch_size)


def _input_threads() -> int:
    """Parallel reads and parses of the streaming input: every core but one, which the step keeps.

    Fixed rather than tf.data's autotuner: on 2 cores the autotuner's extra threads took CPU from the
    step (benchmarks.trainer_speed (a) on 2M rows, four alternating runs each: `model.fit` at 0.76-0.84
    of the bare step with it, median 0.79, and 0.81-0.93, median 0.84, with one read and one parse
    thread; 11,300 against 12,500 examples/s, medians)."""
    return max(1, (os.cpu_count() or 1) - 1)


def _without_autotune() -> tf.data.Options:
    options = tf.data.Options()
    options.autotune.enabled = False
    return options


def train_and_eval_datasets(train_files: List[str], eval_files: List[str],
                            feature_spec: Dict[str, tf.io.FixedLenFeature],
                            settings: TrainerSettings) -> Tuple[tf.data.Dataset, tf.data.Dataset]:
    """The shuffled train split (negatives sampled at `negative_sampling_rate`, repeated when epochs are
    counted in steps) and the eval split in order."""
    train, loss = settings.train, settings.loss
    train_ds = make_dataset(train_files, feature_spec, train.batch_size, shuffle=True, seed=train.seed,
                            cache=train.cache_dataset)
    if loss.negative_sampling_rate < 1.0:
        train_ds = train_ds.map(negative_sampler(loss.negative_sampling_rate, train.seed))
    if train.steps_per_epoch:
        train_ds = train_ds.repeat()
    return train_ds, make_dataset(eval_files, feature_spec, train.batch_size, cache=train.cache_dataset)


def _in_memory_dataset(file_patterns: List[str], feature_spec: Dict[str, tf.io.FixedLenFeature], batch_size: int,
                       shuffle: bool, seed: Optional[int]) -> tf.data.Dataset:
    parsed = make_dataset(file_patterns, feature_spec, batch_size=65_536)
    columns: Dict[str, List[tf.Tensor]] = {}
    for batch_features, labels in parsed:
        for key, value in {**batch_features, "__label__": labels}.items():
            columns.setdefault(key, []).append(value)
    if not columns:
        raise ValueError(f"no records in {file_patterns}")
    table = {key: tf.concat(parts, axis=0) for key, parts in columns.items()}
    rows = tf.data.Dataset.range(int(table["__label__"].shape[0]))
    if shuffle:
        rows = rows.shuffle(int(table["__label__"].shape[0]), seed=seed, reshuffle_each_iteration=True)

    def gather(indices: tf.Tensor):
        batch_features = {key: tf.gather(value, indices) for key, value in table.items() if key != "__label__"}
        return batch_features, tf.gather(table["__label__"], indices)

    # A gather is cheap: one thread and two batches ahead keep the step fed. tf.data's autotuner would
    # spend CPU the step needs (on 2 cores it halved model.fit's rate; benchmarks.trainer_speed, (a)).
    return rows.batch(batch_size).map(gather).prefetch(2).with_options(_without_autotune())


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
