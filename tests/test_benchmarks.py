"""The benchmarks compare like with like: the same thread count for TensorFlow and PyTorch."""
import subprocess
import sys

import pytest

from tests.helpers import ROOT, project_env

pytestmark = pytest.mark.e2e  # runs the pipeline, a server or a trainer end to end


def test_tensorflow_and_pytorch_get_the_same_thread_count():
    code = ("from benchmarks import trainer_speed as t\n"
            "t.set_tensorflow_threads(3)\n"
            "import tensorflow as tf\n"
            "print(tf.config.threading.get_intra_op_parallelism_threads(), "
            "tf.config.threading.get_inter_op_parallelism_threads())\n"
            "print(' '.join(t.torch_command('python', 4096, 7, 4, 3)))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=project_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    tensorflow_threads, torch_command = proc.stdout.strip().splitlines()[-2:]
    assert tensorflow_threads == "3 3"
    assert torch_command.endswith("--batch-size 4096 --rounds 7 --steps 4 --threads 3")
    with open(f"{ROOT}/benchmarks/torch_dcnv2.py") as f:
        script = f.read()
    assert "torch.set_num_threads(args.threads)" in script and "torch.set_num_interop_threads(args.threads)" in script


def test_pandas_baseline_encodes_with_train_split_vocabularies(generated_tsv, tmp_path):
    import numpy as np  # pylint: disable=import-outside-toplevel
    import pandas as pd  # pylint: disable=import-outside-toplevel

    from benchmarks import data_path  # pylint: disable=import-outside-toplevel
    from transforms import features, rows, splits  # pylint: disable=import-outside-toplevel

    path, report = generated_tsv
    assert data_path.pandas_preprocess(path, str(tmp_path), min_count=2) == report["rows"]
    encoded = {name: pd.read_parquet(tmp_path / f"{name}.parquet") for name in splits.SPLITS}
    assert {name: len(frame) for name, frame in encoded.items()} == {
        name: report["splits"][name]["rows"] for name in splits.SPLITS}
    with open(path) as f:
        parsed = [rows.parse_row(line.rstrip("\n"), "\t")[1] for line in f]
    train = [row for i, row in enumerate(parsed, start=1) if splits.SPLITS[splits.split_index(np.array([i]))[0]] == "train"]
    tokens = [row.get("C3", features.MISSING_CATEGORY) for row in train]
    kept = {t for t in tokens if tokens.count(t) >= 2}
    ids = encoded["train"]["C3"].to_numpy()
    assert all((i > 0) == (t in kept) for i, t in zip(ids, tokens))  # rare tokens -> 0, others to their own id
    assert len(set(ids[ids > 0])) == len(kept)
    first = next(row for row in train)
    assert encoded["train"]["I1"].iloc[0] == pytest.approx(np.log1p(first.get("I1", 0)))


def test_data_path_rates_split_fixed_start_up_from_the_per_row_rate():
    from benchmarks import data_path  # pylint: disable=import-outside-toplevel

    # 10 s fixed + 1,000 rows/s: 20 s at 10,000 rows, 110 s at 100,000.
    row = data_path._row("stage", (10_000, 100_000), (20.0, 110.0), 1_000_000, pandas_rate=4_000.0)
    assert row[1:] == pytest.approx([100_000, 20.0, 110.0, 100_000 / 110, 1_000.0, 10.0, 0.25, 1_010 / 3600])
    assert "start-up dominates" in data_path._row("stage", (10, 20), (5.0, 4.0), 100, 1.0)[5]


def test_the_cloud_estimate_follows_from_the_measured_rates_and_the_stated_assumptions():
    import argparse  # pylint: disable=import-outside-toplevel

    from benchmarks import cloud_estimate  # pylint: disable=import-outside-toplevel

    record = {"tables": [{"columns": ["stage", "per-row rate"], "rows": [
        ["ingestion", 10_000.0], ["StatisticsGen", 20_000.0], ["Transform", 5_000.0], ["Evaluator", 40_000.0],
        ["Trainer", 8_000.0], ["raw -> transformed", 2_000.0]]}]}
    rates = cloud_estimate.per_row_rates(record)
    assert rates["RawLogsExampleGen"] == 10_000.0  # the ingestion before it joined the pipeline
    args = argparse.Namespace(workers=2, worker_cpus=4, gb_per_cpu=6.5, startup_minutes=6.0, vcpu_price=0.05,
                              gb_price=0.004, replicas=2, replica_price=0.5)
    rows = {row[0]: row for row in cloud_estimate.estimate(rates, args)}
    transform = rows["Transform (Dataflow)"]
    hours = cloud_estimate.CRITEO_X1["rows"] / 5_000 / 3600
    assert transform[3] == pytest.approx(hours) and transform[4] == pytest.approx((hours / 8 + 0.1) * 60)
    assert transform[5] == pytest.approx((hours / 8 + 0.1) * 8 * (0.05 + 6.5 * 0.004))
    trainer = rows["Trainer, one epoch (2 replicas)"]
    assert trainer[4] == pytest.approx(cloud_estimate.CRITEO_X1["train"] / 8_000 / 3600 / 2 * 60)


def test_memory_per_task_is_the_table_and_dense_layers_with_adam_slots_split_across_servers():
    from benchmarks import memory
    from settings import configs

    model = configs.ModelConfig(embedding_dim=2, num_cross_layers=1, dnn_units=(3,), dropout=0.0)
    x0 = 39 * 2
    # numeric vectors, one full-rank cross layer, the DNN layer, the logit over [cross, deep]
    assert memory.dense_parameters(model) == 13 * 2 + (x0 * x0 + x0) + (x0 * 3 + 3) + (x0 + 3 + 1)
    _, rows, table, whole, per_server, per_worker = memory.row("x", 1_000_000, 500, model, servers=4, batch=100)
    assert table == 1_000_000 * 2 * 4 / 2**20
    assert whole == 3 * (1_000_000 * 2 + 500) * 4 / 2**20 and per_server == whole / 4
    assert per_worker == (100 * 26 * 2 + 500) * 4 / 2**20
