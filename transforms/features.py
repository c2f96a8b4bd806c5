"""The Criteo click-log schema: the single source every other module imports.

Raw layout (Kaggle `train.txt`, Criteo_x1): a label, 13 integer count features
`I1`..`I13` and 26 hashed categorical features `C1`..`C26`. In a `tf.Example` a
missing value is a feature that is absent or has no value list (ingestion writes the latter);
TensorFlow's parsers and TFX's decoders read both as missing.
"""
from typing import List

LABEL_KEY = "label"
NUMERIC_FEATURES: List[str] = [f"I{i}" for i in range(1, 14)]
CATEGORICAL_FEATURES: List[str] = [f"C{i}" for i in range(1, 27)]
RAW_COLUMNS: List[str] = [LABEL_KEY] + NUMERIC_FEATURES + CATEGORICAL_FEATURES
NUM_COLUMNS = len(RAW_COLUMNS)  # 40

# Rows of Criteo_x1 (BARS), the paper's dataset: the scale projections are made for.
CRITEO_X1_ROWS = 45_840_617

# Token that stands for a missing categorical value before the vocabulary.
MISSING_CATEGORY = "__missing__"
# Value a missing integer feature takes before the numeric transform.
MISSING_NUMERIC = 0


def transformed_name(key: str) -> str:
    """Name of a feature after Transform (TFX template convention)."""
    return f"{key}_xf"
