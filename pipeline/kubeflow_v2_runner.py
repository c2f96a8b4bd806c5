"""Compiles the pipeline for Kubeflow Pipelines V2 / Vertex AI Pipelines.

    python -m pipeline.kubeflow_v2_runner --image gcr.io/P/rankloss-tfx:TAG \\
        --output-root gs://BUCKET/rankloss --output rankloss-tfx.json \\
        [pipeline flags] [--training-replicas 4 --vertex-project P] [-- --runner=DataflowRunner --project=P ...]

Arguments after `--` (or in `--beam-arg=...`) are the Beam components' Beam arguments.
`--training-replicas N` trains in a Vertex AI custom job of N replicas on the same image (a chief and
N-1 workers, MultiWorkerMirroredStrategy) instead of inside the Trainer's pipeline step.
The TFRecords must already be under `<output-root>/tfrecords` (run `ingestion.convert` with
DataflowRunner, Flink or Spark for full Criteo). The compiled JSON is checked offline (pipeline/vertex.py);
submit it with `python -m pipeline.vertex submit` (Vertex AI) or `kfp.Client().create_run_from_pipeline_package`.
"""
from typing import List, Optional

from tfx import v1 as tfx

from pipeline import pipeline as pipeline_lib, vertex
from settings import configs, flags

IMAGE_PROJECT_ROOT = "/pipeline"  # where the Dockerfile puts the project inside the image
IMAGE_SCHEMA_PATH = f"{IMAGE_PROJECT_ROOT}/transforms/schema.pbtxt"


def _flag_value(args: List[str], name: str) -> Optional[str]:
    """The value of `--name=value` or `--name value` in Beam arguments (the last one wins)."""
    value = None
    for i, arg in enumerate(args):
        if arg.startswith(f"--{name}="):
            value = arg.split("=", 1)[1]
        elif arg == f"--{name}" and i + 1 < len(args):
            value = args[i + 1]
    return value


def container_beam_args(beam_args: List[str], image: str) -> List[str]:
    """The Beam arguments as the containers get them.

    `--direct_num_workers=0` means "one worker per host CPU": inside a container that is the node's
    CPU count, not the container's share, so it is refused. On Dataflow the workers run this image
    (`--sdk_container_image`, added when absent; another image is refused, as its code would differ).
    """
    if _flag_value(beam_args, "direct_num_workers") == "0":
        raise ValueError("--direct_num_workers=0 (one worker per host CPU) would use the node's CPU count inside a "
                         "container: give an explicit worker count")
    runner = (_flag_value(beam_args, "runner") or "").lower()
    if runner not in ("dataflow", "dataflowrunner"):
        return list(beam_args)
    sdk_image = _flag_value(beam_args, "sdk_container_image")
    if sdk_image is None:
        return list(beam_args) + [f"--sdk_container_image={image}"]
    if sdk_image != image:
        raise ValueError(f"--sdk_container_image={sdk_image} differs from --image {image}: the Dataflow workers "
                         "must run the pipeline's image (it carries this project's code)")
    return list(beam_args)


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
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=args.image),
        output_filename=args.output)
    try:
        runner.run(pipeline_lib.create_pipeline(config, schema_path=IMAGE_SCHEMA_PATH, image=args.image))
    except configs.SettingsError as error:
        parser.error(str(error))
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
