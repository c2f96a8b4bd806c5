"""StatisticsGen, Transform's analysis and the Evaluator reading gzipped `tf.Example` TFRecords a file at a time.

TFX's readers (tfx-bsl's `TFExampleRecord.BeamSource`) make every record one Beam element, then batch
the records and decode each batch to Arrow; Beam's per-record work and the decoder are most of those
components' per-row time (benchmarks/RESULTS.md). Here each file is one Beam element: `tf.data` reads it
in batches of `BATCH_ROWS` records and the same decoder (tfx-bsl's `ExamplesToRecordBatchDecoder`, with
the same schema) makes each batch one Arrow record batch. The batches hold the same rows as TFX's, each
file's in its order, so the statistics and vocabularies are TFX's; with several files in a split, TFDV
merges the files' partial results in another order and a mean or a standard deviation may differ in its
last bits (tests/test_file_reads.py).

Transform's analysis and the Evaluator parse instead with `tf.io.parse_example` (C++, in `tf.data`'s
threads) and build the same Arrow columns from the parsed values. The one difference: a feature whose
value list is present but empty is null here and an empty list for the decoder; both become the same
tensors, so Transform's analysis is unchanged, and the Evaluator reads one column, the label, which its
metrics need exactly once per example. TFDV would count the two apart, so StatisticsGen keeps the decoder.

tfx-bsl's decoder lets go of Python's lock while it decodes, but one decoder is not thread-safe: each
batch is decoded on one of `DECODE_THREADS` threads with its own decoder, while the components
downstream take the batch before, and the batches still come out in the file's order.

`FileAtATimeTFExampleRecord` is a `TFExampleRecord` whose `BeamSource` does this; everything else
(the Arrow schema, tensor representations, `TensorFlowDataset`, the per-record raw source) is
tfx-bsl's. TFX's StatisticsGen, Transform and Evaluator build their readers with
`tfxio_utils.make_tfxio`; within `tfx_reads_file_at_a_time` it returns this reader instead of a plain
`TFExampleRecord` over gzipped files (a guarded patch, runtime/patches.py).
"""
import concurrent.futures
import contextlib
from typing import Dict, Iterator, List, Optional, Tuple, Union

import apache_beam as beam
import numpy as np
import pyarrow as pa
import tensorflow as tf
from tfx.components.util import examples_utils
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx_bsl.coders import example_coder
from tfx_bsl.tfxio import record_based_tfxio, tf_example_record

from components import worker_threads
from runtime import object_storage, patches

BATCH_ROWS = 8_192  # tfx-bsl's largest batch under its byte-size batching
DECODE_THREADS = 2
COUNTER_NAMESPACE = "file_reads"
GZIP_FORMAT = "tfrecords_gzip"  # the ExampleGen's file format
_SAMPLE_BUCKETS = 1 << 30


def in_sample(records: tf.Tensor, rate: float) -> tf.Tensor:
    """Whether each serialized record is in the sample of `rate`: its fingerprint's bucket is below
    `rate` of the buckets, so a record's fate is the same in every run, on every worker."""
    return tf.strings.to_hash_bucket_fast(records, _SAMPLE_BUCKETS) < int(rate * _SAMPLE_BUCKETS)


_PARSED_TYPES = {pa.int64(): tf.int64, pa.float32(): tf.float32, pa.large_binary(): tf.string}


def var_len_feature_spec(arrow_schema: pa.Schema) -> Optional[Dict[str, tf.io.VarLenFeature]]:
    """The `tf.io.parse_example` spec yielding every column of `arrow_schema` (tfx-bsl's decoder's), or
    None when a column is not a large list of int64, float32 or bytes."""
    spec = {}
    for field in arrow_schema:
        if not pa.types.is_large_list(field.type) or field.type.value_type not in _PARSED_TYPES:
            return None
        spec[field.name] = tf.io.VarLenFeature(_PARSED_TYPES[field.type.value_type])
    return spec


def parse_rows_and_values(records: tf.Tensor, spec: Dict[str, tf.io.VarLenFeature]) -> Dict[str, tuple]:
    """Serialized `tf.Example`s -> {feature: (each value's row, the values)}, by `tf.io.parse_example`."""
    return {name: (sparse.indices[:, 0], sparse.values) for name, sparse in tf.io.parse_example(records, spec).items()}


def record_batch_of_parsed(parsed: Dict[str, tuple], rows: int, arrow_schema: pa.Schema) -> pa.RecordBatch:
    """`parse_rows_and_values` of `rows` examples -> the record batch tfx-bsl's decoder makes, a row with
    no values being null."""
    columns = []
    for field in arrow_schema:
        value_rows, values = parsed[field.name]
        lengths = np.bincount(value_rows, minlength=rows)
        offsets = np.zeros(rows + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        columns.append(pa.LargeListArray.from_arrays(offsets, pa.array(values, field.type.value_type),
                                                     mask=pa.array(lengths == 0)))
    return pa.RecordBatch.from_arrays(columns, schema=arrow_schema)


class DecodeFiles(beam.DoFn):
    """A gzipped TFRecord file of `tf.Example`s -> its rows as Arrow record batches of `batch_rows`; with
    `sample_rate` below 1, only the rows `in_sample`, chosen before decoding (batches of about `batch_rows`).

    Counts the rows read from each file under `file_reads/rows` in Beam's metrics, and the rows decoded
    under `file_reads/sampled_rows` when sampling. With `parse_in_tensorflow`, where every column is a
    list, `tf.io.parse_example` parses the batches (a present but empty value list becomes null).

    Without `parse_in_tensorflow`, `DECODE_THREADS` threads, each with its own decoder (one is not
    thread-safe), decode the next batches while the components downstream read the last one, and the
    batches come out in the file's order.
    """

    def __init__(self, serialized_schema: Optional[bytes], raw_record_column_name: Optional[str],
                 batch_rows: int, sample_rate: float = 1.0, parse_in_tensorflow: bool = False):
        self._serialized_schema = serialized_schema
        self._raw_record_column_name = raw_record_column_name
        self._batch_rows = batch_rows
        self._sample_rate = sample_rate
        self._parse_in_tensorflow = parse_in_tensorflow
        self._arrow_schema = None
        self._parse_spec = None
        self._decoders = None
        self._pool = None
        self._rows = beam.metrics.Metrics.counter(COUNTER_NAMESPACE, "rows")
        self._sampled_rows = beam.metrics.Metrics.counter(COUNTER_NAMESPACE, "sampled_rows")

    def setup(self):
        if self._parse_in_tensorflow and self._serialized_schema is not None:
            self._arrow_schema = example_coder.ExamplesToRecordBatchDecoder(self._serialized_schema).ArrowSchema()
            self._parse_spec = var_len_feature_spec(self._arrow_schema)
        if self._parse_spec is None:  # tfx-bsl decodes, on threads
            self._decoders = worker_threads.PerThread(
                lambda: example_coder.ExamplesToRecordBatchDecoder(self._serialized_schema))
            self._pool = concurrent.futures.ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="decode")

    def teardown(self):
        if self._pool is not None:
            self._pool.shutdown()

    def process(self, path: str) -> Iterator[pa.RecordBatch]:
        object_storage.enable_tensorflow_s3([path])
        records = tf.data.TFRecordDataset(path, compression_type="GZIP")
        if self._sample_rate < 1.0:
            rate = self._sample_rate
            batches = records.batch(max(1, round(self._batch_rows / rate))).map(
                lambda batch: (tf.size(batch), tf.boolean_mask(batch, in_sample(batch, rate))))
        else:
            batches = records.batch(self._batch_rows).map(lambda batch: (tf.size(batch), batch))
        spec = self._parse_spec
        if spec is not None:
            batches = batches.map(lambda rows_read, batch: (rows_read, batch, parse_rows_and_values(batch, spec)))

        def counted():  # on the bundle's thread, where Beam's metrics are counted
            for rows_read, batch, *parsed in batches.prefetch(2).as_numpy_iterator():
                self._rows.inc(int(rows_read))
                if len(batch):
                    if self._sample_rate < 1.0:
                        self._sampled_rows.inc(len(batch))
                    yield batch.tolist(), parsed

        if spec is not None:  # parsed by TensorFlow: NumPy and Arrow calls gained nothing on other threads
            yield from map(self._decode, counted())
        else:
            yield from worker_threads.map_in_order(self._pool, self._decode, counted(), DECODE_THREADS)

    def _decode(self, records_and_parsed: Tuple[List[bytes], list]) -> pa.RecordBatch:
        records, parsed = records_and_parsed
        if parsed:
            decoded = record_batch_of_parsed(parsed[0], len(records), self._arrow_schema)
        else:
            decoded = self._decoders.get().DecodeBatch(records)
        if self._raw_record_column_name is not None:
            decoded = record_based_tfxio.AppendRawRecordColumn(decoded, self._raw_record_column_name, records)
        return decoded


class FileAtATimeTFExampleRecord(tf_example_record.TFExampleRecord):
    """tfx-bsl's `TFExampleRecord` over gzipped files whose Beam source decodes a file per element (only
    the rows `in_sample` at `sample_rate`, when below 1)."""

    def __init__(self, *args, sample_rate: float = 1.0, parse_in_tensorflow: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.sample_rate = sample_rate
        self.parse_in_tensorflow = parse_in_tensorflow

    def BeamSource(self, batch_size: Optional[int] = None) -> beam.PTransform:  # pylint: disable=invalid-name
        files = self._files()
        schema = self._GetSchemaForDecoding()
        decode = DecodeFiles(schema.SerializeToString() if schema is not None else None,
                             self.raw_record_column_name, batch_size or BATCH_ROWS, self.sample_rate,
                             self.parse_in_tensorflow)

        @beam.ptransform_fn
        @beam.typehints.with_output_types(pa.RecordBatch)
        def read(pipeline_or_pbegin):
            return (pipeline_or_pbegin
                    | "Files" >> beam.Create(files)
                    | "SpreadFiles" >> beam.Reshuffle()
                    | "ReadAndDecode" >> beam.ParDo(decode))

        return read()  # pylint: disable=no-value-for-parameter

    def _files(self) -> List[str]:
        files = sorted({path for pattern in self._file_pattern for path in fileio.glob(pattern)})
        if not files:
            raise FileNotFoundError(f"no files match {self._file_pattern}")
        return files

    def _ProjectImpl(self, tensor_names: List[str]) -> "FileAtATimeTFExampleRecord":  # pylint: disable=invalid-name
        projected = super()._ProjectImpl(tensor_names)
        return FileAtATimeTFExampleRecord(
            file_pattern=self._file_pattern, schema=projected._schema,  # pylint: disable=protected-access
            raw_record_column_name=self.raw_record_column_name, telemetry_descriptors=self.telemetry_descriptors,
            sample_rate=self.sample_rate, parse_in_tensorflow=self.parse_in_tensorflow)


def file_at_a_time(tfxio, file_format: Union[None, str, List[str]], sample_rate: float = 1.0,
                   parse_in_tensorflow: bool = False):
    """`tfxio` as a `FileAtATimeTFExampleRecord` (reading the rows `in_sample` at `sample_rate`, parsing them
    with TensorFlow if asked) when it is a plain `TFExampleRecord` over gzipped files."""
    formats = file_format if isinstance(file_format, list) else [file_format]
    plain = type(tfxio) is tf_example_record.TFExampleRecord  # pylint: disable=unidiomatic-typecheck
    if not plain or set(formats) != {GZIP_FORMAT}:
        return tfxio
    return FileAtATimeTFExampleRecord(
        file_pattern=tfxio._file_pattern, schema=tfxio._schema,  # pylint: disable=protected-access
        raw_record_column_name=tfxio.raw_record_column_name, telemetry_descriptors=tfxio.telemetry_descriptors,
        sample_rate=sample_rate, parse_in_tensorflow=parse_in_tensorflow)


def gzipped_tf_examples(artifacts) -> bool:
    """True when every Examples artifact holds gzipped TFRecords of `tf.Example`s."""
    return all(examples_utils.get_payload_format(a) == example_gen_pb2.FORMAT_TF_EXAMPLE
               and examples_utils.get_file_format(a) == GZIP_FORMAT for a in artifacts)


@contextlib.contextmanager
def tfx_reads_file_at_a_time(project: Optional[List[str]] = None, file_format: Optional[str] = None,
                             sample_rate: float = 1.0, parse_in_tensorflow: bool = False) -> Iterator[bool]:
    """Within, `tfxio_utils.make_tfxio` (what TFX's StatisticsGen, Transform and Evaluator build their
    readers with) returns `file_at_a_time` of what it built; `file_format` stands for the format when
    TFX passes none (its Evaluator does not). With `project`, the reader decodes only the tensors it
    names (`TFXIO.Project`, which needs a schema); with `sample_rate`, only the rows `in_sample`; with
    `parse_in_tensorflow`, `tf.io.parse_example` parses them (`DecodeFiles`). Yields whether the patch
    applies (runtime/patches.py); when it does not, TFX reads as it always does."""

    def reading_file_at_a_time(make_tfxio):
        def make_file_at_a_time(*args, **kwargs):
            tfxio = file_at_a_time(make_tfxio(*args, **kwargs), kwargs.get("file_format") or file_format,
                                   sample_rate, parse_in_tensorflow)
            return tfxio.Project(project) if project is not None else tfxio
        return make_file_at_a_time

    with patches.patched(patches.TFXIO_READER, reading_file_at_a_time) as applied:
        yield applied
