"""The Pusher, writing each serving version atomically.

TFX's filesystem Pusher copies the SavedModel into `<base>/<version>/` file by file (`saved_model.pb`
last), so a model server polling `<base>` can meet a version whose files are still being written. This
executor lets TFX's Pusher write into a staging folder beside the versions (`<base>/.staging-<id>/`, not
a version number, so servers ignore it), then renames the finished version into `<base>/<version>`: a
server sees the whole version or none of it (a rename within one local or HDFS file system is atomic;
on object stores, where a rename copies, `saved_model.pb` still arrives last).
"""
import os
import uuid

from absl import logging
from tfx import components
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils


class Executor(pusher_executor.Executor):
    """TFX's Pusher executor with a staged, renamed filesystem push."""

    def Do(self, input_dict, output_dict, exec_properties):  # pylint: disable=invalid-name
        destination = proto_utils.json_to_proto(
            exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], pusher_pb2.PushDestination())
        if destination.WhichOneof("destination") != "filesystem":
            return super().Do(input_dict, output_dict, exec_properties)
        base = destination.filesystem.base_directory
        staging = os.path.join(base, f".staging-{uuid.uuid4().hex}")
        destination.filesystem.base_directory = staging
        staged_properties = {**exec_properties,
                             standard_component_specs.PUSH_DESTINATION_KEY: proto_utils.proto_to_json(destination)}
        try:
            super().Do(input_dict, output_dict, staged_properties)
            pushed = artifact_utils.get_single_instance(output_dict[standard_component_specs.PUSHED_MODEL_KEY])
            if pushed.get_int_custom_property("pushed"):
                version = pushed.get_string_custom_property("pushed_version")
                final = os.path.join(base, version)
                if fileio.exists(final):
                    logging.info("Destination directory %s already exists, skipping current push.", final)
                else:
                    fileio.rename(os.path.join(staging, version), final)
                pushed.set_string_custom_property("pushed_destination", final)
        finally:
            if fileio.exists(staging):
                fileio.rmtree(staging)


class Pusher(components.Pusher):
    """TFX's Pusher (its id, outputs and ML Metadata) running `Executor`."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)
