"""ImportExampleGen copying gzipped TFRecord files instead of re-writing their records.

TFX's ImportExampleGen reads every record of every input file and writes it again (shuffled, gzipped) into
its output artifact: a second copy of the ingested data made one Beam element at a time. Our ingestion
already writes what that copy holds (gzipped TFRecords of serialized `tf.Example`s, one folder per split),
so when every file a split pattern matches is gzipped (`.gz`) and the splits are taken as they are (no
`output_config` re-split), this executor copies the files into the artifact under TFX's names
(`Split-<name>/data_tfrecord-*.gz`) and sets the artifact's properties as TFX's executor does: the same
records reach StatisticsGen, Transform and the Evaluator. Anything else (uncompressed files, a re-split,
another payload) goes to TFX's own executor. A corrupt file is not noticed here but by the first component
that reads it.
"""
import os

from absl import logging
from tfx import components
from tfx.components.example_gen import utils, write_split
from tfx.components.example_gen.import_example_gen import executor as import_executor
from tfx.components.util import examples_utils
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs as specs
from tfx.utils import proto_utils

from runtime import object_storage


def _split_files(input_base: str, input_config: example_gen_pb2.Input):
    """{split: its files, sorted}; None when a split matches a file that is not gzipped."""
    files = {}
    for split in input_config.splits:
        matched = sorted(fileio.glob(os.path.join(input_base, split.pattern)))
        if not matched:
            raise FileNotFoundError(f"split {split.name!r}: no files match {os.path.join(input_base, split.pattern)}")
        if not all(path.endswith(".gz") for path in matched):
            return None
        files[split.name] = matched
    return files


class Executor(import_executor.Executor):
    """Copies the input files of each split when they are gzipped TFRecords (see the module docstring)."""

    def Do(self, input_dict, output_dict, exec_properties):  # pylint: disable=invalid-name
        input_base = exec_properties[specs.INPUT_BASE_KEY]
        examples = artifact_utils.get_single_instance(output_dict[specs.EXAMPLES_KEY])
        object_storage.enable_tensorflow_s3([input_base, examples.uri])
        input_config = proto_utils.json_to_proto(exec_properties[specs.INPUT_CONFIG_KEY], example_gen_pb2.Input())
        output_config = proto_utils.json_to_proto(exec_properties[specs.OUTPUT_CONFIG_KEY], example_gen_pb2.Output())
        payload = exec_properties.get(specs.OUTPUT_DATA_FORMAT_KEY)
        files = None
        if not output_config.HasField("split_config") and payload in (None, example_gen_pb2.FORMAT_TF_EXAMPLE):
            files = _split_files(input_base, input_config)
        if files is None:
            logging.info("ImportExampleGen: re-writing the records with TFX's executor")
            return super().Do(input_dict, output_dict, exec_properties)
        examples.split_names = artifact_utils.encode_split_names(
            utils.generate_output_split_names(input_config, output_config))
        for split, paths in files.items():
            split_uri = artifact_utils.get_split_uri([examples], split)
            fileio.makedirs(split_uri)
            for i, path in enumerate(paths):
                name = f"{write_split.DEFAULT_FILE_NAME}-{i:05d}-of-{len(paths):05d}.gz"
                fileio.copy(path, os.path.join(split_uri, name), overwrite=True)
            logging.info("ImportExampleGen: copied %d file(s) of split %s", len(paths), split)
        examples_utils.set_payload_format(examples, example_gen_pb2.FORMAT_TF_EXAMPLE)
        examples_utils.set_file_format(examples, write_split.to_file_format_str(
            exec_properties.get(specs.OUTPUT_FILE_FORMAT_KEY, example_gen_pb2.FILE_FORMAT_UNSPECIFIED)))
        return None


class ImportExampleGen(components.ImportExampleGen):
    """TFX's ImportExampleGen (its id, outputs and ML Metadata) running `Executor`."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
