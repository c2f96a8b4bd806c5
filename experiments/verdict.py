"""Does Combined-Pair help on my logs? A verdict on a Criteo-format file or on a pipeline's Transform output.

    python -m experiments.verdict --input logs.tsv [--format csv] [--folds 5] [--seeds 1 2 3]
    python -m experiments.verdict --from-pipeline work        # the Transform output of a pipeline run there

1. Data: the file goes through the pipeline's ingestion and its DAG up to Transform (as a study's data
   does), or a pipeline's latest Transform output is read as it is. The rows of every split are pooled.
2. Cross-fitting: the rows are shuffled (`--split-seed`) and cut into K folds. For each fold and seed,
   BCE and Combined-Pair (α = `--alpha`) train with the Trainer's own `train` on the other folds, the
   next fold held out for the validation schedule, and score the fold. Every row is scored once per
   model and seed by a model that never saw it, so a few thousand rows still give a test set of them all.
3. The lift: Combined-Pair's minus BCE's AUC over the pooled out-of-fold scores, averaged over seeds,
   with a 95 % interval from a paired bootstrap over rows (both models scored on the same resampled
   rows): the data's sampling variance, which dominates on small data, and the seeds' through the mean.
4. The rule, fixed before any result (the decisive RQ1 study's): **helps** when the interval lies above
   0; **no help of the paper's size** when its upper end is below the paper's lift (+0.0008, Criteo_x1
   at β_pos 0.1, Fig. 4); **inconclusive** otherwise, with the interval's width said.
5. The gradient diagnostic (Eq. 10, Findings 3-4), under the data's own sparsity (β_pos = 1): on the first
   fold, the first epoch's mean ‖∂L/∂z‖ over the negatives' logits for each model, paired by seed.
"""
import dataclasses
import json
import os
import sys
from typing import Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf
from sklearn import metrics as sk_metrics

from experiments import run as runner, stats
from settings import configs, flags
from trainer import outside_pipeline, task
from transforms import rows, splits

PAPER_LIFT = 0.0008  # Combined-Pair over BCE in AUC, Criteo_x1, β_pos 0.1 (Fig. 4)
VARIANTS = ("BCE", "Combined-Pair")


def pooled_records(examples_dir: str) -> List[bytes]:
    """Every serialized transformed example of every split, in split and file order."""
    out: List[bytes] = []
    for split in splits.SPLITS:
        files = sorted(tf.io.gfile.glob(outside_pipeline.split_files(examples_dir, split)))
        out += list(tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator())
    return out


def fold_of_rows(count: int, folds: int, seed: int) -> np.ndarray:
    """Each row's fold: a seeded shuffle cut into `folds` folds of sizes that differ by at most one."""
    fold = np.empty(count, np.int64)
    fold[np.random.default_rng(seed).permutation(count)] = np.arange(count) % folds
    return fold


def _write(path: str, records: Sequence[bytes]) -> str:
    with tf.io.TFRecordWriter(path, "GZIP") as writer:
        for record in records:
            writer.write(record)
    return path


def lift_interval(labels: np.ndarray, bce: Dict[int, np.ndarray], pair: Dict[int, np.ndarray],
                  resamples: int, seed: int = 0) -> Dict[str, float]:
    """Mean over seeds of AUC(Combined-Pair) - AUC(BCE) on all rows, and its 95 % paired-bootstrap interval
    over rows (the percentile interval of `resamples` resamples; a resample with one class is drawn again)."""
    def lift(index: np.ndarray) -> float:
        return float(np.mean([sk_metrics.roc_auc_score(labels[index], pair[s][index]) -
                              sk_metrics.roc_auc_score(labels[index], bce[s][index]) for s in bce]))

    rng, draws = np.random.default_rng(seed), []
    while len(draws) < resamples:
        index = rng.integers(0, labels.size, labels.size)
        if 0 < labels[index].sum() < labels.size:
            draws.append(lift(index))
    low, high = np.percentile(draws, [2.5, 97.5])
    return {"lift": lift(np.arange(labels.size)), "low": float(low), "high": float(high)}


def rule(interval: Dict[str, float]) -> str:
    """The pre-registered verdict (module docstring, step 4; `stats.pre_registered_rule`)."""
    decision = stats.pre_registered_rule(interval["low"], interval["high"], PAPER_LIFT)
    if decision > 0:
        return "helps: the interval lies above 0"
    if decision < 0:
        return f"no help of the paper's size: the interval ends below +{PAPER_LIFT}"
    return f"inconclusive: the interval, {interval['high'] - interval['low']:.4f} wide, holds 0 and +{PAPER_LIFT}"


def cross_fit(records: List[bytes], transform_output, base: configs.TrainerSettings, alpha: float, folds: int,
              seeds: Sequence[int], split_seed: int, work_dir: str) -> Dict:
    """Out-of-fold probabilities per variant and seed, and the first fold's gradient diagnostic."""
    fold = fold_of_rows(len(records), folds, split_seed)
    spec = transform_output.transformed_feature_spec()
    scores = {v: {s: np.zeros(len(records)) for s in seeds} for v in VARIANTS}
    labels, gradients = np.zeros(len(records)), {v: {} for v in VARIANTS}
    losses = {"BCE": configs.LossConfig(name="bce"), "Combined-Pair": configs.LossConfig(name="combined_pair",
                                                                                         alpha=alpha)}
    for k in range(folds):
        held_out = (k + 1) % folds
        fold_dir = os.path.join(work_dir, f"fold-{k}")
        tf.io.gfile.makedirs(fold_dir)
        files = {name: [_write(os.path.join(fold_dir, f"{name}.gz"), [r for r, f in zip(records, fold) if test(f)])]
                 for name, test in (("train", lambda f: f not in (k, held_out)), ("eval", lambda f: f == held_out),
                                    ("test", lambda f: f == k))}
        rows_of_fold = np.flatnonzero(fold == k)
        train_rows = int(np.sum((fold != k) & (fold != held_out)))
        for seed in seeds:
            for variant in VARIANTS:
                settings = dataclasses.replace(base, loss=losses[variant], train=dataclasses.replace(
                    base.train, seed=seed, gradient_diagnostics=k == 0))
                run_dir = os.path.join(fold_dir, f"{variant}-{seed}")
                trained = task.train(settings, files["train"], files["eval"], transform_output,
                                     os.path.join(run_dir, "model_run"), os.path.join(run_dir, "resume"))
                fold_labels, probabilities = runner.predictions(trained, files["test"], spec, base.train.batch_size)
                labels[rows_of_fold], scores[variant][seed][rows_of_fold] = fold_labels, probabilities
                if k == 0:
                    batches = settings.train.steps_per_epoch or -(-train_rows // settings.train.batch_size)
                    norms = runner.batch_gradients(os.path.join(run_dir, "model_run"), batches)
                    gradients[variant][seed] = float(np.mean(norms["grad_norm_negative_logits"]))
                tf.keras.backend.clear_session()
                print(f"[verdict] fold {k + 1}/{folds}, seed {seed}, {variant}: trained on {train_rows} rows, "
                      f"scored {rows_of_fold.size}", flush=True)
    return {"labels": labels, "scores": scores, "gradients": gradients}


def verdict(records: List[bytes], transform_output, base: configs.TrainerSettings, alpha: float, folds: int,
            seeds: Sequence[int], split_seed: int, resamples: int, work_dir: str) -> Dict:
    """The whole answer, JSON-ready (module docstring)."""
    fitted = cross_fit(records, transform_output, base, alpha, folds, seeds, split_seed, work_dir)
    labels, scores = fitted["labels"], fitted["scores"]
    if not 0 < labels.sum() < labels.size:
        raise ValueError(f"the {labels.size} rows hold one class only: AUC is undefined")
    interval = lift_interval(labels, scores["BCE"], scores["Combined-Pair"], resamples)
    auc = {v: {s: float(sk_metrics.roc_auc_score(labels, p)) for s, p in scores[v].items()} for v in VARIANTS}
    gradient = stats.paired_difference(fitted["gradients"]["Combined-Pair"], fitted["gradients"]["BCE"])
    return {"rows": int(labels.size), "ctr": float(labels.mean()), "folds": folds, "seeds": list(seeds),
            "alpha": alpha, "auc": auc, "lift": interval, "verdict": rule(interval),
            "gradient_negatives": {**fitted["gradients"], "difference": dataclasses.asdict(gradient)}}


def describe(result: Dict) -> str:
    lift, gradient = result["lift"], result["gradient_negatives"]
    mean_auc = {v: np.mean(list(result["auc"][v].values())) for v in VARIANTS}
    difference = stats.PairedDifference(**gradient["difference"])
    return "\n".join([
        f"{result['rows']} rows, CTR {result['ctr']:.4f}; {result['folds']}-fold cross-fitting, seeds {result['seeds']}"
        f", Combined-Pair α = {result['alpha']}",
        f"out-of-fold AUC (mean over seeds): BCE {mean_auc['BCE']:.4f}, Combined-Pair {mean_auc['Combined-Pair']:.4f}",
        f"lift {lift['lift']:+.4f}, 95 % paired bootstrap over rows [{lift['low']:+.4f}, {lift['high']:+.4f}]",
        f"verdict: {result['verdict']}",
        f"gradient on the negatives' logits, first epoch, β_pos = 1 (Eq. 10): BCE "
        f"{np.mean(list(gradient['BCE'].values())):.6f}, Combined-Pair "
        f"{np.mean(list(gradient['Combined-Pair'].values())):.6f}; Combined-Pair minus BCE "
        f"{difference.describe(6)}"])


def main(argv: Optional[List[str]] = None) -> None:
    parser = flags.StrictParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", help="a Criteo log file (TSV, or --format csv)")
    parser.add_argument("--format", default="tsv", choices=sorted(rows.DELIMITERS), help="the --input file's format")
    parser.add_argument("--from-pipeline", metavar="OUTPUT_ROOT", help="the latest Transform output of a pipeline "
                                                                       "run under this output root")
    parser.add_argument("--folds", type=int, default=5, help="cross-fitting folds (at least 3)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="training seeds")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the rows' assignment to folds")
    parser.add_argument("--alpha", type=float, default=0.9, help="Combined-Pair's BCE weight (the authors' α at "
                                                                 "β_pos 1.0: 0.9)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples of the rows")
    parser.add_argument("--output-root", default=os.path.join(configs.PROJECT_ROOT, "work", "verdict"),
                        help="where the ingested data and the fold models go")
    parser.add_argument("--json", help="also write the result here as JSON")
    flags.add_flags(parser, sections=("model", "train"))
    own, beam_args = flags.split_beam_args(sys.argv[1:] if argv is None else argv)
    config, args = flags.parse(parser, own)
    if bool(args.input) == bool(args.from_pipeline):
        parser.error("give the data once: --input FILE or --from-pipeline OUTPUT_ROOT")
    if args.input and not os.path.isfile(args.input):
        parser.error(f"--input {args.input}: no such file")
    if args.folds < 3:
        parser.error(f"--folds must be at least 3 (a fold to score, one for the validation schedule, the rest to "
                     f"train), got {args.folds}")
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f"--seeds must be distinct, got {args.seeds}")
    if args.bootstrap < 100:
        parser.error(f"--bootstrap must be at least 100, got {args.bootstrap}")
    try:
        configs.check_loss_parameter("alpha", args.alpha)
    except ValueError as error:
        parser.error(f"--alpha: {error}")
    if args.from_pipeline:
        shared = runner.from_pipeline(args.from_pipeline)
    else:
        shared = runner.prepare(configs.PipelineConfig(), args.output_root, args.input, args.format, beam_args)
    records = pooled_records(shared.examples_dir)
    print(f"[verdict] {len(records)} rows from {shared.description['source']}", flush=True)
    result = verdict(records, shared.transform_output, configs.TrainerSettings.from_pipeline_config(config),
                     args.alpha, args.folds, args.seeds, args.split_seed, args.bootstrap,
                     os.path.join(os.path.abspath(args.output_root), "folds", shared.key))
    print(describe(result), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    from runtime import process  # pylint: disable=import-outside-toplevel

    process.run_main(main)
