"""RawLogsExampleGen: raw Criteo logs into the pipeline's Examples, with its row accounting and dead letters."""
import glob
import json
import os
import time

import pytest
from tfx.components.example_gen import utils as example_gen_utils
from tfx.components.util import examples_utils
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from components import raw_logs_example_gen as example_gen
from ingestion import convert
from transforms.splits import SPLITS
from tests.helpers import REAL_SAMPLE, good_row, split_examples


def _run(input_path, out_dir, input_format="tsv", output_config=None):
    """Runs the executor as the component's spec would, on the in-memory DirectRunner."""
    base, pattern = example_gen.input_base_and_pattern(input_path)
    examples, dead_letters = standard_artifacts.Examples(), example_gen.DeadLetters()
    examples.uri, dead_letters.uri = os.path.join(out_dir, "examples"), os.path.join(out_dir, "dead_letters")
    input_config = example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="raw_logs", pattern=pattern)])
    example_gen.Executor().Do({}, {"examples": [examples], "dead_letters": [dead_letters]}, {
        "input_base": base, "input_config": proto_utils.proto_to_json(input_config),
        "output_config": proto_utils.proto_to_json(output_config or example_gen.output_config()),
        "input_format": input_format})
    return examples, dead_letters


def _rejected(dead_letters):
    letters = []
    for path in glob.glob(os.path.join(dead_letters.uri, "*")):
        with open(path) as f:
            letters += [json.loads(line) for line in f]
    return letters


def test_the_real_criteo_sample_becomes_what_ingestion_writes_with_its_counts(tmp_path):
    examples, dead_letters = _run(REAL_SAMPLE, str(tmp_path / "gen"), "csv")
    expected = convert.run([REAL_SAMPLE], str(tmp_path / "ingested"), "csv")
    counts = json.loads(examples.get_string_custom_property(example_gen.ROW_COUNTS_PROPERTY))
    assert counts == expected and counts["headers_skipped"] == 1
    assert sum(split["read"] for split in counts["splits"].values()) == 200
    for split in SPLITS:
        assert split_examples(examples.uri, split) == split_examples(str(tmp_path / "ingested"), split), split
    assert json.loads(examples.split_names) == list(SPLITS)
    assert examples_utils.get_payload_format(examples) == example_gen_pb2.FORMAT_TF_EXAMPLE
    assert examples_utils.get_file_format(examples) == "tfrecords_gzip"
    assert dead_letters.get_int_custom_property(example_gen.REJECTED_PROPERTY) == 0 and not _rejected(dead_letters)


def test_bad_rows_go_to_the_dead_letters_output_with_their_reasons_and_are_counted(tmp_path):
    logs = tmp_path / "logs" / "day1.tsv"
    logs.parent.mkdir()
    logs.write_text("\n".join([good_row(), "1\ttoo few columns", good_row(label="0"), good_row(label="7"),
                               good_row()]) + "\n")
    examples, dead_letters = _run(str(tmp_path / "logs" / "*.tsv"), str(tmp_path / "gen"))
    counts = json.loads(examples.get_string_custom_property(example_gen.ROW_COUNTS_PROPERTY))
    totals = {key: sum(split[key] for split in counts["splits"].values()) for key in ("read", "written", "rejected")}
    assert totals == {"read": 5, "written": 3, "rejected": 2}
    letters = sorted(_rejected(dead_letters), key=lambda letter: letter["line"])
    assert [letter["line"] for letter in letters] == [2, 4] and all(letter["reason"] for letter in letters)
    assert dead_letters.get_int_custom_property(example_gen.REJECTED_PROPERTY) == 2
    assert sum(len(split_examples(examples.uri, split)) for split in SPLITS) == 3


def test_a_retried_execution_leaves_only_its_own_files(tmp_path):
    logs = tmp_path / "a.tsv"
    logs.write_text("\n".join([good_row()] * 30) + "\n")
    first, _ = _run(str(logs), str(tmp_path / "gen"))
    stale = os.path.join(first.uri, "Split-train", "data-stale.tfrecord.gz")
    os.rename(glob.glob(os.path.join(first.uri, "Split-train", "*"))[0], stale)
    again, _ = _run(str(logs), str(tmp_path / "gen"))
    assert not os.path.exists(stale) and sum(len(split_examples(again.uri, s)) for s in SPLITS) == 30


def test_another_split_or_an_unknown_format_is_refused_by_name(tmp_path):
    logs = tmp_path / "a.tsv"
    logs.write_text(good_row() + "\n")
    two_splits = example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(splits=[
        example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=2),
        example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=1)]))
    with pytest.raises(ValueError, match="7:2:1 split by line number"):
        _run(str(logs), str(tmp_path / "gen"), output_config=two_splits)
    with pytest.raises(ValueError, match="parquet"):
        _run(str(logs), str(tmp_path / "gen2"), input_format="parquet")


@pytest.mark.parametrize("path, expected", [
    ("/data/criteo/train.txt", ("/data/criteo", "train.txt")),
    ("gs://bucket/logs/*.tsv", ("gs://bucket/logs", "*.tsv")),
    ("s3://bucket/logs/day-*/part-*.tsv.gz", ("s3://bucket/logs", "day-*/part-*.tsv.gz")),
])
def test_input_base_and_pattern(path, expected):
    assert example_gen.input_base_and_pattern(path) == expected


def test_a_path_without_a_folder_is_refused():
    with pytest.raises(ValueError, match="below a folder"):
        example_gen.input_base_and_pattern("*.tsv")


def test_the_driver_fingerprints_the_matched_logs_so_a_changed_log_is_ingested_again(tmp_path):
    logs = tmp_path / "a.tsv"
    logs.write_text(good_row() + "\n")
    component = example_gen.RawLogsExampleGen(str(logs))
    base = component.exec_properties["input_base"]
    splits = proto_utils.json_to_proto(component.exec_properties["input_config"], example_gen_pb2.Input()).splits

    def fingerprint():
        return example_gen_utils.calculate_splits_fingerprint_span_and_version(base, splits)[0]

    before = fingerprint()
    time.sleep(1.1)  # modification times have a resolution of seconds in the fingerprint
    logs.write_text(good_row() + "\n" + good_row() + "\n")
    assert fingerprint() != before
