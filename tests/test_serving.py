"""The REST server over real HTTP on loopback: TF Serving's API, both signatures, errors, the client."""
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from settings import configs
from transforms import rows
from serving import contract
from serving.client import ServingClient
from transforms import features
from tests.helpers import ROOT, SERVING_ROWS, copy_in_atomically, http, project_env, raw_examples, running_server, versioned

pytestmark = pytest.mark.e2e  # runs the pipeline, a server or a trainer end to end


@pytest.fixture(scope="module")
def server(demo_run, exported_by_loss, tmp_path_factory):
    """The server CLI on loopback serving the demo's pushed model plus a BCE and a Combined-Pair model."""
    output_root, _ = demo_run
    work = tmp_path_factory.mktemp("served")
    models = {"rankloss": configs.PipelineConfig(output_root=output_root).serving_root,
              "bce": versioned(work / "bce", exported_by_loss["bce"]),
              "pair": versioned(work / "pair", exported_by_loss["combined_pair"])}
    with running_server(models, work / "server.log", "--max_request_bytes", "200000",
                         "--file_system_poll_wait_seconds", "0.5") as url:
        yield url, models


def _in_process(base_path, signature, **inputs):
    version = max(int(v) for v in os.listdir(base_path) if v.isdigit())
    function = tf.saved_model.load(os.path.join(base_path, str(version))).signatures[signature]
    return function(**inputs)["probabilities"].numpy()


def test_status_and_metadata(server):
    url, models = server
    status, body = http(f"{url}/v1/models/rankloss")
    assert status == 200 and body["model_version_status"][0]["state"] == "AVAILABLE"
    status, meta = http(f"{url}/v1/models/rankloss/metadata")
    defs = meta["metadata"]["signature_def"]["signature_def"]
    assert status == 200 and set(defs) == {contract.DEFAULT_SIGNATURE, contract.RAW_SIGNATURE}
    assert defs[contract.DEFAULT_SIGNATURE]["inputs"]["examples"]["dtype"] == "DT_STRING"
    assert defs[contract.RAW_SIGNATURE]["inputs"]["I1"]["dtype"] == "DT_DOUBLE"
    assert set(defs[contract.RAW_SIGNATURE]["inputs"]) == set(features.NUMERIC_FEATURES + features.CATEGORICAL_FEATURES)


def test_both_signatures_and_formats_match_the_saved_model_in_process(server):
    url, models = server
    client = ServingClient(url, "rankloss")
    serialized = raw_examples(SERVING_ROWS)
    expected = _in_process(models["rankloss"], contract.DEFAULT_SIGNATURE, examples=tf.constant(serialized))
    assert np.all((expected > 0) & (expected < 1))
    np.testing.assert_allclose(client.predict_examples(serialized), expected, rtol=1e-6)
    np.testing.assert_allclose(client.predict_rows(SERVING_ROWS), expected, rtol=1e-6)          # missing keys omitted
    np.testing.assert_allclose(client.predict_rows(SERVING_ROWS, explicit_missing=True), expected, rtol=1e-6)
    columnar = {k: [row.get(k) for row in SERVING_ROWS] for k in features.NUMERIC_FEATURES + features.CATEGORICAL_FEATURES}
    outputs = client.predict({"signature_name": contract.RAW_SIGNATURE, "inputs": columnar})["outputs"]
    np.testing.assert_allclose(outputs, expected, rtol=1e-6)
    version = client.status()["model_version_status"][0]["version"]
    versioned = ServingClient(url, "rankloss", version=int(version))
    np.testing.assert_allclose(versioned.predict_examples(serialized), expected, rtol=1e-6)


@pytest.mark.parametrize("path,body,status,message", [
    ("rankloss:predict", b"{not json", 400, "malformed JSON"),
    ("rankloss:predict", json.dumps({"instances": [{"b64": "AAA"}], "inputs": []}).encode(), 400, "exactly one"),
    ("rankloss:predict", json.dumps({"signature_name": "serving_raw", "instances": [{"I1": "three"}]}).encode(),
     400, "I1"),
    ("rankloss:predict", json.dumps({"signature_name": "serving_raw", "instances": [{"C1": 5}]}).encode(),
     400, "C1"),
    ("rankloss:predict", json.dumps({"signature_name": "serving_raw", "instances": [{"I99": 1}]}).encode(),
     400, "I99"),
    ("rankloss:predict", json.dumps({"signature_name": "nope", "instances": [{"b64": ""}]}).encode(), 400, "nope"),
    ("rankloss:predict", json.dumps({"instances": [{"b64": "%%%"}]}).encode(), 400, "base64"),
    ("rankloss:predict", json.dumps({"instances": []}).encode(), 400, "no examples"),
    ("unknown:predict", json.dumps({"instances": [{"b64": ""}]}).encode(), 404, "unknown"),
    ("rankloss/versions/999:predict", json.dumps({"instances": [{"b64": ""}]}).encode(), 404, "999"),
    ("rankloss:predict", json.dumps({"instances": [{"b64": "A" * 4}] * 30000}).encode(), 413, "limit"),
    # Hardening: each of these used to get a plain-text 500.
    ("rankloss:predict", json.dumps({"instances": [{"b64": "aGVsbG8gd29ybGQ="}]}).encode(), 400,
     "Could not parse example input"),
    ("rankloss:predict", ('{"signature_name": "serving_raw", "instances": [{"I1": 1' + "0" * 400 + '}]}').encode(), 400,
     "I1 is too large for DT_DOUBLE"),
    ("rankloss:predict", json.dumps({"signature_name": ["a"], "instances": [{"b64": ""}]}).encode(), 400,
     "'signature_name' must be a string"),
    ("rankloss:predict", ('{"instances": ' + "[" * 60000 + "]" * 60000 + "}").encode(), 400, "nested too deeply"),
    ("rankloss:predict", ('{"instances": [' + "1" * 4301 + "]}").encode(), 400, "malformed JSON request: Exceeds"),
    # Infinity is no count; NaN means "missing" on serving_raw only.
    ("rankloss:predict", b'{"signature_name": "serving_raw", "instances": [{"I1": Infinity}]}', 400, "I1 must be finite"),
    ("rankloss:predict", b'{"signature_name": "serving_raw", "inputs": {"I5": [-Infinity]}}', 400, "I5 must be finite"),
    ("rankloss:predict", b'{"signature_name": "serving_raw", "instances": [{"I1": 1e400}]}', 400, "I1 must be finite"),
    ("rankloss:classify", json.dumps({"instances": [{"b64": ""}]}).encode(), 400, "use :predict"),
], ids=lambda value: value[:60].decode(errors="replace") + "..." if isinstance(value, bytes) and len(value) > 60 else None)
def test_bad_requests_get_4xx_naming_the_problem_and_the_server_keeps_serving(server, path, body, status, message):
    url, _ = server
    got_status, answer = http(f"{url}/v1/models/{path}", "POST", body)
    assert got_status == status and message in answer["error"], answer
    assert http(f"{url}/v1/models/rankloss")[0] == 200


def test_wrong_methods_and_unknown_paths_get_json_errors(server):
    url, _ = server
    status, answer = http(f"{url}/v1/models/rankloss:predict")
    assert status == 405 and "takes POST" in answer["error"]
    status, answer = http(f"{url}/v1/models/rankloss/labels/stable")
    assert status == 404 and "version labels are not configured" in answer["error"]
    status, answer = http(f"{url}/v2/anything")
    assert status == 404 and "unknown path" in answer["error"]


def test_nan_is_a_missing_count_on_serving_raw_and_nothing_else():
    from serving import rest_codec

    count = {"I1": tf.TensorSpec([None], tf.float64)}
    tensors, _ = rest_codec.decode({"instances": [{"I1": float("nan")}]}, count, {"I1": float("nan")}, 10)
    assert np.isnan(tensors["I1"].numpy()[0])
    with pytest.raises(rest_codec.RequestError, match="NaN is not a value of I1"):
        rest_codec.decode({"instances": [{"I1": float("nan")}]}, count, {}, 10)


def test_an_integer_past_pythons_digit_limit_is_a_malformed_request():
    from serving import rest_codec

    body = ('{"instances": [' + "7" * 4301 + "]}").encode()
    with pytest.raises(rest_codec.RequestError, match="malformed JSON request: Exceeds the limit"):
        rest_codec.parse_predict_request(body, ["serving_default"], "serving_default", "m")


def test_an_unexpected_failure_is_a_logged_json_500_with_a_request_id(caplog):
    from starlette.testclient import TestClient

    from serving import server as server_lib

    class BrokenStore:
        def get(self, name, version=None):
            raise RuntimeError("the disk went away")

    client = TestClient(server_lib.create_app(BrokenStore()), raise_server_exceptions=False)
    with caplog.at_level("ERROR", logger="serving.server"):
        response = client.post("/v1/models/m:predict", content=b'{"instances": [{"b64": ""}]}')
    assert response.status_code == 500 and response.headers["content-type"] == "application/json"
    request_id = response.json()["request_id"]
    assert request_id in response.json()["error"]
    logged = [r.getMessage() for r in caplog.records if request_id in r.getMessage()]
    assert len(logged) == 1 and "RuntimeError: the disk went away" in logged[0] and "/v1/models/m:predict" in logged[0]


def test_bce_and_combined_pair_models_share_one_server_and_identical_signatures(server):
    url, _ = server
    defs = {name: http(f"{url}/v1/models/{name}/metadata")[1]["metadata"]["signature_def"]["signature_def"]
            for name in ("bce", "pair")}
    assert defs["bce"] == defs["pair"]
    serialized = raw_examples(SERVING_ROWS)
    bce, pair = (ServingClient(url, name).predict_examples(serialized) for name in ("bce", "pair"))
    assert len(bce) == len(pair) == len(SERVING_ROWS) and not np.allclose(bce, pair)


def test_a_newly_pushed_version_is_picked_up(server):
    url, models = server
    base = models["bce"]
    copy_in_atomically(base, 1, 2)
    deadline = time.time() + 60
    while time.time() < deadline:
        versions = [v["version"] for v in http(f"{url}/v1/models/bce")[1]["model_version_status"]]
        if versions == ["2"]:
            break
        time.sleep(0.5)
    assert versions == ["2"]
    assert http(f"{url}/v1/models/bce/versions/1")[0] == 404  # the older version is unloaded


def test_client_cli_scores_a_tsv_and_reports_malformed_rows(server, generated_tsv, tmp_path):
    url, _ = server
    path, _ = generated_tsv
    with open(path) as f:
        lines = f.read().splitlines()[:40]
    bad = tmp_path / "rows.tsv"
    bad.write_text("\n".join(lines + ["1\tnot-enough-columns"]) + "\n")
    for signature in ("raw", "examples"):
        out = tmp_path / f"scores_{signature}.tsv"
        proc = subprocess.run([sys.executable, "-m", "serving.client", "--url", url, "--input", str(bad),
                               "--signature", signature, "--batch-size", "16", "--output", str(out)],
                              cwd=ROOT, env=project_env(), capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "scored 40 rows, skipped 1 malformed" in proc.stderr and "line 41 skipped" in proc.stderr
        scores = [line.split("\t") for line in out.read_text().splitlines()]
        assert len(scores) == 40 and all(0.0 < float(p) < 1.0 for _, _, p in scores)
    records = tmp_path / "rows.tfrecord.gz"  # the same 40 rows as TFRecords of serialized tf.Examples
    with tf.io.TFRecordWriter(str(records), options="GZIP") as writer:
        for example in rows.to_examples([rows.parse_row(line, "\t") for line in lines]):
            writer.write(example)
    proc = subprocess.run([sys.executable, "-m", "serving.client", "--url", url, "--input", str(records),
                           "--format", "tfrecord", "--batch-size", "16",
                           "--output", str(tmp_path / "scores_tfrecord.tsv")],
                          cwd=ROOT, env=project_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "scored 40 rows, skipped 0 malformed" in proc.stderr, proc.stderr[-2000:]
    raw, examples, tfrecord = ([r.split("\t") for r in (tmp_path / f"scores_{s}.tsv").read_text().splitlines()]
                               for s in ("raw", "examples", "tfrecord"))
    assert [r[1] for r in tfrecord] == [r[1] for r in examples]  # labels read back from the records
    np.testing.assert_allclose([float(r[2]) for r in raw], [float(r[2]) for r in examples], rtol=1e-5)
    np.testing.assert_allclose([float(r[2]) for r in tfrecord], [float(r[2]) for r in examples], rtol=1e-5)


def test_client_reports_a_server_error(server, tmp_path):
    url, _ = server
    path = tmp_path / "one.tsv"
    path.write_text("\t".join(["0"] + [""] * 39) + "\n")
    proc = subprocess.run([sys.executable, "-m", "serving.client", "--url", url, "--model", "absent",
                           "--input", str(path)], cwd=ROOT, env=project_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0 and "HTTP 404" in proc.stderr and "absent" in proc.stderr


def test_the_latency_benchmark_counts_failed_requests_in_its_cells(server):
    from benchmarks import serving_latency

    url, _ = server
    latencies, requests, errors = serving_latency.run_clients(url, "absent", [raw_examples(SERVING_ROWS[:1])], 2, 0.5)
    assert latencies == [] and requests == errors > 0
    cell = serving_latency.summary(latencies, errors, 0.5, 1)
    assert cell["errors"] == errors and "FAILED REQUESTS: absent" in serving_latency.errors_note({"absent": cell})
    answered, _, none_failed = serving_latency.run_clients(url, "rankloss", [raw_examples(SERVING_ROWS[:1])], 2, 0.5)
    assert answered and none_failed == 0 and serving_latency.errors_note({"rankloss": serving_latency.summary(
        answered, 0, 0.5, 1)}) == ""
