"""Beam job: Criteo TSV/CSV click logs -> gzipped TFRecord `tf.Example`s, split 7:2:1.

Reads the Kaggle `train.txt` layout (tab-separated, no header, plain or gzip) or the
comma-separated variant with a header row. Each data row becomes a `tf.Example`
(`label` int64; `I1`-`I13` int64, `C1`-`C26` bytes, each absent when missing) in
`<out>/Split-{train,eval,test}/`. A malformed row goes to `<out>/dead_letters/`
as a JSON line with its file, line number, reason and text. `<out>/counts.json`
holds, per split, rows read = rows written + rows rejected.

Arguments after `--` (or in `--beam-arg=...`) go to Beam, so another runner needs no code change:

    python -m ingestion.convert --input 'gs://b/train*.txt.gz' --output gs://b/tfrecords -- \\
        --runner DataflowRunner --project P --region R --temp_location gs://b/tmp
"""
import json
import os
import sys
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from settings import flags
from transforms import rows, splits

COUNTS_FILE = "counts.json"
DEAD_LETTER_DIR = "dead_letters"
_DEAD = "dead"


class ReadNumberedLines(beam.DoFn):
    """Yields (file, 1-based line number, text) for every line of a file, header excepted."""

    def __init__(self, input_format: str):
        self._input_format = input_format

    def process(self, path: str) -> Iterable[Tuple[str, int, Optional[str]]]:
        with FileSystems.open(path, compression_type=CompressionTypes.AUTO) as f:
            for number, raw in enumerate(iter(f.readline, b""), start=1):
                try:
                    text = raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError:
                    text = None
                if number == 1 and self._input_format == "csv":
                    rows.check_csv_header(path, text)
                    continue
                yield path, number, text


class ParseToExample(beam.DoFn):
    """Parses a numbered line; good rows go to the main output, bad ones to `dead`."""

    def __init__(self, input_format: str):
        self._delimiter = rows.delimiter(input_format)

    def process(self, item: Tuple[str, int, Optional[str]]):
        path, number, text = item
        split = splits.split_of(number)
        try:
            if text is None:
                raise rows.RowError("not valid UTF-8")
            label, row = rows.parse_row(text, self._delimiter)
        except rows.RowError as error:
            beam.metrics.Metrics.counter("ingest", f"{split}_rejected").inc()
            yield beam.pvalue.TaggedOutput(_DEAD, (split, json.dumps(
                {"file": path, "line": number, "split": split, "reason": str(error), "text": text})))
            return
        beam.metrics.Metrics.counter("ingest", f"{split}_written").inc()
        yield split, rows.to_example(label, row)


def _counts_json(counts: List[Tuple[Tuple[str, str], int]], inputs: Sequence[str]) -> str:
    table = {name: {"read": 0, "written": 0, "rejected": 0} for name in splits.SPLITS}
    for (split, status), n in counts:
        table[split][status] += n
    for row in table.values():
        row["read"] = row["written"] + row["rejected"]
    return json.dumps({"inputs": list(inputs), "splits": table}, sort_keys=True)


def build(root: beam.Pipeline, inputs: Sequence[str], output_dir: str, input_format: str) -> None:
    """Adds the ingestion transforms to a Beam pipeline."""
    rows.delimiter(input_format)  # refuses an unknown format before the job starts
    parsed = (root
              | "InputFiles" >> beam.Create(list(inputs))
              | "ReadLines" >> beam.ParDo(ReadNumberedLines(input_format))
              | "Redistribute" >> beam.Reshuffle()
              | "Parse" >> beam.ParDo(ParseToExample(input_format)).with_outputs(_DEAD, main="good"))
    for split in splits.SPLITS:
        (parsed.good
         | f"Select-{split}" >> beam.Filter(lambda kv, s=split: kv[0] == s)
         | f"Values-{split}" >> beam.Values()
         | f"Write-{split}" >> beam.io.WriteToTFRecord(
             os.path.join(output_dir, splits.split_dir_name(split), "data"), file_name_suffix=".tfrecord.gz",
             compression_type=CompressionTypes.GZIP))
    (parsed[_DEAD]
     | "DeadValues" >> beam.Values()
     | "WriteDead" >> beam.io.WriteToText(
         os.path.join(output_dir, DEAD_LETTER_DIR, "dead_letters"), file_name_suffix=".jsonl"))
    written = parsed.good | "KeyWritten" >> beam.Map(lambda kv: ((kv[0], "written"), 1))
    rejected = parsed[_DEAD] | "KeyRejected" >> beam.Map(lambda kv: ((kv[0], "rejected"), 1))
    (((written, rejected) | "AllOutcomes" >> beam.Flatten())
     | "CountOutcomes" >> beam.CombinePerKey(sum)
     | "Gather" >> beam.combiners.ToList()
     | "ToJson" >> beam.Map(_counts_json, inputs)
     | "WriteCounts" >> beam.io.WriteToText(os.path.join(output_dir, COUNTS_FILE),
                                            shard_name_template="", num_shards=1))


def expand_inputs(patterns: Sequence[str]) -> List[str]:
    """File paths matching the patterns; an unmatched pattern is an error."""
    paths = []
    for pattern in patterns:
        matched = [m.path for m in FileSystems.match([pattern])[0].metadata_list]
        if not matched:
            raise FileNotFoundError(f"no input file matches {pattern!r}")
        paths.extend(sorted(matched))
    return paths


def run(inputs: Sequence[str], output_dir: str, input_format: str = "tsv",
        beam_args: Optional[Sequence[str]] = None) -> Dict:
    """Runs the ingestion job and returns counts.json's content, checked to reconcile."""
    paths = expand_inputs(inputs)
    options = PipelineOptions(list(beam_args or []))
    with beam.Pipeline(options=options) as root:
        build(root, paths, output_dir, input_format)
    counts = read_counts(output_dir)
    for split, row in counts["splits"].items():
        if row["read"] != row["written"] + row["rejected"]:
            raise RuntimeError(f"counts do not reconcile for {split}: {row}")
    return counts


def read_counts(output_dir: str) -> Dict:
    with FileSystems.open(os.path.join(output_dir, COUNTS_FILE)) as f:
        return json.loads(f.read().decode("utf-8"))


def format_counts(counts: Dict) -> str:
    lines = [f"{'split':<6} {'read':>10} {'written':>10} {'rejected':>10}"]
    totals = {"read": 0, "written": 0, "rejected": 0}
    for split in splits.SPLITS:
        row = counts["splits"][split]
        lines.append(f"{split:<6} {row['read']:>10} {row['written']:>10} {row['rejected']:>10}")
        for key in totals:
            totals[key] += row[key]
    lines.append(f"{'total':<6} {totals['read']:>10} {totals['written']:>10} {totals['rejected']:>10}")
    return "\n".join(lines)


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
