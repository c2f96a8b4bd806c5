"""The pipeline's stages timed on the local runner, for the benchmarks of the data path."""
from typing import Any, Callable, Dict

from pipeline import local_runner, pipeline as pipeline_lib, results
from settings import configs


def stage_seconds(config: configs.PipelineConfig,
                  create: Callable[..., Any] = pipeline_lib.create_pipeline) -> Dict[str, float]:
    """Runs the DAG `create(config)` builds on the local runner, from `config`'s raw logs: seconds per
    component, from ML Metadata (each one's start-up included); the ExampleGen's is the ingestion's."""
    local_runner.run(config, create=create)
    return {name: s for name, (s, _) in results.component_seconds(config.metadata_path).items()}
