"""The study runner: one shared Transform output, then every run of a study trained in this process.

    python -m experiments.run experiments/studies/rq1_sparsity.json
    python -m experiments.run experiments/studies/rq1_sparsity.json --input /data/criteo/train.txt

The data (the embedded generator's, or `--input`: any Criteo TSV/CSV the pipeline ingests) goes once
through the pipeline's ingestion and its DAG up to Transform (ExampleGen, statistics, schema
validation, Transform), cached by TFX. Each run then calls the Trainer's own `train` (DCN V2, input
pipeline, loss, validation schedule) on that output and reads the test split once, with the best
weights. A finished run is appended to the results table (JSON lines) and never redone: an interrupted
study resumes at its first unfinished run, and a run another study already finished on the same data
is copied from that study's table.
"""
import csv
import hashlib
import json
import os
import sys
import time
from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from experiments import metrics, results, study as study_lib, truth
from pipeline import inputs, local_runner, pipeline as pipeline_lib, results as pipeline_results
from serving import signatures
from settings import configs, flags
from trainer import data, diagnostics, outside_pipeline, task
from transforms import rows

STUDY_PIPELINE = "rankloss-study"


class SharedData:
    """The Transform output every run reads, with what the report needs to know about the data."""

    def __init__(self, config: configs.PipelineConfig, key: str, description: Dict):
        self.config, self.key, self.description = config, key, description
        self.examples_dir, self.transform_graph_dir = pipeline_results.latest_transform_output(config)
        self.transform_output = tft.TFTransformOutput(self.transform_graph_dir)
        self.train_rows = pipeline_results.row_counts(config)["splits"]["train"]["written"]

    def files(self, split: str) -> List[str]:
        return [outside_pipeline.split_files(self.examples_dir, split)]


def data_key(config: configs.PipelineConfig, source: Optional[str]) -> str:
    """What the shared data depends on: the generator's settings or the input file, and Transform's. A Transform
    setting left unset (None: the behaviour from before it existed) is left out, so adding one keeps the keys,
    and the recorded runs, of the data made before."""
    if source:
        stat = os.stat(source)
        what = {"input": os.path.abspath(source), "bytes": stat.st_size, "mtime": stat.st_mtime}
    else:
        what = {"generator": vars(config.data)}
    transform = {name: value for name, value in vars(config.transform).items() if value is not None}
    text = json.dumps({**what, "transform": transform}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def from_pipeline(output_root: str) -> SharedData:
    """The latest Transform output of a pipeline already run under `output_root` (e.g. by the demo)."""
    config = configs.PipelineConfig(output_root=os.path.abspath(output_root))
    _, transform_graph_dir = pipeline_results.latest_transform_output(config)
    description = {"source": f"the pipeline under {config.output_root}"}
    if os.path.exists(config.raw_data_path + ".meta.json"):
        with open(config.raw_data_path + ".meta.json") as f:
            description["bayes"] = json.load(f)["splits"]
    return SharedData(config, hashlib.sha256(transform_graph_dir.encode()).hexdigest()[:12], description)


def prepare(config: configs.PipelineConfig, output_root: str, source: Optional[str], file_format: str,
            beam_args: List[str]) -> SharedData:
    """Generates (with `config.data`) or takes the logs and runs the pipeline up to Transform (ingestion in its
    ExampleGen, then `config.transform`), each step cached under `output_root`."""
    key = data_key(config, source)
    config.output_root = os.path.join(os.path.abspath(output_root), f"data-{key}")
    config.pipeline_name = STUDY_PIPELINE
    if beam_args:
        config.beam_pipeline_args = beam_args
    if source:
        config.input, config.input_format = os.path.abspath(source), file_format
        description = {"source": os.path.abspath(source)}
    else:
        report = inputs.prepare_data(config)
        description = {"source": "generator", "generator": vars(config.data), "bayes": report["splits"]}
    local_runner.run(config, pipeline_lib.create_data_pipeline)
    counts = pipeline_results.row_counts(config)
    description["rows"] = {split: c["written"] for split, c in counts["splits"].items()}
    return SharedData(config, key, {**description, "transform": vars(config.transform)})


def batch_gradients(run_dir: str, batches: Optional[int] = None) -> Dict[str, List[float]]:
    """The gradient diagnostics of a run's every batch, or of its first `batches` (`trainer.diagnostics`), by name."""
    with open(os.path.join(run_dir, diagnostics.BATCH_CSV)) as f:
        rows = list(csv.DictReader(f))[:batches]
    return {key: [float(row[key]) for row in rows] for key in diagnostics.GRADIENT_NORMS}


def predictions(trained: task.TrainedModel, files: List[str], feature_spec: Dict, batch_size: int):
    """(labels, served probabilities) of the examples in `files`: σ(logit) through the model's calibration."""
    labels, probabilities = [], []
    dataset = data.make_dataset(files, feature_spec, batch_size)
    for batch_features, batch_labels in dataset:
        probabilities.append(signatures.click_probability(trained.ctr_model, batch_features).numpy())
        labels.append(batch_labels.numpy().reshape(-1))
    return np.concatenate(labels), np.concatenate(probabilities)


def train_run(run: study_lib.Run, shared: SharedData, work_dir: str,
              scorer: Optional[truth.Scorer] = None) -> Dict:
    """Trains one run with the Trainer's `train`, then reads the test split once; with a `scorer`, also scores
    the test split against the true probabilities after the first epoch and at the end."""
    settings = run.settings
    start = time.time()
    run_dir = os.path.join(work_dir, "model_run")
    if tf.io.gfile.exists(work_dir):  # a half-done run starts over
        tf.io.gfile.rmtree(work_dir)
    first_epoch = [truth.ScoreFirstEpoch(scorer, settings.loss.beta_pos)] if scorer else []
    trained = task.train(settings, shared.files("train"), shared.files("eval"), shared.transform_output,
                         run_dir, os.path.join(work_dir, "resume"), callbacks=first_epoch)
    train_seconds = time.time() - start
    feature_spec = shared.transform_output.transformed_feature_spec()
    labels, probabilities = predictions(trained, shared.files("test"), feature_spec, settings.train.batch_size)
    record = {
        "test": metrics.split_metrics(labels, probabilities, settings.loss.beta_pos),
        "test_scores": metrics.encode_scores(labels, probabilities),
        "validation": {"history": {k: [float(v) for v in values] for k, values in trained.history.items()},
                       "best_epoch": trained.validation.best_epoch},
        "train_seconds": round(train_seconds, 2),
    }
    if scorer:
        record["truth"] = {"final": scorer.metrics(trained.ctr_model, settings.loss.beta_pos),
                           "first_epoch": first_epoch[0].first_epoch}
    if settings.train.gradient_diagnostics:
        batches = settings.train.steps_per_epoch or -(-shared.train_rows // settings.train.batch_size)
        record["gradients_first_epoch"] = batch_gradients(run_dir, batches)
        record["gradients_per_batch"] = batch_gradients(run_dir)  # the whole training, batch by batch
        record["batches_per_epoch"] = batches
    tf.keras.backend.clear_session()
    tf.io.gfile.rmtree(work_dir)
    return record


def _truth_scorer(study: study_lib.Study, shared: SharedData) -> truth.Scorer:
    """The test split redrawn from the generator, checked against what ingestion wrote, and its scorer."""
    test = truth.redraw_test_split(study_lib.data_config(study).data)
    written = shared.description["rows"]["test"]
    if test.labels.size != written:
        raise ValueError(f"the generator's test split has {test.labels.size} rows, the ingested one {written}: "
                         f"the shared data under {shared.config.output_root} is not this generator's")
    shared.description["truth"] = test.describe()
    return truth.Scorer(test, shared.transform_output)


def holds_what_the_study_needs(record: Dict, study: study_lib.Study) -> bool:
    """Whether a finished run's record has every measurement this code takes for `study`: the test scores, the
    whole training's per-batch gradients when diagnostics are on, the truth-scored metrics when the study asks
    for them. A record of an older version of the runner lacks them and is trained again (the table's later
    line wins)."""
    diagnosed = record["settings"]["train"].get("gradient_diagnostics")
    return ("test_scores" in record and (not diagnosed or "gradients_per_batch" in record)
            and (not study.truth or "truth" in record))


def run_study(study: study_lib.Study, output_root: str, results_dir: str = results.RESULTS_DIR,
              source: Optional[str] = None, file_format: str = "tsv", beam_args: Optional[List[str]] = None,
              max_runs: Optional[int] = None, pipeline_output_root: Optional[str] = None) -> str:
    """Runs what is left of `study` (at most `max_runs` trainings); returns the results table's path."""
    runs = study.runs()
    path = results.table_path(study, results_dir, source)
    results.drop_unfinished_tail(path)
    done = results.read(path)
    print(f"[study {study.name}] {len(runs)} runs; results -> {path}", flush=True)
    if study.truth and (source or pipeline_output_root):
        raise ValueError(f"{study.path} scores against the generator's true probabilities (\"truth\": true), which "
                         "only the generator's data has: drop --input / --from-pipeline")
    if pipeline_output_root:
        shared = from_pipeline(pipeline_output_root)
    else:
        shared = prepare(study_lib.data_config(study), output_root, source, file_format, beam_args or [])
    scorer = _truth_scorer(study, shared) if study.truth else None
    elsewhere = results.other_tables(results_dir, path)
    trained_now, seconds = 0, []
    feature_spec = shared.transform_output.transformed_feature_spec()
    train_inputs = [data.train_input_path(shared.train_rows, feature_spec, run.settings.train) for run in runs]
    run_ids = [study_lib.run_id(shared.key, run.settings, train_input) for run, train_input in zip(runs, train_inputs)]
    for run, rid, train_input in zip(runs, run_ids, train_inputs):
        if rid in done and holds_what_the_study_needs(done[rid], study):
            continue
        found = next((r for r in elsewhere.get(rid, []) if holds_what_the_study_needs(r, study)), None)
        if found:
            record = dict(found, study=study.name, variant=run.variant, label=run.label,
                          trained_for=found.get("trained_for", found["study"]))
            source_note = f"copied from study {record['trained_for']}'s table"
        else:
            if max_runs is not None and trained_now >= max_runs:
                print(f"[study {study.name}] stopping after {max_runs} trained runs (--max-runs)", flush=True)
                break
            started = time.time()
            record = {"study": study.name, "variant": run.variant, "label": run.label, "sweep": dict(run.sweep),
                      "seed": run.seed, "settings": run.settings.to_custom_config(), "train_input": train_input,
                      "data": {"key": shared.key, **shared.description},
                      **train_run(run, shared, os.path.join(output_root, "runs", rid), scorer)}
            seconds.append(time.time() - started)
            trained_now += 1
            source_note = f"{seconds[-1]:.0f}s, test AUC {record['test']['auc']:.4f}"
        results.append(path, record)
        done[rid] = record
        left = sum(1 for r in run_ids if r not in done or not holds_what_the_study_needs(done[r], study))
        eta = f", ~{left * np.mean(seconds) / 60:.0f} min left" if seconds else ""
        print(f"[study {study.name}] {len(done)}/{len(runs)} done, {left} left{eta} | {run.label}: {source_note}",
              flush=True)
    return path


def main(argv: Optional[List[str]] = None) -> None:
    parser = flags.StrictParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", help="a study config (experiments/studies/*.json)")
    parser.add_argument("--output-root", default=os.path.join(configs.PROJECT_ROOT, "work", "experiments"),
                        help="where the shared data, pipeline artifacts and run folders go")
    parser.add_argument("--results-dir", default=results.RESULTS_DIR, help="where the results tables (JSON lines) go")
    parser.add_argument("--input", default=None, help="a Criteo log file to study instead of the generator's data")
    parser.add_argument("--format", default="tsv", choices=sorted(rows.DELIMITERS),
                        help="the --input file's format")
    parser.add_argument("--from-pipeline", default=None, metavar="OUTPUT_ROOT",
                        help="study the latest Transform output of a pipeline already run there (e.g. the demo's "
                             "--output-root) instead of preparing the study's own data")
    parser.add_argument("--max-runs", type=int, default=None, help="train at most this many runs, then stop")
    own, beam_args = flags.split_beam_args(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(own)
    if args.input and not os.path.isfile(args.input):
        parser.error(f"--input {args.input}: no such file")
    if args.input and args.from_pipeline:
        parser.error("--input and --from-pipeline both name the data: give one")
    if args.max_runs is not None and args.max_runs < 1:
        parser.error(f"--max-runs must be >= 1, got {args.max_runs}")
    try:
        study = study_lib.load(args.study)
    except (OSError, study_lib.StudyError) as error:
        parser.error(str(error))
    if study.truth and (args.input or args.from_pipeline):
        parser.error(f"{args.study} scores against the generator's true probabilities (\"truth\": true), which only "
                     "the generator's data has: drop --input / --from-pipeline")
    if args.from_pipeline and study.data_flags:
        parser.error(f"--from-pipeline studies that pipeline's Transform output, so {args.study}'s \"data\" flags "
                     f"{study.data_flags} cannot apply: drop them, or let the study prepare its own data")
    run_study(study, args.output_root, args.results_dir, args.input, args.format, beam_args, args.max_runs,
              args.from_pipeline)


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)  # TF 2.16's AtomicFunction.__del__ raises at interpreter teardown
