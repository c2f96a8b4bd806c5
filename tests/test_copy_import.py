"""ImportExampleGen by copy: the same records and artifact properties as TFX's executor, files copied as they are."""
import json
import os

import pytest
import tensorflow as tf
from tfx.components.example_gen.import_example_gen import executor as tfx_import
from tfx.types import standard_artifacts

from components import example_gen

SPLITS = {"train": 2, "eval": 1}  # files per split


def _write_inputs(base, suffix, compression):
    records = {}
    for split, n_files in SPLITS.items():
        os.makedirs(os.path.join(base, f"Split-{split}"))
        records[split] = []
        for i in range(n_files):
            path = os.path.join(base, f"Split-{split}", f"data-{i:05d}-of-{n_files:05d}{suffix}")
            with tf.io.TFRecordWriter(path, options=compression) as writer:
                for row in range(3 + i):
                    example = tf.train.Example(features=tf.train.Features(feature={"row": tf.train.Feature(
                        int64_list=tf.train.Int64List(value=[row])), "split": tf.train.Feature(
                        bytes_list=tf.train.BytesList(value=[f"{split}-{i}".encode()]))}))
                    writer.write(example.SerializeToString())
                    records[split].append(example.SerializeToString())
    return records


def _run(executor_class, input_base, output_uri):
    examples = standard_artifacts.Examples()
    examples.uri = output_uri
    exec_properties = {
        "input_base": input_base,
        "input_config": json.dumps({"splits": [{"name": s, "pattern": f"Split-{s}/*"} for s in SPLITS]}),
        "output_config": "{}", "output_data_format": 6, "output_file_format": 5}
    executor_class().Do({}, {"examples": [examples]}, exec_properties)
    return examples


def _records(examples, split):
    files = tf.io.gfile.glob(os.path.join(examples.uri, f"Split-{split}", "*"))
    assert files and all(os.path.basename(f).startswith("data_tfrecord-") and f.endswith(".gz") for f in files)
    return sorted(bytes(r.numpy()) for r in tf.data.TFRecordDataset(files, compression_type="GZIP"))


def test_gzipped_splits_are_copied_with_the_records_and_properties_tfx_writes(tmp_path):
    base = str(tmp_path / "in")
    written = _write_inputs(base, ".tfrecord.gz", "GZIP")
    copied = _run(example_gen.Executor, base, str(tmp_path / "copied"))
    rewritten = _run(tfx_import.Executor, base, str(tmp_path / "rewritten"))
    assert copied.split_names == rewritten.split_names == json.dumps(list(SPLITS))
    assert copied.mlmd_artifact.custom_properties == rewritten.mlmd_artifact.custom_properties
    for split, n_files in SPLITS.items():
        assert _records(copied, split) == _records(rewritten, split) == sorted(written[split])
        sources = sorted(tf.io.gfile.glob(os.path.join(base, f"Split-{split}", "*")))
        copies = sorted(tf.io.gfile.glob(os.path.join(copied.uri, f"Split-{split}", "*")))
        assert len(copies) == n_files
        assert [open(c, "rb").read() for c in copies] == [open(s, "rb").read() for s in sources]


def test_uncompressed_input_is_rewritten_by_tfx(tmp_path):
    base = str(tmp_path / "in")
    written = _write_inputs(base, ".tfrecord", None)
    examples = _run(example_gen.Executor, base, str(tmp_path / "out"))
    for split in SPLITS:
        assert _records(examples, split) == sorted(written[split])


def test_a_split_without_files_is_named(tmp_path):
    base = str(tmp_path / "in")
    _write_inputs(base, ".tfrecord.gz", "GZIP")
    tf.io.gfile.rmtree(os.path.join(base, "Split-eval"))
    with pytest.raises(FileNotFoundError, match="split 'eval': no files match"):
        _run(example_gen.Executor, base, str(tmp_path / "out"))
