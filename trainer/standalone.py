"""Runs the Trainer's `run_fn` outside the pipeline, on a finished pipeline's Transform output.

For studies and benchmarks that retrain with another loss without re-running ingestion and
Transform: the same `run_fn`, the same export, another `TrainerSettings`.
"""
import glob
import os
from typing import Tuple

from tfx import v1 as tfx

from trainer import task


def _latest_artifact(pattern: str) -> str:
    found = glob.glob(pattern)
    if not found:
        raise FileNotFoundError(f"no pipeline artifact matches {pattern}: run the pipeline first (scripts/demo.sh)")
    return max(found, key=lambda p: int(os.path.basename(p)))


def latest_transform_output(pipeline_root: str) -> Tuple[str, str]:
    """(transformed examples dir, transform graph dir) of the pipeline's latest Transform run."""
    transform = os.path.join(pipeline_root, "Transform")
    return (_latest_artifact(os.path.join(transform, "transformed_examples", "*")),
            _latest_artifact(os.path.join(transform, "transform_graph", "*")))


def train_and_export(pipeline_root: str, settings: task.TrainerSettings, work_dir: str) -> str:
    """Trains on the latest Transform output under `pipeline_root`; returns the SavedModel path.

    `work_dir` is laid out as a Trainer's: `model_run/1` (TensorBoard, checkpoints), `serving`,
    and `resume/` while a run is interrupted.
    """
    examples, transform_graph = latest_transform_output(pipeline_root)
    serving_dir = os.path.join(work_dir, "serving")
    task.run_fn(tfx.components.FnArgs(
        train_files=[os.path.join(examples, "Split-train", "*")],
        eval_files=[os.path.join(examples, "Split-eval", "*")],
        transform_output=transform_graph,
        serving_model_dir=serving_dir, model_run_dir=os.path.join(work_dir, "model_run", "1"),
        custom_config=settings.to_custom_config()))
    return serving_dir

