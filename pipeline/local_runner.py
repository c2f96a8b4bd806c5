"""Runs the pipeline locally with `LocalDagRunner` (Beam DirectRunner, SQLite MLMD).

    python -m pipeline.local_runner --loss bce            # plain entry
    tfx pipeline create --engine local --pipeline_path pipeline/local_runner.py
    tfx run create --engine local --pipeline_name rankloss-tfx

Expects ingested TFRecords under `<output-root>/tfrecords` (the main command
`scripts/demo.sh` generates and ingests them; `python -m pipeline.ingest` for your own data).
"""
import argparse
import os
import sys
from typing import Optional, Sequence

if __package__ in (None, ""):  # executed as a file (the tfx CLI does): import from the project root
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from tfx import v1 as tfx  # pylint: disable=g-import-not-at-top

from pipeline import configs, pipeline as pipeline_lib  # pylint: disable=g-import-not-at-top
from trainer.task import TrainerSettings, validate_settings  # pylint: disable=g-import-not-at-top


def parse_config(argv: Optional[Sequence[str]] = None,
                 parser: Optional[argparse.ArgumentParser] = None) -> configs.PipelineConfig:
    parser = parser or argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    configs.add_flags(parser)
    args, _ = parser.parse_known_args(argv)
    return configs.from_flags(args)


def validate(config: configs.PipelineConfig) -> None:
    """Fails before any work when the Trainer settings are invalid, naming the valid choices."""
    try:
        validate_settings(TrainerSettings.from_pipeline_config(config))
    except ValueError as error:
        raise SystemExit(f"invalid trainer configuration: {error}") from None


def run(config: configs.PipelineConfig) -> None:
    validate(config)
    if not os.path.isdir(config.tfrecord_root):
        raise SystemExit(f"no ingested data at {config.tfrecord_root}: run scripts/demo.sh once, or "
                         f"python -m pipeline.ingest --input <criteo.tsv> --output {config.tfrecord_root}")
    metadata = tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path)
    tfx.orchestration.LocalDagRunner().run(pipeline_lib.create_pipeline(config, metadata_connection_config=metadata))


if __name__ == "__main__":
    run(parse_config())
