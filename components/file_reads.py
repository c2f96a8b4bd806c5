"""StatisticsGen, Transform's analysis and the Evaluator reading gzipped `tf.Example` TFRecords a file at a time.

TFX's readers (tfx-bsl's `TFExampleRecord.BeamSource`) make every record one Beam element, then batch
the records and decode each batch to Arrow; Beam's per-record work and the decoder are most of those
components' per-row time (benchmarks/RESULTS.md). Here each file is one Beam element: `tf.data` reads it
in batches of `BATCH_ROWS` records, and each batch becomes one Arrow record batch with the columns tfx-bsl's
decoder (`ExamplesToRecordBatchDecoder`, with the same schema) would make. The batches hold the same rows
as TFX's, each file's in its order, so the statistics and vocabularies are TFX's; with several files in a
split, TFDV merges the files' partial results in another order and a mean or a standard deviation may
differ in its last bits (tests/test_file_reads.py).

Each batch is parsed by TensorFlow (components/example_parsing.py). For StatisticsGen the parse is exact:
each batch is parsed on one of `DECODE_THREADS` threads while the components downstream take the batch
before, and a batch the parser cannot prove the decoder would read the same is decoded by the decoder
(which lets go of Python's lock; one per thread, as one is not thread-safe), so TFDV counts the same
values; the batches still come out in the file's order. Transform's analysis and the Evaluator take the
parse as it is, in `tf.data`'s threads as the file is read: a feature whose value list is present but
empty is null there and an empty list for the decoder, and both become the same tensors.

`FileAtATimeTFExampleRecord` is a `TFExampleRecord` whose `BeamSource` does this; everything else
(the Arrow schema, tensor representations, `TensorFlowDataset`, the per-record raw source) is
tfx-bsl's. TFX's StatisticsGen, Transform and Evaluator build their readers with
`tfxio_utils.make_tfxio`; within `tfx_reads_file_at_a_time` it returns this reader instead of a plain
`TFExampleRecord` over gzipped files (a guarded patch, runtime/patches.py).
"""
import concurrent.futures
import contextlib
from typing import Iterator, List, Optional, Tuple, Union

import apache_beam as beam
import pyarrow as pa
import tensorflow as tf
from tfx.components.util import examples_utils
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx_bsl.coders import example_coder
from tfx_bsl.tfxio import record_based_tfxio, tf_example_record

from components import example_parsing, worker_threads
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


class DecodeFiles(beam.DoFn):
    """A gzipped TFRecord file of `tf.Example`s -> its rows as Arrow record batches of `batch_rows`; with
    `sample_rate` below 1, only the rows `in_sample`, chosen before decoding (batches of about `batch_rows`).

    Counts the rows read from each file under `file_reads/rows` in Beam's metrics, the rows decoded under
    `file_reads/sampled_rows` when sampling, and the rows tfx-bsl's decoder decoded under
    `file_reads/decoder_rows`.

    Each batch is parsed by TensorFlow (`example_parsing.ExampleParser`) into the columns of the schema's
    Arrow schema, or, without a schema, of the first batch the decoder decodes that has a type for each.
    Without `parse_in_tensorflow`, the parser is exact, on `DECODE_THREADS` threads that parse the next
    batches while the components downstream take the last one: a batch it cannot prove the decoder would
    read the same goes to the decoder (each thread has its own: one is not thread-safe). With it, the
    batches are parsed in `tf.data`'s threads and a present but empty value list becomes null (Transform's
    analysis and the Evaluator, whose tensors are the same either way).
    """

    def __init__(self, serialized_schema: Optional[bytes], raw_record_column_name: Optional[str],
                 batch_rows: int, sample_rate: float = 1.0, parse_in_tensorflow: bool = False):
        self._serialized_schema = serialized_schema
        self._raw_record_column_name = raw_record_column_name
        self._batch_rows = batch_rows
        self._sample_rate = sample_rate
        self._parse_in_tensorflow = parse_in_tensorflow
        self._parser = None
        self._decoders = None
        self._pool = None
        self._rows = beam.metrics.Metrics.counter(COUNTER_NAMESPACE, "rows")
        self._sampled_rows = beam.metrics.Metrics.counter(COUNTER_NAMESPACE, "sampled_rows")
        self._decoder_rows = beam.metrics.Metrics.counter(COUNTER_NAMESPACE, "decoder_rows")

    def setup(self):
        self._decoders = worker_threads.PerThread(
            lambda: example_coder.ExamplesToRecordBatchDecoder(self._serialized_schema))
        self._pool = concurrent.futures.ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="decode")
        if self._serialized_schema is not None:
            self._parser = self._parser_for(self._decoders.get().ArrowSchema())

    def teardown(self):
        if self._pool is not None:
            self._pool.shutdown()

    def _parser_for(self, arrow_schema: pa.Schema) -> Optional[example_parsing.ExampleParser]:
        if self._raw_record_column_name in arrow_schema.names:
            arrow_schema = arrow_schema.remove(arrow_schema.get_field_index(self._raw_record_column_name))
        if example_parsing.var_len_feature_spec(arrow_schema) is None:
            return None
        return example_parsing.ExampleParser(arrow_schema, exact=not self._parse_in_tensorflow,
                                             decoder_has_schema=self._serialized_schema is not None)

    def process(self, path: str) -> Iterator[pa.RecordBatch]:
        object_storage.enable_tensorflow_s3([path])
        records = tf.data.TFRecordDataset(path, compression_type="GZIP")
        if self._sample_rate < 1.0:
            rate = self._sample_rate
            batches = records.batch(max(1, round(self._batch_rows / rate))).map(
                lambda batch: (tf.size(batch), tf.boolean_mask(batch, in_sample(batch, rate))))
        else:
            batches = records.batch(self._batch_rows).map(lambda batch: (tf.size(batch), batch))

        def counted(batches):  # on the bundle's thread, where Beam's metrics are counted
            for rows_read, batch, *parsed in batches.prefetch(2):
                self._rows.inc(int(rows_read))
                if tf.size(batch) > 0:
                    if self._sample_rate < 1.0:
                        self._sampled_rows.inc(int(tf.size(batch)))
                    yield (batch, *parsed) if parsed else batch

        if self._parse_in_tensorflow and self._parser is not None:  # parsed in tf.data's threads, as read
            parse = self._parser.parse
            parsed_batches = batches.map(lambda rows_read, batch: (rows_read, batch, parse(batch)))
            for records, (parsed, _) in counted(parsed_batches):
                parsed = {name: (value_rows.numpy(), values.numpy()) for name, (value_rows, values) in parsed.items()}
                yield self._with_raw_records(self._parser.record_batch(parsed, int(tf.size(records))), records)
            return
        pending = counted(batches)
        while self._parser is None and self._serialized_schema is None:  # the columns: a batch's, decoded
            records = next(pending, None)
            if records is None:
                return
            decoded, decoder_rows = self._decode(records)
            self._decoder_rows.inc(decoder_rows)
            yield decoded
            self._parser = self._parser_for(decoded.schema)
        for decoded, decoder_rows in worker_threads.map_in_order(self._pool, self._decode, pending, DECODE_THREADS):
            self._decoder_rows.inc(decoder_rows)
            yield decoded

    def _decode(self, records: tf.Tensor) -> Tuple[pa.RecordBatch, int]:
        """(the record batch of `records`, the rows tfx-bsl's decoder decoded: none when parsed)."""
        decoded = self._parser(records) if self._parser is not None else None
        decoder_rows = 0
        if decoded is None:
            decoded = self._decoders.get().DecodeBatch(records.numpy().tolist())
            decoder_rows = decoded.num_rows
        return self._with_raw_records(decoded, records), decoder_rows

    def _with_raw_records(self, decoded: pa.RecordBatch, records: tf.Tensor) -> pa.RecordBatch:
        if self._raw_record_column_name is None:
            return decoded
        return record_based_tfxio.AppendRawRecordColumn(decoded, self._raw_record_column_name, records.numpy().tolist())


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
