"""Compiles the pipeline for Kubeflow Pipelines V2 / Vertex AI Pipelines.

    python -m pipeline.kubeflow_v2_runner --image gcr.io/P/rankloss-tfx:TAG \\
        --output-root gs://BUCKET/rankloss --output rankloss-tfx.json \\
        [pipeline flags] [-- --runner=DataflowRunner --project=P ...]

Arguments after `--` (or in `--beam-arg=...`) are the Beam components' Beam arguments.
The TFRecords must already be under `<output-root>/tfrecords` (run `ingestion.convert` with
DataflowRunner, Flink or Spark for full Criteo). The compiled JSON is checked offline (pipeline/vertex.py);
submit it with `python -m pipeline.vertex submit` (Vertex AI) or `kfp.Client().create_run_from_pipeline_package`.
"""
from tfx import v1 as tfx

from pipeline import pipeline as pipeline_lib, vertex
from settings import configs, flags

IMAGE_PROJECT_ROOT = "/pipeline"  # where the Dockerfile puts the project inside the image
IMAGE_SCHEMA_PATH = f"{IMAGE_PROJECT_ROOT}/transforms/schema.pbtxt"


def main() -> None:
    parser = flags.StrictParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", required=True, help="pipeline container image (see BUILD.md)")
    parser.add_argument("--output", default="rankloss-tfx.json", help="compiled pipeline spec path")
    flags.add_flags(parser, sections=(flags.PIPELINE,) + configs.TRAINING_SECTIONS)
    config, args = flags.parse(parser)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=args.image),
        output_filename=args.output)
    runner.run(pipeline_lib.create_pipeline(config, schema_path=IMAGE_SCHEMA_PATH))
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
