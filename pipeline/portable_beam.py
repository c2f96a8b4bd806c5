"""Beam's portable layout on one machine: a job service and an external pool of SDK workers.

    python -m pipeline.portable_beam            # starts both, prints the Beam arguments, waits

Pass the printed arguments to any Beam step (`scripts/demo.sh -- <args>`, `--beam-arg`). The layout is
the one Dataflow and Flink use (the pipeline is submitted to a job server and runs in SDK workers,
other processes), so code that only works in-process fails here first. Both services listen on
loopback only (the worker pool through `pipeline.worker_pool`: Beam's own binds every interface). The
workers inherit this process's environment: `TF_USE_LEGACY_KERAS=1` (set by `settings`) and a
`PYTHONPATH` that reaches the project.
"""
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from typing import Dict, Iterator, List, Optional

from pipeline import worker_pool
from runtime import object_storage


PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_ports(count: int) -> List[int]:
    """`count` distinct loopback ports that are free now: all are bound at once, so none repeats
    (two calls in a row can return the same port once the first socket is closed)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in sockets]


def wait_for_port(port: int, process: subprocess.Popen, log_path: str, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[2]} exited with {process.returncode}; see {log_path}")
        with socket.socket() as s:
            if s.connect_ex(("localhost", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"nothing listens on port {port} after {timeout} s; see {log_path}")


def worker_env() -> Dict[str, str]:
    """The SDK workers' environment: this process's, with the project importable, Keras 2 selected and one
    S3 endpoint and region for boto3 and tensorflow-io (`object_storage.align_s3_environment`)."""
    env = dict(os.environ)
    object_storage.align_s3_environment(env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PROJECT_ROOT, env.get("PYTHONPATH")) if p)
    env["TF_USE_LEGACY_KERAS"] = "1"
    return env


@contextlib.contextmanager
def local_services(log_dir: Optional[str] = None, timeout: float = 60) -> Iterator[List[str]]:
    """Starts a job service and a worker pool on free loopback ports; yields the Beam arguments."""
    log_dir = log_dir or tempfile.mkdtemp(prefix="beam_services_")
    os.makedirs(log_dir, exist_ok=True)
    job_port, pool_port = free_ports(2)
    commands = {"job": ["apache_beam.runners.portability.local_job_service_main", "--port", str(job_port)],
                "pool": ["pipeline.worker_pool", "--port", str(pool_port)]}
    processes = {}
    try:
        for name, command in commands.items():
            log_path = os.path.join(log_dir, f"{name}.log")
            with open(log_path, "w") as log:
                processes[name] = subprocess.Popen([sys.executable, "-m"] + command, env=worker_env(),
                                                   stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(job_port, processes["job"], os.path.join(log_dir, "job.log"), timeout)
        wait_for_port(pool_port, processes["pool"], os.path.join(log_dir, "pool.log"), timeout)
        yield ["--runner=PortableRunner", f"--job_endpoint=localhost:{job_port}",
               "--environment_type=EXTERNAL", f"--environment_config={worker_pool.LOOPBACK}:{pool_port}"]
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            process.wait(timeout=30)


def main() -> None:
    with local_services() as args:
        print(" ".join(args), flush=True)
        print("job service and worker pool running; Ctrl-C stops them", file=sys.stderr, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
