"""Reads a finished run's outcome from ML Metadata: the newest output of a component (by its id and output
key, wherever its artifacts live: local, `gs://`, `s3://`), evaluation metrics, the pushed model, and how long
each component took."""
from typing import Dict, Optional, Tuple

import ml_metadata as mlmd
import tensorflow_model_analysis as tfma
from tfx.orchestration import metadata as tfx_metadata

from settings.configs import PipelineConfig


def _newest_artifact_of_type(store: mlmd.MetadataStore, type_name: str, pipeline_root: str):
    candidates = [a for a in store.get_artifacts_by_type(type_name) if a.uri.startswith(pipeline_root)]
    return max(candidates, key=lambda a: a.id) if candidates else None


def latest_output(config: PipelineConfig, component_id: str, output_key: str) -> str:
    """The URI of output `output_key` of the newest execution of component `component_id` in `config`'s
    pipeline, as ML Metadata recorded it; raises naming both when no execution recorded one."""
    store = mlmd.MetadataStore(tfx_metadata.sqlite_metadata_connection_config(config.metadata_path))
    contexts = [c for c in store.get_contexts_by_type("node")
                if c.name == f"{config.pipeline_name}.{component_id}"]
    executions = sorted(store.get_executions_by_context(contexts[0].id), key=lambda e: e.id, reverse=True) \
        if contexts else []
    for execution in executions:
        events = [e for e in store.get_events_by_execution_ids([execution.id])
                  if e.type in (mlmd.proto.Event.OUTPUT, mlmd.proto.Event.DECLARED_OUTPUT)
                  and e.path.steps and e.path.steps[0].key == output_key]
        artifacts = store.get_artifacts_by_id([e.artifact_id for e in events])
        uris = [a.uri for a in artifacts if a.uri.startswith(config.pipeline_root) and
                a.state == mlmd.proto.Artifact.LIVE]
        if uris:
            return uris[0]
    raise FileNotFoundError(f"no {component_id} output {output_key!r} of pipeline {config.pipeline_name!r} in "
                            f"{config.metadata_path}: run the pipeline first (scripts/demo.sh)")


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
    store = mlmd.MetadataStore(tfx_metadata.sqlite_metadata_connection_config(config.metadata_path))
    evaluation = _newest_artifact_of_type(store, "ModelEvaluation", config.pipeline_root)
    blessing = _newest_artifact_of_type(store, "ModelBlessing", config.pipeline_root)
    pushed = _newest_artifact_of_type(store, "PushedModel", config.pipeline_root)
    pushed_path = None
    if pushed is not None and pushed.custom_properties["pushed"].int_value == 1:
        pushed_path = pushed.custom_properties["pushed_destination"].string_value
    return {
        "metrics": evaluation_metrics(evaluation.uri) if evaluation else {},
        "blessed": bool(blessing and blessing.custom_properties["blessed"].int_value),
        "pushed_path": pushed_path,
    }


def component_seconds(metadata_path: str) -> Dict[str, Tuple[float, bool]]:
    """{component class name: (seconds, whether its result came from the cache)} of each component's
    newest execution in an ML Metadata SQLite store."""
    store = mlmd.MetadataStore(tfx_metadata.sqlite_metadata_connection_config(metadata_path))
    types = {t.id: t.name.rsplit(".", 1)[-1] for t in store.get_execution_types()}
    return {types[e.type_id]: ((e.last_update_time_since_epoch - e.create_time_since_epoch) / 1000,
                               e.last_known_state == mlmd.proto.Execution.CACHED)
            for e in sorted(store.get_executions(), key=lambda e: e.id)}
