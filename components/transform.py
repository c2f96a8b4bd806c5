"""Transform: TFX's analysis read a file at a time, its scratch files on local disk when they can be, and
the transformed examples written a file at a time.

For Examples artifacts of gzipped `tf.Example` TFRecords (what ImportExampleGen writes), the executor
1. runs TFX's executor without the `transformed_examples` output, so TFX does the analysis alone and
   writes the transform graph, reading its input with the file-at-a-time reader parsed in TensorFlow
   (components/file_reads.py);
2. then writes the transformed examples itself (`materialize.materialize`), at least `output_files` files per
   split when its `custom_config` says so (TransformConfig.output_files).
Other inputs go through TFX's executor as they are.

Scratch files: TFX keeps tf.Transform's temporary files (each analyzer's vocabulary files, the
intermediate SavedModels it writes, reloads and copies) under the output, in `<transform_graph>/.temp_path`.
With the pipeline root on object storage each of those small-file operations is one or more requests, most
of Transform's requests in the S3 flow test. Under the DirectRunner every Beam worker is a thread or a
process of this machine, so `local_scratch` puts them on local disk (under `tempfile.gettempdir()`, a
guarded patch, runtime/patches.py); the finished transform graph and the transformed examples are written
to the output as before. Any other runner (Dataflow, a portable job service, whose SDK workers may be
elsewhere) keeps TFX's path, which every worker can reach, and so does a local pipeline root.
"""
import contextlib
import json
import shutil
import tempfile
from typing import Iterator, Sequence

from tfx import components
from tfx.components.transform import executor as transform_executor, executor_utils
from tfx.dsl.components.base import executor_spec
from tfx.types import artifact_utils, standard_component_specs as specs

from components import file_reads, materialize
from components.local_beam import runs_on_this_machine
from runtime import object_storage, patches


@contextlib.contextmanager
def local_scratch(transform_output: str, beam_pipeline_args: Sequence[str]) -> Iterator[None]:
    """Within, TFX's Transform executor puts its scratch files in a new local directory, removed after,
    when `transform_output` is on object storage and the Beam job runs on this machine."""
    if not (object_storage.is_object_store(transform_output) and runs_on_this_machine(beam_pipeline_args)):
        yield
        return
    scratch = tempfile.mkdtemp(prefix="transform-scratch-")
    try:
        # TFX joins this name onto the output URI; os.path.join keeps an absolute last part alone.
        with patches.patched(patches.TRANSFORM_SCRATCH, lambda _: scratch):
            yield
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


class Executor(transform_executor.Executor):
    """TFX's Transform executor: analysis read a file at a time, output written a file at a time (module
    docstring)."""

    def Do(self, input_dict, output_dict, exec_properties):  # pylint: disable=invalid-name
        examples = input_dict[specs.EXAMPLES_KEY]
        graph_dir = artifact_utils.get_single_uri(output_dict[specs.TRANSFORM_GRAPH_KEY])
        transformed = output_dict.get(specs.TRANSFORMED_EXAMPLES_KEY)
        with local_scratch(graph_dir, self._beam_pipeline_args):
            if not file_reads.gzipped_tf_examples(examples):
                return super().Do(input_dict, output_dict, exec_properties)
            with file_reads.tfx_reads_file_at_a_time(parse_in_tensorflow=True):
                if not transformed:
                    return super().Do(input_dict, output_dict, exec_properties)
                executor_utils.MatchNumberOfTransformedExamplesArtifacts(input_dict, output_dict)
                splits = executor_utils.ResolveSplitsConfig(
                    exec_properties.get(specs.SPLITS_CONFIG_KEY), examples).transform
                executor_utils.SetSplitNames(splits, transformed)
                sources, outputs = materialize.file_jobs_of(examples, transformed, splits)
                analysis_outputs = {k: v for k, v in output_dict.items() if k != specs.TRANSFORMED_EXAMPLES_KEY}
                super().Do(input_dict, analysis_outputs, exec_properties)
        custom_config = json.loads(exec_properties.get(specs.CUSTOM_CONFIG_KEY) or "null") or {}
        materialize.materialize(self._make_beam_pipeline(), graph_dir, sources, outputs,
                                int(custom_config.get("output_files") or 1))
        return None


class Transform(components.Transform):
    """TFX's Transform (its id, outputs and ML Metadata) running `Executor`."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
