"""Vertex AI Pipelines: check a compiled pipeline offline, and submit it.

    python -m pipeline.vertex validate rankloss-tfx.json
    python -m pipeline.vertex submit rankloss-tfx.json --project P --region R [--service-account SA]

`validate` makes no network call: it parses the pipeline spec strictly into KFP's `PipelineSpec`
proto, each executor's container (image, command, args, resources) into KFP's `PipelineDeploymentConfig`,
and each training job's worker pools into the Vertex AI API's own `CustomJobSpec` (an unknown or misspelled
field is an error, named), then builds the `google.cloud.aiplatform.PipelineJob` Vertex would run, with
anonymous credentials. `submit` validates first, then takes the credentials
from the environment (Application Default Credentials: `gcloud auth application-default login`, or
`GOOGLE_APPLICATION_CREDENTIALS`); they are never read from flags or written to the logs.
"""
import argparse
import json
import sys
from typing import Optional

from google.protobuf import json_format

OFFLINE_PROJECT, OFFLINE_REGION = "offline-validation", "us-central1"


class VertexError(ValueError):
    """A compiled pipeline Vertex would refuse, or a submission that cannot start; the message says why."""


def parse_spec(job_path: str) -> dict:
    """The compiled job as JSON, after a strict parse of its spec into KFP's `PipelineSpec` proto."""
    from kfp.pipeline_spec import pipeline_spec_pb2  # pylint: disable=import-outside-toplevel

    try:
        with open(job_path) as f:
            job = json.load(f)
    except (OSError, json.JSONDecodeError) as error:
        raise VertexError(f"{job_path}: cannot read the compiled pipeline: {error}") from None
    if "pipelineSpec" not in job:
        raise VertexError(f"{job_path}: no pipelineSpec: not a compiled Kubeflow V2 pipeline")
    try:
        json_format.ParseDict(job["pipelineSpec"], pipeline_spec_pb2.PipelineSpec())
    except json_format.ParseError as error:
        raise VertexError(f"{job_path}: the pipeline spec does not parse as KFP's PipelineSpec: {error}") from None
    try:  # the executors are a free-form Struct in PipelineSpec: parse them as the deployment config they are
        json_format.ParseDict(job["pipelineSpec"].get("deploymentSpec", {}),
                              pipeline_spec_pb2.PipelineDeploymentConfig())
    except json_format.ParseError as error:
        raise VertexError(f"{job_path}: an executor does not parse as KFP's PipelineDeploymentConfig: {error}") \
            from None
    for task, job_spec in training_job_specs(job):
        check_custom_job_spec(job_spec, f"{job_path}: task {task}")
    return job


def training_job_specs(job: dict):
    """(task, CustomJobSpec dict) of every task whose `custom_config` starts a Vertex AI training job."""
    for task, spec in job["pipelineSpec"].get("root", {}).get("dag", {}).get("tasks", {}).items():
        parameter = spec.get("inputs", {}).get("parameters", {}).get("custom_config", {})
        text = parameter.get("runtimeValue", {}).get("constantValue", {}).get("stringValue")
        value = json.loads(text) if text else None
        training = value.get("ai_platform_training_args") if isinstance(value, dict) else None
        if training:
            yield task, training.get("job_spec", {key: v for key, v in training.items() if key != "project"})


def check_custom_job_spec(job_spec: dict, where: str) -> None:
    """Raises VertexError naming the field when `job_spec` is not a valid Vertex AI `CustomJobSpec`."""
    from google.cloud.aiplatform_v1.types import CustomJobSpec  # pylint: disable=import-outside-toplevel

    try:
        json_format.ParseDict(job_spec, CustomJobSpec.pb(CustomJobSpec()))
    except json_format.ParseError as error:
        raise VertexError(f"{where}: the training job does not parse as Vertex AI's CustomJobSpec: {error}") \
            from None


def validate(job_path: str, project: str = OFFLINE_PROJECT, region: str = OFFLINE_REGION, credentials=None):
    """The `PipelineJob` for `job_path`, built offline (anonymous credentials unless given)."""
    from google.auth.credentials import AnonymousCredentials  # pylint: disable=import-outside-toplevel
    from google.cloud import aiplatform  # pylint: disable=import-outside-toplevel

    job = parse_spec(job_path)
    root = job.get("runtimeConfig", {}).get("gcsOutputDirectory", "")
    if not root.startswith("gs://"):
        raise VertexError(f"{job_path}: Vertex AI needs a gs:// pipeline root, got {root!r} "
                          "(compile with --output-root gs://BUCKET/...)")
    return aiplatform.PipelineJob(display_name=job.get("displayName", "rankloss-tfx"), template_path=job_path,
                                  project=project, location=region,
                                  credentials=credentials or AnonymousCredentials())


def submit(job_path: str, project: Optional[str], region: Optional[str], service_account: Optional[str] = None):
    """Validates, then submits with the environment's credentials; returns the submitted job."""
    import google.auth  # pylint: disable=import-outside-toplevel
    from google.auth import exceptions  # pylint: disable=import-outside-toplevel

    if not project or not region:
        raise VertexError("submitting needs --project and --region (the Google Cloud project and Vertex AI region)")
    validate(job_path)
    try:
        credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    except exceptions.DefaultCredentialsError:
        raise VertexError("no Google Cloud credentials in this environment: run `gcloud auth application-default "
                          "login`, or set GOOGLE_APPLICATION_CREDENTIALS to a service account key file") from None
    job = validate(job_path, project, region, credentials)
    job.submit(service_account=service_account)
    return job


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("validate", help="check a compiled pipeline offline")
    check.add_argument("job", help="the compiled pipeline JSON (python -m pipeline.kubeflow_v2_runner --output)")
    send = commands.add_parser("submit", help="validate, then submit to Vertex AI Pipelines")
    send.add_argument("job", help="the compiled pipeline JSON")
    send.add_argument("--project", help="Google Cloud project")
    send.add_argument("--region", help="Vertex AI region, e.g. us-central1")
    send.add_argument("--service-account", help="service account the pipeline runs as (default: the project's)")
    args = parser.parse_args(argv)
    try:
        if args.command == "validate":
            validate(args.job)
            print(f"[vertex] {args.job}: valid PipelineSpec; Vertex AI PipelineJob built offline")
        else:
            job = submit(args.job, args.project, args.region, args.service_account)
            print(f"[vertex] submitted {job.resource_name}")
    except VertexError as error:
        print(f"[vertex] error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
