"""Every categorical field's vocabulary from one Beam analyzer pass, cut by combiners before any task sees a field.

`tft.compute_and_apply_vocabulary` once per field builds one analyzer per field: each adds its own Beam
stages, a fixed cost per field at any data size, and counts tokens one Python element at a time.
`FieldVocabularies` counts all fields' tokens per batch (`collections.Counter`, in C) and writes one file per
field, exactly as `tft.vocabulary` writes it (the same tokens, filter and order), so that
`tft.apply_vocabulary` maps tokens to the same ids:

- tokens that are empty or contain a newline are left out (a text vocabulary cannot hold them);
- a token is kept when seen at least `frequency_threshold` times and, with `max_size`, when it is among the
  `max_size` most frequent of its field (`tft.vocabulary`'s `top_k`);
- order: count descending, ties by token descending (`tft.vocabulary`'s frequency order);
- an empty vocabulary is written as TFT's one dummy token, so the lookup table still loads.

Scale (`SurvivingTokens`): counts are summed per (field, token) key, so counting spreads over every worker
whatever the number of fields; the threshold is a filter on each key's total, and the cap a `Top` combiner
per field whose partial results hold at most `max_size` tokens each. Only then does one task take a
field: the task that writes its file, holding that field's surviving tokens and no other.
"""
import collections
import os
import re
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import apache_beam as beam
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam

# `tft.vocabulary`'s dummy for an empty string vocabulary (tensorflow_transform.analyzers).
EMPTY_VOCABULARY_TOKEN = b"49d0cd50-04bb-48c0-bc6f-5b575dce351a"
_UNWRITABLE_TOKEN = re.compile(rb"^$|[\n\r]")

FieldToken = Tuple[int, bytes]


def count_batch(batch: Sequence[np.ndarray]) -> Iterable[Tuple[FieldToken, int]]:
    """((field index, token), count) for every distinct writable token of one batch."""
    for field, tokens in enumerate(batch):
        for token, count in collections.Counter(tokens.tolist()).items():
            if not _UNWRITABLE_TOKEN.search(token):
                yield (field, token), count


def ordered_tokens(counts: Iterable[Tuple[int, bytes]]) -> List[bytes]:
    """The vocabulary file's lines from a field's surviving (count, token) pairs (see the module docstring)."""
    return [token for _, token in sorted(counts, reverse=True)] or [EMPTY_VOCABULARY_TOKEN]


class SurvivingTokens(beam.PTransform):
    """Batches of `fields` token arrays -> one (field, [(count, token), ...]) per field index, the list holding
    the field's tokens seen at least `frequency_threshold` times and, with `max_size`, only its `max_size`
    largest (count, token) pairs; every cut made by combiners before one task holds a field (module docstring)."""

    def __init__(self, fields: int, frequency_threshold: int, max_size: Optional[int] = None):
        super().__init__()
        if frequency_threshold < 1 or (max_size is not None and max_size < 1):
            raise ValueError(f"frequency threshold and vocabulary cap must be >= 1, got {frequency_threshold} and "
                             f"{max_size}")
        self._fields, self._threshold, self._max_size = fields, frequency_threshold, max_size

    def expand(self, batches):
        threshold = self._threshold
        counts = (batches
                  | "CountPerBatch" >> beam.FlatMap(count_batch)
                  | "SumCounts" >> beam.CombinePerKey(sum)
                  | "Threshold" >> beam.Filter(lambda key_count: key_count[1] >= threshold)
                  | "KeyByField" >> beam.MapTuple(lambda key, count: (key[0], (count, key[1]))))
        if self._max_size:
            per_field = counts | "Cap" >> beam.combiners.Top.PerKey(self._max_size)
        else:
            per_field = counts | "GroupByField" >> beam.GroupByKey()
        every_field = batches.pipeline | "Fields" >> beam.Create([(field, None) for field in range(self._fields)])
        return ({"tokens": per_field, "field": every_field}
                | "JoinFields" >> beam.CoGroupByKey()
                | "Survivors" >> beam.MapTuple(lambda field, joined: (
                    field, [pair for group in joined["tokens"] for pair in group])))


class _WriteVocabulary(beam.DoFn):
    def __init__(self, directory: str, file_names: Sequence[str]):
        self._directory, self._file_names = directory, list(file_names)

    def process(self, field_survivors: Tuple[int, List[Tuple[int, bytes]]]):
        field, survivors = field_survivors
        tf.io.gfile.makedirs(self._directory)
        path = os.path.join(self._directory, self._file_names[field])
        with tf.io.gfile.GFile(path, "wb") as f:
            f.write(b"".join(t + b"\n" for t in ordered_tokens(survivors)))
        yield field, path


class FieldVocabularies(tft_beam.experimental.PTransformAnalyzer):
    """Batches of N token arrays -> N single-element PCollections, each a vocabulary file's path."""

    def __init__(self, file_names: Sequence[str], frequency_threshold: int, max_size: Optional[int] = None):
        super().__init__()
        self._file_names = list(file_names)
        self._threshold, self._max_size = frequency_threshold, max_size

    def expand(self, batches):
        directory = self.base_temp_dir  # where tft.vocabulary writes its files too
        paths = (batches
                 | "SurvivingTokens" >> SurvivingTokens(len(self._file_names), self._threshold, self._max_size)
                 | "Write" >> beam.ParDo(_WriteVocabulary(directory, self._file_names))
                 | "AllPaths" >> beam.combiners.ToDict())
        return tuple(paths | f"Path{i}" >> beam.Map(lambda d, i=i: np.array(d[i].encode()))
                     for i in range(len(self._file_names)))


def compute_and_apply_vocabularies(tokens: Dict[str, tf.Tensor], vocabulary_names: Dict[str, str],
                                   frequency_threshold: int, num_oov_buckets: int,
                                   max_size: Optional[int] = None) -> Dict[str, tf.Tensor]:
    """`tft.compute_and_apply_vocabulary` (with `top_k=max_size`) for every key of `tokens` ([B] strings), in
    one analyzer: a field's ids are [0, its vocabulary) and [vocabulary, + num_oov_buckets) for every other
    token, hashed."""
    keys = list(tokens)
    names = [vocabulary_names[k] for k in keys]
    paths = tft.experimental.ptransform_analyzer(
        [tokens[k] for k in keys], FieldVocabularies(names, frequency_threshold, max_size),
        output_dtypes=[tf.string] * len(keys), output_shapes=[[]] * len(keys),
        output_asset_default_values=[EMPTY_VOCABULARY_TOKEN] * len(keys), name="field_vocabularies")
    ids = {}
    for key, name, path in zip(keys, names, paths):
        tft.annotate_asset(name, name)
        ids[key] = tft.apply_vocabulary(tokens[key], path, num_oov_buckets=num_oov_buckets)
    return ids
