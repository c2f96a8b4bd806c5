"""The Trainer's input pipeline: streamed and in-memory paths give the same rows."""
import numpy as np
import tensorflow as tf

from trainer import data

SPEC = {"I1_xf": tf.io.FixedLenFeature([], tf.float32), "C1_xf": tf.io.FixedLenFeature([], tf.int64),
        "label": tf.io.FixedLenFeature([], tf.int64)}


def _write(path, n):
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for i in range(n):
            example = tf.train.Example()
            example.features.feature["I1_xf"].float_list.value.append(i / 10)
            example.features.feature["C1_xf"].int64_list.value.append(i)
            example.features.feature["label"].int64_list.value.append(i % 4 == 0)
            writer.write(example.SerializeToString())


def _epoch(dataset):
    rows = []
    for features, labels in dataset:
        assert labels.shape[1] == 1 and labels.dtype == tf.float32 and "label" not in features
        rows += list(zip(features["C1_xf"].numpy(), features["I1_xf"].numpy(), labels.numpy()[:, 0]))
    return rows


def test_cached_and_streamed_datasets_hold_the_same_rows(tmp_path):
    _write(tmp_path / "part-0.gz", 150)
    _write(tmp_path / "part-1.gz", 0)
    pattern = [str(tmp_path / "part-*")]
    streamed = _epoch(data.make_dataset(pattern, SPEC, 32))
    cached = data.make_dataset(pattern, SPEC, 32, shuffle=True, seed=3, cache=True)
    first, second = _epoch(cached), _epoch(cached)
    assert sorted(streamed) == sorted(first) == sorted(second) and len(first) == 150
    assert [r[0] for r in first] != [r[0] for r in second]          # reshuffled every epoch
    assert first == _epoch(data.make_dataset(pattern, SPEC, 32, shuffle=True, seed=3, cache=True))  # the seed repeats
    assert all(label == float(c % 4 == 0) for c, _, label in first)  # rows stay whole
    sizes = [int(l.shape[0]) for _, l in data.make_dataset(pattern, SPEC, 32, cache=True)]
    assert sizes == [32, 32, 32, 32, 22]
    np.testing.assert_allclose([r[1] for r in sorted(first)], np.arange(150) / 10, rtol=1e-6)
    repeated = [int(c) for features, _ in cached.repeat(2) for c in features["C1_xf"].numpy()]
    assert sorted(repeated[:150]) == sorted(repeated[150:]) and repeated[:150] != repeated[150:]  # anew on repeat
    # within one streaming window, both paths draw the same permutation from the same seed, epoch by epoch
    within_one_window = data.make_dataset(pattern, SPEC, 32, shuffle=True, seed=3, shuffle_window=1000)
    assert [_epoch(within_one_window), _epoch(within_one_window)] == [first, second]


def test_a_split_within_the_cache_limit_is_held_in_memory_and_a_larger_one_streamed(tmp_path):
    """Rows of several dtypes and widths come back whole from the row-major tables; the limit decides."""
    spec = {**SPEC, "pair_xf": tf.io.FixedLenFeature([2], tf.float32)}
    with tf.io.TFRecordWriter(str(tmp_path / "part-0.gz"), options="GZIP") as writer:
        for i in range(3000):
            example = tf.train.Example()
            example.features.feature["I1_xf"].float_list.value.append(i / 10)
            example.features.feature["C1_xf"].int64_list.value.append(i)
            example.features.feature["label"].int64_list.value.append(i % 3 == 0)
            example.features.feature["pair_xf"].float_list.value.extend([i, -i])
            writer.write(example.SerializeToString())
    pattern = [str(tmp_path / "part-*")]
    # tables: int64 C1; float32 I1, the pair and the label (split_label casts it): 3000 * (8 + 4 * 4) = 72,000 bytes
    held = data.make_dataset(pattern, spec, 1000, shuffle=True, seed=1, cache_limit_mb=1)
    assert held.element_spec[0]["pair_xf"].shape.as_list()[1:] == [2]
    for features, labels in held:
        c1 = features["C1_xf"].numpy()
        np.testing.assert_allclose(features["pair_xf"].numpy(), np.stack([c1, -c1], axis=1))
        np.testing.assert_allclose(features["I1_xf"].numpy(), c1 / 10, rtol=1e-6)
        np.testing.assert_array_equal(labels.numpy()[:, 0], c1 % 3 == 0)
    assert data._parsed_tables(pattern, spec, limit_bytes=72_000) is not None  # pylint: disable=protected-access
    assert data._parsed_tables(pattern, spec, limit_bytes=71_999) is None  # pylint: disable=protected-access
    in_order = [int(c) for features, _ in data.make_dataset(pattern, spec, 1000, cache_limit_mb=1)
                for c in features["C1_xf"].numpy()]
    assert in_order == list(range(3000))


def test_streamed_shuffle_permutes_each_window_anew_every_pass(tmp_path):
    _write(tmp_path / "part-0.gz", 250)
    pattern = [str(tmp_path / "part-*")]
    shuffled = data.make_dataset(pattern, SPEC, 32, shuffle=True, seed=3, shuffle_window=100)
    first, second = _epoch(shuffled), _epoch(shuffled)
    again = _epoch(data.make_dataset(pattern, SPEC, 32, shuffle=True, seed=3, shuffle_window=100))
    ids = [[int(r[0]) for r in rows] for rows in (first, second, again)]
    assert sorted(ids[0]) == sorted(ids[1]) == list(range(250))
    assert ids[0] != ids[1] and ids[0] == ids[2] and ids[0] != sorted(ids[0])  # anew each pass; the seed repeats
    for start in (0, 100, 200):  # each run of 100 records stays in its window
        assert sorted(ids[0][start:start + 100]) == list(range(start, min(250, start + 100)))
    sizes = [int(labels.shape[0]) for _, labels in shuffled]
    assert sizes == [32] * 7 + [26]  # batches run across the windows
    assert all(label == float(c % 4 == 0) for c, _, label in first)


def test_the_input_path_a_run_records_is_the_one_make_dataset_takes(tmp_path):
    """`train_input_path` answers without reading the split; it must agree with the tables' real size."""
    from settings.configs import TrainConfig  # pylint: disable=import-outside-toplevel

    _write(tmp_path / "part-0.gz", 3000)
    pattern = [str(tmp_path / "part-*")]
    size = data.row_bytes(SPEC) * 3000            # int64 C1; float32 I1 and the label: 16 bytes a row
    assert size == 48_000
    assert data._parsed_tables(pattern, SPEC, limit_bytes=size) is not None  # pylint: disable=protected-access
    assert data._parsed_tables(pattern, SPEC, limit_bytes=size - 1) is None  # pylint: disable=protected-access
    rows_per_mb = (1 << 20) // data.row_bytes(SPEC)
    assert data.train_input_path(rows_per_mb, SPEC, TrainConfig(cache_limit_mb=1)) == "memory"
    assert data.train_input_path(rows_per_mb + 1, SPEC, TrainConfig(cache_limit_mb=1)) == "stream"
    assert data.train_input_path(rows_per_mb + 1, SPEC, TrainConfig(cache_limit_mb=1, cache_dataset=True)) == "memory"
    assert data.train_input_path(10, SPEC, TrainConfig(cache_limit_mb=0)) == "stream"
