"""Shared pieces of the benchmarks: the reference DCN V2 on synthetic in-memory batches, and timing.

The benchmarks time compiled train steps on in-memory tensors, so they measure the model and the
loss, not the input pipeline. Side by side means round-robin: every variant runs one timed block
per round; a ratio is the median over rounds of the two variants' times in the same round, so
drift of a noisy machine cancels pair by pair.
"""
import os
import statistics
import time
from typing import Callable, Dict, List, Tuple

import numpy as np
import tensorflow as tf

from transforms import features

# 26 tables of 85k rows: embeddings are ~95 % of the reference model's parameters, as in the
# measurements quoted by the issues (the dense part, 3 cross layers + 3×500 DNN, has 1.15M).
DEFAULT_ROWS_PER_FIELD = 85_000


def vocabulary_sizes(rows_per_field: int = DEFAULT_ROWS_PER_FIELD) -> Dict[str, int]:
    return {name: rows_per_field for name in features.CATEGORICAL_FEATURES}


def synthetic_batch(batch_size: int, vocab: Dict[str, int], ctr: float = 0.25,
                    seed: int = 0) -> Tuple[Dict[str, tf.Tensor], tf.Tensor]:
    """Transformed-feature batch: Zipf-like ids, log-scaled numerics, `ctr` positives."""
    rng = np.random.default_rng(seed)
    x = {}
    for name in features.CATEGORICAL_FEATURES:
        ids = np.minimum(rng.zipf(1.2, batch_size) - 1, vocab[name] - 1)
        x[features.transformed_name(name)] = tf.constant(ids, tf.int64)
    for name in features.NUMERIC_FEATURES:
        x[features.transformed_name(name)] = tf.constant(np.log1p(rng.exponential(5.0, batch_size)), tf.float32)
    labels = (rng.random(batch_size) < ctr).astype(np.float32)
    return x, tf.constant(labels[:, None])


def step_function(model: tf.keras.Model, batch) -> Callable[[], None]:
    """One compiled Keras train step (model.make_train_function) on a fixed in-memory batch."""
    iterator = iter(tf.data.Dataset.from_tensors(batch).repeat())
    train_function = model.make_train_function()
    return lambda: train_function(iterator)


def _wait(outputs) -> None:
    """Blocks until a step's outputs are computed."""
    tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, outputs)


def time_side_by_side(steps: Dict[str, Callable[[], None]], steps_per_block: int, rounds: int,
                      warmup: int = 2) -> Dict[str, List[float]]:
    """Seconds per step of each variant in each round, timed round-robin; each timed block follows
    one untimed step of the same variant, so no variant pays for the previous one's cache footprint."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    samples: Dict[str, List[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            _wait(step())  # untimed: brings this variant's weights back into cache
            start = time.perf_counter()
            for _ in range(steps_per_block):
                out = step()
            _wait(out)
            samples[name].append((time.perf_counter() - start) / steps_per_block)
    return samples


def paired_ratios(samples: Dict[str, List[float]], baseline: str) -> Dict[str, float]:
    """Median over rounds of each variant's time over the baseline's time in the same round, so
    drift of a noisy machine cancels pair by pair."""
    return {name: statistics.median(v / b for v, b in zip(values, samples[baseline]))
            for name, values in samples.items()}


def medians(samples: Dict[str, List[float]]) -> Dict[str, float]:
    return {name: statistics.median(values) for name, values in samples.items()}


def machine_line() -> str:
    cpus = os.cpu_count()
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
        model = next(line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name"))
        wanted = ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
        present = [w for w in wanted if f" {w}" in info]
        flags = f"; {model}; {' '.join(present) or 'no AVX-512'}"
    except (OSError, StopIteration):
        pass
    return f"machine: {cpus} CPUs{flags}; TensorFlow {tf.__version__}"
