"""Transform's output examples written a whole file at a time.

TFX's Transform executor materializes the transformed examples one record per Beam element: it reads
each record, batches records into Arrow, runs the transform graph per batch, encodes, and writes each
record back through Beam's gzip writer (level 6); the per-record work, not the transform graph, is most
of its per-row time.

Here each input file is one Beam element. Inside it, `tf.data` reads the gzipped records, parses them with
the raw feature spec (`tf.io.parse_example`, the parse the exported serving graph does) and runs the
transform graph (`TFTransformOutput.transform_raw_features`); tfx-bsl's encoder serializes each batch of
8,192 rows as TFX's does (the same tensor-to-Arrow converter and `tf.Example` encoder over the transformed
schema), on a thread of its own (it lets go of Python's lock) while this one writes the batch before: framed
and gzipped a batch at a time as the ExampleGen's files (ingestion/record_batches.py; larger files than
Beam's level 6, written several times faster), through `tf.io.gfile`. An input file becomes one output file,
under TFX's names (`Split-<name>/transformed_examples-<i>-of-<n>.gz`), holding its rows in their order; or,
when a split must have at least `min_files` files (so that each training worker reads files of its own) and
has fewer inputs, several, each input's rows dealt to its outputs in turn (output j of k: rows j, j + k, ...
in order). Every file's rows read must equal its rows written, or the step fails naming the file. Each split
is written into a staging folder that replaces the split's folder once every file is written
(`ingestion.staged_output`), so a retried execution's output holds none of an earlier attempt's files.

The Transform executor (components/transform.py) runs TFX's for the analysis only and then `materialize`,
when every input artifact holds gzipped `tf.Example` TFRecords (what the ExampleGen writes).
"""
import concurrent.futures
import contextlib
import os
from typing import Dict, Iterator, List, Sequence, Tuple

import apache_beam as beam
import tensorflow as tf
import tensorflow_transform as tft
from absl import logging
from tensorflow_transform import impl_helper
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx_bsl.coders import example_coder

from ingestion import record_batches, staged_output
from components import file_reads, worker_threads
from runtime import object_storage

OUTPUT_PREFIX = "transformed_examples"

FileJob = Tuple[str, str, Tuple[str, ...]]  # (split, source file, its destination files)


class FileTransformer:
    """Transforms gzipped TFRecord files of raw `tf.Example`s with a Transform output's graph."""

    def __init__(self, transform_graph_dir: str, batch_rows: int = file_reads.BATCH_ROWS):
        output = tft.TFTransformOutput(transform_graph_dir)
        raw_spec = output.raw_feature_spec()

        # Plain TensorFlow calls: AutoGraph would convert every function the graph reaches, at first trace.
        @tf.function(autograph=False)
        def transform(serialized):
            return tf.size(serialized), output.transform_raw_features(tf.io.parse_example(serialized, raw_spec))

        # Traced once here: `Dataset.map` traces a Python function anew for every file's dataset (seconds
        # each for this graph), while mapping a concrete function only wraps a call to it.
        self._transform = transform.get_concrete_function(tf.TensorSpec([None], tf.string))
        self._batch_rows = batch_rows
        schema = output.transformed_metadata.schema
        self._to_arrow = impl_helper.make_tensor_to_arrow_converter(schema)
        self._encoder = example_coder.RecordBatchToExamplesEncoder(schema)
        self._encoding = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="encode")

    def close(self) -> None:
        self._encoding.shutdown()

    def _encode(self, rows_and_batch) -> Tuple[int, List[bytes]]:
        rows, batch = rows_and_batch
        return int(rows), self._encoder.encode(self._to_arrow.convert(batch))

    def __call__(self, source: str, destinations: Sequence[str]) -> int:
        """Writes `source`'s rows, transformed, to `destinations` (row i to destination i mod their number);
        returns the rows written."""
        batches = (tf.data.TFRecordDataset(source, compression_type="GZIP")
                   .batch(self._batch_rows).map(self._transform).prefetch(2))
        rows_read = rows_written = 0
        tf.io.gfile.makedirs(os.path.dirname(destinations[0]))
        with contextlib.ExitStack() as stack:
            files = [record_batches.GzipFile(tf.io.gfile.GFile(d, "wb")) for d in destinations]
            for file in files:
                stack.callback(file.close)
            for rows, records in worker_threads.map_in_order(self._encoding, self._encode, batches, ahead=1):
                rows_read += rows
                for i, file in enumerate(files):  # row r of the source to destination r mod their number
                    file.write(record_batches.tfrecord_frames(records[(i - rows_written) % len(files)::len(files)]))
                rows_written += len(records)
        if rows_written != rows_read:
            raise RuntimeError(f"Transform: {source}: read {rows_read} rows but wrote {rows_written} to {destinations}")
        return rows_written


class TransformFiles(beam.DoFn):
    """(split, source, destination) -> (split, rows written); counts rows per split in Beam's metrics."""

    def __init__(self, transform_graph_dir: str):
        self._graph_dir = transform_graph_dir
        self._transformer = None

    def setup(self):
        object_storage.enable_tensorflow_s3([self._graph_dir])
        self._transformer = FileTransformer(self._graph_dir)

    def teardown(self):
        if self._transformer is not None:
            self._transformer.close()

    def process(self, job: FileJob) -> Iterator[Tuple[str, int]]:
        split, source, destinations = job
        rows = self._transformer(source, destinations)
        beam.metrics.Metrics.counter("transform", f"rows_{split}").inc(rows)
        yield split, rows


def output_name(index: int, count: int) -> str:
    """TFX's name for the `index`-th of `count` transformed example files."""
    return f"{OUTPUT_PREFIX}-{index:05d}-of-{count:05d}.gz"


def file_jobs(sources_by_split: Sequence[Tuple[str, List[str]]], output_split_uris: Sequence[str],
              min_files: int = 1) -> List[FileJob]:
    """One job per source file: its split, itself, and its transformed files under the split's output: one,
    or as many as give the split at least `min_files` (the same number for each of the split's sources)."""
    jobs = []
    for (split, sources), output_uri in zip(sources_by_split, output_split_uris):
        parts = -(-min_files // len(sources))
        jobs += [(split, source, tuple(os.path.join(output_uri, output_name(i * parts + j, len(sources) * parts))
                                       for j in range(parts)))
                 for i, source in enumerate(sources)]
    return jobs


def transform_files(pipeline: beam.Pipeline, transform_graph_dir: str, jobs: Sequence[FileJob]) -> Dict[str, int]:
    """Runs `jobs` on `pipeline` (one Beam element per file); {split: rows written} from Beam's metrics."""
    _ = (pipeline
         | "TransformFiles" >> beam.Create(list(jobs))
         | "SpreadFiles" >> beam.Reshuffle()
         | "Transform" >> beam.ParDo(TransformFiles(transform_graph_dir)))
    result = pipeline.run()
    result.wait_until_finish()
    counters = result.metrics().query(beam.metrics.MetricsFilter().with_namespace("transform"))["counters"]
    rows = {c.key.metric.name[len("rows_"):]: c.result for c in counters}
    logging.info("Transform: wrote %s transformed rows per split (%d files)", rows, len(jobs))
    return rows


def file_jobs_of(examples, transformed, splits: Sequence[str]) -> Tuple[List[Tuple[str, List[str]]], List[str]]:
    """(each split's source files, each split's output folder) for Examples artifacts `examples` and their
    `transformed` counterparts; raises naming a split that has no files."""
    sources, outputs = [], []
    for source, output in zip(examples, transformed):
        for split in splits:
            pattern = os.path.join(artifact_utils.get_split_uri([source], split), "*")
            files = sorted(fileio.glob(pattern))
            if not files:
                raise FileNotFoundError(f"Transform: split {split!r} has no files matching {pattern}")
            sources.append((split, files))
            outputs.append(artifact_utils.get_split_uri([output], split))
    return sources, outputs


def materialize(pipeline: beam.Pipeline, transform_graph_dir: str, sources: Sequence[Tuple[str, List[str]]],
                output_split_uris: Sequence[str], min_files: int = 1) -> Dict[str, int]:
    """Writes every source file transformed into its split's output folder, at least `min_files` files per
    split, each split staged so that the folder holds this attempt's files alone (`ingestion.staged_output`);
    {split: rows written}."""
    with contextlib.ExitStack() as stack:
        staging = [stack.enter_context(staged_output.staged(uri)) for uri in output_split_uris]
        return transform_files(pipeline, transform_graph_dir, file_jobs(sources, staging, min_files))
