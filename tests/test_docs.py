"""The user's guide and the build guide stay short, and every measured figure lives in benchmarks/RESULTS.md,
generated from the benchmarks' JSON results."""
import os
import re

import pytest

from benchmarks import results
from tests.helpers import ROOT

LIMITS = {"README.md": 250, "BUILD.md": 300}
# A measurement: a number with a unit of time, rate, speed-up or share, such as "12.5 s", "15,000 rows/s",
# "2.1×", "0.9 of the bare step", "35 %".
MEASUREMENT = re.compile(r"\d[\d,.]*\s*(?:µs|ms|s|sec|seconds?|min|minutes?|h|hours?|days?|[a-z]+/s|×|%)(?![\w/])"
                         r"|\d+\.\d+\s+of\s+(?:the|its|pandas)\b")


def _prose(name):
    """The file's lines outside fenced code blocks (commands, not figures)."""
    text = open(os.path.join(ROOT, name), encoding="utf-8").read()
    return re.sub(r"```.*?```", "", text, flags=re.S).splitlines()


@pytest.mark.parametrize("name", sorted(LIMITS))
def test_the_guides_are_short_and_quote_no_measurement(name):
    lines = open(os.path.join(ROOT, name), encoding="utf-8").read().splitlines()
    assert len(lines) <= LIMITS[name]
    assert [line for line in _prose(name) if MEASUREMENT.search(line)] == []
    assert "benchmarks/RESULTS.md" in "\n".join(lines)  # where the measurements are


def test_the_measurement_pattern_finds_figures():
    found = [MEASUREMENT.search(text) is not None for text in (
        "took 12.5 s", "15,000 rows/s", "2.1× PyTorch", "at 0.9 of the bare step", "35 % of", "3 hours",
        "the 7:2:1 split", "Eq. 15", "batch 1,024", "Python 3.10", "TFX 1.16")]
    assert found == [True] * 6 + [False] * 5


def test_results_md_is_generated_from_the_json_results():
    records = results.load()
    assert records, "no benchmark results in benchmarks/results/"
    with open(results.RESULTS_MD, encoding="utf-8") as f:
        assert f.read() == results.render(records)
    for record in records:
        assert set(record) >= {"benchmark", "command", "commit", "date", "machine", "tables"}
        assert record["tables"] and all(table["rows"] for table in record["tables"])
