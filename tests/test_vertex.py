"""Vertex AI: the compiled pipeline checked offline, and a submission without credentials refused."""
import json

import pytest
from tfx import v1 as tfx

from pipeline import kubeflow_v2_runner, pipeline as pipeline_lib, vertex
from settings import configs


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("vertex") / "job.json")
    config = configs.PipelineConfig(output_root="gs://bucket/rankloss")
    tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image="gcr.io/p/img:1"),
        output_filename=path).run(pipeline_lib.create_pipeline(config, schema_path=kubeflow_v2_runner.IMAGE_SCHEMA_PATH))
    return path


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
