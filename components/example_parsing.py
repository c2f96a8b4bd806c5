"""Batches of serialized `tf.Example`s parsed by TensorFlow into the Arrow record batches tfx-bsl's decoder makes.

tfx-bsl's `ExamplesToRecordBatchDecoder` parses each record into a protobuf message and walks its feature
map; `tf.io.parse_example` (TensorFlow's fast parser, C++) reads the values straight from the bytes and
is several times faster per row. `ExampleParser` parses a batch with it and builds the same Arrow columns
(large lists, a row with no values being null). The two readings differ only where a record holds

- a value list that is present but empty (an empty list for the decoder, null here),
- a feature the parser's columns lack, or one of another list type (the decoder makes or types a column),
- or, where the decoder has no schema, a column with no value in the batch (the decoder omits it or types
  it null).

With `exact`, the parser proves per batch that none of these occurs, and otherwise returns None so that
the caller decodes the batch with tfx-bsl's decoder. The proof counts map entries: it decodes each record's
`Features` entries (`tf.io.decode_proto`); an entry that is byte for byte the serialization of one of the
columns' names with no list (`key` alone, or `key` and an empty `value`) is null for both readings; every
column with values in a row has at least one other entry there. So the row's other entries number exactly
its columns with values if and only if every other entry is the one entry with values of such a column: no
empty list, no unknown feature, no other serialization of a null. (A name repeated as a null before its
values then reads the same both ways: in both the last entry wins.)
"""
from typing import Dict, Optional

import numpy as np
import pyarrow as pa
import tensorflow as tf

_PARSED_TYPES = {pa.int64(): tf.int64, pa.float32(): tf.float32, pa.large_binary(): tf.string}


def var_len_feature_spec(arrow_schema: pa.Schema) -> Optional[Dict[str, tf.io.VarLenFeature]]:
    """The `tf.io.parse_example` spec yielding every column of `arrow_schema` (tfx-bsl's decoder's), or
    None when a column is not a large list of int64, float32 or bytes."""
    spec = {}
    for field in arrow_schema:
        if not pa.types.is_large_list(field.type) or field.type.value_type not in _PARSED_TYPES:
            return None
        spec[field.name] = tf.io.VarLenFeature(_PARSED_TYPES[field.type.value_type])
    return spec


def record_batch_of_parsed(parsed: Dict[str, tuple], rows: int, arrow_schema: pa.Schema) -> pa.RecordBatch:
    """{column: (each value's row, the values)} of `rows` examples -> the record batch tfx-bsl's decoder
    makes, a row with no values being null."""
    columns = []
    for field in arrow_schema:
        value_rows, values = parsed[field.name]
        lengths = np.bincount(value_rows, minlength=rows)
        offsets = np.zeros(rows + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        columns.append(pa.LargeListArray.from_arrays(offsets, pa.array(values, field.type.value_type),
                                                     mask=pa.array(lengths == 0)))
    return pa.RecordBatch.from_arrays(columns, schema=arrow_schema)


def null_entries(names) -> tf.Tensor:
    """The serializations of a `Features` map entry naming one of `names` with no list: key alone, and key
    with an empty `value`."""
    keys = [_field_bytes(1, name.encode()) for name in names]
    return tf.constant(keys + [key + _field_bytes(2, b"") for key in keys])


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


def _field_bytes(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


class ExampleParser:
    """Serialized `tf.Example`s -> the record batch of `arrow_schema`'s columns tfx-bsl's decoder makes; with
    `exact`, None where the two could differ (module docstring), for a decoder that `decoder_has_schema` or
    not."""

    def __init__(self, arrow_schema: pa.Schema, exact: bool, decoder_has_schema: bool):
        spec = var_len_feature_spec(arrow_schema)
        if spec is None:
            raise ValueError(f"ExampleParser: every column must be a large list of int64, float32 or bytes: "
                             f"{arrow_schema}")
        self._arrow_schema = arrow_schema
        names = list(spec)
        null_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(null_entries(names), tf.ones([2 * len(names)], tf.int32)), 0)

        @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string)])
        def parse(records):
            parsed = tf.io.parse_example(records, spec)
            rows_and_values = {name: (sparse.indices[:, 0], sparse.values) for name, sparse in parsed.items()}
            if not exact:
                return rows_and_values, tf.constant(True)
            rows = tf.size(records)
            _, (features,) = tf.io.decode_proto(records, "tensorflow.Example", ["features"], [tf.string])
            features = tf.pad(features, [[0, 0], [0, 1]])[:, 0]  # "" (no entries) where a record has none
            entry_counts, (entries,) = tf.io.decode_proto(features, "tensorflow.Features", ["feature"], [tf.string])
            nulls = tf.reduce_sum(null_table.lookup(entries), axis=1)  # padding ("") is no null entry
            with_values = tf.add_n([tf.cast(tf.math.bincount(tf.cast(value_rows, tf.int32), minlength=rows,
                                                             maxlength=rows) > 0, tf.int32)
                                    for value_rows, _ in rows_and_values.values()])
            same = tf.reduce_all(tf.equal(entry_counts[:, 0] - nulls, with_values))
            if not decoder_has_schema:
                same &= tf.reduce_all(tf.stack([tf.size(values) > 0 for _, values in rows_and_values.values()]))
            return rows_and_values, same

        self.parse = parse  # records -> ({column: (each value's row, the values)}, whether the readings agree)

    def record_batch(self, parsed: Dict[str, tuple], rows: int) -> pa.RecordBatch:
        """`parse`'s columns of `rows` records, as NumPy arrays -> their record batch."""
        return record_batch_of_parsed(parsed, rows, self._arrow_schema)

    def __call__(self, records: tf.Tensor) -> Optional[pa.RecordBatch]:
        try:
            parsed, same = self.parse(records)
        except (tf.errors.InvalidArgumentError, tf.errors.DataLossError):  # another list type; no tf.Example
            return None  # the decoder reads it, or names what is wrong
        if not same:
            return None
        parsed = {name: (value_rows.numpy(), values.numpy()) for name, (value_rows, values) in parsed.items()}
        return self.record_batch(parsed, int(tf.size(records)))
