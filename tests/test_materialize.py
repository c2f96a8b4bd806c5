"""Transform writing its examples a file at a time: the same examples, vocabularies and artifact as TFX's executor."""
import filecmp
import glob
import json
import os
import shutil

import pytest
import tensorflow as tf
from tfx.components.transform import executor as tfx_transform
from tfx.types import standard_artifacts

from components import materialize, transform
from transforms.splits import SPLITS
from tests.helpers import TRAIN_FILES, assert_same_examples, examples_artifact, read_examples

pytestmark = pytest.mark.e2e  # runs the pipeline, a server or a trainer end to end


def _run(executor_class, ingested, out_dir, output_files=None):
    examples, schema_dir = ingested
    schema = standard_artifacts.Schema()
    schema.uri = schema_dir
    graph, transformed = standard_artifacts.TransformGraph(), standard_artifacts.Examples()
    graph.uri, transformed.uri = os.path.join(out_dir, "graph"), os.path.join(out_dir, "examples")
    exec_properties = {
        "preprocessing_fn": "transforms.preprocessing.preprocessing_fn",
        "custom_config": json.dumps({"min_category_count": 2, "num_oov_buckets": 1, "output_files": output_files}),
        "splits_config": json.dumps({"analyze": ["train"], "transform": list(SPLITS)}),
        "disable_statistics": 1, "force_tf_compat_v1": 0}
    executor_class().Do({"examples": [examples_artifact(examples)], "schema": [schema]},
                        {"transform_graph": [graph], "transformed_examples": [transformed]}, exec_properties)
    return graph, transformed


def _split_files(transformed, split):
    return sorted(os.path.basename(f) for f in glob.glob(os.path.join(transformed.uri, f"Split-{split}", "*")))


def _row_key(example):
    """Sorts rows by their values, floats rounded (a float may differ in its last bit, see assert_same_examples)."""
    return sorted((key, tuple(round(v, 4) for v in getattr(feature, feature.WhichOneof("kind")).value))
                  for key, feature in example.features.feature.items())


def _split_examples(transformed, split):
    return read_examples(os.path.join(transformed.uri, f"Split-{split}", "*"))


@pytest.fixture(scope="module")
def ours(ingested, tmp_path_factory):
    return _run(transform.Executor, ingested, str(tmp_path_factory.mktemp("ours")))


def test_file_at_a_time_writes_the_examples_vocabularies_and_artifact_tfx_writes(ingested, ours, tmp_path):
    ours_graph, ours_examples = ours
    tfx_graph, tfx_examples = _run(tfx_transform.Executor, ingested, str(tmp_path / "tfx"))
    assert ours_examples.split_names == tfx_examples.split_names == json.dumps(list(SPLITS))
    assert ours_examples.mlmd_artifact.custom_properties == tfx_examples.mlmd_artifact.custom_properties
    for split in SPLITS:
        count = TRAIN_FILES if split == "train" else 1
        assert _split_files(ours_examples, split) == [materialize.output_name(i, count) for i in range(count)]
        # TFX's Beam job orders the rows of several files its own way: compare them sorted.
        examples, expected = sorted(_split_examples(ours_examples, split), key=_row_key), sorted(
            _split_examples(tfx_examples, split), key=_row_key)
        assert len(examples) > 0
        assert_same_examples(examples, expected)
    assets = lambda g: os.path.join(g.uri, "transform_fn", "assets")  # noqa: E731
    comparison = filecmp.dircmp(assets(ours_graph), assets(tfx_graph))
    assert comparison.left_list == comparison.right_list and len(comparison.left_list) == 26
    assert not comparison.diff_files


def test_an_output_file_holds_its_input_files_rows_in_order_whatever_the_batch(ingested, ours, tmp_path):
    graph, transformed = ours
    source = sorted(glob.glob(os.path.join(ingested[0], "Split-train", "*")))[1]
    destination = str(tmp_path / "out" / "again.gz")
    rows = materialize.FileTransformer(graph.uri, batch_rows=7)(source, [destination])
    raw = list(tf.data.TFRecordDataset(source, compression_type="GZIP").as_numpy_iterator())
    written = [tf.train.Example.FromString(r) for r in tf.data.TFRecordDataset(destination, compression_type="GZIP")
               .as_numpy_iterator()]
    assert rows == len(raw) == len(written)
    labels = lambda examples: [e.features.feature["label"].int64_list.value[0] for e in examples]  # noqa: E731
    assert labels(written) == labels(map(tf.train.Example.FromString, raw))
    assert_same_examples(written, read_examples(
        os.path.join(transformed.uri, "Split-train", materialize.output_name(1, TRAIN_FILES))))


def test_a_split_without_files_is_named_before_any_analysis(ingested, tmp_path):
    examples, schema_dir = ingested
    empty = tmp_path / "examples"
    shutil.copytree(examples, empty)
    for path in glob.glob(str(empty / "Split-eval" / "*")):
        os.remove(path)
    with pytest.raises(FileNotFoundError, match=r"split 'eval' has no files matching .*Split-eval"):
        _run(transform.Executor, (str(empty), schema_dir), str(tmp_path / "out"))
    assert not os.path.exists(tmp_path / "out" / "graph")


def test_a_retried_transform_replaces_what_an_earlier_attempt_left_in_its_output(ingested, ours, tmp_path):
    """A retry of an execution (Vertex retries a failed task into the same artifact URIs) must not keep an
    earlier attempt's files that it does not overwrite."""
    out = tmp_path / "retry"
    for split in SPLITS:
        stale = out / "examples" / f"Split-{split}"
        stale.mkdir(parents=True)
        first = materialize.output_name(0, TRAIN_FILES if split == "train" else 1)
        shutil.copy(os.path.join(ours[1].uri, f"Split-{split}", first), stale / materialize.output_name(2, 3))
    _, transformed = _run(transform.Executor, ingested, str(out))
    for split in SPLITS:
        count = TRAIN_FILES if split == "train" else 1
        assert _split_files(transformed, split) == [materialize.output_name(i, count) for i in range(count)]
    assert sorted(os.listdir(out / "examples")) == [f"Split-{split}" for split in sorted(SPLITS)]


def test_a_split_gets_at_least_the_files_asked_for_each_input_dealt_in_turn(ingested, ours, tmp_path):
    """5 files per split: the train split's 2 inputs become 3 files each, the eval and test splits' 1 becomes 5."""
    _, transformed = _run(transform.Executor, ingested, str(tmp_path / "five"), output_files=5)
    for split in SPLITS:
        count = 6 if split == "train" else 5
        assert _split_files(transformed, split) == [materialize.output_name(i, count) for i in range(count)]
        assert_same_examples(sorted(_split_examples(transformed, split), key=_row_key),
                             sorted(_split_examples(ours[1], split), key=_row_key))
    # Output j of an input's k holds its rows j, j + k, ... in order.
    one_file = read_examples(os.path.join(ours[1].uri, "Split-eval", materialize.output_name(0, 1)))
    for j in range(5):
        assert_same_examples(read_examples(os.path.join(transformed.uri, "Split-eval", materialize.output_name(j, 5))),
                             one_file[j::5])
