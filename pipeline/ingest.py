"""Beam job: Criteo TSV/CSV click logs -> gzipped TFRecord `tf.Example`s, split 7:2:1.

Reads the Kaggle `train.txt` layout (tab-separated, no header, plain or gzip) or the
comma-separated variant with a header row. Each data row becomes a `tf.Example`
(`label` int64; `I1`-`I13` int64, `C1`-`C26` bytes, each absent when missing) in
`<out>/Split-{train,eval,test}/`. A malformed row goes to `<out>/dead_letters/`
as a JSON line with its file, line number, reason and text. `<out>/counts.json`
holds, per split, rows read = rows written + rows rejected.

Unknown flags pass to Beam, so another runner needs no code change:

    python -m pipeline.ingest --input 'gs://b/train*.txt.gz' --output gs://b/tfrecords \\
        --runner DataflowRunner --project P --region R --temp_location gs://b/tmp
"""
import argparse
import json
import os
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline import splits
from transforms import features

COUNTS_FILE = "counts.json"
DEAD_LETTER_DIR = "dead_letters"
DELIMITERS = {"tsv": "\t", "csv": ","}
_DEAD = "dead"


def split_dir_name(split: str) -> str:
    """Folder name of one split's TFRecords (TFX's `Split-<name>` convention)."""
    return f"Split-{split}"


class RowError(ValueError):
    """A malformed input row; the message is the dead-letter reason."""


def _parse_int(column: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        pass
    try:  # pandas-exported files write integer columns as '260.0'
        value = float(text)
    except ValueError:
        raise RowError(f"{column}: not an integer: {text!r}") from None
    if not value.is_integer():
        raise RowError(f"{column}: not an integer: {text!r}")
    return int(value)


def parse_row(line: str, delimiter: str) -> Tuple[int, Dict[str, object]]:
    """Parses one data line into (label, {feature: value}) with missing features left out.

    Raises RowError naming what is wrong.
    """
    if not line.strip():
        raise RowError("empty line")
    values = line.split(delimiter)
    if len(values) != features.NUM_COLUMNS:
        raise RowError(f"expected {features.NUM_COLUMNS} columns, got {len(values)}")
    label_text = values[0].strip()
    if label_text not in ("0", "1", "0.0", "1.0"):
        raise RowError(f"label must be 0 or 1, got {label_text!r}")
    row: Dict[str, object] = {}
    numeric_values = values[1:1 + len(features.NUMERIC_FEATURES)]
    for name, text in zip(features.NUMERIC_FEATURES, numeric_values):
        text = text.strip()
        if text:
            row[name] = _parse_int(name, text)
    for name, text in zip(features.CATEGORICAL_FEATURES, values[1 + len(features.NUMERIC_FEATURES):]):
        text = text.strip()
        if text:
            row[name] = text
    return int(float(label_text)), row


def to_example(label: int, row: Dict[str, object]) -> bytes:
    """Serialized `tf.Example` of a parsed row."""
    from tensorflow.core.example import example_pb2  # pylint: disable=g-import-not-at-top

    example = example_pb2.Example()
    fmap = example.features.feature
    fmap[features.LABEL_KEY].int64_list.value.append(label)
    for name, value in row.items():
        if isinstance(value, int):
            fmap[name].int64_list.value.append(value)
        else:
            fmap[name].bytes_list.value.append(value.encode("utf-8"))
    return example.SerializeToString()


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
                    self._check_header(path, text)
                    continue
                yield path, number, text

    @staticmethod
    def _check_header(path: str, text: Optional[str]) -> None:
        expected = ",".join(features.RAW_COLUMNS)
        if text is None or text.strip() != expected:
            raise ValueError(f"{path}: CSV input needs the header row {expected!r}, got {text!r}")


class ParseToExample(beam.DoFn):
    """Parses a numbered line; good rows go to the main output, bad ones to `dead`."""

    def __init__(self, input_format: str):
        self._delimiter = DELIMITERS[input_format]

    def process(self, item: Tuple[str, int, Optional[str]]):
        path, number, text = item
        split = splits.split_of(number)
        try:
            if text is None:
                raise RowError("not valid UTF-8")
            label, row = parse_row(text, self._delimiter)
        except RowError as error:
            beam.metrics.Metrics.counter("ingest", f"{split}_rejected").inc()
            yield beam.pvalue.TaggedOutput(_DEAD, (split, json.dumps(
                {"file": path, "line": number, "split": split, "reason": str(error), "text": text})))
            return
        beam.metrics.Metrics.counter("ingest", f"{split}_written").inc()
        yield split, to_example(label, row)


def _counts_json(counts: List[Tuple[Tuple[str, str], int]], inputs: Sequence[str]) -> str:
    table = {name: {"read": 0, "written": 0, "rejected": 0} for name in splits.SPLITS}
    for (split, status), n in counts:
        table[split][status] += n
    for row in table.values():
        row["read"] = row["written"] + row["rejected"]
    return json.dumps({"inputs": list(inputs), "splits": table}, sort_keys=True)


def build(root: beam.Pipeline, inputs: Sequence[str], output_dir: str, input_format: str) -> None:
    """Adds the ingestion transforms to a Beam pipeline."""
    if input_format not in DELIMITERS:
        raise ValueError(f"input_format must be one of {sorted(DELIMITERS)}, got {input_format!r}")
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
             os.path.join(output_dir, split_dir_name(split), "data"), file_name_suffix=".tfrecord.gz",
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
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", action="append", required=True, help="file or glob; repeatable")
    parser.add_argument("--output", required=True, help="output folder for splits, dead letters, counts")
    parser.add_argument("--format", choices=sorted(DELIMITERS), default="tsv")
    args, beam_args = parser.parse_known_args(argv)
    counts = run(args.input, args.output, args.format, beam_args)
    print(format_counts(counts))
    print(f"[ingest] TFRecords under {args.output}/Split-*/; dead letters under "
          f"{args.output}/{DEAD_LETTER_DIR}/; counts in {args.output}/{COUNTS_FILE}")


if __name__ == "__main__":
    main()
