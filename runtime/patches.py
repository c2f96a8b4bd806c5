"""Every replacement of a library's internal symbol, in one place, each guarded by the versions it was written for.

A patch swaps one module attribute of TFX or Beam: for the length of a `with patched(...)` (inside one
executor's `Do`), or for the process (`patch_process`). Before it swaps anything it checks that the
installed distribution is a version the patch was written and tested for (`Patch.versions`, the pins of
requirements.txt) and that the attribute is still there. On any other version it swaps nothing, logs a
warning naming the patch and the versions, and the caller goes on with the library's own behaviour: every
patch here is a speed-up or a saving of requests, never needed for correct results.

`tests/test_patches.py` checks, per patch, that the library still calls the patched symbol and that the
patch has its effect (a counter), and that no module outside this one assigns to a library's attribute.

Why no public extension point serves:
- `TFXIO_READER`: TFX's StatisticsGen, Transform and Evaluator build their readers with
  `tfxio_utils.make_tfxio` and take no reader from outside; the file-at-a-time reader
  (components/file_reads.py) can only reach them through it.
- `TRANSFORM_SCRATCH`: Transform's executor joins this constant onto its output URI for tf.Transform's
  scratch files and passes the result to a `TransformProcessor` it builds itself; no property sets it.
- `TFX_SDIST`: `BaseBeamExecutor.__init__` builds and stages an sdist of TFX unless the Beam arguments
  name a dependency; a DirectRunner needs none, and naming a dependency it would not install would lie.
- `BEAM_S3_CLIENTS`: Beam's S3 file system makes a boto3 session per call through the module's `boto3`
  name; its options take no client.
"""
import contextlib
import dataclasses
import importlib
import importlib.metadata
import logging
from typing import Any, Callable, Iterator, Tuple

_LOG = logging.getLogger(__name__)
_MISSING = object()


@dataclasses.dataclass(frozen=True)
class Patch:
    """One library symbol we replace: `module.attribute` of `distribution` at one of `versions`."""
    module: str
    attribute: str
    distribution: str
    versions: Tuple[str, ...]

    @property
    def symbol(self) -> str:
        return f"{self.module}.{self.attribute}"


TFXIO_READER = Patch("tfx.components.util.tfxio_utils", "make_tfxio", "tfx", ("1.16.0",))
TRANSFORM_SCRATCH = Patch("tfx.components.transform.executor", "_TEMP_DIR_IN_TRANSFORM_OUTPUT", "tfx", ("1.16.0",))
TFX_SDIST = Patch("tfx.utils.dependency_utils", "make_beam_dependency_flags", "tfx", ("1.16.0",))
BEAM_S3_CLIENTS = Patch("apache_beam.io.aws.clients.s3.boto3_client", "boto3", "apache-beam", ("2.59.0",))
PATCHES = (TFXIO_READER, TRANSFORM_SCRATCH, TFX_SDIST, BEAM_S3_CLIENTS)


def installed_version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def applies(patch: Patch) -> bool:
    """Whether `patch` may be applied here; when not, says why in a warning."""
    version = installed_version(patch.distribution)
    if version not in patch.versions:
        _LOG.warning("not patching %s: written for %s %s, found %s; running the library's own code",
                     patch.symbol, patch.distribution, " or ".join(patch.versions), version)
        return False
    if getattr(importlib.import_module(patch.module), patch.attribute, _MISSING) is _MISSING:
        _LOG.warning("not patching %s: %s %s has no such attribute", patch.symbol, patch.distribution, version)
        return False
    return True


@contextlib.contextmanager
def patched(patch: Patch, replacement: Callable[[Any], Any]) -> Iterator[bool]:
    """Within, `patch.symbol` is `replacement(original)`; yields whether it was applied (see `applies`)."""
    if not applies(patch):
        yield False
        return
    module = importlib.import_module(patch.module)
    original = getattr(module, patch.attribute)
    setattr(module, patch.attribute, replacement(original))
    try:
        yield True
    finally:
        setattr(module, patch.attribute, original)


_PROCESS_PATCHES = {}


def patch_process(patch: Patch, replacement: Callable[[Any], Any]) -> bool:
    """Sets `patch.symbol` to `replacement(original)` for the rest of the process, once; whether it applies."""
    if patch in _PROCESS_PATCHES:
        return True
    if not applies(patch):
        return False
    module = importlib.import_module(patch.module)
    _PROCESS_PATCHES[patch] = getattr(module, patch.attribute)
    setattr(module, patch.attribute, replacement(_PROCESS_PATCHES[patch]))
    return True
