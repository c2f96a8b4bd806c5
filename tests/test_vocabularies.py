"""One-pass field vocabularies against `tft.compute_and_apply_vocabulary`: same files, same ids."""
import os

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from transforms import rows, vocabularies
from tests.helpers import REAL_SAMPLE

pytestmark = pytest.mark.e2e  # runs the pipeline, a server or a trainer end to end

FIELDS = ["C1", "C6", "C9", "C20"]  # C6, C9, C20 of the real sample have ties and repeated tokens


def test_ordered_tokens_count_descending_ties_by_token_descending():
    counts = [(2, b"b"), (5, b"a"), (2, b"c"), (1, b"z")]
    assert vocabularies.ordered_tokens(counts) == [b"a", b"c", b"b", b"z"]
    assert vocabularies.ordered_tokens([]) == [vocabularies.EMPTY_VOCABULARY_TOKEN]


@pytest.mark.parametrize("threshold, cap, survivors", [(1, None, 1005), (2, None, 5), (2, 3, 3), (1, 3, 3)])
def test_one_task_holds_a_field_only_after_the_threshold_and_cap_cut_it(threshold, cap, survivors):
    """1,000 tokens seen once and 5 seen 2-6 times in field 0; field 1 empty. What reaches the single task that
    writes a field (its one element) holds the survivors, not the 1,005 distinct tokens."""
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that

    rare = [f"rare{i}".encode() for i in range(1000)]
    frequent = [f"top{n}".encode() for n in range(2, 7) for _ in range(n)]
    tokens = np.array(rare + frequent, dtype=object)
    batches = [[tokens[i::3], np.array([], dtype=object)] for i in range(3)]  # a field's tokens across batches

    def check(per_field):
        sizes = {field: len(pairs) for field, pairs in per_field}
        assert sizes == {0: survivors, 1: 0}, sizes
        kept = dict(per_field)[0]
        if survivors <= 5:  # the most frequent, with their whole counts
            assert sorted(kept, reverse=True) == [(n, f"top{n}".encode()) for n in range(6, 6 - survivors, -1)]

    with TestPipeline() as pipeline:
        per_field = (pipeline | beam.Create(batches, reshuffle=False)
                     | vocabularies.SurvivingTokens(2, threshold, cap))
        assert_that(per_field, check)


def test_count_batch_counts_per_field_and_leaves_out_unwritable_tokens():
    batch = [np.array([b"x", b"x", b"", b"a\nb"], dtype=object), np.array([b"x", b"y\r", b"y", b"y"], dtype=object)]
    assert sorted(vocabularies.count_batch(batch)) == [((0, b"x"), 2), ((1, b"x"), 1), ((1, b"y"), 2)]


def _real_columns():
    with open(REAL_SAMPLE) as f:
        parsed = [rows.parse_row(line, ",")[1] for line in f.read().splitlines()[1:]]
    # Tokens as they come, plus rows with the awkward ones tft.vocabulary leaves out.
    instances = [{k: (row.get(k) or "__missing__").encode() for k in FIELDS} for row in parsed]
    instances += [{k: v for k in FIELDS} for v in (b"", b"two\nlines", b"cr\r")]
    return instances


@pytest.mark.parametrize("threshold, cap", [(1, None), (2, None), (1, 10), (2, 3)])
def test_same_vocabulary_files_and_ids_as_tft(tmp_path, threshold, cap):
    instances = _real_columns()
    spec = {k: tf.io.FixedLenFeature([], tf.string) for k in FIELDS}

    def preprocessing_fn(inputs):
        ours = vocabularies.compute_and_apply_vocabularies(
            dict(inputs), {k: f"ours_{k}" for k in FIELDS}, threshold, num_oov_buckets=2, max_size=cap)
        out = {f"ours_{k}": v for k, v in ours.items()}
        for k in FIELDS:
            out[f"tft_{k}"] = tft.compute_and_apply_vocabulary(
                inputs[k], frequency_threshold=threshold if threshold > 1 else None, top_k=cap, num_oov_buckets=2,
                vocab_filename=f"tft_{k}")
        return out

    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
    with tft_beam.Context(temp_dir=str(tmp_path / "tmp")):
        (transformed, _), transform_fn = (instances, metadata) | tft_beam.AnalyzeAndTransformDataset(
            preprocessing_fn)
        _ = transform_fn | tft_beam.WriteTransformFn(str(tmp_path / "out"))
    output = tft.TFTransformOutput(str(tmp_path / "out"))
    for k in FIELDS:
        with open(output.vocabulary_file_by_name(f"ours_{k}"), "rb") as a, \
                open(output.vocabulary_file_by_name(f"tft_{k}"), "rb") as b:
            ours, theirs = a.read(), b.read()
        assert ours == theirs, k
        assert len(ours.splitlines()) > 1
        assert [t[f"ours_{k}"] for t in transformed] == [t[f"tft_{k}"] for t in transformed]
    if cap:  # the cap bites on the real sample: tokens past it map to the OOV ids on both sides
        assert max(output.vocabulary_size_by_name(f"ours_{k}") for k in FIELDS) == cap
    if threshold == 2 or cap:  # some tokens are below the threshold or past the cap: they take OOV ids
        vocab_size = output.vocabulary_size_by_name("ours_C1")
        assert any(t["ours_C1"] >= vocab_size for t in transformed)
    assert os.path.basename(output.vocabulary_file_by_name("ours_C1")) == "ours_C1"
