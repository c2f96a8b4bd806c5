"""Deterministic 7:2:1 train/eval/test split by line number (as Criteo_x1).

Both the Beam ingestion job and the generator's Bayes-optimal report use this, so a
row lands in the same split everywhere, on any runner, whatever the sharding. Each
split's records live in `Split-<name>/`, TFX's layout.
"""
from typing import Union

import numpy as np

SPLITS = ("train", "eval", "test")
SPLIT_BUCKETS = (7, 2, 1)  # of 10 hash buckets, per split
_BUCKETS = np.repeat(np.arange(len(SPLITS), dtype=np.int64), SPLIT_BUCKETS)
# SplitMix64: the increment, and the two multipliers of its finaliser.
_GAMMA, _MIX1, _MIX2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
_MASK64 = (1 << 64) - 1


def mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: a bijective, well-spread hash of uint64 values."""
    x = x.astype(np.uint64)
    with np.errstate(over="ignore"):
        x = (x + np.uint64(_GAMMA))
        x = (x ^ (x >> np.uint64(30))) * np.uint64(_MIX1)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(_MIX2)
        x = x ^ (x >> np.uint64(31))
    return x


def split_dir_name(split: str) -> str:
    """Folder name of one split's records (TFX's `Split-<name>` convention)."""
    return f"Split-{split}"


def split_index(line_numbers: Union[int, np.ndarray]) -> np.ndarray:
    """Index into SPLITS (0 train, 1 eval, 2 test) for 1-based line numbers."""
    bucket = mix64(np.asarray(line_numbers)) % np.uint64(10)
    return _BUCKETS[bucket.astype(np.int64)]


def split_of(line_number: int) -> str:
    """Name of the split a single line belongs to: `split_index` in Python integers (a NumPy call
    per line costs about ten times this)."""
    x = (line_number + _GAMMA) & _MASK64
    x = ((x ^ (x >> 30)) * _MIX1) & _MASK64
    x = ((x ^ (x >> 27)) * _MIX2) & _MASK64
    return SPLITS[_BUCKETS[(x ^ (x >> 31)) % 10]]
