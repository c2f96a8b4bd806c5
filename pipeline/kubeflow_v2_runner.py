"""Compiles the pipeline for Kubeflow Pipelines V2 / Vertex AI Pipelines.

    python -m pipeline.kubeflow_v2_runner --image REGION-docker.pkg.dev/P/REPO/rankloss-tfx@sha256:DIGEST \\
        --output-root gs://BUCKET/rankloss --input 'gs://BUCKET/criteo/*.txt' --output rankloss-tfx.json \\
        --vertex-project P --vertex-region R [pipeline flags] [--training-replicas 4] \\
        [-- --runner=DataflowRunner --project=P --region=R --temp_location=gs://BUCKET/tmp --machine_type=...]

Arguments after `--` (or in `--beam-arg=...`) are the Beam components' Beam arguments.
`--training-replicas N` trains in a Vertex AI custom job of N replicas on the same image (a chief and
N-1 workers, MultiWorkerMirroredStrategy) instead of inside the Trainer's pipeline step. The pipeline starts
from the raw logs (`--input gs://BUCKET/criteo/*.txt`), ingested by its ExampleGen. What Dataflow or Vertex AI
would refuse at run time is refused here first, naming the flag (pipeline/cloud_checks.py); each step's
container gets `--step-cpu` and `--step-memory-gb`. The compiled JSON is checked offline (pipeline/vertex.py);
submit it with `python -m pipeline.vertex submit` (Vertex AI) or `kfp.Client().create_run_from_pipeline_package`.
"""

import json
from typing import List

from tfx import v1 as tfx

from pipeline import cloud_checks, pipeline as pipeline_lib, vertex
from settings import configs, flags

IMAGE_PROJECT_ROOT = "/pipeline"  # where the Dockerfile puts the project inside the image
IMAGE_SCHEMA_PATH = f"{IMAGE_PROJECT_ROOT}/transforms/schema.pbtxt"


def container_beam_args(beam_args: List[str], image: str) -> List[str]:
    """The Beam arguments as the containers get them.

    `--direct_num_workers=0` means "one worker per host CPU": inside a container that is the node's
    CPU count, not the container's share, so it is refused. On Dataflow the workers run this image
    (`--sdk_container_image`, added when absent; another image is refused, as its code would differ).
    """
    if cloud_checks.flag_value(beam_args, "direct_num_workers") == "0":
        raise ValueError("--direct_num_workers=0 (one worker per host CPU) would use the node's CPU count inside a "
                         "container: give an explicit worker count")
    runner = (cloud_checks.flag_value(beam_args, "runner") or "").lower()
    if runner not in cloud_checks.DATAFLOW_RUNNERS:
        return list(beam_args)
    sdk_image = cloud_checks.flag_value(beam_args, "sdk_container_image")
    if sdk_image is None:
        return list(beam_args) + [f"--sdk_container_image={image}"]
    if sdk_image != image:
        raise ValueError(f"--sdk_container_image={sdk_image} differs from --image {image}: the Dataflow workers "
                         "must run the pipeline's image (it carries this project's code)")
    return list(beam_args)


def set_step_resources(job_path: str, vertex_config: configs.VertexConfig) -> None:
    """Gives every step's container `--step-cpu` vCPUs and `--step-memory-gb` GB (KFP's ResourceSpec) in the
    compiled job. Written into the spec rather than through `with_platform_config`, which TFX 1.16's compiler
    drops for a file-based ExampleGen (its driver-and-executor container)."""
    with open(job_path) as f:
        job = json.load(f)
    for executor in job["pipelineSpec"]["deploymentSpec"]["executors"].values():
        if "container" in executor:
            executor["container"]["resources"] = {"cpuLimit": vertex_config.step_cpu,
                                                  "memoryLimit": vertex_config.step_memory_gb}
    with open(job_path, "w") as f:
        json.dump(job, f, indent=2, sort_keys=True)


def main() -> None:
    parser = flags.StrictParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", required=True, help="pipeline container image (see BUILD.md)")
    parser.add_argument("--output", default="rankloss-tfx.json", help="compiled pipeline spec path")
    flags.add_flags(parser, sections=(flags.PIPELINE,) + configs.TRAINING_SECTIONS + (configs.VERTEX_SECTION,))
    config, args = flags.parse(parser)
    try:
        config.beam_pipeline_args = container_beam_args(config.beam_pipeline_args, args.image)
    except ValueError as error:
        parser.error(str(error))
    problems = (cloud_checks.dataflow_problems(config.beam_pipeline_args, config.vertex.vocabulary_tokens) +
                cloud_checks.vertex_problems(config.output_root, config.vertex.project, config.vertex.region,
                                             args.image, config.vertex.mutable_image))
    if problems:  # before anything is written
        parser.error("the compiled pipeline would fail on Google Cloud:\n  " + "\n  ".join(problems))
    try:
        pipeline = pipeline_lib.create_pipeline(config, schema_path=IMAGE_SCHEMA_PATH, image=args.image)
    except configs.SettingsError as error:
        parser.error(str(error))
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=args.image),
        output_filename=args.output)
    runner.run(pipeline)
    set_step_resources(args.output, config.vertex)
    print(f"[kubeflow] compiled {config.pipeline_name} for image {args.image} -> {args.output}")
    try:
        if config.output_root.startswith("gs://"):
            vertex.validate(args.output)
            print("[kubeflow] validated offline: a strict KFP PipelineSpec, and a Vertex AI PipelineJob "
                  f"(submit: python -m pipeline.vertex submit {args.output} --project P --region R)")
        else:
            vertex.parse_spec(args.output)
            print("[kubeflow] validated offline: a strict KFP PipelineSpec (Vertex AI needs a gs:// --output-root)")
    except vertex.VertexError as error:
        raise SystemExit(f"[kubeflow] error: {error}") from None


if __name__ == "__main__":
    main()
