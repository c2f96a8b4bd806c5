"""A local model server speaking TensorFlow Serving's REST API (Starlette + Uvicorn).

    python -m serving.server --model_base_path work/serving/rankloss-tfx [--model_name rankloss]
    python -m serving.server --model bce=/models/bce --model pair=/models/pair --rest_api_port 8501

Endpoints (as TF Serving's, https://www.tensorflow.org/tfx/serving/api_rest):
- `GET  /v1/models/{name}[/versions/{v}]`            model version status
- `GET  /v1/models/{name}[/versions/{v}]/metadata`   signature defs
- `POST /v1/models/{name}[/versions/{v}]:predict`    `instances` or `inputs`, optional `signature_name`
Errors return `{"error": "..."}` with a 4xx status, and the server keeps serving; an unexpected failure
returns a JSON 500 with a request id, under which the server logs the traceback. The newest version
under each base path that loads and answers is served (serving/model_store.py); versions pushed or
deleted there are picked up every `--file_system_poll_wait_seconds`. A prediction's `X-Model-Version`
header names the version that computed it. Binds 127.0.0.1 unless `--host` says otherwise.
"""
import argparse
import contextlib
import logging
import os
import re
import threading
import traceback
import uuid
from typing import Awaitable, Callable, Dict, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from starlette.applications import Starlette  # pylint: disable=g-import-not-at-top
from starlette.concurrency import run_in_threadpool  # pylint: disable=g-import-not-at-top
from starlette.convertors import Convertor, register_url_convertor  # pylint: disable=g-import-not-at-top
from starlette.exceptions import HTTPException  # pylint: disable=g-import-not-at-top
from starlette.requests import Request  # pylint: disable=g-import-not-at-top
from starlette.responses import JSONResponse  # pylint: disable=g-import-not-at-top
from starlette.routing import Route  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top
import uvicorn  # pylint: disable=g-import-not-at-top

from serving import contract, rest_codec  # pylint: disable=g-import-not-at-top
from serving.model_store import ModelStore  # pylint: disable=g-import-not-at-top
from settings import flags
from runtime import object_storage, process  # pylint: disable=g-import-not-at-top

DEFAULT_MAX_REQUEST_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_BATCH_SIZE = 10_000
VERSION_HEADER = "X-Model-Version"  # on every prediction: the version that computed it
_LOG = logging.getLogger("serving.server")


class _PathSegment(Convertor):
    """A model name or version: one path segment without ':' (which starts a method, as in `:predict`)."""

    regex = "[^/:]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("segment", _PathSegment())


async def model_status(request: Request, name: str, version: Optional[str] = None) -> Dict:
    """TF Serving's version status: AVAILABLE versions, and versions that failed to load (END, with the error)."""
    store: ModelStore = request.app.state.store
    states = store.version_states(name)
    if version is not None:
        number = rest_codec.parse_version(version)
        states = [s for s in states if s["version"] == str(number)]
        if not states:
            store.get(name, number)  # raises the not-found error naming the loaded versions
    if not states:
        store.get(name)  # raises the not-found error naming the base path
    return {"model_version_status": states}


async def model_metadata(request: Request, name: str, version: Optional[str] = None) -> Dict:
    servable = request.app.state.store.get(name, rest_codec.parse_version(version))
    defs = {sig: servable.signature_def(sig) for sig in servable.signatures}
    return {"model_spec": {"name": name, "signature_name": "", "version": str(servable.version)},
            "metadata": {"signature_def": {"signature_def": defs}}}


async def predict(request: Request, name: str, version: Optional[str] = None) -> Dict:
    state = request.app.state
    body = await rest_codec.read_body(request, state.max_request_bytes)
    servable = state.store.get(name, rest_codec.parse_version(version))
    request.state.model_version = servable.version

    def run() -> Dict:  # decoding and the model call run off the event loop
        parsed, signature_name = rest_codec.parse_predict_request(body, servable.signatures,
                                                                  contract.DEFAULT_SIGNATURE, name)
        tensors, row_format = rest_codec.decode(parsed, servable.inputs(signature_name),
                                                servable.missing_values(signature_name), state.max_batch_size)
        try:
            outputs = servable.signatures[signature_name](**tensors)
        except tf.errors.InvalidArgumentError as error:  # e.g. bytes that are no tf.Example, as TF Serving says
            raise rest_codec.RequestError(f"Could not parse example input: {error.message.splitlines()[0]}") from None
        return rest_codec.encode(outputs, row_format)

    return await run_in_threadpool(run)


MODEL, VERSION = "/v1/models/{name:segment}", "/v1/models/{name:segment}/versions/{version:segment}"
# TF Serving's REST API (https://www.tensorflow.org/tfx/serving/api_rest): method, path, handler.
ROUTES = [
    ("GET", MODEL, model_status),
    ("GET", VERSION, model_status),
    ("GET", MODEL + "/metadata", model_metadata),
    ("GET", VERSION + "/metadata", model_metadata),
    ("POST", MODEL + ":predict", predict),
    ("POST", VERSION + ":predict", predict),
]


def _json_endpoint(handler: Callable[..., Awaitable[Dict]]) -> Callable[[Request], Awaitable[JSONResponse]]:
    async def endpoint(request: Request) -> JSONResponse:
        body = await handler(request, **request.path_params)
        version = getattr(request.state, "model_version", None)  # which version answered a predict
        return JSONResponse(body, headers={VERSION_HEADER: str(version)} if version is not None else None)
    return endpoint


_UNSERVED_METHOD = re.compile(r":(classify|regress)$")


async def _request_error(_: Request, error: rest_codec.RequestError) -> JSONResponse:
    return JSONResponse({"error": str(error)}, status_code=error.status)


async def _http_error(request: Request, error: HTTPException) -> JSONResponse:
    """404 and 405 from the router, as TF Serving's JSON errors naming what the server expects."""
    path = request.url.path
    if error.status_code == 405:
        message = f"{path} takes {error.headers.get('Allow', '')}"
    elif _UNSERVED_METHOD.search(path):
        message = (f"{_UNSERVED_METHOD.search(path).group(1)} is not served: this model's signatures are predict "
                   "signatures; use :predict")
        return JSONResponse({"error": message}, status_code=400)
    else:
        message = (f"unknown path {path}; expected /v1/models/NAME[/versions/N][:predict|/metadata]"
                   + (" (version labels are not configured on this server)" if "/labels/" in path else ""))
    return JSONResponse({"error": message}, status_code=error.status_code, headers=error.headers)


def _unexpected_error(request: Request, error: Exception) -> JSONResponse:
    """Any failure no other handler takes: logged with a request id, answered as a JSON 500 naming that id."""
    request_id = uuid.uuid4().hex
    _LOG.error("request %s (%s %s) failed:\n%s", request_id, request.method, request.url.path,
               "".join(traceback.format_exception(type(error), error, error.__traceback__)))
    return JSONResponse({"error": f"internal server error; the server's log has the details under request id "
                                  f"{request_id}", "request_id": request_id}, status_code=500)


def create_app(store: ModelStore, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
               max_batch_size: int = DEFAULT_MAX_BATCH_SIZE, poll_seconds: float = 0.0) -> Starlette:
    """The ASGI app over `store` (already refreshed); polls the base paths when `poll_seconds` > 0."""
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

    routes = [Route(path, _json_endpoint(handler), methods=[method]) for method, path, handler in ROUTES]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={rest_codec.RequestError: _request_error, HTTPException: _http_error,
                                        Exception: _unexpected_error})
    app.state.store, app.state.max_request_bytes, app.state.max_batch_size = store, max_request_bytes, max_batch_size
    return app


def _absolute(path: str) -> str:
    return path if object_storage.is_object_store(path) else os.path.abspath(path)


def parse_models(args: argparse.Namespace) -> Dict[str, str]:
    models = {}
    for spec in args.model or []:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--model must be NAME=BASE_PATH, got {spec!r}")
        models[name] = _absolute(path)
    if args.model_base_path:
        models[args.model_name] = _absolute(args.model_base_path)
    if not models:
        raise SystemExit("nothing to serve: give --model_base_path DIR or --model NAME=DIR")
    return models


def main() -> None:
    parser = flags.StrictParser(description=__doc__.split("\n\n")[0])
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
    models = parse_models(args)
    object_storage.enable_tensorflow_s3(models.values())
    store = ModelStore(models, args.num_versions)
    store.refresh()
    for name, base_path in store.base_paths.items():
        if not store.loaded_versions(name):
            raise SystemExit(f"model {name!r}: no SavedModel version under {base_path} loads and answers "
                             "(expected <base_path>/<version>/saved_model.pb, as the Pusher writes; errors above)")
    app = create_app(store, args.max_request_bytes, args.max_batch_size, args.file_system_poll_wait_seconds)
    print(f"[serving] TF Serving REST API on http://{args.host}:{args.rest_api_port}/v1/models/"
          f"{{{','.join(store.base_paths)}}}", flush=True)
    uvicorn.run(app, host=args.host, port=args.rest_api_port, log_level="warning", access_log=False)


if __name__ == "__main__":
    process.run_main(main)
