"""Compiles the pipeline for Kubeflow Pipelines V2 / Vertex AI Pipelines.

    python -m pipeline.kubeflow_v2_runner --image gcr.io/P/rankloss-tfx:TAG \\
        --output-root gs://BUCKET/rankloss --output rankloss-tfx.json \\
        [--beam-arg=--runner=DataflowRunner --beam-arg=--project=P ...] [pipeline flags]

The TFRecords must already be under `<output-root>/tfrecords` (run `pipeline.ingest` with
DataflowRunner, Flink or Spark for full Criteo). Submit the JSON with
`kfp.Client().create_run_from_pipeline_package` or Vertex AI's `PipelineJob`.
"""
import argparse
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from tfx import v1 as tfx  # pylint: disable=g-import-not-at-top

from pipeline import configs, pipeline as pipeline_lib  # pylint: disable=g-import-not-at-top

IMAGE_PROJECT_ROOT = "/pipeline"  # where the Dockerfile puts the project inside the image
IMAGE_SCHEMA_PATH = f"{IMAGE_PROJECT_ROOT}/transforms/schema.pbtxt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", required=True, help="pipeline container image (see BUILD.md)")
    parser.add_argument("--output", default="rankloss-tfx.json", help="compiled pipeline spec path")
    parser.add_argument("--beam-arg", action="append", default=None,
                        help="Beam pipeline argument for the Beam components; repeatable")
    configs.add_flags(parser)
    args = parser.parse_args()
    config = configs.from_flags(args)
    if args.beam_arg:
        config.beam_pipeline_args = args.beam_arg
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=args.image),
        output_filename=args.output)
    runner.run(pipeline_lib.create_pipeline(config, schema_path=IMAGE_SCHEMA_PATH))
    print(f"[kubeflow] compiled {config.pipeline_name} for image {args.image} -> {args.output}")


if __name__ == "__main__":
    main()
