"""Reads a finished run's outcome from ML Metadata: the newest output of a component (by its id and output
key, wherever its artifacts live: local, `gs://`, `s3://`), evaluation metrics, the pushed model, and how long
each component took."""
import json
from typing import Dict, Optional, Tuple

import ml_metadata as mlmd
import tensorflow_model_analysis as tfma
from tfx.orchestration import metadata as tfx_metadata

from components.raw_logs_example_gen import ROW_COUNTS_PROPERTY
from settings.configs import PipelineConfig


EXAMPLE_GEN = "RawLogsExampleGen"


def _store(config: PipelineConfig) -> mlmd.MetadataStore:
    return mlmd.MetadataStore(tfx_metadata.sqlite_metadata_connection_config(config.metadata_path))


def _latest_artifact(config: PipelineConfig, component_id: str, output_key: str,
                     store: Optional[mlmd.MetadataStore] = None):
    """The artifact of output `output_key` of the newest execution of component `component_id` in `config`'s
    pipeline that recorded one, as ML Metadata holds it; raises naming both when none did."""
    store = store or _store(config)
    contexts = [c for c in store.get_contexts_by_type("node") if c.name == f"{config.pipeline_name}.{component_id}"]
    executions = store.get_executions_by_context(contexts[0].id) if contexts else []
    for execution in sorted(executions, key=lambda e: e.id, reverse=True):
        events = [e for e in store.get_events_by_execution_ids([execution.id])
                  if e.type in (mlmd.proto.Event.OUTPUT, mlmd.proto.Event.DECLARED_OUTPUT)
                  and e.path.steps and e.path.steps[0].key == output_key]
        artifacts = [a for a in store.get_artifacts_by_id([e.artifact_id for e in events])
                     if a.uri.startswith(config.pipeline_root) and a.state == mlmd.proto.Artifact.LIVE]
        if artifacts:
            return artifacts[0]
    raise FileNotFoundError(f"no {component_id} output {output_key!r} of pipeline {config.pipeline_name!r} in "
                            f"{config.metadata_path}: run the pipeline first (scripts/demo.sh)")


def latest_output(config: PipelineConfig, component_id: str, output_key: str) -> str:
    """The URI of output `output_key` of the newest execution of component `component_id` in `config`'s
    pipeline (local, gs:// or s3://)."""
    return _latest_artifact(config, component_id, output_key).uri


def row_counts(config: PipelineConfig) -> Dict:
    """The row accounting (read, written, rejected per split) the newest ExampleGen run of `config`'s
    pipeline recorded on its Examples artifact."""
    examples = _latest_artifact(config, EXAMPLE_GEN, "examples")
    return json.loads(examples.custom_properties[ROW_COUNTS_PROPERTY].string_value)


def latest_transform_output(config: PipelineConfig) -> Tuple[str, str]:
    """(transformed examples URI, transform graph URI) of the newest Transform run of `config`'s pipeline."""
    return latest_output(config, "Transform", "transformed_examples"), latest_output(config, "Transform",
                                                                                     "transform_graph")


def evaluation_metrics(evaluation_uri: str) -> Dict[str, float]:
    """Overall-slice metrics of a TFMA result, by name."""
    result = tfma.load_eval_result(evaluation_uri)
    overall = dict(result.slicing_metrics)[()][""][""]
    return {name: value["doubleValue"] for name, value in overall.items() if "doubleValue" in value}


def latest_run(config: PipelineConfig) -> Dict[str, Optional[object]]:
    """Metrics, blessing and pushed path of the newest run of `config`'s pipeline."""
    store = _store(config)
    evaluation = _latest_artifact(config, "Evaluator", "evaluation", store)
    blessing = _latest_artifact(config, "Evaluator", "blessing", store)
    pushed = _latest_artifact(config, "Pusher", "pushed_model", store)
    pushed_path = None
    if pushed.custom_properties["pushed"].int_value == 1:
        pushed_path = pushed.custom_properties["pushed_destination"].string_value
    return {"metrics": evaluation_metrics(evaluation.uri),
            "blessed": bool(blessing.custom_properties["blessed"].int_value), "pushed_path": pushed_path}


def component_seconds(metadata_path: str) -> Dict[str, Tuple[float, bool]]:
    """{component class name: (seconds, whether its result came from the cache)} of each component's
    newest execution in an ML Metadata SQLite store."""
    store = mlmd.MetadataStore(tfx_metadata.sqlite_metadata_connection_config(metadata_path))
    types = {t.id: t.name.rsplit(".", 1)[-1] for t in store.get_execution_types()}
    return {types[e.type_id]: ((e.last_update_time_since_epoch - e.create_time_since_epoch) / 1000,
                               e.last_known_state == mlmd.proto.Execution.CACHED)
            for e in sorted(store.get_executions(), key=lambda e: e.id)}
