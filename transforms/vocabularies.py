"""Every categorical field's vocabulary from one Beam analyzer pass.

`tft.compute_and_apply_vocabulary` once per field builds one analyzer per field: each
adds its own Beam stages, a fixed cost per field at any data size, and counts tokens one Python
element at a time. `FieldVocabularies`
counts all fields' tokens per batch (`collections.Counter`, in C), sums the counts per
(field, token) with one `CombinePerKey`, and writes one file per field, exactly as
`tft.vocabulary` writes it (the same tokens, filter and order), so that
`tft.apply_vocabulary` maps tokens to the same ids:

- tokens that are empty or contain a newline are left out (a text vocabulary cannot hold them);
- a token is kept when seen at least `frequency_threshold` times;
- order: count descending, ties by token descending (`tft.vocabulary`'s frequency order);
- an empty vocabulary is written as TFT's one dummy token, so the lookup table still loads.
"""
import collections
import os
import re
from typing import Dict, Iterable, List, Sequence, Tuple

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


def ordered_tokens(counts: Iterable[Tuple[int, bytes]], frequency_threshold: int) -> List[bytes]:
    """The vocabulary file's lines from (count, token) pairs (see the module docstring)."""
    kept = sorted((c for c in counts if c[0] >= frequency_threshold), reverse=True)
    return [token for _, token in kept] or [EMPTY_VOCABULARY_TOKEN]


class _WriteVocabulary(beam.DoFn):
    def __init__(self, directory: str, file_names: Sequence[str], frequency_threshold: int):
        self._directory, self._file_names, self._threshold = directory, list(file_names), frequency_threshold

    def process(self, field: int, counts_by_field: Dict[int, List[Tuple[int, bytes]]]):
        tf.io.gfile.makedirs(self._directory)
        path = os.path.join(self._directory, self._file_names[field])
        with tf.io.gfile.GFile(path, "wb") as f:
            f.write(b"".join(t + b"\n" for t in ordered_tokens(counts_by_field[field], self._threshold)))
        yield field, path


class FieldVocabularies(tft_beam.experimental.PTransformAnalyzer):
    """Batches of N token arrays -> N single-element PCollections, each a vocabulary file's path."""

    def __init__(self, file_names: Sequence[str], frequency_threshold: int):
        super().__init__()
        self._file_names = list(file_names)
        self._threshold = frequency_threshold

    def expand(self, batches):
        by_field = (batches
                    | "CountPerBatch" >> beam.FlatMap(count_batch)
                    | "SumCounts" >> beam.CombinePerKey(sum)
                    | "KeyByField" >> beam.MapTuple(lambda key, count: (key[0], (count, key[1]))))
        directory = self.base_temp_dir  # where tft.vocabulary writes its files too
        paths = (batches.pipeline
                 | "Fields" >> beam.Create(range(len(self._file_names)))
                 | "Write" >> beam.ParDo(_WriteVocabulary(directory, self._file_names, self._threshold),
                                         counts_by_field=beam.pvalue.AsMultiMap(by_field))
                 | "AllPaths" >> beam.combiners.ToDict())
        return tuple(paths | f"Path{i}" >> beam.Map(lambda d, i=i: np.array(d[i].encode()))
                     for i in range(len(self._file_names)))


def compute_and_apply_vocabularies(tokens: Dict[str, tf.Tensor], vocabulary_names: Dict[str, str],
                                   frequency_threshold: int, num_oov_buckets: int) -> Dict[str, tf.Tensor]:
    """`tft.compute_and_apply_vocabulary` for every key of `tokens` ([B] strings), in one analyzer."""
    keys = list(tokens)
    names = [vocabulary_names[k] for k in keys]
    paths = tft.experimental.ptransform_analyzer(
        [tokens[k] for k in keys], FieldVocabularies(names, frequency_threshold),
        output_dtypes=[tf.string] * len(keys), output_shapes=[[]] * len(keys),
        output_asset_default_values=[EMPTY_VOCABULARY_TOKEN] * len(keys), name="field_vocabularies")
    ids = {}
    for key, name, path in zip(keys, names, paths):
        tft.annotate_asset(name, name)
        ids[key] = tft.apply_vocabulary(tokens[key], path, num_oov_buckets=num_oov_buckets)
    return ids
