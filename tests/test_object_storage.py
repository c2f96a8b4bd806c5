"""The pipeline's flow on object storage: an S3-compatible server (moto) on loopback holds the raw logs,
the TFRecords, the pipeline root and the pushed models; the model server polls its versions there.
On a GCS emulator, what Beam alone does: ingestion."""
import concurrent.futures
import contextlib
import json
import os
import re
import subprocess
import sys
import time

import boto3
import numpy as np
import pytest
import tensorflow as tf
from ml_metadata.metadata_store import metadata_store as mlmd
from tfx import v1 as tfx

from pipeline import portable_beam, results
from settings import configs
from serving.client import ServingClient
from tests.helpers import ROOT, SERVING_ROWS, SMALL_MODEL, free_port, project_env, raw_examples, running_server

pytestmark = pytest.mark.e2e  # runs the pipeline, a server or a trainer end to end

BUCKET = "rankloss-test"
GCS_BUCKET = "rankloss-gcs-test"
SECRET = "s3-secret-that-must-not-be-logged"


@contextlib.contextmanager
def _server_on_loopback(module_and_args, port, log_path):
    """`python -m <module> <args>`, its output in `log_path`, from when it listens on `port` to the block's end."""
    with open(log_path, "w") as log:
        server = subprocess.Popen([sys.executable, "-m", *module_and_args], stdout=log, stderr=subprocess.STDOUT)
    try:
        portable_beam.wait_for_port(port, server, str(log_path), timeout=60)
        yield
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def s3_env(tmp_path_factory):
    """A moto S3 server on loopback with one bucket; the environment that points boto3 and TensorFlow at it."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    with _server_on_loopback(["moto.server", "-H", "127.0.0.1", "-p", str(port)], port, log_path):
        env = project_env(AWS_ACCESS_KEY_ID="test-key", AWS_SECRET_ACCESS_KEY=SECRET, AWS_REGION="us-east-1",
                          AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}")
        client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                              aws_access_key_id="test-key", aws_secret_access_key=SECRET)
        client.create_bucket(Bucket=BUCKET)
        yield env, client, log_path


def _keys(client, prefix):
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def _download(client, prefix, local_dir):
    for key in _keys(client, prefix):
        path = os.path.join(local_dir, os.path.relpath(key, prefix))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        client.download_file(BUCKET, key, path)


def _run(command, env, timeout=900):
    proc = subprocess.run([sys.executable, "-m", *command], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert SECRET not in proc.stdout + proc.stderr
    return proc


def test_the_flow_runs_on_s3_and_the_server_serves_and_polls_the_pushed_versions(s3_env, generated_tsv, tmp_path):
    env, client, requests_log = s3_env
    env = dict(env, HOME=str(tmp_path))  # the local runner's ML Metadata goes under ~/.rankloss-tfx/metadata
    root = f"s3://{BUCKET}/run"
    raw_path, report = generated_tsv
    client.upload_file(raw_path, BUCKET, "raw/criteo.tsv")
    client.put_object(Bucket=BUCKET, Key="raw/bad.tsv", Body=b"2\tnot a row\n")  # one row to reject

    # Raw logs on S3 -> the whole DAG, its ExampleGen ingesting them, with its root on S3 and the loss chosen
    # by flags.
    _run(["pipeline.local_runner", "--output-root", root, "--input", f"s3://{BUCKET}/raw/*.tsv", "--loss",
          "combined_pair", "--alpha", "0.7", "--beta-pos", "0.1", "--min-eval-auc", "0", *SMALL_MODEL,
          "--epochs", "1"], env)
    keys = _keys(client, "run/")
    example_gen = r"run/tfx/rankloss-tfx/RawLogsExampleGen"
    for pattern in (example_gen + r"/examples/\d+/Split-train/data-.*\.tfrecord\.gz$",
                    example_gen + r"/examples/\d+/counts\.json$", example_gen + r"/dead_letters/\d+/dead_letters.*",
                    r"run/tfx/rankloss-tfx/Transform/transform_graph/.*/transform_fn/",
                    r"run/tfx/rankloss-tfx/Evaluator/evaluation/", r"run/serving/rankloss-tfx/\d+/saved_model\.pb$"):
        assert any(re.search(pattern, key) for key in keys), pattern
    assert not any(".staging-" in key for key in keys)
    assert "/.temp_path/" not in open(requests_log).read()  # Transform's scratch files stayed local
    with pytest.MonkeyPatch.context() as patch:  # artifacts on S3 are found through ML Metadata
        patch.setenv("HOME", str(tmp_path))
        config = configs.PipelineConfig(output_root=root)
        counts, (examples, graph) = results.row_counts(config), results.latest_transform_output(config)
    assert sum(split["written"] for split in counts["splits"].values()) == report["rows"]
    assert sum(split["rejected"] for split in counts["splits"].values()) == 1
    assert examples.startswith(f"{root}/tfx/rankloss-tfx/Transform/transformed_examples/")
    assert graph.startswith(f"{root}/tfx/rankloss-tfx/Transform/transform_graph/")
    store = mlmd.MetadataStore(tfx.orchestration.metadata.sqlite_metadata_connection_config(
        os.path.join(str(tmp_path), ".rankloss-tfx", "metadata", "s3_rankloss_test_run", "metadata.sqlite")))
    trainer = store.get_executions_by_type("tfx.components.trainer.component.Trainer")[-1]
    custom_config = trainer.custom_properties["custom_config"].string_value
    assert '"name": "combined_pair"' in custom_config and '"beta_pos": 0.1' in custom_config

    # The server loads the pushed version from S3, answers as the same SavedModel does locally, and
    # picks up a version copied into the bucket later by polling it.
    base_key = "run/serving/rankloss-tfx"
    version = max(int(key.split("/")[3]) for key in keys if key.startswith(base_key + "/"))
    version_prefix = f"{base_key}/{version}/"

    def predicted_locally():
        local = tmp_path / "pushed"
        _download(client, version_prefix, str(local))
        return tf.saved_model.load(str(local)).signatures["serving_default"](
            examples=tf.constant(raw_examples(SERVING_ROWS)))["probabilities"].numpy()

    expected = concurrent.futures.ThreadPoolExecutor(1).submit(predicted_locally)  # while the server starts
    with running_server({"rankloss": f"s3://{BUCKET}/{base_key}"}, tmp_path / "server.log",
                        "--file_system_poll_wait_seconds", "0.5", env=env) as url:
        served = ServingClient(url, "rankloss").predict_examples(raw_examples(SERVING_ROWS))
        np.testing.assert_allclose(served, expected.result(), rtol=1e-5)
        newer = str(version + 1)
        for key in sorted(_keys(client, version_prefix), key=lambda k: k.endswith("saved_model.pb")):  # .pb last
            client.copy_object(Bucket=BUCKET, CopySource={"Bucket": BUCKET, "Key": key},
                               Key=key.replace(f"/{version}/", f"/{newer}/", 1))
        deadline = time.time() + 90
        while time.time() < deadline:
            states = {v["version"]: v["state"] for v in ServingClient(url, "rankloss").status()["model_version_status"]}
            if states.get(newer) == "AVAILABLE":
                break
            time.sleep(0.5)
        assert states.get(newer) == "AVAILABLE", states
    assert SECRET not in open(tmp_path / "server.log").read()


def test_a_second_ingestion_on_s3_replaces_the_first_output_whole(s3_env, generated_tsv, tmp_path):
    env, client, _ = s3_env
    with open(generated_tsv[0]) as f:
        lines = f.read().splitlines()
    for name, text in (("first.tsv", lines[:60] + ["1\t2\t3"]), ("second.tsv", lines[100:130])):
        client.put_object(Bucket=BUCKET, Key=f"reingest/raw/{name}", Body="\n".join(text).encode() + b"\n")
    output = f"s3://{BUCKET}/reingest/out"
    for name in ("first.tsv", "second.tsv"):
        _run(["ingestion.convert", "--input", f"s3://{BUCKET}/reingest/raw/{name}", "--output", output], env)
    keys = _keys(client, "reingest/out")
    assert not [k for k in keys if "dead_letters" in k or "staging" in k or "replaced" in k], keys
    counts = json.loads(client.get_object(Bucket=BUCKET, Key="reingest/out/counts.json")["Body"].read())
    assert sum(split["written"] for split in counts["splits"].values()) == 30
    assert not [k for k in _keys(client, "reingest/") if ".staging-" in k]
    _download(client, "reingest/out", str(tmp_path / "out"))
    examples = _examples_in(tf.io.gfile.glob(str(tmp_path / "out" / "Split-*" / "*")))
    assert len(examples) == 30


def test_beam_s3_calls_share_one_client_per_configuration(s3_env):
    from apache_beam.io.aws import s3io  # pylint: disable=import-outside-toplevel
    from apache_beam.options.pipeline_options import PipelineOptions  # pylint: disable=import-outside-toplevel
    from runtime import object_storage  # pylint: disable=import-outside-toplevel

    env, client, _ = s3_env
    object_storage.share_beam_s3_clients()
    object_storage.share_beam_s3_clients()  # idempotent

    def options(endpoint):
        return PipelineOptions([f"--s3_endpoint_url={endpoint}", "--s3_access_key_id=test-key",
                                f"--s3_secret_access_key={SECRET}", "--s3_region_name=us-east-1"])

    endpoint = env["AWS_ENDPOINT_URL"]
    first, second = (s3io.S3IO(options=options(endpoint)) for _ in range(2))
    other = s3io.S3IO(options=options("http://127.0.0.1:1"))
    assert first.client.client is second.client.client and other.client.client is not first.client.client
    client.put_object(Bucket=BUCKET, Key="shared/a.txt", Body=b"abc")
    assert first.exists(f"s3://{BUCKET}/shared/a.txt") and not second.exists(f"s3://{BUCKET}/shared/b.txt")
    assert dict(second.list_files(f"s3://{BUCKET}/shared/")) == {f"s3://{BUCKET}/shared/a.txt": 3}


@pytest.fixture(scope="module")
def gcs_env(tmp_path_factory):
    """A GCS emulator (gcp-storage-emulator, in memory) on loopback with one bucket; the environment that
    points Beam's GCS file system (google-cloud-storage) at it, and the bucket."""
    from google.auth.credentials import AnonymousCredentials  # pylint: disable=import-outside-toplevel
    from google.cloud import storage  # pylint: disable=import-outside-toplevel

    port = free_port()
    log_path = tmp_path_factory.mktemp("gcs") / "emulator.log"
    with _server_on_loopback(["gcp_storage_emulator", "start", "--host", "127.0.0.1", "--port", str(port),
                              "--in-memory", "--default-bucket", GCS_BUCKET], port, log_path):
        endpoint = f"http://127.0.0.1:{port}"
        client = storage.Client(project="test", credentials=AnonymousCredentials(),
                                client_options={"api_endpoint": endpoint})
        yield project_env(STORAGE_EMULATOR_HOST=endpoint), client.bucket(GCS_BUCKET)


def _examples_in(paths):
    """The examples in gzipped TFRecord files, each serialized with its feature map sorted (a C++ encoder's map
    order differs from process to process), in sorted order."""
    return sorted(tf.train.Example.FromString(r.numpy()).SerializeToString(deterministic=True)
                  for r in tf.data.TFRecordDataset(sorted(paths), compression_type="GZIP"))


def test_ingestion_runs_on_gcs_and_writes_the_records_a_local_run_writes(gcs_env, generated_tsv, tmp_path):
    """TensorFlow cannot reach a GCS emulator: its built-in `gs://` has no endpoint setting, and
    tensorflow-io's GCS plug-in, which has one (`TF_USE_MODULAR_FILESYSTEM=1`), crashes under TF 2.16
    (tensorflow/io#2020). So on GCS this runs what Beam alone does, ingestion; without credentials Beam's
    GCS client first retries Google's default credentials for about 20 s, then connects anonymously."""
    from ingestion import convert  # pylint: disable=import-outside-toplevel
    from transforms.splits import SPLITS, split_dir_name  # pylint: disable=import-outside-toplevel

    env, bucket = gcs_env
    raw_path, report = generated_tsv
    bucket.blob("raw/criteo.tsv").upload_from_filename(raw_path)
    _run(["ingestion.convert", "--input", f"gs://{GCS_BUCKET}/raw/*.tsv", "--output", f"gs://{GCS_BUCKET}/tfrecords"],
         env)
    local = str(tmp_path / "local")
    local_counts = convert.run([raw_path], local)
    counts = json.loads(bucket.blob("tfrecords/counts.json").download_as_bytes())
    assert counts["splits"] == local_counts["splits"]
    assert sum(split["written"] for split in counts["splits"].values()) == report["rows"]
    for split in SPLITS:
        downloaded = []
        for blob in bucket.list_blobs(prefix=f"tfrecords/{split_dir_name(split)}/"):
            downloaded.append(str(tmp_path / "gcs" / blob.name))
            os.makedirs(os.path.dirname(downloaded[-1]), exist_ok=True)
            blob.download_to_filename(downloaded[-1])
        local_files = tf.io.gfile.glob(os.path.join(local, split_dir_name(split), "*"))
        examples = _examples_in(downloaded)
        assert examples == _examples_in(local_files) and len(examples) == counts["splits"][split]["written"]


def test_one_endpoint_and_region_configure_boto3_and_tensorflow_io():
    from runtime import object_storage  # pylint: disable=import-outside-toplevel

    environ = {"AWS_ENDPOINT_URL": "http://minio:9000", "AWS_DEFAULT_REGION": "eu-west-1"}
    object_storage.align_s3_environment(environ)
    assert environ["S3_ENDPOINT"] == "http://minio:9000" and environ["S3_USE_HTTPS"] == "0"
    assert environ["AWS_REGION"] == "eu-west-1"
    environ = {"S3_ENDPOINT": "https://s3.example.com", "AWS_REGION": "us-west-2"}
    object_storage.align_s3_environment(environ)
    assert environ["AWS_ENDPOINT_URL_S3"] == "https://s3.example.com" and "S3_USE_HTTPS" not in environ
    assert environ["AWS_DEFAULT_REGION"] == "us-west-2"


@pytest.mark.parametrize("body, status, stderr", [
    ("pass", 0, ""), ("sys.exit(3)", 3, ""), ("sys.exit('no data at s3://b/x')", 1, "no data at s3://b/x"),
    ("1 / 0", 1, "ZeroDivisionError")])
def test_entry_points_keep_their_exit_status_without_teardown(body, status, stderr):
    code = ("import sys\nfrom runtime import process\n"
            f"def main():\n    print('ran', flush=False)\n    {body}\n"
            "process.run_main(main)\nprint('not reached')\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=project_env(), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == status and proc.stdout == "ran\n" and stderr in proc.stderr
