"""Trainer speed: the full path vs the bare step, faster modes vs float32, ours vs plain PyTorch.

    scripts/demo.sh                                  # once: the Transform output (a) and (quality) read
    python -m benchmarks.trainer_speed [--sections a,b,quality,c] [--output-root work]

(a) examples/s of the full Trainer path (the Transform output read from disk by trainer/data.py,
    `model.fit`) over the bare compiled train step on in-memory tensors of the same model; the
    input pipeline alone too. Streamed, and held in memory after one parse (the Trainer's choice for
    a split within --cache-limit-mb), with that parse's seconds. Target ≥ 0.9.
(b) bare train step of the reference DCN V2 (85k rows × 26 tables, batch 4,096) in each mode
    relative to float32 + Adam, round-robin in one process.
(quality) each mode trained by `run_fn` on the demo data with several seeds: validation AUC of the
    exported best model (mean ± sd), so a faster mode shows it trains as well as float32.
(c) the same model in plain PyTorch 2.13 CPU (benchmarks/torch_dcnv2.py, installed by this script
    into its own virtualenv, Python 3.11), measured between two runs of ours.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from benchmarks import common, results as results_lib
from pipeline import results
from settings import configs, flags
from transforms import splits
from serving import contract
from trainer import data, model as model_lib, optimizers, outside_pipeline
from trainer.training_model import TrainingModel

# name -> (precision, optimizer, jit_compile, embedding regularization); row-wise Adam needs the
# L2 on the batch's rows, or the table-wide L2 gradient makes every embedding update dense.
MODES = {
    "fp32 adam": ("float32", "adam", False, "table"),
    "fp32 adam xla": ("float32", "adam", True, "table"),
    "bf16 adam": ("mixed_bfloat16", "adam", False, "table"),
    "fp32 lazy_adam": ("float32", "lazy_adam", False, "batch"),
    "bf16 lazy_adam": ("mixed_bfloat16", "lazy_adam", False, "batch"),
}
TORCH_VENV = os.path.join(tempfile.gettempdir(), "rankloss-torch-venv")


def _compiled(vocab: Dict[str, int], precision: str, optimizer: str, jit: bool, regularization: str) -> TrainingModel:
    tf.keras.mixed_precision.set_global_policy(precision)
    try:
        # Under XLA the step cannot check ids (the Trainer's input pipeline does); these batches are in range.
        model = TrainingModel(model_lib.DCNV2(vocab, configs.ModelConfig(embedding_regularization=regularization),
                                              check_ids=not jit))
        model.compile(optimizer=optimizers.make_optimizer(optimizer, 1e-3, 10.0),
                      loss=tf.keras.losses.BinaryCrossentropy(from_logits=True), jit_compile=jit)
        return model
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")


def bare_step_modes(batch_size: int, rounds: int, steps: int, modes: List[str],
                    run: Optional[results_lib.Run] = None) -> Dict[str, float]:
    """(b): examples/s per mode on the reference model; prints ratios to float32 + Adam."""
    vocab = common.vocabulary_sizes()
    batch = common.synthetic_batch(batch_size, vocab)
    step_functions = {}
    for name in modes:
        tf.keras.utils.set_random_seed(0)
        step_functions[name] = common.step_function(_compiled(vocab, *MODES[name]), batch)
    samples = common.time_side_by_side(step_functions, steps, rounds)
    ratios, seconds = common.paired_ratios(samples, modes[0]), common.medians(samples)
    print(f"\n(b) bare train step, reference DCN V2, batch {batch_size}, {rounds} rounds × {steps} steps")
    print(f"  {'mode':16} {'ms/step':>8} {'examples/s':>11} {'× ' + modes[0]:>14}")
    for name in modes:
        print(f"  {name:16} {seconds[name] * 1e3:8.1f} {batch_size / seconds[name]:11,.0f} {1 / ratios[name]:14.3f}")
    if run is not None:
        run.table(f"(b) bare train step, reference DCN V2, batch {batch_size}, {rounds} rounds × {steps} steps",
                  ["mode", "ms/step", "examples/s", f"speed × {modes[0]} (paired median)"],
                  [[name, seconds[name] * 1e3, batch_size / seconds[name], 1 / ratios[name]] for name in modes])
    return {name: batch_size / seconds[name] for name in modes}


class _EpochSeconds(tf.keras.callbacks.Callback):
    """Each epoch's wall seconds, in order."""

    def __init__(self):
        super().__init__()
        self.seconds: List[float] = []
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def full_path_vs_bare(config: configs.PipelineConfig, steps: int, run: results_lib.Run) -> None:
    """(a): model.fit on the Transform output from disk vs the bare step on in-memory tensors."""
    examples, transform_graph = results.latest_transform_output(config)
    output = tft.TFTransformOutput(transform_graph)
    files = [outside_pipeline.split_files(examples, "train")]
    batch_size = config.train.batch_size
    vocab = model_lib.vocabulary_sizes_from_transform(output)
    print(f"\n(a) full Trainer path vs bare step (demo vocabularies, batch {batch_size}, {steps} steps each)")
    table = []
    for cache in (False, True):
        start = time.perf_counter()
        split = data.make_dataset(files, output.transformed_feature_spec(), batch_size, shuffle=True, seed=1,
                                  cache=cache)
        load_seconds = time.perf_counter() - start
        dataset = split.repeat()
        batches = iter(dataset)
        for _ in range(steps):  # past the shuffle buffer's fill, as the fit timing below is
            next(batches)
        start, count = time.perf_counter(), 0
        for _ in range(steps):
            count += int(next(batches)[0]["I1_xf"].shape[0])
        input_only = count / (time.perf_counter() - start)
        # Two identical models, one per path, so neither path runs on state the other left behind.
        tf.keras.utils.set_random_seed(0)
        fit_model = _compiled(vocab, *MODES["fp32 adam"])
        tf.keras.utils.set_random_seed(0)
        bare_model = _compiled(vocab, *MODES["fp32 adam"])
        bare = common.step_function(bare_model, next(iter(dataset)))
        fit_model.fit(dataset, steps_per_epoch=3, epochs=1, verbose=0)    # warm both paths
        for _ in range(3):
            bare()
        fit_times, bare_times = [], []
        for _ in range(3):                                                 # alternate the two paths
            # Each fit call starts a new iterator, which first fills the shuffle buffer (100k records
            # streaming); a training epoch pays that once, so time the second epoch of each call.
            epochs = _EpochSeconds()
            fit_model.fit(dataset, steps_per_epoch=steps, epochs=2, verbose=0, callbacks=[epochs])
            fit_times.append(epochs.seconds[1])
            start = time.perf_counter()
            for _ in range(steps):
                out = bare()
            common._wait(out)  # pylint: disable=protected-access
            bare_times.append(time.perf_counter() - start)
        fit_rate = steps * batch_size / statistics.median(fit_times)
        bare_rate = steps * batch_size / statistics.median(bare_times)
        print(f"  {'in memory' if cache else 'streamed':9}  input pipeline alone {input_only:9,.0f} ex/s | "
              f"model.fit {fit_rate:8,.0f} ex/s | bare step {bare_rate:8,.0f} ex/s | "
              f"fit / bare {fit_rate / bare_rate:.3f}")
        table.append(["in memory" if cache else "streamed", input_only, fit_rate, bare_rate, fit_rate / bare_rate])
        if cache:
            rows = sum(int(labels.shape[0]) for _, labels in split)
            print(f"  in memory: the split ({rows:,} rows) parsed into memory once, before the first step, in "
                  f"{load_seconds:.1f} s ({load_seconds / rows * 1e6:.1f} µs a row); the Trainer holds a split in "
                  f"memory when its tables fit --cache-limit-mb (default {configs.TrainConfig().cache_limit_mb} MB)")
    run.table(f"(a) model.fit from disk vs the bare step on in-memory tensors (batch {batch_size}, {steps} steps)",
              ["input", "input pipeline alone ex/s", "model.fit ex/s", "bare step ex/s", "fit / bare"], table)


def _eval_auc(config: configs.PipelineConfig, export_dir: str) -> float:
    examples = results.latest_output(config, results.EXAMPLE_GEN, "examples")
    files = tf.io.gfile.glob(os.path.join(examples, splits.split_dir_name("eval"), "*"))
    serve = tf.saved_model.load(export_dir).signatures[contract.DEFAULT_SIGNATURE]
    auc = tf.keras.metrics.AUC()
    for records in tf.data.TFRecordDataset(files, compression_type="GZIP").batch(4096):
        parsed = tf.io.parse_example(records, {"label": tf.io.FixedLenFeature([], tf.int64)})
        auc.update_state(parsed["label"], serve(examples=records)["probabilities"])
    return float(auc.result())


def quality(config: configs.PipelineConfig, modes: List[str], seeds: int, epochs: int, run: results_lib.Run) -> None:
    """(quality): validation AUC of run_fn's exported best model per mode, over seeds."""
    print(f"\n(quality) run_fn on the demo data, reference model, ≤ {epochs} epochs with early stopping, "
          f"{seeds} seeds: eval-split AUC of the exported best model")
    work = tempfile.mkdtemp(prefix="trainer-speed-")
    rows = []
    try:
        for name in modes:
            precision, optimizer, jit, regularization = MODES[name]
            aucs = []
            for seed in range(seeds):
                settings = configs.TrainerSettings.from_pipeline_config(config)
                settings.train.precision, settings.train.optimizer, settings.train.jit_compile = precision, optimizer, jit
                settings.model.embedding_regularization = regularization
                settings.train.seed, settings.train.epochs = 100 + seed, epochs
                export = outside_pipeline.train_and_export(results.latest_transform_output(config), settings,
                                                          os.path.join(work, f"{name}-{seed}"))
                aucs.append(_eval_auc(config, export))
            print(f"  {name:16} AUC {np.mean(aucs):.4f} ± {np.std(aucs, ddof=1) if seeds > 1 else 0.0:.4f}  "
                  f"({', '.join(f'{a:.4f}' for a in aucs)})", flush=True)
            rows.append([name, float(np.mean(aucs)), float(np.std(aucs, ddof=1)) if seeds > 1 else 0.0,
                         ", ".join(f"{a:.4f}" for a in aucs)])
        run.table(f"(quality) eval-split AUC of run_fn's exported best model, ≤ {epochs} epochs, {seeds} seeds",
                  ["mode", "mean AUC", "sd", "per seed"], rows)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def set_tensorflow_threads(threads: int) -> None:
    """TensorFlow's intra- and inter-op thread pools, before its runtime starts (PyTorch gets the same)."""
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def torch_command(python: str, batch_size: int, rounds: int, steps: int, threads: int) -> List[str]:
    """benchmarks/torch_dcnv2.py with the same batch, rounds, steps and thread count as ours."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_dcnv2.py")
    return [python, script, "--batch-size", str(batch_size), "--rounds", str(rounds), "--steps", str(steps),
            "--threads", str(threads)]


def torch_examples_per_s(batch_size: int, rounds: int, steps: int, threads: int) -> Dict[str, float]:
    """(c): runs benchmarks/torch_dcnv2.py in a Python 3.11 virtualenv with torch==2.13.0 (CPU)."""
    python = os.path.join(TORCH_VENV, "bin", "python")
    if not os.path.exists(python):
        base = shutil.which("python3.11") or shutil.which("python3")
        subprocess.run([base, "-m", "venv", TORCH_VENV], check=True)
        subprocess.run([python, "-m", "pip", "install", "--quiet", "torch==2.13.0", "numpy"], check=True)
    out = subprocess.run(torch_command(python, batch_size, rounds, steps, threads), check=True, capture_output=True,
                         text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    print(f"  PyTorch threads (intra-op, inter-op): {result['threads']}")
    return result["examples_per_s"]


def main() -> None:
    parser = flags.StrictParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", default="a,b,quality,c")
    parser.add_argument("--output-root", default=configs.PipelineConfig().output_root)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--quality-modes", default="fp32 adam,bf16 adam,fp32 lazy_adam,bf16 lazy_adam",
                        help="modes whose model quality is checked (the faster ones and the reference)")
    parser.add_argument("--path-steps", type=int, default=60, help="(a): steps per timed fit call")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="intra- and inter-op threads of both TensorFlow and PyTorch (default: every core)")
    args = parser.parse_args()
    set_tensorflow_threads(args.threads)
    sections, modes, quality_modes = args.sections.split(","), args.modes.split(","), args.quality_modes.split(",")
    unknown = set(modes + quality_modes) - set(MODES)
    if unknown:
        sys.exit(f"unknown mode(s) {sorted(unknown)}; valid: {', '.join(MODES)}")
    config = configs.PipelineConfig(output_root=os.path.abspath(args.output_root))
    run = results_lib.Run("trainer_speed")
    print(common.machine_line())
    print(f"threads: {args.threads} intra-op and {args.threads} inter-op, TensorFlow and PyTorch alike")
    if "a" in sections:
        full_path_vs_bare(config, args.path_steps, run)
    ours: Dict[str, float] = {}
    if "b" in sections or "c" in sections:
        ours = bare_step_modes(args.batch_size, args.rounds, args.steps, modes, run)
    if "quality" in sections:
        quality(config, quality_modes, args.seeds, args.epochs, run)
    if "c" in sections:
        theirs = torch_examples_per_s(args.batch_size, args.rounds, args.steps, args.threads)
        again = bare_step_modes(args.batch_size, args.rounds, args.steps, modes)
        ours = {m: (ours[m] + again[m]) / 2 for m in modes}
        dense_ours = max(v for m, v in ours.items() if "lazy" not in m)
        dense_theirs = max(theirs["fp32"], theirs["bf16"])
        rows = [["best dense Adam", dense_ours, dense_theirs, dense_ours / dense_theirs]]
        lazy = [v for m, v in ours.items() if "lazy" in m]
        if lazy:
            sparse_theirs = max(theirs["sparse_fp32"], theirs["sparse_bf16"])
            rows.append(["best row-wise Adam (PyTorch: sparse)", max(lazy), sparse_theirs, max(lazy) / sparse_theirs])
        print("\n(c) PyTorch 2.13 CPU, same model and batch: " + "; ".join(
            f"{what}: ours {a:,.0f} ex/s / PyTorch {b:,.0f} ex/s = {r:.2f}" for what, a, b, r in rows))
        run.table("(c) ours (mean of the runs before and after PyTorch's) against PyTorch 2.13, same model and batch",
                  ["optimizer", "ours ex/s", "PyTorch ex/s", "ours / PyTorch"], rows,
                  "PyTorch per mode (ex/s): " + ", ".join(f"{m} {v:,.0f}" for m, v in theirs.items()))
    run.save()

if __name__ == "__main__":
    main()
