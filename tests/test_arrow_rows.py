"""Arrow's batch parse of tab-separated lines against `parse_row`, the one validator."""
import pytest
import hypothesis
import pyarrow as pa
import pyarrow.compute as pc
import tensorflow as tf
from hypothesis import strategies as st

from transforms import features, rows
from tests.helpers import REAL_SAMPLE


def _parsed_one_by_one(lines):
    """The record batch of `lines` through parse_row, or None when parse_row rejects one of them."""
    try:
        return rows.record_batch([rows.parse_row(line, "\t") for line in lines])
    except rows.RowError:
        return None


def test_arrow_parses_generated_and_real_lines_as_parse_row_does(generated_tsv):
    with open(generated_tsv[0]) as f:
        lines = f.read().splitlines()
    with open(REAL_SAMPLE) as f:  # the real sample's rows, tab-separated
        real = ["\t".join(rows._fields(line, ",")) for line in f.read().splitlines()[1:]]  # pylint: disable=protected-access
    for batch in (lines, real, lines[:1]):
        parsed = rows.parse_tsv_lines(batch)
        assert parsed is not None
        assert parsed.equals(_parsed_one_by_one(batch))
        # The encoder writes a feature map in no fixed order, so the examples are compared parsed.
        assert ([tf.train.Example.FromString(e) for e in rows.encode(parsed)]
                == [tf.train.Example.FromString(e) for e in rows.to_examples([rows.parse_row(l, "\t") for l in batch])])


TAKEN_INTEGERS = ["5", "-3", "+7", "007", "-0", "", "260.0", "-3.00", "123456789012345.0",
                  str(rows.INT64_MAX), str(rows.INT64_MIN)]
TAKEN_TOKENS = ["68fd1e64", "", "a b", "é€", '"q"', "a,b", "\x00"]
TRICKY_FIELDS = [" 5", "5 ", "7.", ".0", "-0.0", "2.5", "1_000", "0x10", "٣", "9007199254740993.0", "1e3",
                 str(rows.INT64_MAX + 1), "five", " ", " a", "a ", "\u00a0a", "a\u3000", "a\x0b", "\x1fa",
                 "1.5", "true", "2", "0\t1"]


def _line(label, integers, tokens):
    return "\t".join([label] + integers + tokens)


def test_arrow_takes_every_form_parse_row_takes_as_it_stands():
    lines = [_line(label, [TAKEN_INTEGERS[(i + j) % len(TAKEN_INTEGERS)] for j in range(13)],
                   [TAKEN_TOKENS[(i + j) % len(TAKEN_TOKENS)] for j in range(26)])
             for i, label in enumerate(["0", "1", "0.0", "1.0"] * 4)]
    parsed = rows.parse_tsv_lines(lines)
    assert parsed is not None and parsed.equals(_parsed_one_by_one(lines))


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(st.lists(st.tuples(
    st.sampled_from(["0", "1", "0.0", "1.0"]),
    st.lists(st.sampled_from(TAKEN_INTEGERS), min_size=13, max_size=13),
    st.lists(st.sampled_from(TAKEN_TOKENS), min_size=26, max_size=26),
    st.lists(st.tuples(st.integers(0, features.NUM_COLUMNS), st.sampled_from(TRICKY_FIELDS)), max_size=2)),
    min_size=1, max_size=6))
@pytest.mark.e2e
def test_arrow_parsing_takes_only_lines_parse_row_takes_as_they_stand(raw_rows):
    """Whatever fields a batch's lines have, Arrow's batch is parse_row's, or it leaves the batch to
    parse_row. A line has up to two fields replaced by a tricky one (or one appended, at index 40)."""
    lines = []
    for label, integers, tokens, replaced in raw_rows:
        fields = [label] + integers + tokens
        for index, value in replaced:
            fields[index:index + 1] = [value]
        lines.append("\t".join(fields))
    parsed = rows.parse_tsv_lines(lines)
    if parsed is not None:
        assert parsed.equals(_parsed_one_by_one(lines))


@pytest.mark.e2e
def test_the_whitespace_arrow_refuses_is_what_str_strip_removes():
    """Every character `str.isspace()` accepts but the tab, which separates the fields, and no other,
    pads a field at either end."""
    characters = [chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    for line in ("{}a\tb", "a{}\tb", "a\t{}b", "a\tb{}"):
        lines = pa.array([line.format(c) for c in characters])
        padded = pc.match_substring_regex(lines, rows._PADDED_FIELD).to_pylist()  # pylint: disable=protected-access
        expected = [c.isspace() and c != "\t" for c in characters]
        assert padded == expected, line
