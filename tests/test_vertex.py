"""Vertex AI / Kubeflow: the compiled pipeline checked offline and against the Dockerfile; ExampleGen and
StatisticsGen run exactly as their compiled containers say; a submission without credentials refused."""
import json
import os
import re
import subprocess
import sys

import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tfx import v1 as tfx

from ingestion import convert
from pipeline import kubeflow_v2_runner, pipeline as pipeline_lib, vertex
from settings import configs
from transforms import features
from tests.helpers import ALLOWED, ROOT, project_env

pytestmark = pytest.mark.e2e  # runs the pipeline, a server or a trainer end to end

IMAGE = "gcr.io/p/img:1"
DATAFLOW = ["--runner=DataflowRunner", "--project=p", "--region=r", "--temp_location=gs://b/tmp"]


def _compile(config, path, **create_args):
    """The pipeline of `config` compiled for Kubeflow V2 / Vertex AI on IMAGE into `path`."""
    tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=IMAGE),
        output_filename=path).run(pipeline_lib.create_pipeline(config, **create_args))
    return path


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """The pipeline compiled as `kubeflow_v2_runner` does, with Dataflow Beam arguments."""
    config = configs.PipelineConfig(output_root="gs://bucket/rankloss")
    config.beam_pipeline_args = kubeflow_v2_runner.container_beam_args(DATAFLOW, IMAGE)
    return _compile(config, str(tmp_path_factory.mktemp("vertex") / "job.json"),
                    schema_path=kubeflow_v2_runner.IMAGE_SCHEMA_PATH)


def _dockerfile():
    return open(os.path.join(ROOT, "Dockerfile")).read()


def test_every_executor_runs_the_dockerfiles_image_with_its_code(compiled):
    dockerfile, job = _dockerfile(), json.load(open(compiled))
    executors = [e["container"] for e in job["pipelineSpec"]["deploymentSpec"]["executors"].values() if "container" in e]
    assert executors and all(c["image"] == IMAGE for c in executors)
    for container in executors:  # the Beam steps run on Dataflow with this same image as SDK container
        assert f"--sdk_container_image={IMAGE}" in container["args"] and "--runner=DataflowRunner" in container["args"]
    workdir = re.search(r"^WORKDIR (\S+)$", dockerfile, re.M).group(1)
    assert workdir == kubeflow_v2_runner.IMAGE_PROJECT_ROOT and f"PYTHONPATH={workdir}" in dockerfile
    assert re.search(r"ENV TF_USE_LEGACY_KERAS=1\b", dockerfile)
    copied = set(re.findall(r"^COPY (\w+)/ \1/$", dockerfile, re.M))
    named = set(re.findall(r'"((?:components|pipeline|trainer|transforms)\.[\w.]+)', json.dumps(job)))
    assert {"trainer.task.run_fn", "transforms.preprocessing.preprocessing_fn", "components.pusher.Executor",
            "components.statistics_gen.Executor", "components.transform.Executor",
            "components.raw_logs_example_gen.Executor"} <= named
    needed, frontier = set(), {name.split(".")[0] for name in named}
    while frontier:  # the named packages and every package they import
        package = frontier.pop()
        needed.add(package)
        frontier |= ALLOWED[package] - needed
    assert needed <= copied, f"the image lacks {sorted(needed - copied)}"
    schema = kubeflow_v2_runner.IMAGE_SCHEMA_PATH
    assert schema in json.dumps(job) and os.path.exists(os.path.join(ROOT, os.path.relpath(schema, workdir)))


def test_the_image_is_a_beam_sdk_container_of_the_pinned_beam():
    dockerfile, requirements = _dockerfile(), open(os.path.join(ROOT, "requirements.txt")).read()
    beam = re.search(r"^apache-beam\[[a-z,]+\]==(\S+)$", requirements, re.M).group(1)
    assert f"FROM apache/beam_python3.10_sdk:{beam} AS beam_sdk" in dockerfile
    assert "ARG PYTHON_IMAGE=python:3.10-slim" in dockerfile and dockerfile.count("FROM ${PYTHON_IMAGE}") == 2
    assert "COPY --from=beam_sdk /opt/apache/beam /opt/apache/beam" in dockerfile
    assert 'ENTRYPOINT ["/opt/apache/beam/boot"]' in dockerfile


def test_container_beam_arguments():
    assert kubeflow_v2_runner.container_beam_args(["--direct_num_workers=2"], IMAGE) == ["--direct_num_workers=2"]
    with pytest.raises(ValueError, match="host CPU"):
        kubeflow_v2_runner.container_beam_args(["--direct_running_mode=multi_processing", "--direct_num_workers", "0"],
                                               IMAGE)
    assert kubeflow_v2_runner.container_beam_args(DATAFLOW + [f"--sdk_container_image={IMAGE}"], IMAGE).count(
        f"--sdk_container_image={IMAGE}") == 1
    with pytest.raises(ValueError, match="must run the pipeline's image"):
        kubeflow_v2_runner.container_beam_args(DATAFLOW + ["--sdk_container_image=other:1"], IMAGE)


def _rewrite(tmp_path, path, change):
    job = json.load(open(path))
    change(job)
    out = tmp_path / "changed.json"
    out.write_text(json.dumps(job))
    return str(out)


def test_a_compiled_pipeline_becomes_a_vertex_job_offline(compiled):
    job = vertex.validate(compiled)
    assert job._gca_resource.runtime_config.gcs_output_directory == "gs://bucket/rankloss/tfx/rankloss-tfx"
    assert "Trainer" in json.dumps(json.load(open(compiled))["pipelineSpec"]["root"]["dag"]["tasks"])


@pytest.mark.parametrize("change,message", [
    (lambda job: job["pipelineSpec"].update(deploymentSpecc={}), "deploymentSpecc"),   # a misspelled field
    (lambda job: job["runtimeConfig"].update(gcsOutputDirectory="/local/root"), "needs a gs:// pipeline root"),
    (lambda job: job.pop("pipelineSpec"), "no pipelineSpec"),
])
def test_what_vertex_would_refuse_is_named(compiled, tmp_path, change, message):
    with pytest.raises(vertex.VertexError, match=message):
        vertex.validate(_rewrite(tmp_path, compiled, change))


def test_submit_without_project_or_credentials_says_so(compiled, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no-gcloud"))  # no application-default credentials file
    monkeypatch.setenv("NO_GCE_CHECK", "True")                          # and not on Google Compute Engine
    with pytest.raises(vertex.VertexError, match="needs --project and --region"):
        vertex.submit(compiled, None, "us-central1")
    with pytest.raises(SystemExit) as stop:
        vertex.main(["submit", compiled, "--project", "p", "--region", "us-central1"])
    assert stop.value.code == 2 and "no Google Cloud credentials in this environment" in capsys.readouterr().err


def _executor_input(job, task, artifacts, work):
    """The ExecutorInput Vertex AI would hand `task`: its constant parameters from the compiled DAG, the
    given input artifacts ({key: an upstream ExecutorOutput artifact}) and output artifacts, with the types
    the spec declares; outputs under `work`."""
    spec = job["pipelineSpec"]
    definitions = spec["components"][task]
    outputs = definitions.get("outputDefinitions", {}).get("artifacts", {})
    declared = definitions.get("inputDefinitions", {}).get("artifacts", {})
    artifacts = {key: {"artifacts": [{**a, "type": declared[key]["artifactType"]}]} for key, a in artifacts.items()}
    constants = {name: p["runtimeValue"]["constantValue"]
                 for name, p in spec["root"]["dag"]["tasks"][task]["inputs"].get("parameters", {}).items()
                 if "constantValue" in p.get("runtimeValue", {})}
    return {"inputs": {"parameters": constants, "artifacts": artifacts},
            "outputs": {"outputFile": str(work / task / "executor_output.json"),
                        "artifacts": {key: {"artifacts": [{"name": f"{task}-{key}", "uri": str(work / task / key),
                                                           "type": d["artifactType"], "metadata": {}}]}
                                      for key, d in outputs.items()}}}


def _run_container(job, task, executor_input):
    """Runs `task` as its compiled container would: the pre-cache driver (if any), then the executor, each with
    the spec's own command and arguments, `{{$}}` filled in; `python` is this environment's interpreter."""
    container = job["pipelineSpec"]["deploymentSpec"]["executors"][f"{task}_executor"]["container"]
    steps = [container["lifecycle"]["preCacheCheck"]] if "lifecycle" in container else []
    for step in steps + [container]:
        command = [sys.executable if c == "python" else c for c in step["command"]]
        args = [json.dumps(executor_input) if a == "{{$}}" else a for a in step["args"]]
        proc = subprocess.run(command + args, cwd=ROOT, env=project_env(), capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr[-4000:]
    return json.load(open(executor_input["outputs"]["outputFile"]))


def test_example_gen_and_statistics_gen_run_as_their_compiled_containers_say(generated_tsv, tmp_path):
    """The container contract, offline: what the compiled spec tells Vertex AI to run does the job."""
    config = configs.PipelineConfig(output_root=str(tmp_path / "root"), input=generated_tsv[0])
    counts = convert.run([generated_tsv[0]], str(tmp_path / "ingested"))  # what the ExampleGen must write
    job = json.load(open(_compile(config, str(tmp_path / "job.json"))))

    example_gen = _run_container(job, "RawLogsExampleGen", _executor_input(job, "RawLogsExampleGen", {}, tmp_path))
    examples = example_gen["artifacts"]["examples"]["artifacts"][0]
    assert json.loads(examples["metadata"]["row_counts"]) == counts
    assert json.loads(examples["metadata"]["split_names"]) == ["train", "eval", "test"]
    written = {split: counts["splits"][split]["written"] for split in ("train", "eval", "test")}
    for split, rows in written.items():
        files = tf.io.gfile.glob(os.path.join(examples["uri"], f"Split-{split}", "*"))
        assert sum(1 for _ in tf.data.TFRecordDataset(files, compression_type="GZIP")) == rows > 0

    statistics_gen = _run_container(job, "StatisticsGen", _executor_input(
        job, "StatisticsGen", {"examples": examples}, tmp_path))
    statistics = statistics_gen["artifacts"]["statistics"]["artifacts"][0]
    for split, rows in written.items():
        stats = tfdv.load_stats_binary(os.path.join(statistics["uri"], f"Split-{split}", "FeatureStats.pb"))
        dataset = stats.datasets[0]
        assert dataset.num_examples == rows
        assert {f.path.step[0] for f in dataset.features} >= {features.LABEL_KEY, "I1", "C26"}
