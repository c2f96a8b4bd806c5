"""Serving latency and throughput of a BCE- and a Combined-Pair-trained model, side by side.

    scripts/demo.sh                              # once: the pipeline, its pushed BCE model
    python -m benchmarks.serving_latency [--output-root work] [--seconds 3] [--load-seconds 30]

Trains a Combined-Pair model (α 0.7) with the demo's settings on the demo's Transform output (one
epoch: serving cost does not depend on the weights), starts `serving.server` with both models on
loopback, and sends real test-split `tf.Example`s (`serving_default`, base64 JSON): single-example
and batch-256 requests at 1, 8 and 32 concurrent clients, BCE and Combined-Pair alternating in
every cell. Prints p50/p99 latency, throughput and the CP/BCE ratios; the server's p50 over calling
the SavedModel in-process; then a load run (32 clients, `--load-seconds`) that counts errors.
"""
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Sequence, Tuple

import numpy as np
import tensorflow as tf

from benchmarks import common, results as results_lib
from pipeline import results
from settings import configs, flags
from transforms import splits
from serving import contract, model_store
from serving.client import ServingClient
from trainer import outside_pipeline

CONCURRENCY = (1, 8, 32)
BATCH_SIZES = (1, 256)


def held_out_examples(config: configs.PipelineConfig, count: int) -> List[bytes]:
    """The first `count` raw test-split examples the pipeline's ExampleGen wrote."""
    try:
        examples = results.latest_output(config, results.EXAMPLE_GEN, "examples")
    except FileNotFoundError as missing:
        sys.exit(f"{missing}")
    files = tf.io.gfile.glob(os.path.join(examples, splits.split_dir_name("test"), "*"))
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").take(count)
    return list(dataset.as_numpy_iterator())


def run_clients(url: str, model: str, payloads: Sequence[Sequence[bytes]], clients: int,
                seconds: float) -> Tuple[List[float], int, int]:
    """(latencies in s of the answered requests, requests, errors) of `clients` threads each sending
    requests for `seconds`; a request that fails or gets no answer counts as an error, never as a latency."""
    latencies: List[float] = []
    counts = {"requests": 0, "errors": 0}
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def worker(offset: int) -> None:
        client, mine, i = ServingClient(url, model), [], offset
        errors = 0
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            try:
                client.predict_examples(payloads[i % len(payloads)])
                mine.append(time.perf_counter() - start)
            except Exception:  # pylint: disable=broad-except
                errors += 1
            i += 1
        with lock:
            latencies.extend(mine)
            counts["requests"] += len(mine) + errors
            counts["errors"] += errors

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, counts["requests"], counts["errors"]


def summary(latencies: List[float], errors: int, seconds: float, batch: int) -> Dict[str, float]:
    """p50 / p99 latency and throughput of the answered requests, with the count of failed ones."""
    answered = latencies or [float("nan")]
    return {"p50_ms": 1e3 * float(np.percentile(answered, 50)), "p99_ms": 1e3 * float(np.percentile(answered, 99)),
            "examples_per_s": len(latencies) * batch / seconds, "errors": errors}


def errors_note(cells: Dict[str, Dict[str, float]]) -> str:
    """'' when no request failed, else a warning naming each model's failed requests."""
    failed = {name: int(cell["errors"]) for name, cell in cells.items() if cell["errors"]}
    return ("  <- FAILED REQUESTS: " + ", ".join(f"{n} {c}" for n, c in failed.items())) if failed else ""


def _in_process_p50(export_dir: str, payloads: Sequence[Sequence[bytes]], seconds: float) -> float:
    function = tf.saved_model.load(export_dir).signatures[contract.DEFAULT_SIGNATURE]
    latencies, deadline, i = [], time.perf_counter() + seconds, 0
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        function(examples=tf.constant(list(payloads[i % len(payloads)])))["probabilities"].numpy()
        latencies.append(time.perf_counter() - start)
        i += 1
    return 1e3 * statistics.median(latencies)


def start_server(models: Dict[str, str], poll_seconds: float = 0.0, log=subprocess.DEVNULL
                 ) -> Tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "serving.server", "--rest_api_port", str(port),
               "--file_system_poll_wait_seconds", str(poll_seconds), "--max_request_bytes", str(64 << 20)]
    command += [f"--model={name}={path}" for name, path in models.items()]
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT if log is not subprocess.DEVNULL else log)
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            ServingClient(url, next(iter(models))).status()
            return proc, url
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.5)
    proc.kill()
    sys.exit("the model server did not start")


def main() -> None:
    parser = flags.StrictParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-root", default=configs.PipelineConfig().output_root)
    parser.add_argument("--seconds", type=float, default=3.0, help="per model per cell per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--load-seconds", type=float, default=30.0)
    args = parser.parse_args()
    config = configs.PipelineConfig(output_root=os.path.abspath(args.output_root))
    bce_versions = model_store.versions_on_disk(config.serving_root)
    if not bce_versions:
        sys.exit(f"no pushed model under {config.serving_root}: run scripts/demo.sh first")
    work = tempfile.mkdtemp(prefix="serving-bench-")
    try:
        settings = configs.TrainerSettings.from_pipeline_config(config)
        settings.loss = configs.LossConfig(name="combined_pair", alpha=0.7)
        settings.train.epochs = 1
        pair_export = outside_pipeline.train_and_export(results.latest_transform_output(config), settings,
                                                       os.path.join(work, "train"))
        shutil.copytree(pair_export, os.path.join(work, "pair", "1"))
        models = {"bce": config.serving_root, "pair": os.path.join(work, "pair")}
        examples = held_out_examples(config, 256 * 8)
        payloads = {1: [[e] for e in examples[:256]],
                    256: [examples[i:i + 256] for i in range(0, len(examples) - 255, 256)]}
        proc, url = start_server(models)
        run, cells, in_process = results_lib.Run("serving_latency"), [], []
        try:
            print(common.machine_line())
            print(f"server: serving.server on {url}; BCE = pushed version {bce_versions[0]}, CP = α 0.7, 1 epoch; "
                  f"{args.rounds} rounds × {args.seconds:g} s per model per cell")
            print(f"\n  {'batch':>5} {'clients':>7} | {'BCE p50':>8} {'p99':>7} {'ex/s':>8} {'err':>4} | "
                  f"{'CP p50':>8} {'p99':>7} {'ex/s':>8} {'err':>4} | {'CP/BCE p50':>10} {'p99':>6} {'ex/s':>6}")
            for batch in BATCH_SIZES:
                for clients in CONCURRENCY:
                    latencies, errors = {"bce": [], "pair": []}, {"bce": 0, "pair": 0}
                    for name in latencies:  # untimed: opens the connections and warms the server threads
                        run_clients(url, name, payloads[batch], clients, 0.5)
                    for _ in range(args.rounds):
                        for name in latencies:
                            answered, _, failed = run_clients(url, name, payloads[batch], clients, args.seconds)
                            latencies[name] += answered
                            errors[name] += failed
                    s = {n: summary(v, errors[n], args.seconds * args.rounds, batch) for n, v in latencies.items()}
                    ratio = {k: s["pair"][k] / s["bce"][k] for k in ("p50_ms", "p99_ms", "examples_per_s")}
                    print(f"  {batch:>5} {clients:>7} | {s['bce']['p50_ms']:8.2f} {s['bce']['p99_ms']:7.2f} "
                          f"{s['bce']['examples_per_s']:8.0f} {s['bce']['errors']:4d} | {s['pair']['p50_ms']:8.2f} "
                          f"{s['pair']['p99_ms']:7.2f} {s['pair']['examples_per_s']:8.0f} {s['pair']['errors']:4d} | "
                          f"{ratio['p50_ms']:10.3f} {ratio['p99_ms']:6.3f} {ratio['examples_per_s']:6.3f}"
                          + errors_note(s))
                    cells.append([batch, clients, s["bce"]["p50_ms"], s["bce"]["p99_ms"], s["bce"]["examples_per_s"],
                                  s["bce"]["errors"], s["pair"]["p50_ms"], s["pair"]["p99_ms"],
                                  s["pair"]["examples_per_s"], s["pair"]["errors"], ratio["p50_ms"]])
            print("\n  server p50 / in-process p50 (1 client):")
            bce_dir = os.path.join(config.serving_root, str(bce_versions[0]))
            for batch in BATCH_SIZES:
                answered, _, failed = run_clients(url, "bce", payloads[batch], 1, args.seconds)
                served = summary(answered, failed, args.seconds, batch)
                local = _in_process_p50(bce_dir, payloads[batch], args.seconds)
                print(f"  batch {batch:>3}: server {served['p50_ms']:.2f} ms, in-process {local:.2f} ms, "
                      f"ratio {served['p50_ms'] / local:.2f}" + errors_note({"bce": served}))
                in_process.append([batch, served["p50_ms"], local, served["p50_ms"] / local])
            latencies, requests, errors = run_clients(url, "bce", payloads[1], 32, args.load_seconds)
            print(f"\n  load: 32 clients × {args.load_seconds:g} s, single examples: {requests} requests, "
                  f"{errors} errors, {requests / args.load_seconds:.0f} req/s, "
                  f"p50 {1e3 * np.percentile(latencies, 50):.1f} ms, p99 {1e3 * np.percentile(latencies, 99):.1f} ms")
            run.table(f"REST latency, BCE (pushed) and Combined-Pair models, {args.rounds} rounds × {args.seconds:g} s "
                      "per model per cell", ["batch", "clients", "BCE p50 ms", "BCE p99 ms", "BCE ex/s", "BCE errors",
                                             "CP p50 ms", "CP p99 ms", "CP ex/s", "CP errors", "CP/BCE p50"], cells,
                      "The serving graph is the same whatever loss trained it, so CP/BCE should be about 1.")
            run.table("server p50 against the SavedModel called in-process (1 client)",
                      ["batch", "server p50 ms", "in-process p50 ms", "ratio"], in_process)
            run.table(f"load: 32 clients × {args.load_seconds:g} s, single examples",
                      ["requests", "errors", "req/s", "p50 ms", "p99 ms"],
                      [[requests, errors, requests / args.load_seconds, 1e3 * float(np.percentile(latencies, 50)),
                        1e3 * float(np.percentile(latencies, 99))]])
            run.save()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
