"""The pipeline's stages timed on the local runner, for the benchmarks of the data path."""
import time
from typing import Any, Callable, Dict

from pipeline import inputs, local_runner, pipeline as pipeline_lib, results
from settings import configs


def stage_seconds(config: configs.PipelineConfig,
                  create: Callable[..., Any] = pipeline_lib.create_pipeline) -> Dict[str, float]:
    """Ingests `config`'s raw logs, then runs the DAG `create(config)` builds on the local runner:
    seconds per stage, ingestion first, each component's from ML Metadata (its start-up included)."""
    start = time.perf_counter()
    inputs.ingest(config)
    seconds = {"ingestion": time.perf_counter() - start}
    local_runner.run(config, create=create)
    seconds.update({name: s for name, (s, _) in results.component_seconds(config.metadata_path).items()})
    return seconds
