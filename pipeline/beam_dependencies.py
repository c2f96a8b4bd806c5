"""What the Beam steps' workers need installed, when they run on this machine: nothing more.

TFX's Beam executors, given Beam arguments that name no dependency for the workers (`--extra_packages`,
`--setup_file`, `--requirements_file`, `--sdk_container_image`), copy TFX's installed tree (48 MB) to a
new temporary folder, build an sdist of it there and add it as `--extra_package`, for remote workers
that lack TFX (`tfx.utils.dependency_utils.make_beam_dependency_flags`, in `BaseBeamExecutor.__init__`).
Under the DirectRunner every worker is this process or one started from this environment, so nothing
installs that package: it cost 0.9-1.6 s in each of the pipeline's Beam components and left 48 MB in
`$TMPDIR` each time. In a container the pipeline names its image (`--sdk_container_image`,
pipeline/kubeflow_v2_runner.py) and TFX builds nothing either; any other runner keeps TFX's behaviour.
"""
import contextlib
from typing import Iterator, Sequence

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from tfx.utils import dependency_utils

_DIRECT_RUNNERS = (None, "DirectRunner", "SwitchingDirectRunner", "BundleBasedDirectRunner")


def runs_on_this_machine(beam_pipeline_args: Sequence[str]) -> bool:
    """True when the Beam arguments select a DirectRunner (the default when they name no runner)."""
    return PipelineOptions(list(beam_pipeline_args)).view_as(StandardOptions).runner in _DIRECT_RUNNERS


@contextlib.contextmanager
def no_tfx_sdist_for_local_workers(beam_pipeline_args: Sequence[str]) -> Iterator[None]:
    """Within, TFX's Beam executors keep `beam_pipeline_args` as they are, without building TFX's sdist,
    when those arguments select a DirectRunner."""
    if not runs_on_this_machine(beam_pipeline_args):
        yield
        return
    make_flags = dependency_utils.make_beam_dependency_flags
    dependency_utils.make_beam_dependency_flags = list
    try:
        yield
    finally:
        dependency_utils.make_beam_dependency_flags = make_flags
