"""The Beam converter: parsing, dead letters with reasons, reconciled counts, formats."""
import glob
import gzip
import io
import os

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.io import tfrecordio
from apache_beam.testing.util import assert_that, equal_to
from tfx_bsl.coders import example_coder

from ingestion import convert
from transforms import features, rows, splits
from tests.helpers import dead_letters, good_row, split_examples
from tests.helpers import REAL_SAMPLE

GOOD = "\t".join(["1", "5", "", "0"] + ["7"] * 10 + ["68fd1e64"] * 25 + [""])
BAD_ROWS = {  # text -> reason fragment
    "": "empty line",
    "1\t2\t3": "expected 40 columns, got 3",
    GOOD.replace("1", "2", 1): "label must be 0 or 1, got '2'",
    GOOD.replace("\t5\t", "\tfive\t", 1): "I1: not an integer: 'five'",
    GOOD.replace("\t5\t", "\t2.5\t", 1): "I1: not an integer: '2.5'",
}


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


@pytest.mark.e2e
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

    dead = dead_letters(out)
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
        assert len(split_examples(out, split)) == row["written"]
    assert convert.read_counts(out) == counts


def test_examples_carry_typed_features_and_read_as_missing_where_missing(tmp_path):
    path = tmp_path / "one.tsv"
    path.write_text(GOOD + "\n")
    out = str(tmp_path / "out")
    convert.run([str(path)], out)
    (example,) = split_examples(out, splits.split_of(1))
    fmap = example.features.feature
    assert fmap["label"].int64_list.value == [1]
    assert fmap["I1"].int64_list.value == [5] and fmap["C1"].bytes_list.value == [b"68fd1e64"]
    # A missing value is a feature with no value list: TensorFlow's parser and TFX's decoder read it as missing.
    assert fmap["I2"].WhichOneof("kind") is None and fmap["C26"].WhichOneof("kind") is None
    serialized = [example.SerializeToString()]
    parsed = tf.io.parse_example(serialized, {"I2": tf.io.FixedLenFeature([1], tf.int64, default_value=[-7]),
                                              "C26": tf.io.VarLenFeature(tf.string)})
    assert parsed["I2"].numpy().tolist() == [[-7]] and parsed["C26"].values.shape == [0]
    decoded = example_coder.ExamplesToRecordBatchDecoder().DecodeBatch(serialized).to_pydict()
    assert decoded["I2"] == [None] and decoded["C26"] == [None] and decoded["I1"] == [[5]]


def test_real_criteo_csv_sample_converts_without_loss(tmp_path):
    out = str(tmp_path / "out")
    counts = convert.run([REAL_SAMPLE], out, input_format="csv")
    table = counts["splits"]
    assert sum(r["written"] for r in table.values()) == 200
    assert sum(r["rejected"] for r in table.values()) == 0
    examples = [e for s in splits.SPLITS for e in split_examples(out, s)]
    assert sum(e.features.feature["label"].int64_list.value[0] for e in examples) == 49  # CTR 24.5 %
    assert any(e.features.feature["I2"].int64_list.value == [-1] for e in examples if "I2" in e.features.feature)


def test_a_tsv_header_and_byte_order_mark_are_skipped_once_and_huge_numbers_becomedead_letters(tmp_path):
    header = "\t".join(features.RAW_COLUMNS)
    lines = ["\ufeff" + header, good_row(), good_row(i1="99999999999999999999"), good_row(i1="1e30"),
             header, good_row(label="0")]  # a header again, mid-file, is not a header: a bad row
    path = tmp_path / "with_header.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = str(tmp_path / "out")
    counts = convert.run([str(path)], out)
    assert counts["headers_skipped"] == 1
    table = counts["splits"]
    assert sum(r["read"] for r in table.values()) == 5
    assert sum(r["written"] for r in table.values()) == 2
    reasons = {d["line"]: d["reason"] for d in dead_letters(out)}
    assert reasons == {3: "I1: '99999999999999999999' is outside the int64 range",
                       4: "I1: '1e30' is outside the int64 range", 5: "label must be 0 or 1, got 'label'"}


def test_quoted_csv_fields_are_unquoted(tmp_path):
    quoted = ",".join(f'"{v}"' for v in good_row(c1="a,b", separator="\t").split("\t"))
    path = tmp_path / "quoted.csv"
    path.write_text(",".join(features.RAW_COLUMNS) + "\n" + quoted + "\n" + good_row(separator=",") + "\n")
    out = str(tmp_path / "out")
    counts = convert.run([str(path)], out, input_format="csv")
    assert counts["headers_skipped"] == 1 and dead_letters(out) == []
    examples = [e for s in splits.SPLITS for e in split_examples(out, s)]
    assert sorted(e.features.feature["C1"].bytes_list.value[0] for e in examples) == [b"68fd1e64", b"a,b"]
    assert all(e.features.feature["I1"].int64_list.value == [5] for e in examples)


def test_a_csv_without_a_header_is_read_from_its_first_line(tmp_path):
    path = tmp_path / "no_header.csv"
    with open(REAL_SAMPLE) as f:
        path.write_text("".join(f.readlines()[1:]))
    counts = convert.run([str(path)], str(tmp_path / "out"), input_format="csv")
    assert counts["headers_skipped"] == 0
    assert sum(r["written"] for r in counts["splits"].values()) == 200


def test_line_numbers_splits_and_counts_hold_across_batch_boundaries(tmp_path, monkeypatch):
    monkeypatch.setattr(convert, "BATCH_LINES", 3)  # 12 data lines after the header: four batches
    lines = [good_row(i1=str(n)) for n in range(2, 14)]
    lines[4] = lines[9] = "1\t2\t3"  # lines 6 and 11 of the file
    path = tmp_path / "batches.tsv"
    path.write_text("\n".join(["\t".join(features.RAW_COLUMNS)] + lines) + "\n")
    out = str(tmp_path / "out")
    counts = convert.run([str(path)], out)
    assert {d["line"]: d["split"] for d in dead_letters(out)} == {6: splits.split_of(6), 11: splits.split_of(11)}
    for split in splits.SPLITS:
        numbers = [n for n in range(2, 14) if splits.split_of(n) == split]
        good = [n for n in numbers if n not in (6, 11)]
        assert counts["splits"][split] == {"read": len(numbers), "written": len(good),
                                           "rejected": len(numbers) - len(good)}
        assert sorted(e.features.feature["I1"].int64_list.value[0] for e in split_examples(out, split)) == good


@pytest.mark.e2e
def test_rows_lost_between_reader_and_writers_fail_the_job_naming_the_split(tmp_path, monkeypatch):
    """Line by line (Arrow refusing the batch) and through Arrow's batch."""
    path = tmp_path / "rows.tsv"
    path.write_text("\n".join([good_row()] * 5) + "\n")
    original = convert.ParseToExample.process

    def drop_line_2(self, item):
        return [] if item[1] == 2 else original(self, item)

    monkeypatch.setattr(convert.ParseToExample, "process", drop_line_2)
    with monkeypatch.context() as patch:
        patch.setattr(rows, "parse_tsv_lines", lambda lines: None)
        with pytest.raises(RuntimeError, match=f"lost rows in split '{splits.split_of(2)}'"):
            convert.run([str(path)], str(tmp_path / "out"))
    encode = rows.encode
    monkeypatch.setattr(rows, "encode", lambda batch: encode(batch)[1:])  # each split's first row lost
    first_split = sorted({splits.split_of(line) for line in range(1, 6)})[0]  # counts.json's order
    with pytest.raises(RuntimeError, match=f"lost rows in split '{first_split}'"):
        convert.run([str(path)], str(tmp_path / "out2"))


def test_missing_input_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing_here"):
        convert.run([str(tmp_path / "nothing_here*.tsv")], str(tmp_path / "out"))


def test_record_batches_are_written_as_gzipped_tfrecords_in_their_order(tmp_path):
    from ingestion import record_batches  # pylint: disable=import-outside-toplevel

    batches = [[b"a", b"", b"b" * 70_000], [], [bytes(range(256)) * 3]]
    with beam.Pipeline() as pipeline:
        _ = (pipeline | beam.Create(batches, reshuffle=False)
             | record_batches.WriteRecordBatches(str(tmp_path / "data"), ".tfrecord.gz"))
    [path] = glob.glob(str(tmp_path / "data-*-of-*.tfrecord.gz"))
    expected = [record for batch in batches for record in batch]
    # TensorFlow's reader and Beam's (which checks every CRC) read the same records back, in order.
    assert list(tf.data.TFRecordDataset(path, compression_type="GZIP").as_numpy_iterator()) == expected
    with beam.Pipeline() as pipeline:
        read = pipeline | beam.io.ReadFromTFRecord(path) | beam.combiners.ToList()
        assert_that(read, equal_to([expected]))
    with gzip.open(path) as f:
        assert f.read() == record_batches.tfrecord_frames(expected)
    reference = io.BytesIO()  # Beam's own framing, record by record
    for record in expected + expected:  # the second time, each length's header comes from the cache
        tfrecordio._TFRecordUtil.write_record(reference, record)  # pylint: disable=protected-access
    assert record_batches.tfrecord_frames(expected + expected) == reference.getvalue()


def test_to_examples_round_trips_random_rows_with_any_features_missing():
    """Every row's label and present values come back from the encoded examples; a missing one comes
    back missing (tfx-bsl's decoder: null), whatever mix of features each row in the batch has."""
    rng = np.random.default_rng(11)
    parsed = []
    for _ in range(300):
        row = {}
        for name in features.NUMERIC_FEATURES:
            if rng.random() < 0.7:
                row[name] = int(rng.integers(rows.INT64_MIN, rows.INT64_MAX, endpoint=True))
        for name in features.CATEGORICAL_FEATURES:
            if rng.random() < 0.7:
                row[name] = "".join(rng.choice(list("0af9é€ z"), size=int(rng.integers(0, 9))))
        parsed.append((int(rng.integers(0, 2)), row))
    decoded = example_coder.ExamplesToRecordBatchDecoder().DecodeBatch(rows.to_examples(parsed)).to_pydict()
    for i, (label, row) in enumerate(parsed):
        assert decoded[features.LABEL_KEY][i] == [label]
        for name in features.NUMERIC_FEATURES + features.CATEGORICAL_FEATURES:
            value = row.get(name)
            expected = None if value is None else [value.encode("utf-8") if isinstance(value, str) else value]
            assert decoded[name][i] == expected, (i, name)


