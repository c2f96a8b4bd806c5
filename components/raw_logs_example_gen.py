"""RawLogsExampleGen: raw Criteo click logs (TSV or CSV; local, `gs://`, `s3://`) into the pipeline's Examples.

TFX's file-based ExampleGen with our ingestion as its Beam job (`ingestion.convert.build`, the transform
`python -m ingestion.convert` runs): each row becomes a `tf.Example` in `Split-train`, `Split-eval` or
`Split-test` by its line number (7:2:1), a malformed row goes to the `dead_letters` output as a JSON line
with its file, line number and reason, and every row is counted where it is read. The execution fails,
naming the split, unless read = written + rejected; the counts are on the Examples artifact (custom property
`row_counts`, and `counts.json` in its folder) and the rejected total on the dead letters artifact.

TFX's `FileBasedDriver` fingerprints the files `input_base`/pattern matches (names, sizes, modification
times), so a changed log invalidates the cache and an unchanged one reuses the last output. The splits are
the project's own, by line number, so the component takes no `output_config`.
"""
import os
from typing import Tuple

from tfx import types
from tfx.components.example_gen import component as example_gen_component, write_split
from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.dsl.components.base.base_beam_executor import BaseBeamExecutor
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs as specs
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.utils import json_utils, proto_utils

from components.artifacts import DeadLetters
from ingestion import convert, input_files, staged_output
from runtime import object_storage
from transforms import rows, splits

DEAD_LETTERS_KEY = "dead_letters"
INPUT_FORMAT_KEY = "input_format"
ROW_COUNTS_PROPERTY = "row_counts"
REJECTED_PROPERTY = "rows_rejected"
INPUT_SPLIT = "raw_logs"
_GLOB_CHARACTERS = "*?["


class RawLogsExampleGenSpec(specs.FileBasedExampleGenSpec):
    PARAMETERS = {**specs.FileBasedExampleGenSpec.PARAMETERS, INPUT_FORMAT_KEY: ExecutionParameter(type=str)}
    OUTPUTS = {**specs.FileBasedExampleGenSpec.OUTPUTS, DEAD_LETTERS_KEY: ChannelParameter(type=DeadLetters)}


def input_base_and_pattern(path_or_glob: str) -> Tuple[str, str]:
    """(the folder above every glob character, the rest): TFX's `input_base` and split pattern."""
    parts = path_or_glob.rstrip("/").split("/")
    first_glob = next((i for i, part in enumerate(parts) if any(c in part for c in _GLOB_CHARACTERS)),
                      len(parts) - 1)
    base, pattern = "/".join(parts[:first_glob]), "/".join(parts[first_glob:])
    if not base or not pattern:
        raise ValueError(f"--input {path_or_glob!r}: give a file or a glob below a folder, e.g. logs/*.tsv")
    return base, pattern


def output_config() -> example_gen_pb2.Output:
    """The splits the executor writes: by line number, in the proportions of `transforms.splits`."""
    return example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(splits=[
        example_gen_pb2.SplitConfig.Split(name=name, hash_buckets=buckets)
        for name, buckets in zip(splits.SPLITS, splits.SPLIT_BUCKETS)]))


class Executor(BaseBeamExecutor):
    """Ingests the matched raw logs with `ingestion.convert.build` on the component's Beam pipeline."""

    def Do(self, input_dict, output_dict, exec_properties):  # pylint: disable=invalid-name
        input_base = exec_properties[specs.INPUT_BASE_KEY]
        input_config = proto_utils.json_to_proto(exec_properties[specs.INPUT_CONFIG_KEY], example_gen_pb2.Input())
        if proto_utils.json_to_proto(exec_properties[specs.OUTPUT_CONFIG_KEY], example_gen_pb2.Output()) != \
                output_config():
            raise ValueError("RawLogsExampleGen writes the project's 7:2:1 split by line number; "
                             f"got another output_config: {exec_properties[specs.OUTPUT_CONFIG_KEY]}")
        input_format = exec_properties[INPUT_FORMAT_KEY]
        rows.delimiter(input_format)  # an unknown format is named before any work
        examples = artifact_utils.get_single_instance(output_dict[specs.EXAMPLES_KEY])
        dead_letters = artifact_utils.get_single_instance(output_dict[DEAD_LETTERS_KEY])
        object_storage.enable_tensorflow_s3([input_base, examples.uri])
        object_storage.configure_beam_file_systems(self._beam_pipeline_args)
        paths = input_files.expand([os.path.join(input_base, split.pattern) for split in input_config.splits])
        with staged_output.staged(examples.uri) as examples_dir, staged_output.staged(dead_letters.uri) as dead_dir:
            with self._make_beam_pipeline() as pipeline:
                convert.build(pipeline, paths, examples_dir, input_format, dead_letter_dir=dead_dir)
            counts = convert.reconciled(convert.read_counts(examples_dir), "the execution failed")
        examples.split_names = artifact_utils.encode_split_names(list(splits.SPLITS))
        examples_utils.set_payload_format(examples, example_gen_pb2.FORMAT_TF_EXAMPLE)
        examples_utils.set_file_format(examples, write_split.to_file_format_str(example_gen_pb2.FORMAT_TFRECORDS_GZIP))
        examples.set_string_custom_property(ROW_COUNTS_PROPERTY, json_utils.dumps(counts))
        dead_letters.set_int_custom_property(REJECTED_PROPERTY,
                                             sum(split["rejected"] for split in counts["splits"].values()))


class RawLogsExampleGen(example_gen_component.FileBasedExampleGen):
    """TFX's file-based ExampleGen (its driver, caching and `examples` output) ingesting raw Criteo logs
    with `Executor`, plus a `dead_letters` output."""

    SPEC_CLASS = RawLogsExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(self, input_path: str, input_format: str = "tsv"):  # pylint: disable=super-init-not-called
        """`input_path`: a file or a glob (local, gs://, s3://); `input_format`: tsv or csv."""
        base, pattern = input_base_and_pattern(input_path)
        spec = RawLogsExampleGenSpec(
            input_base=base,
            input_config=example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name=INPUT_SPLIT, pattern=pattern)]),
            output_config=output_config(), input_format=input_format,
            output_data_format=example_gen_pb2.FORMAT_TF_EXAMPLE,
            output_file_format=example_gen_pb2.FORMAT_TFRECORDS_GZIP,
            examples=types.Channel(type=standard_artifacts.Examples),
            dead_letters=types.Channel(type=DeadLetters))
        base_beam_component.BaseBeamComponent.__init__(self, spec=spec)

