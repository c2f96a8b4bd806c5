"""Object storage: `gs://` and `s3://` paths wherever the pipeline takes a path.

Beam (ingestion, and the Beam stages of StatisticsGen, Transform, Evaluator) opens them with its own
file systems: GCS through `apache-beam[gcp]`, S3 through `apache-beam[aws]` (boto3). TensorFlow opens
them through `tf.io.gfile`: GCS is built in (tensorflow-io-gcs-filesystem), S3 comes from tensorflow-io,
which registers `s3://` when imported (`enable_tensorflow_s3`).

Credentials and the endpoint come from the environment, never from flags, code or logs:
`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (or an instance role), `AWS_REGION`, and for an
S3-compatible store other than AWS, `AWS_ENDPOINT_URL` (e.g. http://minio:9000). boto3 and
tensorflow-io name the endpoint and region differently; `align_s3_environment` fills in each one's
name from the other's, so one set of variables configures both. GCS takes Application Default Credentials.
"""
import os
import sys
import threading
import traceback
import types
from typing import Callable, Dict, Iterable, Sequence, Tuple

OBJECT_STORE_SCHEMES = ("gs://", "s3://")


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
    open, exists, rename or delete): 206 ms each here, 11 s of the local runner's run on 500 rows against
    a local S3 server (py-spy). Idempotent.
    """
    from apache_beam.io.aws.clients.s3 import boto3_client  # pylint: disable=import-outside-toplevel

    boto3_client.boto3 = types.SimpleNamespace(session=types.SimpleNamespace(Session=_SharedClientSession))


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


def run_main(main: Callable[[], None]) -> None:
    """Runs an entry point's `main`, then ends the process without interpreter teardown, with the status
    it would have had: 0, a `SystemExit`'s code (its message printed), or 1 after an uncaught exception.

    Two native libraries abort in their static destructors at exit after correct work: TF 2.16's
    `AtomicFunction.__del__` raises at shutdown, and tensorflow-io 0.37.1's S3 file system calls a pure
    virtual method once S3 was used (status 134; tensorflow/io#2039, fixed upstream after 0.37.1, the
    last release for TF 2.16). Entry points that run TensorFlow end through this instead.
    """
    try:
        main()
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 0 if stop.code is None else 1
        if not isinstance(stop.code, (int, type(None))):
            print(stop.code, file=sys.stderr)
    except BaseException:  # pylint: disable=broad-except
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # pylint: disable=protected-access
