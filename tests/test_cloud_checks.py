"""The Vertex compile: the README's command compiles from raw logs; what Dataflow or Vertex AI would refuse at run
time is refused first, naming the flag, before anything is written; the offline check parses the executors and
the worker pools as the APIs' own types."""
import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from pipeline import cloud_checks, kubeflow_v2_runner, vertex
from tests.helpers import ROOT, project_env

DIGEST = "sha256:" + "0" * 64


def readme_compile_command(output):
    """The README's compile command, with its placeholders filled in and its output in `output`."""
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    block = next(b for b in re.findall(r"```bash\n(.*?)```", text, re.S) if "pipeline.kubeflow_v2_runner" in b)
    command = block.split("python -m pipeline.vertex")[0].replace("\\\n", " ")
    command = command.replace("sha256:DIGEST", DIGEST).replace("PROJECT", "my-project").replace("BUCKET", "bucket")
    argv = shlex.split(command)[2:]  # after `python -m`
    return argv[:argv.index("--output") + 1] + [output] + argv[argv.index("--output") + 2:]


@pytest.mark.e2e
def test_the_readmes_dataflow_command_compiles_a_pipeline_from_raw_logs_with_step_resources(tmp_path):
    out = str(tmp_path / "job.json")
    argv = readme_compile_command(out)
    proc = subprocess.run([sys.executable, "-m", *argv], cwd=ROOT, env=project_env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    job = json.load(open(out))
    spec = job["pipelineSpec"]
    example_gen = spec["root"]["dag"]["tasks"]["RawLogsExampleGen"]["inputs"]["parameters"]
    assert example_gen["input_base"]["runtimeValue"]["constantValue"]["stringValue"] == "gs://bucket/criteo"
    containers = [e["container"] for e in spec["deploymentSpec"]["executors"].values() if "container" in e]
    assert containers and all(c["resources"] == {"cpuLimit": 4.0, "memoryLimit": 16.0} for c in containers)
    beam_args = json.dumps(spec["deploymentSpec"]["executors"]["RawLogsExampleGen_executor"])
    assert "--machine_type=n1-highmem-8" in beam_args and f"rankloss-tfx@{DIGEST}" in beam_args


@pytest.mark.parametrize("drop, named", [
    ("--vertex-project", "--vertex-project"), ("--vertex-region", "--vertex-region"),
    ("--project=my-project", "--project"), ("--region=us-central1", "--region"),
    ("--temp_location=gs://bucket/tmp", "--temp_location"), ("--machine_type=n1-highmem-8", "--machine_type")])
def test_a_missing_required_argument_stops_the_compile_before_it_writes_and_is_named(
        drop, named, tmp_path, monkeypatch, capsys):
    out = tmp_path / "job.json"
    argv = readme_compile_command(str(out))
    index = argv.index(drop)
    del argv[index:index + (2 if drop.startswith("--vertex") else 1)]
    monkeypatch.setattr(sys, "argv", ["kubeflow_v2_runner", *argv[1:]])
    with pytest.raises(SystemExit) as stop:
        kubeflow_v2_runner.main()
    assert stop.value.code == 2 and not out.exists()
    assert f"{named}: a " in capsys.readouterr().err


def test_a_mutable_image_tag_and_a_small_worker_are_refused_and_explained(tmp_path, monkeypatch, capsys):
    out = tmp_path / "job.json"
    argv = [a.replace(f"@{DIGEST}", ":latest").replace("n1-highmem-8", "n1-standard-4")
            for a in readme_compile_command(str(out))]
    monkeypatch.setattr(sys, "argv", ["kubeflow_v2_runner", *argv[1:]])
    with pytest.raises(SystemExit):
        kubeflow_v2_runner.main()
    err = capsys.readouterr().err
    assert "--image us-central1-docker.pkg.dev/my-project/rankloss/rankloss-tfx:latest: a tag can point" in err
    assert "--machine_type=n1-standard-4: 15.0 GB for 4 SDK processes" in err and "needs about 20.0 GB" in err
    assert not out.exists()


@pytest.mark.parametrize("machine, expected", [
    ("n1-standard-4", (4, 15.0)), ("n1-highmem-8", (8, 52.0)), ("n2-highcpu-16", (16, 16.0)),
    ("custom-8-53248", (8, 52.0)), ("n2-custom-4-32768", (4, 32.0))])
def test_machine_memory(machine, expected):
    assert cloud_checks.machine_memory(machine) == expected


def test_worker_memory_is_cpus_times_a_process_and_its_vocabularies():
    assert cloud_checks.needed_worker_gb(8, 30_000_000) == pytest.approx(8 * (2.0 + 3.0))
    assert cloud_checks.dataflow_problems(["--runner=DirectRunner"], 10**9) == []
    with pytest.raises(ValueError, match="not a machine type this check knows"):
        cloud_checks.machine_memory("tpu-v9")


def test_a_misspelled_executor_or_worker_pool_field_fails_the_offline_check(tmp_path):
    job = {"pipelineSpec": {"pipelineInfo": {"name": "p"}, "schemaVersion": "2.1.0", "sdkVersion": "tfx-1.16.0",
                            "root": {"dag": {"tasks": {}}},
                            "deploymentSpec": {"executors": {"A_executor": {"container": {
                                "image": "i", "command": ["python"], "args": []}}}}}}
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job))
    vertex.parse_spec(str(path))  # as compiled: valid
    job["pipelineSpec"]["deploymentSpec"]["executors"]["A_executor"]["container"]["imagee"] = "i"
    path.write_text(json.dumps(job))
    with pytest.raises(vertex.VertexError, match='has no field named "imagee"'):
        vertex.parse_spec(str(path))
    pool = {"machine_spec": {"machine_type": "n1-standard-8"}, "replica_count": 1, "container_spec": {"image_uri": "i"}}
    vertex.check_custom_job_spec({"worker_pool_specs": [pool]}, "Trainer")
    pool["replica_countt"] = pool.pop("replica_count")
    with pytest.raises(vertex.VertexError, match='Trainer: .*has no field named "replica_countt"'):
        vertex.check_custom_job_spec({"worker_pool_specs": [pool]}, "Trainer")
