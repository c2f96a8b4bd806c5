"""`create_pipeline`: the TFX DAG from raw click logs to a pushed SavedModel.

RawLogsExampleGen -> StatisticsGen -> ImportSchemaGen (curated schema) -> ExampleValidator
-> Transform -> Trainer -> Evaluator (vs the latest blessed model) -> Pusher.
Splits: `train` fits, `eval` drives the validation schedule (LR plateau, early stopping,
best checkpoint), `test` is held out for the Evaluator, as the paper's 7:2:1 Criteo_x1.
"""
import dataclasses
import json
from typing import Any, Dict, List, Optional

import tensorflow_data_validation as tfdv
import tensorflow_model_analysis as tfma
from tfx.components import ExampleValidator, Trainer
from tfx.components.schema_gen.import_schema_gen.component import ImportSchemaGen
from tfx.dsl.components.common.resolver import Resolver
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy
from tfx.orchestration.pipeline import Pipeline
from tfx.proto import pusher_pb2, trainer_pb2, transform_pb2
from tfx.types import Channel, standard_artifacts

from components import batch_metrics, evaluator as evaluator_lib, pusher as pusher_lib, raw_logs_example_gen
from components import statistics_gen as statistics_gen_lib, transform as transform_lib
from settings.configs import PipelineConfig, SettingsError, TrainerSettings, VertexConfig, validate
from transforms import features
from transforms.schema import SCHEMA_PATH
from transforms.splits import SPLITS

# The components name their code by module path (as the TFX templates do): the pipeline never imports it.
PREPROCESSING_FN = "transforms.preprocessing.preprocessing_fn"
RUN_FN = "trainer.task.run_fn"
EVALUATION_SPLIT = "test"


def eval_config(min_auc: float, beta_pos: float = 1.0) -> tfma.EvalConfig:
    """AUC (blessing: above `min_auc` and not below the baseline), logloss, the paper's
    β_pos-weighted BCE (Eq. 15), calibration, count: `components.batch_metrics`, a batch per call."""
    auc_threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": min_auc}),
        change_threshold=tfma.GenericChangeThreshold(direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                                                     absolute={"value": -1e-10}))
    return tfma.EvalConfig(
        # A generic SavedModel: TFMA would otherwise revive it as a Keras model (twice: once to detect its
        # type), which the `serving_default` signature it calls does not need.
        model_specs=[tfma.ModelSpec(signature_name="serving_default", label_key=features.LABEL_KEY,
                                    model_type=tfma.TF_GENERIC, preprocessing_function_names=[])],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[tfma.MetricsSpec(metrics=[
            batch_metric("BatchExampleCount"),
            batch_metric("BatchAUC", threshold=auc_threshold),
            batch_metric("BatchLogLoss"),
            batch_metric("BatchWeightedBCE", config=json.dumps({"beta_pos": beta_pos})),
            batch_metric("BatchCalibration"),
            batch_metric("BatchMeanLabel"),
            batch_metric("BatchMeanPrediction"),
            batch_metric("BatchCalibrationPlot"),
        ])])


def batch_metric(class_name: str, **fields) -> tfma.MetricConfig:
    """The config of one of `components.batch_metrics`' metrics."""
    return tfma.MetricConfig(class_name=class_name, module=batch_metrics.__name__, **fields)


def _vertex_extension() -> Any:
    """TFX's Vertex AI extension, imported only for a pipeline that trains on Vertex AI: it loads
    google-cloud-aiplatform, seconds of import in every process that imports it (local runs, Trainer
    replicas)."""
    from tfx.v1.extensions import google_cloud_ai_platform  # pylint: disable=import-outside-toplevel
    return google_cloud_ai_platform


def vertex_training_job(vertex: VertexConfig, image: str) -> Dict[str, Any]:
    """The Trainer `custom_config` entries that make TFX's Vertex AI Trainer run a CustomJob.

    Pool 0 is one chief, pool 1 the other `training_replicas - 1` workers, all on `image` (with GPUs when
    `accelerator_type` is set), and pool 2 the `parameter_servers` (on `parameter_server_machine_type`) when
    there are any; TFX sets each pool's command to the Trainer executor, and Vertex AI gives each replica a
    `TF_CONFIG` naming pool 0 `chief` and pool 2 `ps`, from which `run_fn` chooses MultiWorkerMirroredStrategy
    or ParameterServerStrategy (trainer/distribution.py). The job runs as `service_account` on `network` when
    they are set.
    """
    machine = {"machine_type": vertex.machine_type}
    if vertex.accelerator_type:
        machine.update(accelerator_type=vertex.accelerator_type, accelerator_count=vertex.accelerator_count)

    def pool(replicas: int, machine_spec: Dict[str, Any]) -> Dict[str, Any]:
        return {"machine_spec": dict(machine_spec), "replica_count": replicas, "container_spec": {"image_uri": image}}

    pools = [pool(1, machine)] + ([pool(vertex.training_replicas - 1, machine)] if vertex.training_replicas > 1 else [])
    if vertex.parameter_servers:
        pools.append(pool(vertex.parameter_servers, {"machine_type": vertex.parameter_server_machine_type}))
    job_spec = {"worker_pool_specs": pools, **{key: getattr(vertex, key) for key in ("service_account", "network")
                                                 if getattr(vertex, key)}}
    extension = _vertex_extension()
    return {extension.ENABLE_VERTEX_KEY: True, extension.VERTEX_REGION_KEY: vertex.region,
            extension.TRAINING_ARGS_KEY: {"project": vertex.project, "job_spec": job_spec}}


def _trainer(config: PipelineConfig, image: Optional[str], **channels) -> Any:
    """TFX's Trainer; with `--training-replicas`, TFX's Vertex AI Trainer running the same `run_fn`."""
    custom_config = TrainerSettings.from_pipeline_config(config).to_custom_config()
    if not config.vertex.training_replicas:
        return Trainer(run_fn=RUN_FN, custom_config=custom_config, **channels)
    if not image:
        raise SettingsError("--training-replicas: a Vertex AI training job needs the pipeline image "
                            "(compile with python -m pipeline.kubeflow_v2_runner --image ...)")
    return _vertex_extension().Trainer(
        run_fn=RUN_FN, custom_config={**custom_config, **vertex_training_job(config.vertex, image)}, **channels)


def _data_components(config: PipelineConfig, schema_path: str) -> List[Any]:
    """RawLogsExampleGen -> StatisticsGen, ImportSchemaGen, ExampleValidator -> Transform."""
    example_gen = raw_logs_example_gen.RawLogsExampleGen(config.logs_path, config.input_format)
    statistics_gen = statistics_gen_lib.StatisticsGen(
        examples=example_gen.outputs["examples"],
        stats_options=(tfdv.StatsOptions(sample_rate=config.statistics_sample_rate)
                       if config.statistics_sample_rate < 1.0 else None))
    schema_gen = ImportSchemaGen(schema_file=schema_path)
    example_validator = ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"])
    transform = transform_lib.Transform(
        examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN,
        custom_config=dataclasses.asdict(config.transform.for_workers(config.vertex.training_replicas)),
        splits_config=transform_pb2.SplitsConfig(analyze=["train"], transform=list(SPLITS)),
        # No statistics of the transformed data (nothing reads them) and no analyzer cache (no
        # run feeds one back): each costs Beam stages per run at any data size.
        disable_statistics=True, disable_analyzer_cache=True)
    return [example_gen, statistics_gen, schema_gen, example_validator, transform]


def create_data_pipeline(config: PipelineConfig, schema_path: str = SCHEMA_PATH,
                         metadata_connection_config: Optional[Any] = None) -> Pipeline:
    """The DAG up to Transform: the shared input of studies that train many models on the same data."""
    validate(config)
    return Pipeline(
        pipeline_name=config.pipeline_name, pipeline_root=config.pipeline_root,
        components=_data_components(config, schema_path), enable_cache=True,
        metadata_connection_config=metadata_connection_config, beam_pipeline_args=config.beam_pipeline_args)


def create_pipeline(config: PipelineConfig, schema_path: str = SCHEMA_PATH,
                    metadata_connection_config: Optional[Any] = None, image: Optional[str] = None) -> Pipeline:
    """The whole DAG for `config`.

    `schema_path` is where the curated schema is when the components run (inside the
    image on Kubeflow); `metadata_connection_config` is the local runner's ML Metadata store
    (SQLite under the output root) and None on Kubeflow, which brings its own; `image` is the pipeline
    image, which a Vertex AI training job (`config.vertex.training_replicas`) runs. Invalid settings
    raise `settings.configs.SettingsError` here, before any component runs, whichever runner compiles it.
    """
    validate(config)
    example_gen, statistics_gen, schema_gen, example_validator, transform = _data_components(config, schema_path)
    trainer = _trainer(
        config, image,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        train_args=trainer_pb2.TrainArgs(splits=["train"]),
        eval_args=trainer_pb2.EvalArgs(splits=["eval"]))
    model_resolver = Resolver(
        strategy_class=LatestBlessedModelStrategy,
        model=Channel(type=standard_artifacts.Model),
        model_blessing=Channel(type=standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver")
    evaluator = evaluator_lib.Evaluator(
        examples=example_gen.outputs["examples"], model=trainer.outputs["model"],
        baseline_model=model_resolver.outputs["model"], schema=schema_gen.outputs["schema"],
        eval_config=eval_config(config.min_eval_auc, config.loss.beta_pos),
        example_splits=[EVALUATION_SPLIT])
    pusher = pusher_lib.Pusher(
        model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"],
        push_destination=pusher_pb2.PushDestination(
            filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=config.serving_root)))
    return Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=[example_gen, statistics_gen, schema_gen, example_validator, transform, trainer,
                    model_resolver, evaluator, pusher],
        enable_cache=True,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=config.beam_pipeline_args)
