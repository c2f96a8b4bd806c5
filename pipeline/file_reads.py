"""StatisticsGen, Transform's analysis and the Evaluator reading gzipped `tf.Example` TFRecords a file at a time.

TFX's readers (tfx-bsl's `TFExampleRecord.BeamSource`) make every record one Beam element, then batch
the records and decode each batch to Arrow. At 300k rows (py-spy, BUILD.md) StatisticsGen spent 35 %
of its time in the decoder and about as much again on Beam's per-record work and per-record reads
(bundle processing 22 %, reads 12 %, pickling 7 %, telemetry 4 %, CRCs 3 %); TFDV's generators were
under 10 %. Here each file is one Beam element: `tf.data` reads it in batches of `BATCH_ROWS` records
and the same decoder (tfx-bsl's `ExamplesToRecordBatchDecoder`, with the same schema) makes each batch
one Arrow record batch. The batches hold the same rows as TFX's, each file's in its order, so the
statistics and vocabularies are TFX's; with several files in a split, TFDV merges the files' partial
results in another order and a mean or a standard deviation may differ in its last bits
(tests/test_file_reads.py). On 300k rows the StatisticsGen executor took 20-23 s instead of 28-32 s,
Transform's 45-52 s instead of 56-58 s (2 runs each, BUILD.md). The decoder itself, about 28,000
rows/s on one core here, is now most of what is left of StatisticsGen's per-row cost.

`FileAtATimeTFExampleRecord` is a `TFExampleRecord` whose `BeamSource` does this; everything else
(the Arrow schema, tensor representations, `TensorFlowDataset`, the per-record raw source) is
tfx-bsl's. TFX's StatisticsGen, Transform and Evaluator build their readers with
`tfxio_utils.make_tfxio`; `ReadsFileAtATime`, an executor mixin, has it return this reader instead of a
plain `TFExampleRecord` over gzipped files for the length of the executor's `Do` (as `large_batches`
sets its flag); the Evaluator's executor also projects it (pipeline/evaluated_features.py).
"""
import contextlib
from typing import Iterator, List, Optional, Union

import apache_beam as beam
import pyarrow as pa
import tensorflow as tf
from tfx.components.util import examples_utils, tfxio_utils
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx_bsl.coders import example_coder
from tfx_bsl.tfxio import record_based_tfxio, tf_example_record

from settings import object_storage

BATCH_ROWS = 8_192  # tfx-bsl's largest batch under byte-size batching (pipeline/large_batches.py)
COUNTER_NAMESPACE = "file_reads"
GZIP_FORMAT = "tfrecords_gzip"  # ImportExampleGen's file format
_SAMPLE_BUCKETS = 1 << 30


def in_sample(records: tf.Tensor, rate: float) -> tf.Tensor:
    """Whether each serialized record is in the sample of `rate`: its fingerprint's bucket is below
    `rate` of the buckets, so a record's fate is the same in every run, on every worker."""
    return tf.strings.to_hash_bucket_fast(records, _SAMPLE_BUCKETS) < int(rate * _SAMPLE_BUCKETS)


class DecodeFiles(beam.DoFn):
    """A gzipped TFRecord file of `tf.Example`s -> its rows as Arrow record batches of `batch_rows`; with
    `sample_rate` below 1, only the rows `in_sample`, chosen before decoding (batches of about `batch_rows`).

    Counts the rows read from each file under `file_reads/rows` in Beam's metrics, and the rows decoded
    under `file_reads/sampled_rows` when sampling.
    """

    def __init__(self, serialized_schema: Optional[bytes], raw_record_column_name: Optional[str],
                 batch_rows: int, sample_rate: float = 1.0):
        self._serialized_schema = serialized_schema
        self._raw_record_column_name = raw_record_column_name
        self._batch_rows = batch_rows
        self._sample_rate = sample_rate
        self._decoder = None
        self._rows = beam.metrics.Metrics.counter(COUNTER_NAMESPACE, "rows")
        self._sampled_rows = beam.metrics.Metrics.counter(COUNTER_NAMESPACE, "sampled_rows")

    def setup(self):
        self._decoder = example_coder.ExamplesToRecordBatchDecoder(self._serialized_schema)

    def process(self, path: str) -> Iterator[pa.RecordBatch]:
        object_storage.enable_tensorflow_s3([path])
        records = tf.data.TFRecordDataset(path, compression_type="GZIP")
        if self._sample_rate < 1.0:
            rate = self._sample_rate
            batches = records.batch(max(1, round(self._batch_rows / rate))).map(
                lambda batch: (tf.size(batch), tf.boolean_mask(batch, in_sample(batch, rate))))
        else:
            batches = records.batch(self._batch_rows).map(lambda batch: (tf.size(batch), batch))
        for rows_read, batch in batches.prefetch(2).as_numpy_iterator():
            self._rows.inc(int(rows_read))
            if not len(batch):
                continue
            records = batch.tolist()
            decoded = self._decoder.DecodeBatch(records)
            if self._raw_record_column_name is not None:
                decoded = record_based_tfxio.AppendRawRecordColumn(decoded, self._raw_record_column_name, records)
            if self._sample_rate < 1.0:
                self._sampled_rows.inc(len(records))
            yield decoded


class FileAtATimeTFExampleRecord(tf_example_record.TFExampleRecord):
    """tfx-bsl's `TFExampleRecord` over gzipped files whose Beam source decodes a file per element (only
    the rows `in_sample` at `sample_rate`, when below 1)."""

    def __init__(self, *args, sample_rate: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.sample_rate = sample_rate

    def BeamSource(self, batch_size: Optional[int] = None) -> beam.PTransform:  # pylint: disable=invalid-name
        files = self._files()
        schema = self._GetSchemaForDecoding()
        decode = DecodeFiles(schema.SerializeToString() if schema is not None else None,
                             self.raw_record_column_name, batch_size or BATCH_ROWS, self.sample_rate)

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
            sample_rate=self.sample_rate)


def file_at_a_time(tfxio, file_format: Union[None, str, List[str]], sample_rate: float = 1.0):
    """`tfxio` as a `FileAtATimeTFExampleRecord` (reading the rows `in_sample` at `sample_rate`) when it is
    a plain `TFExampleRecord` over gzipped files."""
    formats = file_format if isinstance(file_format, list) else [file_format]
    if type(tfxio) is not tf_example_record.TFExampleRecord or set(formats) != {GZIP_FORMAT}:  # pylint: disable=unidiomatic-typecheck
        return tfxio
    return FileAtATimeTFExampleRecord(
        file_pattern=tfxio._file_pattern, schema=tfxio._schema,  # pylint: disable=protected-access
        raw_record_column_name=tfxio.raw_record_column_name, telemetry_descriptors=tfxio.telemetry_descriptors,
        sample_rate=sample_rate)


def gzipped_tf_examples(artifacts) -> bool:
    """True when every Examples artifact holds gzipped TFRecords of `tf.Example`s."""
    return all(examples_utils.get_payload_format(a) == example_gen_pb2.FORMAT_TF_EXAMPLE
               and examples_utils.get_file_format(a) == GZIP_FORMAT for a in artifacts)


@contextlib.contextmanager
def tfx_reads_file_at_a_time(project: Optional[List[str]] = None, file_format: Optional[str] = None,
                             sample_rate: float = 1.0) -> Iterator[None]:
    """Within, `tfxio_utils.make_tfxio` (what TFX's StatisticsGen, Transform and Evaluator build their
    readers with) returns `file_at_a_time` of what it built; `file_format` stands for the format when
    TFX passes none (its Evaluator does not). With `project`, the reader decodes only the tensors it
    names (`TFXIO.Project`, which needs a schema); with `sample_rate`, only the rows `in_sample`."""
    make_tfxio = tfxio_utils.make_tfxio

    def make_file_at_a_time(*args, **kwargs):
        tfxio = file_at_a_time(make_tfxio(*args, **kwargs), kwargs.get("file_format") or file_format, sample_rate)
        return tfxio.Project(project) if project is not None else tfxio

    tfxio_utils.make_tfxio = make_file_at_a_time
    try:
        yield
    finally:
        tfxio_utils.make_tfxio = make_tfxio


class ReadsFileAtATime:
    """Executor mixin: TFX's `Do` under `tfx_reads_file_at_a_time`."""

    def Do(self, input_dict, output_dict, exec_properties):  # pylint: disable=invalid-name
        with tfx_reads_file_at_a_time():
            return super().Do(input_dict, output_dict, exec_properties)
