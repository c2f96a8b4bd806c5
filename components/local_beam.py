"""Whether a Beam step runs on this machine, and what its workers then need installed: nothing more.

TFX's Beam executors, given Beam arguments that name no dependency for the workers (`--extra_packages`,
`--setup_file`, `--requirements_file`, `--sdk_container_image`), build an sdist of TFX's installed tree in
a temporary folder and add it as `--extra_package`, for remote workers that lack TFX
(`tfx.utils.dependency_utils.make_beam_dependency_flags`, in `BaseBeamExecutor.__init__`). Under the
DirectRunner every worker is this process or one started from this environment, so nothing installs that
package: `no_tfx_sdist_for_local_workers` skips it (a guarded patch, runtime/patches.py). In a container
the pipeline names its image (`--sdk_container_image`) and TFX builds nothing either; any other runner
keeps TFX's behaviour.
"""
import contextlib
from typing import Iterator, Sequence

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from runtime import patches

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
    with patches.patched(patches.TFX_SDIST, lambda _: list):
        yield
