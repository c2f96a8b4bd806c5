"""The Beam converter: parsing, dead letters with reasons, reconciled counts, formats."""
import glob
import gzip
import json
import os
import shutil

import pytest
import tensorflow as tf

from ingestion import convert
from transforms import features, rows, splits
from tests.conftest import REAL_SAMPLE

GOOD = "\t".join(["1", "5", "", "0"] + ["7"] * 10 + ["68fd1e64"] * 25 + [""])
BAD_ROWS = {  # text -> reason fragment
    "": "empty line",
    "1\t2\t3": "expected 40 columns, got 3",
    GOOD.replace("1", "2", 1): "label must be 0 or 1, got '2'",
    GOOD.replace("\t5\t", "\tfive\t", 1): "I1: not an integer: 'five'",
    GOOD.replace("\t5\t", "\t2.5\t", 1): "I1: not an integer: '2.5'",
}


def _examples(output_dir, split):
    files = glob.glob(os.path.join(output_dir, splits.split_dir_name(split), "*.tfrecord.gz"))
    return [tf.train.Example.FromString(r.numpy())
            for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def _dead_letters(output_dir):
    letters = []
    for path in glob.glob(os.path.join(output_dir, convert.DEAD_LETTER_DIR, "*")):
        with open(path) as f:
            letters += [json.loads(line) for line in f]
    return letters


def test_parse_row_keeps_missing_features_out():
    label, row = rows.parse_row(GOOD, "\t")
    assert label == 1
    assert row["I1"] == 5 and row["I3"] == 0 and "I2" not in row
    assert row["C1"] == "68fd1e64" and "C26" not in row
    assert rows.parse_row(GOOD.replace("\t5\t", "\t260.0\t", 1), "\t")[1]["I1"] == 260


@pytest.mark.parametrize("text,reason", list(BAD_ROWS.items()))
def test_parse_row_names_what_is_wrong(text, reason):
    with pytest.raises(rows.RowError, match=reason.replace("(", r"\(")):
        rows.parse_row(text, "\t")


def test_injected_bad_rows_land_in_dead_letters_and_counts_reconcile(tmp_path, generated_tsv):
    source, report = generated_tsv
    with open(source) as f:
        good_lines = f.read().splitlines()
    bad_lines = list(BAD_ROWS)
    lines = good_lines[:200] + bad_lines + good_lines[200:]
    path = tmp_path / "input.tsv.gz"
    with gzip.open(path, "wt") as f:
        f.write("\n".join(lines) + "\n")
    with open(tmp_path / "raw.tsv", "wb") as f:  # a row that is not UTF-8
        f.write(b"0\t\xff\xfe\n")

    out = str(tmp_path / "out")
    counts = convert.run([str(path), str(tmp_path / "raw.tsv")], out)

    dead = _dead_letters(out)
    assert len(dead) == len(bad_lines) + 1
    by_line = {(os.path.basename(d["file"]), d["line"]): d for d in dead}
    for offset, text in enumerate(bad_lines):
        letter = by_line[("input.tsv.gz", 201 + offset)]
        assert BAD_ROWS[text] in letter["reason"] and letter["text"] == text
        assert letter["split"] == splits.split_of(201 + offset)
    assert by_line[("raw.tsv", 1)]["reason"] == "not valid UTF-8"

    table = counts["splits"]
    assert sum(r["read"] for r in table.values()) == len(lines) + 1
    assert sum(r["rejected"] for r in table.values()) == len(bad_lines) + 1
    for split, row in table.items():
        assert row["read"] == row["written"] + row["rejected"]
        assert len(_examples(out, split)) == row["written"]
    assert convert.read_counts(out) == counts


def test_examples_carry_typed_features_absent_when_missing(tmp_path):
    path = tmp_path / "one.tsv"
    path.write_text(GOOD + "\n")
    out = str(tmp_path / "out")
    convert.run([str(path)], out)
    (example,) = _examples(out, splits.split_of(1))
    fmap = example.features.feature
    assert fmap["label"].int64_list.value == [1]
    assert fmap["I1"].int64_list.value == [5] and "I2" not in fmap
    assert fmap["C1"].bytes_list.value == [b"68fd1e64"] and "C26" not in fmap


def test_real_criteo_csv_sample_converts_without_loss(tmp_path):
    out = str(tmp_path / "out")
    counts = convert.run([REAL_SAMPLE], out, input_format="csv")
    table = counts["splits"]
    assert sum(r["written"] for r in table.values()) == 200
    assert sum(r["rejected"] for r in table.values()) == 0
    examples = [e for s in splits.SPLITS for e in _examples(out, s)]
    assert sum(e.features.feature["label"].int64_list.value[0] for e in examples) == 49  # CTR 24.5 %
    assert any(e.features.feature["I2"].int64_list.value == [-1] for e in examples if "I2" in e.features.feature)


def test_csv_without_the_header_is_refused(tmp_path):
    path = tmp_path / "no_header.csv"
    with open(REAL_SAMPLE) as f:
        path.write_text("".join(f.readlines()[1:]))
    with pytest.raises(Exception, match="header row"):
        convert.run([str(path)], str(tmp_path / "out"), input_format="csv")


def test_missing_input_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing_here"):
        convert.run([str(tmp_path / "nothing_here*.tsv")], str(tmp_path / "out"))
