"""An ingestion's output folder holds one run's rows alone: re-ingestion, failed runs, foreign folders, inputs."""
import glob
import os

import pytest

from ingestion import convert, staged_output
from transforms import rows, splits
from tests.helpers import dead_letters, good_row, split_examples

pytestmark = pytest.mark.e2e  # runs the pipeline, a server or a trainer end to end


def _split_files(output_dir):
    return {split: sorted(glob.glob(os.path.join(output_dir, splits.split_dir_name(split), "*")))
            for split in splits.SPLITS}


def _all_i1(output_dir):
    return sorted(e.features.feature["I1"].int64_list.value[0]
                  for split in splits.SPLITS for e in split_examples(output_dir, split))


def test_a_second_ingestion_into_the_same_output_holds_its_own_rows_alone(tmp_path, monkeypatch):
    """The first run writes two files per split and dead letters; the second (other rows, one file per
    split, nothing rejected) must leave neither behind."""
    monkeypatch.setattr(convert, "BATCH_LINES", 8)
    first = tmp_path / "first.tsv"
    first.write_text("\n".join([good_row(i1=str(n)) for n in range(300)] + ["1\t2\t3"]) + "\n")
    out = str(tmp_path / "out")
    convert.run([str(first)], out, beam_args=["--direct_running_mode=multi_threading", "--direct_num_workers=2"])
    assert all(len(files) == 2 for files in _split_files(out).values()), _split_files(out)
    assert len(dead_letters(out)) == 1

    monkeypatch.setattr(convert, "BATCH_LINES", 2048)
    second = tmp_path / "second.tsv"
    second.write_text("\n".join(good_row(i1=str(1000 + n)) for n in range(40)) + "\n")
    counts = convert.run([str(second)], out)
    assert sum(r["written"] for r in counts["splits"].values()) == 40
    assert _all_i1(out) == list(range(1000, 1040))
    assert all(len(files) == 1 for files in _split_files(out).values())
    assert dead_letters(out) == [] and staged_output.files_under(os.path.join(out, convert.DEAD_LETTER_DIR)) == []
    assert sorted(os.listdir(tmp_path)) == ["first.tsv", "out", "second.tsv"]   # no staging or old folder left


def test_a_failed_ingestion_leaves_the_earlier_output_as_it_was(tmp_path, monkeypatch):
    source = tmp_path / "rows.tsv"
    source.write_text("\n".join(good_row(i1=str(n)) for n in range(30)) + "\n")
    out = str(tmp_path / "out")
    convert.run([str(source)], out)
    before = {path: open(path, "rb").read() for files in _split_files(out).values() for path in files}
    other = tmp_path / "other.tsv"
    other.write_text(good_row(i1="7") + "\n")
    encode = rows.encode
    monkeypatch.setattr(rows, "encode", lambda batch: encode(batch)[1:])  # rows lost: the run fails
    with pytest.raises(RuntimeError, match="lost rows"):
        convert.run([str(other)], out)
    after = {path: open(path, "rb").read() for files in _split_files(out).values() for path in files}
    assert after == before and _all_i1(out) == list(range(30))
    assert sorted(os.listdir(tmp_path)) == ["other.tsv", "out", "rows.tsv"]


def test_an_output_folder_that_no_ingestion_wrote_is_refused_and_left_alone(tmp_path):
    source = tmp_path / "rows.tsv"
    source.write_text(good_row() + "\n")
    out = tmp_path / "my_folder"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not an ingestion's output"):
        convert.run([str(source)], str(out))
    assert os.listdir(out) == ["notes.txt"]


def test_a_file_matched_by_several_input_patterns_is_read_once(tmp_path, caplog):
    for day, count in (("day1", 5), ("day2", 3)):
        (tmp_path / f"{day}.tsv").write_text("\n".join([good_row()] * count) + "\n")
    with caplog.at_level("WARNING"):
        counts = convert.run([str(tmp_path / "day*.tsv"), str(tmp_path / "day1.tsv")], str(tmp_path / "out"))
    assert sum(r["read"] for r in counts["splits"].values()) == 8
    assert sum(r["written"] for r in counts["splits"].values()) == 8
    assert any("day1.tsv" in r.getMessage() and "read once" in r.getMessage() for r in caplog.records)


def test_a_relative_output_is_replaced_beside_itself_and_the_working_folder_is_refused(tmp_path, monkeypatch):
    source = tmp_path / "rows.tsv"
    source.write_text(good_row() + "\n")
    monkeypatch.chdir(tmp_path)
    convert.run([str(source)], "out")
    convert.run([str(source)], "./out/")
    assert sorted(os.listdir(tmp_path)) == ["out", "rows.tsv"]
    assert sum(len(split_examples(str(tmp_path / "out"), split)) for split in splits.SPLITS) == 1
    monkeypatch.chdir(tmp_path / "out")
    with pytest.raises(ValueError, match="holds the working folder"):
        convert.run([str(source)], ".")
    assert os.getcwd() == str(tmp_path / "out")
