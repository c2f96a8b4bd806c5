"""A local model server speaking TensorFlow Serving's REST API (Starlette + Uvicorn).

    python -m serving.server --model_base_path work/serving/rankloss-tfx [--model_name rankloss]
    python -m serving.server --model bce=/models/bce --model pair=/models/pair --rest_api_port 8501

Endpoints (as TF Serving's, https://www.tensorflow.org/tfx/serving/api_rest):
- `GET  /v1/models/{name}[/versions/{v}]`            model version status
- `GET  /v1/models/{name}[/versions/{v}]/metadata`   signature defs
- `POST /v1/models/{name}[/versions/{v}]:predict`    `instances` or `inputs`, optional `signature_name`
Errors return `{"error": "..."}` with a 4xx status, and the server keeps serving. The newest version
under each base path is served; new versions pushed there are picked up every
`--file_system_poll_wait_seconds`. Binds 127.0.0.1 unless `--host` says otherwise.
"""
import argparse
import contextlib
import json
import os
import re
import threading
from typing import Dict, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from starlette.applications import Starlette  # pylint: disable=g-import-not-at-top
from starlette.concurrency import run_in_threadpool  # pylint: disable=g-import-not-at-top
from starlette.requests import Request  # pylint: disable=g-import-not-at-top
from starlette.responses import JSONResponse  # pylint: disable=g-import-not-at-top
from starlette.routing import Route  # pylint: disable=g-import-not-at-top
import uvicorn  # pylint: disable=g-import-not-at-top

from serving import rest_codec, signatures  # pylint: disable=g-import-not-at-top
from serving.model_store import ModelStore  # pylint: disable=g-import-not-at-top

DEFAULT_MAX_REQUEST_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_BATCH_SIZE = 10_000
_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+))?"
                   r"(?P<labels>/labels/[^/:]+)?(?P<suffix>:[a-z]+|/metadata)?$")


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise rest_codec.RequestError(f"request body of {declared} bytes exceeds this server's limit of "
                                      f"{limit} bytes (--max_request_bytes)", 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise rest_codec.RequestError(f"request body exceeds this server's limit of {limit} bytes "
                                          "(--max_request_bytes)", 413)
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(store: ModelStore, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
               max_batch_size: int = DEFAULT_MAX_BATCH_SIZE, poll_seconds: float = 0.0) -> Starlette:
    """The ASGI app over `store` (already refreshed); polls the base paths when `poll_seconds` > 0."""

    def status(name: str, version: Optional[int]) -> Dict:
        versions = [store.get(name, version).version] if version is not None else store.loaded_versions(name)
        if not versions:
            store.get(name)  # raises the not-found error naming the base path
        return {"model_version_status": [{"version": str(v), "state": "AVAILABLE",
                                          "status": {"error_code": "OK", "error_message": ""}} for v in versions]}

    def metadata(name: str, version: Optional[int]) -> Dict:
        servable = store.get(name, version)
        defs = {sig: servable.signature_def(sig) for sig in servable.signatures}
        return {"model_spec": {"name": name, "signature_name": "", "version": str(servable.version)},
                "metadata": {"signature_def": {"signature_def": defs}}}

    def predict(name: str, version: Optional[int], body: bytes) -> Dict:
        servable = store.get(name, version)
        try:
            request = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise rest_codec.RequestError(f"malformed JSON request: {error}") from None
        signature_name = (request.get("signature_name") if isinstance(request, dict) else None) or \
            signatures.DEFAULT_SIGNATURE
        if signature_name not in servable.signatures:
            raise rest_codec.RequestError(f"serving signature name {signature_name!r} not found in the signature "
                                          f"defs of model {name!r}; available: {sorted(servable.signatures)}")
        tensors, row_format = rest_codec.decode(request, servable.inputs(signature_name),
                                                servable.missing_values(signature_name), max_batch_size)
        return rest_codec.encode(servable.signatures[signature_name](**tensors), row_format)

    async def handle(request: Request) -> JSONResponse:
        match = _PATH.match(request.url.path)
        try:
            if not match or match["labels"]:
                raise rest_codec.RequestError(
                    f"unknown path {request.url.path}; expected /v1/models/NAME[/versions/N][:predict|/metadata]"
                    + (" (version labels are not configured on this server)" if match else ""), 404)
            name, suffix = match["name"], match["suffix"]
            version = None
            if match["version"] is not None:
                if not match["version"].isdigit():
                    raise rest_codec.RequestError(f"version must be a positive integer, got {match['version']!r}")
                version = int(match["version"])
            if suffix == ":predict":
                if request.method != "POST":
                    raise rest_codec.RequestError(":predict takes POST", 405)
                body = await _read_body(request, max_request_bytes)
                return JSONResponse(await run_in_threadpool(predict, name, version, body))
            if suffix in (":classify", ":regress"):
                raise rest_codec.RequestError(f"{suffix[1:]} is not served: this model's signatures are predict "
                                              "signatures; use :predict")
            if suffix not in (None, "/metadata"):
                raise rest_codec.RequestError(f"unknown method {suffix}; expected :predict", 404)
            if request.method != "GET":
                raise rest_codec.RequestError("model status and metadata take GET", 405)
            return JSONResponse(status(name, version) if suffix is None else metadata(name, version))
        except rest_codec.RequestError as error:
            return _error(str(error), error.status)

    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(poll_seconds):
            store.refresh()

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette):
        if poll_seconds > 0:
            threading.Thread(target=poll, name="version-poller", daemon=True).start()
        yield
        stop.set()

    return Starlette(routes=[Route("/v1/models/{path:path}", handle, methods=["GET", "POST", "PUT", "DELETE"])],
                     lifespan=lifespan)


def parse_models(args: argparse.Namespace) -> Dict[str, str]:
    models = {}
    for spec in args.model or []:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--model must be NAME=BASE_PATH, got {spec!r}")
        models[name] = os.path.abspath(path)
    if args.model_base_path:
        models[args.model_name] = os.path.abspath(args.model_base_path)
    if not models:
        raise SystemExit("nothing to serve: give --model_base_path DIR or --model NAME=DIR")
    return models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_name", default="rankloss", help="name for --model_base_path (TF Serving's flag)")
    parser.add_argument("--model_base_path", help="directory of numbered SavedModel versions (the Pusher's)")
    parser.add_argument("--model", action="append", help="NAME=BASE_PATH; repeatable, to serve several models")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback only)")
    parser.add_argument("--rest_api_port", type=int, default=8501)
    parser.add_argument("--max_request_bytes", type=int, default=DEFAULT_MAX_REQUEST_BYTES)
    parser.add_argument("--max_batch_size", type=int, default=DEFAULT_MAX_BATCH_SIZE,
                        help="most examples in one request")
    parser.add_argument("--num_versions", type=int, default=1, help="newest versions kept loaded per model")
    parser.add_argument("--file_system_poll_wait_seconds", type=float, default=2.0,
                        help="how often to look for new versions; 0 disables")
    args = parser.parse_args()
    store = ModelStore(parse_models(args), args.num_versions)
    store.refresh()
    for name, base_path in store.base_paths.items():
        if not store.loaded_versions(name):
            raise SystemExit(f"model {name!r}: no SavedModel version under {base_path} "
                             "(expected <base_path>/<version>/saved_model.pb, as the Pusher writes)")
    app = create_app(store, args.max_request_bytes, args.max_batch_size, args.file_system_poll_wait_seconds)
    print(f"[serving] TF Serving REST API on http://{args.host}:{args.rest_api_port}/v1/models/"
          f"{{{','.join(store.base_paths)}}}", flush=True)
    uvicorn.run(app, host=args.host, port=args.rest_api_port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
