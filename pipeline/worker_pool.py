"""Beam's external pool of SDK workers, listening on loopback only.

    python -m pipeline.worker_pool --port PORT

The pool starts an SDK worker for any job that asks, unauthenticated. Beam 2.59's
`worker_pool_main` binds it to every interface (`[::]:PORT`) and takes no address, so this entry point
serves Beam's own servicer (`BeamFnExternalWorkerPoolServicer`, workers as subprocesses, as
`worker_pool_main` runs it) on 127.0.0.1 alone.
"""
import argparse
import atexit
import time
from typing import Optional, Sequence

import grpc
from apache_beam.portability.api import beam_fn_api_pb2_grpc
from apache_beam.runners.worker import worker_pool_main
from apache_beam.utils import thread_pool_executor

LOOPBACK = "127.0.0.1"


def serve(port: int) -> grpc.Server:
    """Starts the pool on LOOPBACK:`port`; its workers are killed when this process exits."""
    server = grpc.server(thread_pool_executor.shared_unbounded_instance(),
                         options=[("grpc.http2.max_pings_without_data", 0), ("grpc.http2.max_ping_strikes", 0)])
    if not server.add_insecure_port(f"{LOOPBACK}:{port}"):
        raise OSError(f"the worker pool cannot listen on {LOOPBACK}:{port}")
    pool = worker_pool_main.BeamFnExternalWorkerPoolServicer(use_process=True)
    beam_fn_api_pb2_grpc.add_BeamFnExternalWorkerPoolServicer_to_server(pool, server)
    server.start()
    workers = pool._worker_processes  # pylint: disable=protected-access  (as worker_pool_main's own start does)
    atexit.register(lambda: [worker_pool_main.kill_process_gracefully(p) for p in workers.values()])
    return server


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True, help=f"port on {LOOPBACK} to listen on")
    args = parser.parse_args(argv)
    server = serve(args.port)
    print(f"worker pool listening on {LOOPBACK}:{args.port}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop(0)


if __name__ == "__main__":
    main()
