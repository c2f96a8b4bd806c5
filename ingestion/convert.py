"""Beam job: Criteo TSV/CSV click logs -> gzipped TFRecord `tf.Example`s, split 7:2:1.

Reads the Kaggle `train.txt` layout (tab-separated, plain or gzip) or the comma-separated variant
(transforms/rows.py; a header row and a byte-order mark are skipped, and counted). Each data row becomes a
`tf.Example` (`label` int64; `I1`-`I13` int64, `C1`-`C26` bytes, no value list when missing) in
`<out>/Split-{train,eval,test}/`. A malformed row goes to `<out>/dead_letters/` as a JSON line with its
file, line number, reason and text (no file when none is rejected); no row aborts the job.
`<out>/counts.json` holds, per split, the rows read (counted at the reader), written and rejected; the job
fails, naming the split, unless read = written + rejected. A run replaces `<out>` whole once its counts
reconcile (ingestion/staged_output.py), and a file that several `--input` patterns match is read once. The
pipeline's RawLogsExampleGen runs the same transform (`build`) inside the DAG.

Arguments after `--` (or in `--beam-arg=...`) go to Beam, so another runner needs no code change:

    python -m ingestion.convert --input 'gs://b/train*.txt.gz' --output gs://b/tfrecords -- \\
        --runner DataflowRunner --project P --region R --temp_location gs://b/tmp
"""
import collections
import json
import os
import sys
from concurrent import futures
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from ingestion import input_files, record_batches, staged_output
from settings import flags
from runtime import object_storage
from transforms import rows, splits

COUNTS_FILE = "counts.json"
DEAD_LETTER_DIR = "dead_letters"
_DEAD, _HEADER = "dead", "header"


# Lines travel from the reader to the parsers in batches: Beam's per-element cost (the shuffle that
# spreads the parsing over workers above all) is then paid once per batch rather than once per row.
BATCH_LINES = 2048


def _decoded_lines(path: str) -> Iterable[Optional[str]]:
    """A file's lines without their line ending; None for a line that is not valid UTF-8."""
    with FileSystems.open(path, compression_type=CompressionTypes.AUTO) as f:
        for raw in iter(f.readline, b""):
            try:
                yield raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                yield None


class ReadNumberedLines(beam.DoFn):
    """Yields (file, first line number, [text]) batches of up to BATCH_LINES consecutive data lines
    (text None where not UTF-8); a header row on the first line goes to the `header` output instead."""

    def __init__(self, input_format: str):
        self._delimiter = rows.delimiter(input_format)

    def process(self, path: str) -> Iterable[Tuple[str, int, List[Optional[str]]]]:
        first, texts = 1, []
        for number, text in enumerate(_decoded_lines(path), start=1):
            if number == 1 and text is not None:
                text = rows.data_line(1, text, self._delimiter)  # without a byte-order mark; None: a header
                if text is None:
                    yield beam.pvalue.TaggedOutput(_HEADER, path)
                    first = 2
                    continue
            texts.append(text)
            if len(texts) == BATCH_LINES:
                yield path, first, texts
                first, texts = number + 1, []
        if texts:
            yield path, first, texts


def _read_per_split(batch: Tuple[str, int, List[Optional[str]]]) -> Iterable[Tuple[Tuple[str, str], int]]:
    """((split, "read"), rows) for each split of a batch of lines, as read."""
    _, first, texts = batch
    per_split = np.bincount(splits.split_index(np.arange(first, first + len(texts))), minlength=len(splits.SPLITS))
    return [((split, "read"), int(n)) for split, n in zip(splits.SPLITS, per_split) if n]


class ParseToExample(beam.DoFn):
    """Parses one numbered line: a good row goes to the main output as (split, (label, row)), for
    ParseBatches to encode with its batch; a bad one to `dead`."""

    def __init__(self, input_format: str):
        self._delimiter = rows.delimiter(input_format)

    def process(self, item: Tuple[str, int, Optional[str]]):
        path, number, text = item
        split = splits.split_of(number)
        try:
            if text is None:
                raise rows.RowError("not valid UTF-8")
            parsed = rows.parse_row(text, self._delimiter)
        except rows.RowError as error:
            yield beam.pvalue.TaggedOutput(_DEAD, (split, json.dumps(
                {"file": path, "line": number, "split": split, "reason": str(error), "text": text})))
            return
        yield split, parsed


class ParseBatches(beam.DoFn):
    """Parses a batch of lines and encodes each split's good rows to serialized tf.Examples in one call
    (tfx-bsl's encoder): yields (split, [serialized tf.Example]) per split and passes dead letters on;
    Beam's `ingest` counters count the rows written and rejected.

    A tab-separated batch is parsed column by column by Arrow when every line is one `parse_row` takes
    as it stands (`rows.parse_tsv_lines`); any other batch goes through ParseToExample line by line.
    The encoding (a third of the job's time) runs on a thread of its own, which the encoder
    frees of the GIL, while this one parses the next batches and writes the encoded ones: up to
    `ENCODED_AHEAD` encodings (one per split of a batch) wait there, and the bundle's end collects the
    rest."""

    ENCODED_AHEAD = 4

    def __init__(self, input_format: str):
        self._parse = ParseToExample(input_format)
        self._tab_separated = rows.delimiter(input_format) == "\t"
        self._encoder = self._encoding = None

    def setup(self):
        self._encoder = futures.ThreadPoolExecutor(1, thread_name_prefix="encode")

    def teardown(self):
        self._encoder.shutdown()

    def start_bundle(self):
        self._encoding = collections.deque()

    def process(self, batch: Tuple[str, int, List[Optional[str]]]):
        path, first, texts = batch
        for split, parsed in self._parse_batch(path, first, texts):
            if isinstance(parsed, beam.pvalue.TaggedOutput):
                beam.metrics.Metrics.counter("ingest", f"{split}_rejected").inc()
                yield parsed
            else:
                self._encoding.append((split, self._encoder.submit(rows.encode, parsed)))
        while len(self._encoding) > self.ENCODED_AHEAD:
            yield self._encoded(*self._encoding.popleft())

    def finish_bundle(self):
        while self._encoding:
            yield WindowedValue(self._encoded(*self._encoding.popleft()), MIN_TIMESTAMP, [GlobalWindow()])

    @staticmethod
    def _encoded(split: str, encoding: futures.Future) -> Tuple[str, List[bytes]]:
        examples = encoding.result()
        beam.metrics.Metrics.counter("ingest", f"{split}_written").inc(len(examples))
        return split, examples

    def _parse_batch(self, path: str, first: int, texts: List[Optional[str]]):
        """(split, record batch of its good rows) per split, and (split, dead letter) per bad line."""
        parsed = rows.parse_tsv_lines(texts) if self._tab_separated and None not in texts else None
        if parsed is not None:  # every line as parse_row would take it, parsed by Arrow
            index = splits.split_index(np.arange(first, first + len(texts)))
            for i, split in enumerate(splits.SPLITS):
                rows_of_split = parsed.filter(pa.array(index == i))
                if rows_of_split.num_rows:
                    yield split, rows_of_split
            return
        good: Dict[str, List[Tuple[int, rows.Row]]] = {split: [] for split in splits.SPLITS}
        for number, text in enumerate(texts, start=first):
            for output in self._parse.process((path, number, text)):
                if isinstance(output, beam.pvalue.TaggedOutput):
                    yield output.value[0], output
                else:
                    good[output[0]].append(output[1])
        for split, parsed_rows in good.items():
            if parsed_rows:
                yield split, rows.record_batch(parsed_rows)


def _counts_json(counts: List[Tuple[Tuple[str, str], int]], inputs: Sequence[str]) -> str:
    table = {name: {"read": 0, "written": 0, "rejected": 0} for name in splits.SPLITS}
    headers = 0
    for (split, status), n in counts:
        if status == _HEADER:
            headers += n
        else:
            table[split][status] += n
    return json.dumps({"inputs": list(inputs), "headers_skipped": headers, "splits": table}, sort_keys=True)


def build(root: beam.Pipeline, inputs: Sequence[str], output_dir: str, input_format: str,
          dead_letter_dir: Optional[str] = None) -> None:
    """Adds the ingestion transforms to a Beam pipeline: the splits' TFRecords and `counts.json` under
    `output_dir`, the dead letters under `dead_letter_dir` (default: `output_dir`/dead_letters)."""
    dead_letter_dir = dead_letter_dir or os.path.join(output_dir, DEAD_LETTER_DIR)
    rows.delimiter(input_format)  # refuses an unknown format before the job starts
    lines = (root
             | "InputFiles" >> beam.Create(list(inputs))
             | "ReadLines" >> beam.ParDo(ReadNumberedLines(input_format)).with_outputs(_HEADER, main="data"))
    parsed = (lines.data
              | "Redistribute" >> beam.Reshuffle()
              | "Parse" >> beam.ParDo(ParseBatches(input_format)).with_outputs(_DEAD, main="good"))
    for split in splits.SPLITS:
        (parsed.good
         | f"Select-{split}" >> beam.Filter(lambda kv, s=split: kv[0] == s)
         | f"Examples-{split}" >> beam.Values()
         | f"Write-{split}" >> record_batches.WriteRecordBatches(
             os.path.join(output_dir, splits.split_dir_name(split), "data"), file_name_suffix=".tfrecord.gz"))
    (parsed[_DEAD]
     | "DeadValues" >> beam.Values()
     | "WriteDead" >> beam.io.WriteToText(
         os.path.join(dead_letter_dir, "dead_letters"), file_name_suffix=".jsonl",
         skip_if_empty=True))  # no file when no row is rejected: S3 refuses an empty multipart upload
    read = lines.data | "KeyRead" >> beam.FlatMap(_read_per_split)
    headers = lines[_HEADER] | "KeyHeaders" >> beam.Map(lambda _: ((None, _HEADER), 1))
    written = parsed.good | "KeyWritten" >> beam.Map(lambda kv: ((kv[0], "written"), len(kv[1])))
    rejected = parsed[_DEAD] | "KeyRejected" >> beam.Map(lambda kv: ((kv[0], "rejected"), 1))
    (((read, headers, written, rejected) | "AllOutcomes" >> beam.Flatten())
     | "CountOutcomes" >> beam.CombinePerKey(sum)
     | "Gather" >> beam.combiners.ToList()
     | "ToJson" >> beam.Map(_counts_json, inputs)
     | "WriteCounts" >> beam.io.WriteToText(os.path.join(output_dir, COUNTS_FILE),
                                            shard_name_template="", num_shards=1))


def _refuse_foreign_output(output_dir: str) -> None:
    """An existing `output_dir` is replaced whole: only an earlier ingestion's output (with its counts) may be."""
    existing = staged_output.files_under(output_dir)
    if existing and not FileSystems.exists(os.path.join(output_dir, COUNTS_FILE)):
        raise FileExistsError(f"--output {output_dir} holds files that are not an ingestion's output (no "
                              f"{COUNTS_FILE}; e.g. {existing[0]}), and a run replaces its output folder whole: "
                              "give a new folder, or delete that one")


def run(inputs: Sequence[str], output_dir: str, input_format: str = "tsv",
        beam_args: Optional[Sequence[str]] = None) -> Dict:
    """Runs the ingestion job and returns counts.json's content, checked to reconcile.

    The job writes into a staging folder that replaces `output_dir` whole once the counts reconcile
    (`ingestion.staged_output`): the folder then holds this run's rows alone, and a failed run leaves
    the earlier output as it was."""
    object_storage.configure_beam_file_systems(beam_args or [])
    paths = input_files.expand(inputs)
    _refuse_foreign_output(output_dir)
    options = PipelineOptions(list(beam_args or []))
    with staged_output.staged(output_dir, marker=COUNTS_FILE) as staging:
        with beam.Pipeline(options=options) as root:
            build(root, paths, staging, input_format)
        counts = reconciled(read_counts(staging), f"the output {output_dir} is left as it was")
    return counts


def reconciled(counts: Dict, consequence: str) -> Dict:
    """`counts`, once every split's rows read equal its rows written + rejected; else raises naming the split
    and `consequence`."""
    for split, row in counts["splits"].items():
        if row["read"] != row["written"] + row["rejected"]:
            raise RuntimeError(f"ingestion lost rows in split {split!r}: {row['read']} read at the reader, "
                               f"but {row['written']} written + {row['rejected']} rejected ({consequence})")
    return counts


def read_json(path: str) -> Dict:
    """A JSON file at any path Beam's file systems open (local, gs://, s3://)."""
    with FileSystems.open(path) as f:
        return json.loads(f.read().decode("utf-8"))


def read_counts(output_dir: str) -> Dict:
    return read_json(os.path.join(output_dir, COUNTS_FILE))


def format_counts(counts: Dict) -> str:
    """The counts as a table: read, written and rejected per split, and their totals."""
    table = [(split, *(counts["splits"][split][k] for k in ("read", "written", "rejected"))) for split in splits.SPLITS]
    table.append(("total", *(sum(row[i] for row in table) for i in (1, 2, 3))))
    return "\n".join(f"{name:<6} {read:>10} {written:>10} {rejected:>10}" for name, read, written, rejected in
                     [("split", "read", "written", "rejected")] + table)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = flags.StrictParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", action="append", required=True, help="file or glob; repeatable")
    parser.add_argument("--output", required=True, help="output folder for splits, dead letters, counts")
    parser.add_argument("--format", choices=sorted(rows.DELIMITERS), default="tsv")
    parser.add_argument("--beam-arg", action="append", default=[], help="a Beam pipeline argument; repeatable")
    own, beam_args = flags.split_beam_args(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(own)
    counts = run(args.input, args.output, args.format, args.beam_arg + beam_args)
    print(format_counts(counts))
    print(f"[ingest] TFRecords under {args.output}/Split-*/; dead letters under "
          f"{args.output}/{DEAD_LETTER_DIR}/; counts in {args.output}/{COUNTS_FILE}")


if __name__ == "__main__":
    main()
