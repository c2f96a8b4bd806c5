"""Reads a finished run's outcome from ML Metadata: evaluation metrics, the pushed model, and how long
each component took."""
from typing import Dict, Optional, Tuple

import ml_metadata as mlmd
import tensorflow_model_analysis as tfma
from tfx.orchestration import metadata as tfx_metadata

from settings.configs import PipelineConfig


def _newest_artifact_of_type(store: mlmd.MetadataStore, type_name: str, pipeline_root: str):
    candidates = [a for a in store.get_artifacts_by_type(type_name) if a.uri.startswith(pipeline_root)]
    return max(candidates, key=lambda a: a.id) if candidates else None


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
