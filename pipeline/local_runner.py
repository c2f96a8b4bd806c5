"""Runs the pipeline locally with `LocalDagRunner` (Beam DirectRunner, SQLite ML Metadata).

    python -m pipeline.local_runner --loss bce            # plain entry; --help lists every flag
    tfx pipeline create --engine local --pipeline_path pipeline/local_runner.py
    tfx run create --engine local --pipeline_name rankloss-tfx

The `tfx` CLI passes no flags: it takes them from `RANKLOSS_FLAGS` (e.g. "--loss combined_pair").
The pipeline starts from raw logs: `--input` (a file or glob, TSV or `--input-format csv`), by default the
embedded generator's file, which the main command `scripts/demo.sh` writes.
"""
import os
import shlex
import sys
from typing import Callable, Optional, Sequence

if __package__ in (None, ""):  # executed as a file (the tfx CLI does): import from the project root
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from settings import configs, flags
from runtime import object_storage, process  # pylint: disable=g-import-not-at-top
from components import local_beam  # pylint: disable=g-import-not-at-top
from ingestion import input_files  # pylint: disable=g-import-not-at-top
from pipeline import pipeline as pipeline_lib  # pylint: disable=g-import-not-at-top
from tfx.orchestration import metadata as tfx_metadata  # pylint: disable=g-import-not-at-top
from tfx.orchestration.local.local_dag_runner import LocalDagRunner  # pylint: disable=g-import-not-at-top
from tfx.orchestration.pipeline import Pipeline  # pylint: disable=g-import-not-at-top

FLAGS_VARIABLE = "RANKLOSS_FLAGS"


def parse_config(argv: Optional[Sequence[str]] = None, description: str = __doc__) -> configs.PipelineConfig:
    """The validated config from `argv` (default: the command line, then `RANKLOSS_FLAGS`)."""
    if argv is None:
        argv = sys.argv[1:] + shlex.split(os.environ.get(FLAGS_VARIABLE, ""))
    parser = flags.StrictParser(description=description.split("\n\n")[0])
    flags.add_flags(parser, sections=(flags.PIPELINE,) + configs.TRAINING_SECTIONS)
    return flags.parse(parser, argv)[0]


def run(config: configs.PipelineConfig,
        create: Callable[..., Pipeline] = pipeline_lib.create_pipeline) -> None:
    """Runs `create(config)` (the whole pipeline, or `create_data_pipeline` for the part up to Transform)."""
    object_storage.enable_tensorflow_s3([config.output_root])
    object_storage.configure_beam_file_systems(config.beam_pipeline_args)  # the Beam steps run in this process
    try:
        input_files.expand([config.logs_path])
    except FileNotFoundError:
        raise SystemExit(f"no raw logs match {config.logs_path}: run scripts/demo.sh once (it generates them), "
                         "or pass --input <criteo.tsv or glob>") from None
    metadata = tfx_metadata.sqlite_metadata_connection_config(config.metadata_path)
    with local_beam.no_tfx_sdist_for_local_workers(config.beam_pipeline_args):
        LocalDagRunner().run(create(config, metadata_connection_config=metadata))


if __name__ == "__main__":
    if __package__:  # `python -m pipeline.local_runner`
        process.run_main(lambda: run(parse_config()))
    else:  # the tfx CLI runs this file inside its own process, which must go on
        run(parse_config())
