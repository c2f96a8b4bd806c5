"""Input pipeline over the Transform output (gzipped TFRecords of transformed tf.Examples).

A split that fits in `TrainConfig.cache_limit_mb` is parsed once into in-memory tables and each epoch
gathers batches of rows from them; a larger one is streamed: files are read with an interleave,
shuffled a window of records at a time, batched before parsing (one vectorised `parse_example` per
batch), and two batches are prefetched, on a fixed number of threads. On a 2-core machine the streamed
input's reading and parsing compete with training for the same cores.
"""
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from absl import logging

from settings.configs import TrainConfig, TrainerSettings
from transforms import features

_LABEL = "__label__"
_READ_BLOCK = 1024  # records read from one file at a time
# key -> (dtype, first column in that dtype's table, columns, shape of one row's value)
Layout = Dict[str, Tuple[tf.DType, int, int, tf.TensorShape]]
FileShard = Tuple[int, int]  # (this reader's index, readers): read the sorted files index, index + readers, ...


def row_bytes(feature_spec: Dict[str, tf.io.FixedLenFeature]) -> int:
    """Bytes a row takes in the in-memory tables: each feature at its dtype, the label as float32."""
    return tf.float32.size + sum(int(np.prod(spec.shape)) * spec.dtype.size
                                 for key, spec in feature_spec.items() if key != features.LABEL_KEY)


def train_input_path(rows: int, feature_spec: Dict[str, tf.io.FixedLenFeature], train: TrainConfig) -> str:
    """"memory" when `make_dataset` holds a split of `rows` rows in memory under `train`'s settings, else
    "stream". The two shuffle alike within one streaming window of one file, and differently beyond it."""
    fits = 0 < rows * row_bytes(feature_spec) <= train.cache_limit_mb << 20
    return "memory" if train.cache_dataset or fits else "stream"


def count_files(file_patterns: List[str]) -> int:
    """Files matching `file_patterns`."""
    return sum(len(tf.io.gfile.glob(pattern)) for pattern in file_patterns)


def make_dataset(file_patterns: List[str], feature_spec: Dict[str, tf.io.FixedLenFeature], batch_size: int,
                 shuffle: bool = False, seed: Optional[int] = None, cache: bool = False, cache_limit_mb: int = 0,
                 shuffle_window: int = 100_000, per_worker_order: bool = False,
                 file_shard: Optional[FileShard] = None) -> tf.data.Dataset:
    """(features, label) batches; label is float32 [B, 1]. One pass (no repeat).

    With `cache`, or when the split's parsed tables take at most `cache_limit_mb`, the split is parsed
    once into memory and each pass gathers batches of rows from it, all rows in a new order each pass
    with `shuffle` (`_in_memory_dataset`). Otherwise it is streamed, and with `shuffle` the records are
    shuffled `shuffle_window` at a time (`_shuffled_batches`).

    `per_worker_order` (parameter servers, whose chief builds the one dataset every worker runs): the split
    is streamed, and the shuffles' seeds take the clock of the worker that reads, so each worker reads the
    files and the records in an order of its own (not one `seed` repeats).
    `file_shard` (i, n): only the files i, i + n, ... of the sorted files are read (one of n workers).
    """
    if file_shard:
        index, count = file_shard
        file_patterns = sorted(f for pattern in file_patterns for f in tf.io.gfile.glob(pattern))[index::count]
    if per_worker_order:
        return _streamed(file_patterns, feature_spec, batch_size, _input_threads(), shuffle, seed, shuffle_window,
                         salted=True)
    if cache or cache_limit_mb > 0:
        loaded = _parsed_tables(file_patterns, feature_spec, None if cache else cache_limit_mb << 20)
        if loaded is not None:
            return _in_memory_dataset(*loaded, batch_size, shuffle, seed)
        logging.info("[trainer] %s: its tables pass --cache-limit-mb (%d MB), so it is streamed", file_patterns,
                     cache_limit_mb)
    return _streamed(file_patterns, feature_spec, batch_size, _input_threads(), shuffle, seed, shuffle_window)


def _streamed(file_patterns: List[str], feature_spec: Dict[str, tf.io.FixedLenFeature], batch_size: int,
              threads: int, shuffle: bool = False, seed: Optional[int] = None,
              shuffle_window: int = 100_000, salted: bool = False) -> tf.data.Dataset:
    """Parsed batches read from the files, reading and parsing on `threads` threads each.

    Each file's records are read in blocks of `_READ_BLOCK`, and the interleave hands over blocks: handing
    over single records between threads cost several times more with two reading threads than with one,
    and in blocks the two cost the same.
    """
    files = tf.data.Dataset.list_files(file_patterns, shuffle=shuffle and not salted, seed=seed)
    if shuffle and salted:
        files = files.batch(1 << 30).map(lambda names: tf.random.experimental.stateless_shuffle(
            names, seed=_salted(tf.constant([seed or 0, 0], tf.int64)))).unbatch()
    blocks = files.interleave(
        lambda f: tf.data.TFRecordDataset(f, compression_type="GZIP").batch(_READ_BLOCK),
        cycle_length=4, num_parallel_calls=threads if threads > 1 else None, deterministic=True)
    batches = (_shuffled_batches(blocks, batch_size, shuffle_window, seed, salted) if shuffle
               else blocks.rebatch(batch_size))
    batches = batches.map(lambda serialized: split_label(tf.io.parse_example(serialized, feature_spec)),
                          num_parallel_calls=threads, deterministic=True)
    return batches.prefetch(2).with_options(_without_autotune())


def _salted(seed_pair: tf.Tensor) -> tf.Tensor:
    """`seed_pair` with the microseconds of the clock where it runs added: another seed on each worker."""
    return seed_pair + tf.stack([tf.constant(0, tf.int64), tf.cast(tf.timestamp() * 1e6, tf.int64)])


def _shuffled_batches(blocks: tf.data.Dataset, batch_size: int, window: int, seed: Optional[int],
                      salted: bool = False) -> tf.data.Dataset:
    """Batches of the records in `blocks`, each run of `window` records in a uniformly random order,
    another each pass.

    One permutation per window instead of tf.data's `shuffle` buffer of `window` records, which moved
    each record through the buffer with a cache miss each, a third of the streaming input's cost when
    profiled (benchmarks.trainer_speed (a) measures the streaming input against the bare step). Each window
    is a uniform permutation, and no record leaves its window, where the buffer let some travel further;
    up to three windows of serialized records are in memory (about 200 MB for 100,000 Criteo records).
    """
    def permuted(chunk: tf.Tensor, seed_pair: tf.Tensor) -> tf.Tensor:
        return tf.random.experimental.stateless_shuffle(chunk, seed=_salted(seed_pair) if salted else seed_pair)

    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    # the next window is read and permuted while this one's batches are taken
    return tf.data.Dataset.zip((blocks.rebatch(window), seeds)).map(permuted).prefetch(1).rebatch(batch_size)


def _input_threads() -> int:
    """Parallel reads and parses of the streaming input: every core but one, which the step keeps.

    Fixed rather than tf.data's autotuner: on 2 cores the autotuner's extra threads took CPU from the
    step, and `model.fit` kept up with the bare step less well (benchmarks.trainer_speed (a))."""
    return max(1, (os.cpu_count() or 1) - 1)


def _without_autotune() -> tf.data.Options:
    options = tf.data.Options()
    options.autotune.enabled = False
    return options


def train_and_eval_datasets(train_files: List[str], eval_files: List[str],
                            feature_spec: Dict[str, tf.io.FixedLenFeature],
                            settings: TrainerSettings, file_shards: Sequence[Optional[FileShard]] = (None, None),
                            per_worker_order: bool = False) -> Tuple[tf.data.Dataset, tf.data.Dataset]:
    """The shuffled train split (negatives sampled at `negative_sampling_rate`, repeated when epochs are
    counted in steps) and the eval split in order; `file_shards` (train, eval) and `per_worker_order`: see
    `make_dataset`."""
    train, loss = settings.train, settings.loss
    memory = {"cache": train.cache_dataset, "cache_limit_mb": train.cache_limit_mb, "per_worker_order": per_worker_order}
    if per_worker_order:
        logging.info("[trainer] parameter servers: the splits are streamed, each worker in its own order; "
                     "--train-seed seeds the initial weights only (asynchronous training does not repeat)")
    train_ds = make_dataset(train_files, feature_spec, train.batch_size, shuffle=True, seed=train.seed,
                            file_shard=file_shards[0], **memory)
    if loss.negative_sampling_rate < 1.0:
        train_ds = train_ds.map(negative_sampler(loss.negative_sampling_rate, train.seed))
    if train.steps_per_epoch:
        train_ds = train_ds.repeat()
    eval_ds = make_dataset(eval_files, feature_spec, train.batch_size, file_shard=file_shards[1], **memory)
    # Parameter servers: each worker's eval iterator goes on where the last validation left it, round the split.
    return train_ds, eval_ds.repeat() if per_worker_order else eval_ds


def _parsed_tables(file_patterns: List[str], feature_spec: Dict[str, tf.io.FixedLenFeature],
                   limit_bytes: Optional[int]) -> Optional[Tuple[Dict[tf.DType, tf.Tensor], Layout]]:
    """The split parsed into row-major tables, one [rows, columns] table per dtype (the label too), and
    where each feature lies in them; None once the tables would pass `limit_bytes` (memory peaks at twice
    the tables' size while they are joined)."""
    parts: Dict[tf.DType, List[tf.Tensor]] = {}
    layout: Layout = {}
    size = 0
    # every core reads and parses: nothing trains while a split loads
    for batch_features, labels in _streamed(file_patterns, feature_spec, 65_536, os.cpu_count() or 1):
        columns = {**batch_features, _LABEL: labels}
        if not layout:
            widths: Dict[tf.DType, int] = {}
            for key, value in columns.items():
                width = int(tf.size(value[0]))
                layout[key] = (value.dtype, widths.get(value.dtype, 0), width, value.shape[1:])
                widths[value.dtype] = widths.get(value.dtype, 0) + width
        for dtype in {spec[0] for spec in layout.values()}:
            table = tf.concat([tf.reshape(columns[key], [-1, width])
                               for key, (key_dtype, _, width, _) in layout.items() if key_dtype == dtype], axis=1)
            parts.setdefault(dtype, []).append(table)
            size += int(tf.size(table)) * dtype.size
        if limit_bytes is not None and size > limit_bytes:
            return None
    if not parts:
        raise ValueError(f"no records in {file_patterns}")
    return {dtype: tf.concat(chunks, axis=0) for dtype, chunks in parts.items()}, layout


def _in_memory_dataset(tables: Dict[tf.DType, tf.Tensor], layout: Layout, batch_size: int, shuffle: bool,
                       seed: Optional[int]) -> tf.data.Dataset:
    """Batches of rows gathered from `tables`; with `shuffle`, every row in a new order each pass.

    A batch is one gather of whole rows per table: a table per feature, one scattered gather per feature
    and tf.data's `shuffle` of row numbers took several times longer a row.
    """
    all_rows = tf.range(int(next(iter(tables.values())).shape[0]), dtype=tf.int64)
    if shuffle:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2).take(1)
        order = seeds.map(lambda seed_pair: tf.random.experimental.stateless_shuffle(all_rows, seed=seed_pair))
    else:
        order = tf.data.Dataset.from_tensors(all_rows)

    def gather(indices: tf.Tensor):
        rows = {dtype: tf.gather(table, indices) for dtype, table in tables.items()}
        columns = {key: tf.reshape(rows[dtype][:, first:first + width], tf.concat([[-1], shape], axis=0))
                   for key, (dtype, first, width, shape) in layout.items()}
        labels = columns.pop(_LABEL)
        return columns, labels

    # A gather is cheap: one thread and two batches ahead keep the step fed. tf.data's autotuner would
    # spend CPU the step needs (on 2 cores it halved model.fit's rate; benchmarks.trainer_speed, (a)).
    return order.rebatch(batch_size).map(gather).prefetch(2).with_options(_without_autotune())


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


def with_checked_ids(dataset: tf.data.Dataset, vocabulary_sizes: Dict[str, int]) -> tf.data.Dataset:
    """`dataset`'s (features, labels) batches, each categorical id checked to lie in its field's range
    [0, size): the check `model.FieldEmbedding` makes inside the step, made here where the step is compiled
    by XLA (`--jit-compile`), which cannot raise."""
    def checked(batch_features, labels):
        checks = []
        for name, size in vocabulary_sizes.items():
            ids = batch_features[features.transformed_name(name)]
            message = f"categorical id outside [0, {size}), the ids of field {name}"
            checks += [tf.debugging.assert_non_negative(ids, message=message),
                       tf.debugging.assert_less(ids, tf.constant(size, ids.dtype), message=message)]
        with tf.control_dependencies(checks):
            return {key: tf.identity(value) for key, value in batch_features.items()}, labels
    return dataset.map(checked)

