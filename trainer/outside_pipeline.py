"""Runs the Trainer's `run_fn` outside the pipeline, on a finished pipeline's Transform output.

For studies and benchmarks that retrain with another loss without re-running ingestion and
Transform: the same `run_fn`, the same export, other `TrainerSettings`. The caller finds the Transform
output (`pipeline.results.latest_transform_output`, through ML Metadata).
"""
import os
from typing import Tuple

from tfx.components.trainer.fn_args_utils import FnArgs

from settings.configs import TrainerSettings
from trainer import task
from transforms.splits import split_dir_name


def split_files(examples_dir: str, split: str) -> str:
    """The file pattern of one split of an examples artifact."""
    return os.path.join(examples_dir, split_dir_name(split), "*")


def train_and_export(transform_output: Tuple[str, str], settings: TrainerSettings, work_dir: str) -> str:
    """Trains on `transform_output` (transformed examples URI, transform graph URI); returns the SavedModel path.

    `work_dir` is laid out as a Trainer's: `model_run/1` (TensorBoard, checkpoints), `serving`,
    and `resume/` while a run is interrupted.
    """
    examples, transform_graph = transform_output
    serving_dir = os.path.join(work_dir, "serving")
    task.run_fn(FnArgs(
        train_files=[split_files(examples, "train")], eval_files=[split_files(examples, "eval")],
        transform_output=transform_graph,
        serving_model_dir=serving_dir, model_run_dir=os.path.join(work_dir, "model_run", "1"),
        custom_config=settings.to_custom_config()))
    return serving_dir
