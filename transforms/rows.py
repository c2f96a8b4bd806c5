"""The Criteo row format: one line of a click log <-> (label, features) <-> `tf.Example`.

Kaggle `train.txt` / Criteo_x1 layout: a label, then `I1`..`I13` integer counts and `C1`..`C26`
hashed categories, tab-separated (`tsv`) or comma-separated (`csv`, fields may be double-quoted).
A file may start with a UTF-8 byte-order mark and a header row naming the 40 columns; both are
recognised and skipped. An empty field is a missing value: left out of the row, and in the
`tf.Example` a feature with no value list, which TensorFlow's parsers and TFX's decoders read as
missing. The ingestion job, the serving client and the generator read and write rows here.
"""
import csv
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tfx_bsl.coders import example_coder

from transforms import features

DELIMITERS = {"tsv": "\t", "csv": ","}
BYTE_ORDER_MARK = "\ufeff"
INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1

Row = Dict[str, object]  # feature -> int (I*) or str (C*); missing features absent


class RowError(ValueError):
    """A malformed input row; the message is the dead-letter reason."""


def delimiter(input_format: str) -> str:
    if input_format not in DELIMITERS:
        raise ValueError(f"input format must be one of {', '.join(DELIMITERS)}, got {input_format!r}")
    return DELIMITERS[input_format]


def _fields(line: str, separator: str) -> List[str]:
    if separator == ",":  # CSV: "quoted, fields" are unquoted
        return next(csv.reader([line]), [])
    return line.split(separator)


def is_header(line: str, separator: str) -> bool:
    """Whether `line` names the 40 columns, as a file's header row does."""
    return [f.strip().lower() for f in _fields(line, separator)] == [c.lower() for c in features.RAW_COLUMNS]


def data_line(number: int, text: str, separator: str) -> Optional[str]:
    """Line `number` (1-based) of a file as a data row: the first line loses a byte-order mark, and is
    None when it is the header row."""
    if number != 1:
        return text
    text = text.lstrip(BYTE_ORDER_MARK)
    return None if is_header(text, separator) else text


def _parse_int(column: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        try:  # pandas-exported files write integer columns as '260.0'
            number = float(text)
        except ValueError:
            raise RowError(f"{column}: not an integer: {text!r}") from None
        if not number.is_integer():
            raise RowError(f"{column}: not an integer: {text!r}")
        value = int(number)
    if not INT64_MIN <= value <= INT64_MAX:
        raise RowError(f"{column}: {text!r} is outside the int64 range")
    return value


def parse_row(line: str, separator: str) -> Tuple[int, Row]:
    """Parses one data line into (label, {feature: value}) with missing features left out.

    Raises RowError naming what is wrong.
    """
    if not line.strip():
        raise RowError("empty line")
    values = _fields(line, separator)
    if len(values) != features.NUM_COLUMNS:
        raise RowError(f"expected {features.NUM_COLUMNS} columns, got {len(values)}")
    label_text = values[0].strip()
    if label_text not in ("0", "1", "0.0", "1.0"):
        raise RowError(f"label must be 0 or 1, got {label_text!r}")
    row: Row = {}
    numeric_values = values[1:1 + len(features.NUMERIC_FEATURES)]
    for name, text in zip(features.NUMERIC_FEATURES, numeric_values):
        text = text.strip()
        if text:
            row[name] = _parse_int(name, text)
    for name, text in zip(features.CATEGORICAL_FEATURES, values[1 + len(features.NUMERIC_FEATURES):]):
        text = text.strip()
        if text:
            row[name] = text
    return int(float(label_text)), row


_FEATURES = pa.struct([(name, pa.int64()) for name in features.NUMERIC_FEATURES]
                      + [(name, pa.binary()) for name in features.CATEGORICAL_FEATURES])  # str -> UTF-8 bytes


def _list_column_of_present(values: pa.Array, present: np.ndarray) -> pa.ListArray:
    """[v] per row where `present`, taking `values` in order; null where absent."""
    offsets = np.zeros(len(present) + 1, np.int32)
    np.cumsum(present, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), values, mask=pa.array(~present))


def _list_column(flat: pa.Array) -> pa.ListArray:
    """[v] per present value, null per null."""
    return _list_column_of_present(flat.drop_null(), flat.is_valid().to_numpy(zero_copy_only=False))


def record_batch(parsed: Sequence[Tuple[int, Row]]) -> pa.RecordBatch:
    """Parsed rows as one Arrow record batch: a list column per feature, null where missing.

    Arrow reads the row dicts into a struct array in C++, several times faster than building a Python
    list per feature; its fields become the feature columns."""
    values = pa.array([row for _, row in parsed], _FEATURES)
    columns = [_list_column(pa.array([label for label, _ in parsed], pa.int64()))]
    columns += [_list_column(values.field(i)) for i in range(_FEATURES.num_fields)]
    return pa.RecordBatch.from_arrays(columns, [features.LABEL_KEY] + features.NUMERIC_FEATURES
                                      + features.CATEGORICAL_FEATURES)


def to_examples(parsed: Sequence[Tuple[int, Row]]) -> List[bytes]:
    """Serialized `tf.Example`s of parsed rows, encoded a batch at a time by tfx-bsl (C++)."""
    if not parsed:
        return []
    return encode(record_batch(parsed))


def encode(batch: pa.RecordBatch) -> List[bytes]:
    """Serialized `tf.Example`s of a record batch of list columns (tfx-bsl's encoder, C++)."""
    return example_coder.RecordBatchToExamplesEncoder().encode(batch)


# What `str.strip()` removes (every character `str.isspace()` accepts) other than the tab that separates
# the fields, as an RE2 class: RE2's `\s` is only [\t\n\f\r ], and `\p{Z}` adds the Unicode space and
# separator characters. A field starting or ending with one of them is padded.
_SPACE = r"[\n\x0b\f\r\x1c-\x1f \x85\p{Z}]"
_PADDED_FIELD = f"(^|\t){_SPACE}|{_SPACE}(\t|$)"
# The label, then the 13 integer fields: decimal digits with an optional sign, or a float with a zero
# fraction as pandas writes integer columns ('260.0'), which `parse_row` reads through a float: exact
# up to 15 digits, so longer ones are left to it. An empty field is missing.
_LABEL_AND_INTEGERS = r"^(0|1|0\.0|1\.0)(\t([+-]?([0-9]+|[0-9]{1,15}\.0+))?){13}\t"
_PLUS_OR_ZERO_FRACTION = r"^\+|\.0+$"  # what Arrow's integer cast does not take


def parse_tsv_lines(lines: Sequence[str]) -> Optional[pa.RecordBatch]:
    """Tab-separated data lines as the record batch `parse_row` and `record_batch` would build from them,
    checked, split and converted by Arrow (C++), or None when some line needs `parse_row` to accept,
    convert or reject it (the caller then parses the lines one by one).

    Accepted here are only lines whose every field `parse_row` takes as it stands: 40 fields, a label
    of 0, 1, 0.0 or 1.0, integers written as decimal digits with an optional sign that fit int64 (or
    with a zero fraction, as pandas writes them: `260.0`), and no field with leading or trailing
    whitespace; an empty field is missing. Anything else (`2.5`, `1e3`, padded fields, wrong counts,
    empty lines) is left to `parse_row`.
    """
    if not lines:
        return None
    text = pa.array(lines, pa.string())
    if (pc.any(pc.match_substring_regex(text, _PADDED_FIELD), min_count=0).as_py()
            or not pc.all(pc.match_substring_regex(text, _LABEL_AND_INTEGERS), min_count=0).as_py()):
        return None
    fields = pc.split_pattern(text, "\t")  # str.split("\t"): one list per line
    if not pc.all(pc.equal(pc.list_value_length(fields), features.NUM_COLUMNS)).as_py():
        return None
    flat = fields.flatten()
    # [column, line]: each column's flags and positions contiguous (Arrow copies strided NumPy slowly).
    present = np.ascontiguousarray((pc.binary_length(flat).to_numpy() > 0).reshape(len(lines), -1).T)
    position = np.ascontiguousarray(np.arange(len(flat)).reshape(len(lines), -1).T)
    columns = []
    for i, name in enumerate(features.RAW_COLUMNS):
        values = flat.take(pa.array(position[i][present[i]]))
        if name == features.LABEL_KEY:
            values = pc.cast(pc.starts_with(values, "1"), pa.int64())
        elif name in features.NUMERIC_FEATURES:
            try:
                values = pc.cast(pc.replace_substring_regex(values, _PLUS_OR_ZERO_FRACTION, ""), pa.int64())
            except pa.ArrowInvalid:  # outside int64
                return None
        else:
            values = pc.cast(values, pa.binary())
        columns.append(_list_column_of_present(values, present[i]))
    return pa.RecordBatch.from_arrays(columns, features.RAW_COLUMNS)
