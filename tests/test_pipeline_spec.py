"""The DAG's wiring, the Evaluator's blessing rule, the config round trip, the Kubeflow V2 compile."""
import dataclasses
import json
import os
import subprocess
import sys

import pytest
import tensorflow_model_analysis as tfma


from pipeline import pipeline as pipeline_lib, vertex
from settings import configs, flags
from tests.helpers import ROOT, project_env


def test_dag_has_every_component_in_order():
    config = configs.PipelineConfig(output_root="/tmp/unused")
    ids = [c.id for c in pipeline_lib.create_pipeline(config).components]  # topologically sorted
    assert sorted(ids) == sorted(["RawLogsExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator",
                                  "Transform", "Trainer", "latest_blessed_model_resolver", "Evaluator", "Pusher"])
    for before, after in [("RawLogsExampleGen", "StatisticsGen"), ("StatisticsGen", "ExampleValidator"),
                          ("Transform", "Trainer"), ("Trainer", "Evaluator"), ("Evaluator", "Pusher")]:
        assert ids.index(before) < ids.index(after)


def test_the_customised_components_run_their_own_executors():
    config = configs.PipelineConfig(output_root="/tmp/unused")
    executors = {c.id: c.executor_spec.executor_class for c in pipeline_lib.create_pipeline(config).components
                 if hasattr(c.executor_spec, "executor_class")}
    assert {name: f"{cls.__module__}.{cls.__name__}" for name, cls in executors.items()
            if name not in ("ImportSchemaGen", "ExampleValidator", "Trainer", "latest_blessed_model_resolver")} == {
        "RawLogsExampleGen": "components.raw_logs_example_gen.Executor", "StatisticsGen": "components.statistics_gen.Executor",
        "Transform": "components.transform.Executor", "Evaluator": "components.evaluator.Executor",
        "Pusher": "components.pusher.Executor"}


def test_the_statistics_sample_rate_reaches_statistics_gen_only_below_one():
    def stats_options(rate):
        config = configs.PipelineConfig(output_root="/tmp/unused", statistics_sample_rate=rate)
        component = next(c for c in pipeline_lib.create_pipeline(config).components if c.id == "StatisticsGen")
        return component.exec_properties.get("stats_options_json")

    assert stats_options(1.0) is None
    assert json.loads(stats_options(0.1))["_sample_rate"] == 0.1
    with pytest.raises(configs.SettingsError, match="--statistics-sample-rate"):
        stats_options(0.0)


def test_blessing_needs_auc_floor_and_no_regression():
    eval_config = pipeline_lib.eval_config(min_auc=0.6)
    metrics = {m.class_name: m for m in eval_config.metrics_specs[0].metrics}
    assert {"BatchAUC", "BatchLogLoss", "BatchCalibration", "BatchExampleCount"} <= set(metrics)
    threshold = metrics["BatchAUC"].threshold
    assert threshold.value_threshold.lower_bound.value == 0.6
    assert threshold.change_threshold.direction == tfma.MetricDirection.HIGHER_IS_BETTER


def test_flags_override_defaults():
    parser = flags.StrictParser()
    flags.add_flags(parser)
    config, _ = flags.parse(parser, ["--rows", "10", "--dnn-units", "8,4", "--beta-pos", "0.1"])
    assert (config.data.num_rows, config.model.dnn_units, config.loss.beta_pos) == (10, (8, 4), 0.1)
    assert config.train.batch_size == 1024


def test_compiles_for_kubeflow_v2(tmp_path):
    out = str(tmp_path / "spec.json")
    proc = subprocess.run([sys.executable, "-m", "pipeline.kubeflow_v2_runner", "--image", "gcr.io/p/img:1",
                           "--mutable-image", "--vertex-project", "p", "--vertex-region", "us-central1",
                           "--output-root", "gs://bucket/rankloss", "--output", out,
                           "--loss", "combined_contrastive", "--tau", "0.2"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=project_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "validated offline: a strict KFP PipelineSpec, and a Vertex AI PipelineJob" in proc.stdout
    with open(out) as f:
        job = json.load(f)
    spec = job["pipelineSpec"]
    executors = spec["deploymentSpec"]["executors"]
    assert "Trainer_executor" in executors and "Pusher_executor" in executors
    assert executors["Trainer_executor"]["container"]["image"] == "gcr.io/p/img:1"
    assert "/pipeline/transforms/schema.pbtxt" in json.dumps(spec)
    assert job["runtimeConfig"]["gcsOutputDirectory"] == "gs://bucket/rankloss/tfx/rankloss-tfx"  # URI kept
    assert not os.path.exists(os.path.join(ROOT, "gs:"))
    assert "components.pusher.Executor" in json.dumps(executors["Pusher_executor"])
    # The Trainer gets the loss as typed: alpha unset, so the loss's own default (the paper's 0.9) applies.
    trainer = spec["root"]["dag"]["tasks"]["Trainer"]["inputs"]["parameters"]
    custom_config = json.loads(trainer["custom_config"]["runtimeValue"]["constantValue"]["stringValue"])
    settings = configs.TrainerSettings.from_custom_config(custom_config)
    assert (settings.loss.name, settings.loss.alpha, settings.loss.tau) == ("combined_contrastive", None, 0.2)
    from trainer import losses  # the Trainer's side of the contract (the pipeline package never imports it)
    assert losses.build_loss(settings.loss).get_config()["alpha"] == 0.9


def test_demo_states_the_training_setting_and_steps_per_epoch():
    from demo import summary as demo

    line = demo.training_line(configs.PipelineConfig(), 41_920)
    assert "the reference model" in line and "41 steps per epoch" in line and "DNN 500-500-500" in line
    config = configs.PipelineConfig()
    config.model.dnn_units = (32, 32)
    assert "reference" not in demo.training_line(config, 1000)


def test_any_runner_gets_invalid_trainer_settings_refused_when_the_dag_is_built():
    config = configs.PipelineConfig(output_root="/tmp/unused")
    config.loss.name = "hinge"
    with pytest.raises(ValueError, match="valid choices: bce, combined_pair"):
        pipeline_lib.create_pipeline(config)


def _compile(config, image, out):
    from tfx import v1 as tfx  # pylint: disable=import-outside-toplevel

    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image), output_filename=out)
    runner.run(pipeline_lib.create_pipeline(config, image=image))
    with open(out) as f:
        return json.load(f)["pipelineSpec"]


def test_vertex_training_job_runs_a_chief_and_workers_on_the_pipeline_image(tmp_path):
    config = configs.PipelineConfig(output_root="gs://bucket/rankloss")
    config.vertex = configs.VertexConfig(training_replicas=3, machine_type="n1-highmem-16", project="my-project",
                                         region="europe-west4", service_account="trainer@my-project.iam",
                                         network="projects/1/global/networks/n", accelerator_type="NVIDIA_TESLA_T4",
                                         accelerator_count=2)
    spec = _compile(config, "gcr.io/p/img:2", str(tmp_path / "spec.json"))
    trainer = spec["deploymentSpec"]["executors"]["Trainer_executor"]["container"]
    assert trainer["image"] == "gcr.io/p/img:2"
    assert "tfx.extensions.google_cloud_ai_platform.trainer.executor.GenericExecutor" in json.dumps(trainer)
    parameters = spec["root"]["dag"]["tasks"]["Trainer"]["inputs"]["parameters"]
    custom_config = json.loads(parameters["custom_config"]["runtimeValue"]["constantValue"]["stringValue"])
    job = custom_config["ai_platform_training_args"]
    assert job["project"] == "my-project" and custom_config["ai_platform_vertex_region"] == "europe-west4"
    assert custom_config["ai_platform_enable_vertex"] is True
    pools = job["job_spec"]["worker_pool_specs"]
    assert [p["replica_count"] for p in pools] == [1, 2]  # the chief, then the workers
    assert all(p["container_spec"]["image_uri"] == "gcr.io/p/img:2" and p["machine_spec"] == {
        "machine_type": "n1-highmem-16", "accelerator_type": "NVIDIA_TESLA_T4", "accelerator_count": 2} for p in pools)
    assert (job["job_spec"]["service_account"], job["job_spec"]["network"]) == ("trainer@my-project.iam",
                                                                                "projects/1/global/networks/n")
    # The replicas run the same run_fn with the same settings as a single-machine Trainer.
    assert custom_config["loss"] == dataclasses.asdict(config.loss)
    # The offline check parses the pools as Vertex AI's CustomJobSpec: a misspelled field is named.
    vertex.parse_spec(str(tmp_path / "spec.json"))
    pools[1]["replica_countt"] = pools[1].pop("replica_count")
    parameters["custom_config"]["runtimeValue"]["constantValue"]["stringValue"] = json.dumps(custom_config)
    job = json.load(open(tmp_path / "spec.json"))
    job["pipelineSpec"] = spec
    (tmp_path / "misspelled.json").write_text(json.dumps(job))
    with pytest.raises(vertex.VertexError, match='task Trainer: .*has no field named "replica_countt"'):
        vertex.parse_spec(str(tmp_path / "misspelled.json"))
    assert parameters["run_fn"]["runtimeValue"]["constantValue"]["stringValue"] == pipeline_lib.RUN_FN


def test_single_replica_vertex_job_has_only_the_chief_pool_and_a_missing_project_is_refused(tmp_path, capsys):
    job = pipeline_lib.vertex_training_job(configs.VertexConfig(training_replicas=1, project="p", region="r"), "img")
    assert [p["replica_count"] for p in job["ai_platform_training_args"]["job_spec"]["worker_pool_specs"]] == [1]
    assert "service_account" not in job["ai_platform_training_args"]["job_spec"]
    parser = flags.StrictParser()
    flags.add_flags(parser, sections=(flags.PIPELINE, configs.VERTEX_SECTION))
    with pytest.raises(SystemExit):
        flags.parse(parser, ["--training-replicas", "2"])
    assert "a Vertex AI training job needs --vertex-project and --vertex-region" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        flags.parse(parser, ["--training-accelerator", "NVIDIA_TESLA_T4"])
    assert "--training-accelerator: GPUs go to the training job's replicas" in capsys.readouterr().err
    config = configs.PipelineConfig(output_root="gs://b/r")
    config.vertex = configs.VertexConfig(training_replicas=2, project="p", region="r")
    with pytest.raises(configs.SettingsError, match="needs the pipeline image"):
        pipeline_lib.create_pipeline(config)


def test_parameter_servers_get_their_own_pool_in_the_compiled_job(tmp_path, capsys):
    config = configs.PipelineConfig(output_root="gs://bucket/rankloss")
    config.train = configs.TrainConfig(steps_per_epoch=1000, eval_steps=50)
    config.vertex = configs.VertexConfig(training_replicas=3, parameter_servers=2, project="p", region="r",
                                         parameter_server_machine_type="n1-highmem-16")
    spec = _compile(config, "gcr.io/p/img@sha256:" + "0" * 64, str(tmp_path / "spec.json"))
    parameters = spec["root"]["dag"]["tasks"]["Trainer"]["inputs"]["parameters"]
    custom_config = json.loads(parameters["custom_config"]["runtimeValue"]["constantValue"]["stringValue"])
    pools = custom_config["ai_platform_training_args"]["job_spec"]["worker_pool_specs"]
    # Vertex AI names pool 0 chief, pool 1 worker and pool 2 ps in each replica's TF_CONFIG.
    assert [(p["replica_count"], p["machine_spec"]["machine_type"]) for p in pools] == [
        (1, "n1-standard-8"), (2, "n1-standard-8"), (2, "n1-highmem-16")]
    assert custom_config["train"]["steps_per_epoch"] == 1000
    vertex.parse_spec(str(tmp_path / "spec.json"))

    parser = flags.StrictParser()
    flags.add_flags(parser, sections=(flags.PIPELINE, configs.VERTEX_SECTION) + configs.TRAINING_SECTIONS)
    for argv, message in [
            (["--training-replicas", "1", "--parameter-servers", "2", "--steps-per-epoch", "9", "--eval-steps", "9"],
             "--parameter-servers: the chief coordinates and workers train"),
            (["--training-replicas", "3", "--parameter-servers", "2"], "needs --steps-per-epoch and --eval-steps")]:
        with pytest.raises(SystemExit):
            flags.parse(parser, argv + ["--vertex-project", "p", "--vertex-region", "r"])
        assert message in capsys.readouterr().err
