"""Soak test of the REST server through an operator's day: pushes, a broken version, a roll-back.

    scripts/demo.sh                                  # once: a pushed model and test-split TFRecords
    python -m benchmarks.serving_soak [--clients 32] [--seconds 60]

Serves a copy of the demo's pushed model as version 1 on loopback (polling every 0.5 s) while
`--clients` threads send single test-split examples for `--seconds`. A quarter of the way in, version
2 is pushed (copied under a temporary name, then renamed, as an operator should); halfway, a broken
version 3 (a garbage `saved_model.pb`) is dropped in; at three quarters, version 2 is deleted (a
roll-back). Every request must succeed, and every answer must come from a loaded version: 1 or 2, never
3; once version 1 has answered after the roll-back (it is swapped in when it has loaded and answered a
warm-up request, version 2 serving until then), no request sent later may be answered by version 2.
Exits non-zero otherwise.
"""
import base64
import collections
import http.client
import json
import os
import shutil
import tempfile
import threading
import time
from typing import Dict, List, Tuple

from benchmarks import common, results as results_lib
from benchmarks.serving_latency import start_server, held_out_examples
from serving.server import VERSION_HEADER
from serving import model_store
from settings import configs, flags


def _operator(base: str, seconds: float, events: List[str], log: Dict[str, float]) -> None:
    """The pushes, the broken version and the roll-back, at fixed fractions of the run."""
    start = time.perf_counter()

    def at(fraction: float) -> None:
        time.sleep(max(0.0, start + fraction * seconds - time.perf_counter()))

    at(0.25)
    shutil.copytree(os.path.join(base, "1"), os.path.join(base, ".tmp-2"))
    os.rename(os.path.join(base, ".tmp-2"), os.path.join(base, "2"))
    log["pushed"] = time.perf_counter()
    events.append(f"{time.perf_counter() - start:5.1f}s pushed version 2 (copy to .tmp-2, rename)")
    at(0.5)
    os.makedirs(os.path.join(base, "3"))
    with open(os.path.join(base, "3", "saved_model.pb"), "w") as f:
        f.write("garbage")
    events.append(f"{time.perf_counter() - start:5.1f}s dropped in a broken version 3")
    at(0.75)
    shutil.rmtree(os.path.join(base, "2"))
    log["rolled_back"] = time.perf_counter()
    events.append(f"{time.perf_counter() - start:5.1f}s deleted version 2 (roll-back)")


def main() -> None:
    parser = flags.StrictParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-root", default=configs.PipelineConfig().output_root)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    config = configs.PipelineConfig(output_root=os.path.abspath(args.output_root))
    pushed = model_store.versions_on_disk(config.serving_root)
    if not pushed:
        raise SystemExit(f"no pushed model under {config.serving_root}: run scripts/demo.sh first")
    examples = held_out_examples(config, 256)
    work = tempfile.mkdtemp(prefix="serving-soak-")
    base = os.path.join(work, "rankloss")
    shutil.copytree(os.path.join(config.serving_root, str(pushed[0])), os.path.join(base, "1"))
    with open(os.path.join(work, "server.log"), "w") as log_file:
        proc, url = start_server({"rankloss": base}, poll_seconds=0.5, log=log_file)
    host, port = url.rsplit("//", 1)[1].split(":")
    answers: List[Tuple[float, float, object, str]] = []  # (sent, received, status, version)
    lock, events, marks = threading.Lock(), [], {}
    deadline = time.perf_counter() + args.seconds

    def client(k: int) -> None:
        connection, i, mine = http.client.HTTPConnection(host, int(port), timeout=30), k, []
        while time.perf_counter() < deadline:
            body = json.dumps({"instances": [{"b64": base64.b64encode(examples[i % len(examples)]).decode("ascii")}]})
            sent = time.perf_counter()
            try:
                connection.request("POST", "/v1/models/rankloss:predict", body=body)
                response = connection.getresponse()
                response.read()
                mine.append((sent, time.perf_counter(), response.status, response.getheader(VERSION_HEADER, "none")))
            except (OSError, http.client.HTTPException) as error:
                mine.append((sent, time.perf_counter(), type(error).__name__, "none"))
                connection.close()
                connection = http.client.HTTPConnection(host, int(port), timeout=30)
            i += args.clients
        with lock:
            answers.extend(mine)

    try:
        operator = threading.Thread(target=_operator, args=(base, args.seconds, events, marks))
        threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
        for thread in [operator] + threads:
            thread.start()
        for thread in [operator] + threads:
            thread.join()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    requests = len(answers)
    failed = sum(status != 200 for _, _, status, _ in answers)
    by_version = dict(sorted(collections.Counter(v for _, _, status, v in answers if status == 200).items()))
    def first_answer(version: str, after: float) -> float:
        return min((received for sent, received, status, v in answers if status == 200 and v == version
                    and sent > after), default=float("inf"))

    pushed, rolled_back = first_answer("2", marks["pushed"]), first_answer("1", marks["rolled_back"])
    wrong = [f"version {v} answered a request sent {sent - marks['rolled_back']:.1f}s after the roll-back"
             for sent, _, status, v in answers if status == 200 and (v == "3" or (v == "2" and sent > rolled_back))]
    with open(os.path.join(work, "server.log")) as f:
        broken_logged = sum("version 3" in line and "is not served" in line for line in f)
    print(common.machine_line())
    print(f"soak: {args.clients} clients × {args.seconds:g} s on {url}, single test-split examples")
    print("\n".join(f"  {e}" for e in events))
    print(f"requests served: {requests}, failed: {failed}, answered by version: {by_version}")
    print(f"push: version 2 answering {pushed - marks['pushed']:.1f}s after it was renamed in")
    print(f"roll-back: version 1 answering {rolled_back - marks['rolled_back']:.1f}s after version 2 was deleted "
          f"(version 2 served until then)")
    print(f"broken version 3 logged {broken_logged} time(s); answers from a wrong version: {len(wrong)}")
    shutil.rmtree(work, ignore_errors=True)
    if failed or wrong or not requests or rolled_back == float("inf"):
        raise SystemExit("soak FAILED: " + "; ".join(wrong[:5]) +
                         f" {collections.Counter(status for _, _, status, _ in answers)}")
    print("soak passed: zero failed requests, every answer from a loaded version")
    run = results_lib.Run("serving_soak")
    run.table(f"{args.clients} clients × {args.seconds:g} s, single test-split examples, while versions are pushed, "
              "rolled back and a broken one is added", ["requests served", "failed", "push: s to answer",
                                                        "roll-back: s to answer", "answers from a wrong version"],
              [[requests, failed, pushed - marks["pushed"], rolled_back - marks["rolled_back"], len(wrong)]])
    run.save()


if __name__ == "__main__":
    main()
