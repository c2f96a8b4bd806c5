"""Object storage: `gs://` and `s3://` paths wherever the pipeline takes a path.

Beam (ingestion, and the Beam stages of StatisticsGen, Transform, Evaluator) opens them with its own
file systems: GCS through `apache-beam[gcp]`, S3 through `apache-beam[aws]` (boto3). TensorFlow opens
them through `tf.io.gfile`: GCS is built in (tensorflow-io-gcs-filesystem), S3 comes from tensorflow-io,
which registers `s3://` when imported (`enable_tensorflow_s3`).

Credentials and the endpoint come from the environment, never from flags, code or logs:
`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (or an instance role), `AWS_REGION`, and for an
S3-compatible store other than AWS, `AWS_ENDPOINT_URL` (e.g. http://minio:9000). boto3 and
tensorflow-io name the endpoint and region differently; `align_s3_environment` fills in each one's
name from the other's, so one set of variables configures both; the entry points call it through
`configure_beam_file_systems` or `enable_tensorflow_s3` before anything opens a path, and Beam's workers
inherit the aligned environment. GCS takes Application Default Credentials.
"""
import os
import threading
import types
from typing import Dict, Iterable, Sequence, Tuple

from runtime import patches
from settings.configs import OBJECT_STORE_SCHEMES


def is_object_store(path: str) -> bool:
    """True for a `gs://` or `s3://` path."""
    return path.startswith(OBJECT_STORE_SCHEMES)


def align_s3_environment(environ=os.environ) -> None:
    """Gives tensorflow-io (`S3_ENDPOINT`, `S3_USE_HTTPS`, `AWS_REGION`) and boto3 (`AWS_ENDPOINT_URL`,
    `AWS_DEFAULT_REGION`) the same endpoint and region, whichever names the user set."""
    endpoint = environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL")
    if endpoint and "S3_ENDPOINT" not in environ:
        environ["S3_ENDPOINT"] = endpoint
    elif environ.get("S3_ENDPOINT") and not endpoint:
        environ["AWS_ENDPOINT_URL_S3"] = environ["S3_ENDPOINT"]
    if environ.get("S3_ENDPOINT", "").startswith("http://"):
        environ.setdefault("S3_USE_HTTPS", "0")
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    if region:
        environ.setdefault("AWS_REGION", region)
        environ.setdefault("AWS_DEFAULT_REGION", region)


def configure_beam_file_systems(beam_args: Sequence[str] = ()) -> None:
    """Lets `FileSystems` calls outside a Beam pipeline open object-store paths: Beam's S3 file system
    takes its client settings from pipeline options (`--s3_*`, else boto3's environment). Also shares
    Beam's S3 clients (`share_beam_s3_clients`)."""
    from apache_beam.io.filesystems import FileSystems  # pylint: disable=import-outside-toplevel
    from apache_beam.options.pipeline_options import PipelineOptions  # pylint: disable=import-outside-toplevel

    align_s3_environment()
    FileSystems.set_options(PipelineOptions(list(beam_args)))
    share_beam_s3_clients()


class _SharedClientSession:
    """Stands in for `boto3.session.Session` in Beam's S3 client wrapper: one client per set of client
    arguments, shared by every call in the process (botocore clients are thread-safe)."""

    _clients: Dict[Tuple, object] = {}
    _lock = threading.Lock()

    def client(self, **kwargs):
        import boto3  # pylint: disable=import-outside-toplevel

        key = tuple(sorted(kwargs.items()))
        with self._lock:
            if key not in self._clients:
                self._clients[key] = boto3.session.Session().client(**kwargs)
            return self._clients[key]


def share_beam_s3_clients() -> None:
    """Has Beam's S3 file system reuse one boto3 client per configuration in this process.

    Beam 2.59 builds a new boto3 session and client for every file-system call (an `S3IO` per match,
    open, exists, rename or delete), most of a small run's time against an S3 server. Idempotent; a
    guarded patch (runtime/patches.py).
    """
    patches.patch_process(patches.BEAM_S3_CLIENTS, lambda _: types.SimpleNamespace(
        session=types.SimpleNamespace(Session=_SharedClientSession)))


def enable_tensorflow_s3(paths: Iterable[str]) -> bool:
    """Registers TensorFlow's `s3://` file system (tensorflow-io) when any of `paths` is on S3.

    TensorFlow Transform and TFMA import tensorflow-io themselves; the processes that may not (the
    local runner's orchestration, the model server) call this with the paths they were given.
    """
    if not any(path.startswith("s3://") for path in paths):
        return False
    align_s3_environment()
    import tensorflow_io  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    return True
