"""The Criteo row format: one line of a click log <-> (label, features) <-> `tf.Example`.

Kaggle `train.txt` / Criteo_x1 layout: a label, then `I1`..`I13` integer counts and `C1`..`C26`
hashed categories, tab-separated (`tsv`), or comma-separated after a header row (`csv`). An empty
field is a missing value, left out of the row and of the `tf.Example`. The ingestion job, the
serving client and the generator all read and write rows through this module.
"""
from typing import Dict, Optional, Tuple

from transforms import features

DELIMITERS = {"tsv": "\t", "csv": ","}
CSV_HEADER = ",".join(features.RAW_COLUMNS)

Row = Dict[str, object]  # feature -> int (I*) or str (C*); missing features absent


class RowError(ValueError):
    """A malformed input row; the message is the dead-letter reason."""


def delimiter(input_format: str) -> str:
    if input_format not in DELIMITERS:
        raise ValueError(f"input format must be one of {', '.join(DELIMITERS)}, got {input_format!r}")
    return DELIMITERS[input_format]


def check_csv_header(path: str, text: Optional[str]) -> None:
    """Raises ValueError unless `text` is the header row a CSV input must start with."""
    if text is None or text.strip() != CSV_HEADER:
        raise ValueError(f"{path}: CSV input needs the header row {CSV_HEADER!r}, got {text!r}")


def _parse_int(column: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        pass
    try:  # pandas-exported files write integer columns as '260.0'
        value = float(text)
    except ValueError:
        raise RowError(f"{column}: not an integer: {text!r}") from None
    if not value.is_integer():
        raise RowError(f"{column}: not an integer: {text!r}")
    return int(value)


def parse_row(line: str, separator: str) -> Tuple[int, Row]:
    """Parses one data line into (label, {feature: value}) with missing features left out.

    Raises RowError naming what is wrong.
    """
    if not line.strip():
        raise RowError("empty line")
    values = line.split(separator)
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


def to_example(label: int, row: Row) -> bytes:
    """Serialized `tf.Example` of a parsed row."""
    from tensorflow.core.example import example_pb2  # pylint: disable=g-import-not-at-top

    example = example_pb2.Example()
    fmap = example.features.feature
    fmap[features.LABEL_KEY].int64_list.value.append(label)
    for name, value in row.items():
        if isinstance(value, int):
            fmap[name].int64_list.value.append(value)
        else:
            fmap[name].bytes_list.value.append(value.encode("utf-8"))
    return example.SerializeToString()
