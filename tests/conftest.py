"""Shared test setup: Keras 2 for TFRS, the project root importable, small data fixtures."""
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import pytest  # pylint: disable=g-import-not-at-top

DATA_DIR = os.path.join(ROOT, "tests", "data")
REAL_SAMPLE = os.path.join(DATA_DIR, "criteo_sample_deepctr.csv")


@pytest.fixture(scope="session")
def generated_tsv(tmp_path_factory):
    """500 generated Criteo rows and the generator's report."""
    from pipeline import generate

    path = str(tmp_path_factory.mktemp("gen") / "criteo.tsv")
    report = generate.generate(path, 500, ctr=0.256, seed=3)
    return path, report
