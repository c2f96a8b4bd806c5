"""StatisticsGen and Transform's analysis reading a file at a time: the same rows and statistics as TFX's readers."""
import concurrent.futures
import glob
import json
import os
import re
import threading
import time

import apache_beam as beam
import pyarrow as pa
import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tfx.components.statistics_gen import executor as tfx_statistics_gen
from tfx.components.util import tfxio_utils
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts
from tfx_bsl.coders import example_coder
from tfx_bsl.tfxio import record_based_tfxio, tensor_adapter, tf_example_record

from components import file_reads, statistics_gen, worker_threads
from transforms.schema import load_schema
from transforms.splits import SPLITS
from tests.helpers import TRAIN_FILES, examples_artifact

pytestmark = pytest.mark.e2e  # runs the pipeline, a server or a trainer end to end


def _statistics(executor_class, examples, out_dir):
    statistics = standard_artifacts.ExampleStatistics()
    statistics.uri = out_dir
    executor_class().Do({"examples": [examples_artifact(examples)]}, {"statistics": [statistics]}, {})
    return {split: tfdv.load_stats_binary(os.path.join(out_dir, f"Split-{split}", "FeatureStats.pb"))
            for split in SPLITS}


def _rounded(statistics) -> str:
    """The statistics as text, every float to 10 significant digits: TFDV merges the per-file partial
    results in the order they come, so a mean or standard deviation may differ in its last bits."""
    return re.sub(r"-?\d+\.\d+(e[-+]\d+)?", lambda m: f"{float(m.group()):.10g}", str(statistics))


def test_statistics_gen_writes_the_statistics_tfx_writes(ingested, tmp_path):
    ours = _statistics(statistics_gen.Executor, ingested[0], str(tmp_path / "ours"))
    theirs = _statistics(tfx_statistics_gen.Executor, ingested[0], str(tmp_path / "tfx"))
    assert [ours[s].datasets[0].num_examples for s in SPLITS] == [theirs[s].datasets[0].num_examples for s in SPLITS]
    assert sum(ours[s].datasets[0].num_examples for s in SPLITS) == 500
    for split in SPLITS:
        assert _rounded(ours[split]) == _rounded(theirs[split]), split
    assert tfxio_utils.make_tfxio.__qualname__ == "make_tfxio"  # TFX's own again after the executor


_COLLECTED = []  # what `_Collect` saw: the in-memory runner runs a copy of the DoFn in this process


class _Collect(beam.DoFn):
    def process(self, batch):
        _COLLECTED.append(batch)


def _read(tfxio, batch_size=None, counter=("rows", "sampled_rows")):
    """The record batches `tfxio`'s Beam source yields, in order, and the sum of its `file_reads` counters
    named in `counter`."""
    _COLLECTED.clear()
    with beam.Pipeline() as pipeline:
        _ = pipeline | tfxio.BeamSource(batch_size) | beam.ParDo(_Collect())
    rows = pipeline.result.metrics().query(beam.metrics.MetricsFilter().with_namespace(file_reads.COUNTER_NAMESPACE))
    return list(_COLLECTED), sum(c.result for c in rows["counters"] if c.key.metric.name in counter)


@pytest.mark.parametrize("schema, parse_in_tensorflow", [(True, False), (True, True), (False, False)])
@pytest.mark.parametrize("raw_record_column", [None, "__raw_records__"])
def test_a_file_decodes_to_tfxs_rows_in_its_order_whatever_the_batch(ingested, raw_record_column, schema,
                                                                      parse_in_tensorflow):
    """The batches equal TFX's reader's (with the schema, or without, as TFX's StatisticsGen reads), and
    TensorFlow parsed them all but, without a schema, the first, which names the columns."""
    pattern = os.path.join(ingested[0], "Split-train", "*")
    first_file = sorted(glob.glob(pattern))[0]
    kwargs = dict(schema=load_schema() if schema else None, raw_record_column_name=raw_record_column)
    # Without a schema, batches in which every value of a column is missing would go to the decoder.
    batch_rows = 7 if schema else 64
    reader = file_reads.FileAtATimeTFExampleRecord(first_file, parse_in_tensorflow=parse_in_tensorflow, **kwargs)
    batches, counted = _read(reader, batch_size=batch_rows)
    assert _read(reader, batch_size=batch_rows, counter=("decoder_rows",))[1] == (0 if schema else batch_rows)
    assert {b.num_rows for b in batches[:-1]} == {batch_rows}
    # TFX's reader yields one file's rows in file order too (one element per record, read in sequence).
    if schema:
        ours, theirs = (pa.Table.from_batches(b).combine_chunks() for b in (
            batches, _read(tf_example_record.TFExampleRecord(first_file, **kwargs))[0]))
        assert ours.equals(theirs)
    else:  # each batch its own columns, as tfx-bsl's decoder makes them without a schema
        records, decoder = _records(first_file), example_coder.ExamplesToRecordBatchDecoder()
        for i, batch in enumerate(batches):
            expected = decoder.DecodeBatch(records[i * batch_rows:(i + 1) * batch_rows])
            if raw_record_column:
                expected = record_based_tfxio.AppendRawRecordColumn(
                    expected, raw_record_column, records[i * batch_rows:(i + 1) * batch_rows])
            assert batch.equals(expected), i
        ours = pa.Table.from_batches(batches)
    assert ours.num_rows == counted == len(_records(first_file)) > 0
    assert ours.column("I5").null_count > 0 and ours.column("C20").null_count > 0  # missing values were read

    every_file, counted = _read(file_reads.FileAtATimeTFExampleRecord(pattern, **kwargs))
    assert len(every_file) == TRAIN_FILES  # one batch per file: each holds fewer rows than BATCH_ROWS
    assert counted == sum(b.num_rows for b in every_file) == len(_records(pattern))


def test_parsing_in_tensorflow_differs_only_on_a_present_empty_list_and_makes_the_same_tensors(tmp_path):
    present_but_empty, full = tf.train.Example(), tf.train.Example()
    present_but_empty.features.feature["I1"].int64_list.SetInParent()
    full.features.feature["I1"].int64_list.value.append(5)
    full.features.feature["C1"].bytes_list.value.append(b"68fd1e64")
    path, schema = str(tmp_path / "two.gz"), load_schema()
    with tf.io.TFRecordWriter(path, "GZIP") as writer:
        for example in (present_but_empty, full):
            writer.write(example.SerializeToString())
    read = {}
    for parse in (False, True):
        decode = file_reads.DecodeFiles(schema.SerializeToString(), None, 8, parse_in_tensorflow=parse)
        decode.setup()
        [read[parse]] = list(decode.process(path))
        decode.teardown()
    assert read[False].column(read[False].schema.get_field_index("I1")).to_pylist() == [[], [5]]
    assert read[True].column(read[True].schema.get_field_index("I1")).to_pylist() == [None, [5]]
    others = [name for name in read[False].schema.names if name != "I1"]
    tables = {parse: pa.Table.from_batches([batch]).select(others) for parse, batch in read.items()}
    assert tables[True].equals(tables[False])
    adapter = tensor_adapter.TensorAdapter(tf_example_record.TFExampleRecord(path, schema=schema).TensorAdapterConfig())
    decoded, parsed = adapter.ToBatchTensors(read[False]), adapter.ToBatchTensors(read[True])
    assert sorted(decoded) == sorted(parsed) and "I1" in decoded
    for name, tensor in decoded.items():
        for part in ("indices", "values", "dense_shape"):
            assert getattr(tensor, part).numpy().tolist() == getattr(parsed[name], part).numpy().tolist(), name


def test_a_record_the_decoder_rejects_fails_the_read_from_its_decoding_thread(ingested, tmp_path):
    path = str(tmp_path / "broken.gz")
    with tf.io.TFRecordWriter(path, "GZIP") as writer:
        for record in _records(os.path.join(ingested[0], "Split-train", "*"))[:20] + [b"not a tf.Example"]:
            writer.write(record)
    decode = file_reads.DecodeFiles(load_schema().SerializeToString(), None, 4)
    decode.setup()
    decoded = []
    with pytest.raises(RuntimeError, match="Unable to parse example"):
        for batch in decode.process(path):
            decoded.append(batch)
    decode.teardown()
    assert [batch.num_rows for batch in decoded] == [4] * 5  # the batches before it came out


def test_threads_results_come_in_the_items_order_even_when_later_ones_finish_first():
    delays = [0.06, 0.0, 0.04, 0.0, 0.02, 0.0]
    per_thread = worker_threads.PerThread(threading.get_ident)
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        done = list(worker_threads.map_in_order(pool, lambda d: (time.sleep(d), d, per_thread.get())[1:], delays, 3))
    assert [delay for delay, _ in done] == delays
    assert all(thread != threading.get_ident() for _, thread in done)  # each made on a pool thread
    assert len({thread for _, thread in done}) > 1


def test_the_projection_and_the_swap_keep_the_file_at_a_time_reader(ingested):
    pattern = os.path.join(ingested[0], "Split-train", "*")
    plain = tf_example_record.TFExampleRecord(pattern, schema=load_schema(), telemetry_descriptors=["t"])
    swapped = file_reads.file_at_a_time(plain, "tfrecords_gzip")
    assert type(swapped) is file_reads.FileAtATimeTFExampleRecord  # pylint: disable=unidiomatic-typecheck
    assert swapped.ArrowSchema().equals(plain.ArrowSchema())
    projected = swapped.Project(["I1", "C1"]).projected  # what the wrapper's BeamSource reads with
    assert type(projected) is file_reads.FileAtATimeTFExampleRecord  # pylint: disable=unidiomatic-typecheck
    assert sorted(projected.ArrowSchema().names) == ["C1", "I1"]
    assert file_reads.file_at_a_time(plain, ["tfrecords_gzip", "tfrecords_gzip"]).__class__ is swapped.__class__
    assert file_reads.file_at_a_time(plain, "tfrecords") is plain
    assert file_reads.file_at_a_time(plain, None) is plain


def _records(pattern):
    return [r.numpy() for r in tf.data.TFRecordDataset(sorted(glob.glob(pattern)), compression_type="GZIP")]


def test_a_sample_decodes_only_the_rows_in_sample_and_counts_every_row_read(ingested):
    pattern = os.path.join(ingested[0], "Split-train", "*")
    records = _records(pattern)
    chosen = file_reads.in_sample(tf.constant(records), 0.5).numpy()
    assert 0.3 < chosen.mean() < 0.7  # about half, and neither all nor none
    kwargs = dict(schema=load_schema(), raw_record_column_name="__raw_records__")
    batches, counted = _read(file_reads.FileAtATimeTFExampleRecord(pattern, sample_rate=0.5, **kwargs), batch_size=16)
    decoded = pa.Table.from_batches(batches)
    # (The files may come in any order: Beam spreads them over its workers.)
    assert sorted(decoded.column("__raw_records__").to_pylist()) == sorted([r] for r, k in zip(records, chosen) if k)
    assert counted == len(records) + int(chosen.sum())  # file_reads/rows (all read) + file_reads/sampled_rows
    assert {b.num_rows for b in batches} <= set(range(1, 33))  # batches of 32 records, about 16 kept
    projected = file_reads.FileAtATimeTFExampleRecord(pattern, sample_rate=0.5, **kwargs).Project(["C1"]).projected
    assert projected.sample_rate == 0.5


def test_statistics_gen_on_a_sample_describes_the_sampled_rows_and_records_the_rate(ingested, tmp_path):
    """Our executor with TFDV's sample_rate 0.5 writes the statistics TFX's writes of exactly the rows in
    sample, and the artifact's `sample_rate_by_split` says 0.5 for every split."""
    sampled = tmp_path / "sampled"
    for split in SPLITS:
        records = _records(os.path.join(ingested[0], f"Split-{split}", "*"))
        kept = [r for r, keep in zip(records, file_reads.in_sample(tf.constant(records), 0.5).numpy()) if keep]
        os.makedirs(sampled / f"Split-{split}")
        with tf.io.TFRecordWriter(str(sampled / f"Split-{split}" / "data.gz"), "GZIP") as writer:
            for record in kept:
                writer.write(record)
    options = tfdv.StatsOptions(sample_rate=0.5).to_json()
    statistics = standard_artifacts.ExampleStatistics()
    statistics.uri = str(tmp_path / "ours")
    statistics_gen.Executor().Do({"examples": [examples_artifact(ingested[0])]},
                                             {"statistics": [statistics]}, {"stats_options_json": options})
    theirs = _statistics(tfx_statistics_gen.Executor, str(sampled), str(tmp_path / "tfx"))
    for split in SPLITS:
        ours = tfdv.load_stats_binary(os.path.join(statistics.uri, f"Split-{split}", "FeatureStats.pb"))
        assert _rounded(ours) == _rounded(theirs[split]), split
    assert 0 < sum(theirs[s].datasets[0].num_examples for s in SPLITS) < 400
    assert json.loads(statistics.get_json_value_custom_property("sample_rate_by_split")) == {s: 0.5 for s in SPLITS}


def test_a_pattern_without_files_is_named(tmp_path):
    missing = str(tmp_path / "nothing" / "*")
    with pytest.raises(FileNotFoundError, match="nothing"):
        _read(file_reads.FileAtATimeTFExampleRecord(missing, schema=load_schema()))



@pytest.mark.parametrize("payload, file_format, expected", [
    (example_gen_pb2.FORMAT_TF_EXAMPLE, "tfrecords_gzip", True),
    (example_gen_pb2.FORMAT_TF_EXAMPLE, "parquet", False),
    (example_gen_pb2.FORMAT_TF_SEQUENCE_EXAMPLE, "tfrecords_gzip", False),
])
def test_only_gzipped_tf_examples_take_the_file_path(payload, file_format, expected):
    artifact = examples_artifact("/unused", payload, file_format)
    assert file_reads.gzipped_tf_examples([artifact]) is expected
