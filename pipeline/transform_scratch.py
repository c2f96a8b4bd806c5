"""Transform's scratch files on local disk when its Beam job runs on this machine.

TFX's Transform keeps tf.Transform's temporary files (each analyzer's vocabulary files, the
intermediate SavedModels it writes, reloads and copies) under its output, in
`<transform_graph>/.temp_path`. With the pipeline root on object storage each of those small-file
operations is one or more requests: in the S3 flow test, 4,579 of Transform's 5,593 requests went
there. Under the DirectRunner every Beam worker is a thread or a process of this machine, so the
scratch files can live on local disk (under `tempfile.gettempdir()`, i.e. `$TMPDIR`); the finished
transform graph and the transformed examples are written to the output as before. Any other runner
(Dataflow, a portable job service, whose SDK workers may be elsewhere) keeps TFX's path, which
every worker can reach, and so does a local pipeline root, whose scratch files are local already.
"""
import contextlib
import shutil
import tempfile
from typing import Iterator, Sequence

from tfx.components.transform import executor as transform_executor
from tfx.types import artifact_utils, standard_component_specs

from pipeline.beam_dependencies import runs_on_this_machine
from settings import object_storage


@contextlib.contextmanager
def local_scratch(transform_output: str, beam_pipeline_args: Sequence[str]) -> Iterator[None]:
    """Within, TFX's Transform executor puts its scratch files in a new local directory, removed after,
    when `transform_output` is on object storage and the Beam job runs on this machine."""
    if not (object_storage.is_object_store(transform_output) and runs_on_this_machine(beam_pipeline_args)):
        yield
        return
    scratch = tempfile.mkdtemp(prefix="transform-scratch-")
    name = transform_executor._TEMP_DIR_IN_TRANSFORM_OUTPUT  # pylint: disable=protected-access
    # TFX joins this name onto the output URI; os.path.join keeps an absolute last part alone.
    transform_executor._TEMP_DIR_IN_TRANSFORM_OUTPUT = scratch  # pylint: disable=protected-access
    try:
        yield
    finally:
        transform_executor._TEMP_DIR_IN_TRANSFORM_OUTPUT = name  # pylint: disable=protected-access
        shutil.rmtree(scratch, ignore_errors=True)


class LocalScratch:
    """Executor mixin: TFX's Transform `Do` under `local_scratch`."""

    def Do(self, input_dict, output_dict, exec_properties):  # pylint: disable=invalid-name
        output = artifact_utils.get_single_uri(output_dict[standard_component_specs.TRANSFORM_GRAPH_KEY])
        with local_scratch(output, self._beam_pipeline_args):
            return super().Do(input_dict, output_dict, exec_properties)
