"""The data path from raw logs to a trained, evaluated model, per stage, beside a plain pandas script.

    python -m benchmarks.data_path [--rows 600000] [--small-rows 20000] [--statistics-sample-rate 1]
        [--output-root DIR] [-- BEAM ARGS]

The same generated Criteo TSV rows (the embedded generator, seed 7) go through:
- a pandas script of the kind researchers write: read the TSV, keep the categorical tokens of the
  train split seen at least `--min-category-count` times, encode every split to ids (unknown -> 0),
  signed log of the counts, write Parquet. One process, one core;
- our pipeline: the whole DAG on the local runner from the raw TSV (RawLogsExampleGen, the Beam ingestion,
  then StatisticsGen, Transform, the Trainer for one epoch of the reference model, the Evaluator).
Component seconds come from ML Metadata. Each stage runs at `--small-rows` and at `--rows`: the
difference gives the per-row rate (rows / marginal seconds) and the fixed start-up apart, and the
projection to Criteo_x1 (45,840,617 rows) is fixed + rows / per-row rate. Each rate is also printed as a
ratio to the pandas script's rows/s. Each size runs in a fresh process, as a user runs the pipeline. Last,
the Trainer from disk over the bare train step on the same model (benchmarks/trainer_speed.py, section a).
"""
import concurrent.futures
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Tuple

import numpy as np
import pandas as pd

from benchmarks import common, results as results_lib, stages
from pipeline import inputs
from settings import configs, flags
from runtime import process
from transforms import features, splits

STAGES = ("RawLogsExampleGen", "StatisticsGen", "Transform", "Trainer", "Evaluator")
RAW_TO_TRANSFORMED = STAGES[:3]


def pandas_preprocess(tsv_path: str, out_dir: str, min_count: int) -> int:
    """The researcher's script: TSV -> vocabularies (train split, min count) -> ids -> Parquet per split."""
    names = [features.LABEL_KEY] + features.NUMERIC_FEATURES + features.CATEGORICAL_FEATURES
    frame = pd.read_csv(tsv_path, sep="\t", header=None, names=names,
                        dtype={**{k: "float64" for k in features.NUMERIC_FEATURES},
                               **{k: "object" for k in features.CATEGORICAL_FEATURES}})
    split = splits.split_index(np.arange(1, len(frame) + 1))
    train = split == splits.SPLITS.index("train")
    for key in features.NUMERIC_FEATURES:
        values = frame[key].fillna(0.0).to_numpy()
        frame[key] = np.sign(values) * np.log1p(np.abs(values))
    for key in features.CATEGORICAL_FEATURES:
        tokens = frame[key].fillna(features.MISSING_CATEGORY)
        counts = tokens[train].value_counts()
        vocabulary = {token: i + 1 for i, token in enumerate(counts[counts >= min_count].index)}
        frame[key] = tokens.map(vocabulary).fillna(0).astype(np.int32)
    os.makedirs(out_dir, exist_ok=True)
    for i, name in enumerate(splits.SPLITS):
        frame[split == i].to_parquet(os.path.join(out_dir, f"{name}.parquet"))
    return len(frame)


def stage_rows(rows: int, epochs: int) -> Dict[str, int]:
    """Rows each stage processes: all of them, the train split × epochs (Trainer), the test split (Evaluator)."""
    per_split = np.bincount(splits.split_index(np.arange(1, rows + 1)), minlength=len(splits.SPLITS))
    counts = {stage: rows for stage in RAW_TO_TRANSFORMED}
    counts["Trainer"] = int(per_split[splits.SPLITS.index("train")]) * epochs
    counts["Evaluator"] = int(per_split[splits.SPLITS.index("test")])
    return counts


def run_pipeline(rows: int, output_root: str, beam_args: List[str], epochs: int,
                 statistics_sample_rate: float = 1.0) -> Tuple[Dict[str, float], float]:
    """(stage seconds, pandas seconds) for `rows` generated rows."""
    config = configs.PipelineConfig(output_root=output_root, min_eval_auc=0.0,
                                    statistics_sample_rate=statistics_sample_rate)
    if beam_args:
        config.beam_pipeline_args = beam_args
    config.data.num_rows = rows
    config.train.epochs = epochs
    inputs.prepare_data(config)
    start = time.perf_counter()
    pandas_preprocess(config.raw_data_path, os.path.join(output_root, "pandas"), config.transform.min_category_count)
    pandas_seconds = time.perf_counter() - start
    return stages.stage_seconds(config), pandas_seconds


def main() -> None:
    parser = flags.StrictParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=600_000)
    parser.add_argument("--small-rows", type=int, default=20_000, help="the second size, for the fixed start-up")
    parser.add_argument("--epochs", type=int, default=1, help="Trainer epochs (the reference model)")
    parser.add_argument("--output-root", help="keep the runs here (default: a temporary folder, removed)")
    parser.add_argument("--fit-steps", type=int, default=60, help="steps per timed fit in the Trainer comparison")
    parser.add_argument("--statistics-sample-rate", type=float, default=1.0,
                        help="StatisticsGen on this fraction of the rows (the pipeline's --statistics-sample-rate)")
    own, beam_args = flags.split_beam_args(sys.argv[1:])
    args = parser.parse_args(own)
    if not 0 < args.small_rows < args.rows:
        parser.error("need 0 < --small-rows < --rows")
    try:  # before minutes of ingestion
        configs.validate(configs.PipelineConfig(statistics_sample_rate=args.statistics_sample_rate))
    except configs.SettingsError as error:
        parser.error(str(error))
    root = args.output_root or tempfile.mkdtemp(prefix="data_path_")
    try:
        results = {}
        for rows in (args.small_rows, args.rows):
            print(f"[data_path] {rows:,} rows ...", flush=True)
            # Each size in a process of its own, as a user runs the pipeline: run after the smaller size's
            # whole pipeline in the same process, the 2M run's Transform took 104.7 s, against 68.2 s in a
            # fresh process after StatisticsGen (the local runner on the same TFRecords).
            with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as fresh:
                results[rows] = fresh.submit(run_pipeline, rows, os.path.join(root, str(rows)), beam_args, args.epochs,
                                             args.statistics_sample_rate).result()
        report(args.small_rows, args.rows, results, args.epochs)
        if args.statistics_sample_rate < 1.0:
            print(f"(StatisticsGen described a {args.statistics_sample_rate * 100:g} % sample of each split, drawn "
                  "before decoding; its rows are every row it read)")
        # In a process of its own, as the Trainer runs on Vertex AI or Kubeflow: after both pipelines
        # in this one (Beam's threads and caches still alive), the fit ran at 0.59 of the bare step,
        # against 0.86 standalone on the same data.
        subprocess.run([sys.executable, "-m", "benchmarks.trainer_speed", "--sections", "a",
                        "--output-root", os.path.join(root, str(args.rows)), "--path-steps", str(args.fit_steps)],
                       check=True)
    finally:
        if not args.output_root:
            shutil.rmtree(root, ignore_errors=True)


def _row(stage: str, rows: Tuple[int, int], seconds: Tuple[float, float], full_rows: int,
         pandas_rate: float) -> List:
    """One table row; the per-row rate needs the large size to take longer than the small one."""
    (rows_small, rows_large), (t_small, t_large) = rows, seconds
    row = [stage, rows_large, t_small, t_large, rows_large / t_large]
    if t_large <= t_small:
        return row + ["start-up dominates: use larger sizes", "", "", ""]
    marginal = (rows_large - rows_small) / (t_large - t_small)
    fixed = max(t_small - rows_small / marginal, 0.0)
    return row + [marginal, fixed, marginal / pandas_rate, (fixed + full_rows / marginal) / 3600]


COLUMNS = ["stage", "rows", "s small", "s large", "rows/s", "per-row rate", "fixed s", "vs pandas", "Criteo_x1 h"]


def report(small: int, large: int, results: Dict[int, Tuple[Dict[str, float], float]], epochs: int) -> None:
    (small_s, _), (large_s, pandas_s) = results[small], results[large]
    pandas_rate = large / pandas_s
    small_rows, large_rows, full = (stage_rows(n, epochs) for n in (small, large, features.CRITEO_X1_ROWS))
    rows = [_row(stage, (small_rows[stage], large_rows[stage]), (small_s[stage], large_s[stage]), full[stage],
                 pandas_rate) for stage in STAGES]
    end_to_end = tuple(sum(s[stage] for stage in RAW_TO_TRANSFORMED) for s in (small_s, large_s))
    rows.append(_row("raw -> transformed", (small, large), end_to_end, features.CRITEO_X1_ROWS, pandas_rate))
    rows.append(["pandas script (read, vocabularies, encode, write Parquet)", large, "", pandas_s, pandas_rate,
                 "", "", 1.0, ""])
    note = (f"small: {small:,} rows, large: {large:,}; rows/s: rows over the stage's seconds at the large size; "
            "per-row rate: extra rows over extra seconds between the sizes, fixed: the rest; Trainer rows: train "
            f"split x {epochs} epoch(s); Evaluator rows: the test split; Criteo_x1: {features.CRITEO_X1_ROWS:,} rows")
    print(f"\n{common.machine_line()}")
    print("\n" + "".join(f"{c:>14}" for c in COLUMNS))
    for row in rows:
        print("".join(f"{v:>14,.1f}" if isinstance(v, float) else f"{v!s:>14}" for v in row))
    print(f"({note})")
    run = results_lib.Run("data_path")
    run.table("seconds and rows/s per stage, raw logs to an evaluated model", COLUMNS, rows, note)
    run.save()

if __name__ == "__main__":
    process.run_main(main)
