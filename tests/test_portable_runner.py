"""The Beam steps on Beam's portable layout: a job service and a separate pool of SDK workers.

That layout (job server + SDK workers in other processes, as on Dataflow and Flink) catches code that
only works in-process: unpicklable closures, module-level state, a worker without
`TF_USE_LEGACY_KERAS`. The ingestion, StatisticsGen, Transform and Evaluator outputs must equal the
in-memory run's (the demo fixture's) on the same raw rows.
"""
import json
import os
import shutil

import numpy as np
import pytest

from pipeline import portable_beam
from transforms.splits import SPLITS
from tests.helpers import assert_same_examples, read_examples

pytestmark = pytest.mark.e2e  # runs the pipeline, a server or a trainer end to end


@pytest.fixture(scope="module")
def portable_beam_args(tmp_path_factory):
    """A local job service and an external worker pool; the Beam arguments that use them."""
    with portable_beam.local_services(str(tmp_path_factory.mktemp("beam_services"))) as args:
        yield args


def _exact_statistics(feature) -> bytes:
    """A feature's statistics without the parts computed from mergeable sketches (quantile histograms,
    median, values-per-example quantiles) or summed in floating point (mean, std), which depend on how
    the runner splits the data into bundles; the counts, minima, maxima and zeros must match exactly."""
    stable = type(feature)()
    stable.CopyFrom(feature)
    if stable.HasField("num_stats"):
        for field in ("histograms", "median", "mean", "std_dev", "weighted_numeric_stats"):
            stable.num_stats.ClearField(field)
        stable.num_stats.common_stats.ClearField("num_values_histogram")
    return stable.SerializeToString(deterministic=True)


def test_ingestion_statistics_and_transform_on_the_portable_runner_equal_the_in_memory_run(
        demo_run, portable_beam_args, tmp_path):
    from tensorflow_metadata.proto.v0 import statistics_pb2
    from pipeline import local_runner, pipeline as pipeline_lib, results
    from settings import configs

    demo_root, _ = demo_run
    in_memory = configs.PipelineConfig(output_root=demo_root)
    portable = configs.PipelineConfig(output_root=str(tmp_path), beam_pipeline_args=portable_beam_args)
    os.makedirs(os.path.dirname(portable.raw_data_path))
    shutil.copy(in_memory.raw_data_path, portable.raw_data_path)

    local_runner.run(portable, create=pipeline_lib.create_data_pipeline)  # ingestion in its ExampleGen, then up
    counts, reference = results.row_counts(portable), results.row_counts(in_memory)  # to Transform
    assert counts["inputs"] == [portable.raw_data_path]
    assert {k: v for k, v in counts.items() if k != "inputs"} == {k: v for k, v in reference.items() if k != "inputs"}
    assert counts["splits"]["train"]["written"] > 1000

    for split in SPLITS:
        records = {}
        for name, config in (("in_memory", in_memory), ("portable", portable)):
            stats = statistics_pb2.DatasetFeatureStatisticsList()
            with open(os.path.join(results.latest_output(config, "StatisticsGen", "statistics"), f"Split-{split}",
                                   "FeatureStats.pb"), "rb") as f:
                stats.ParseFromString(f.read())
            records[name] = stats
        ours, theirs = records["portable"].datasets[0], records["in_memory"].datasets[0]
        assert ours.num_examples == theirs.num_examples == counts["splits"][split]["written"]
        assert {f.path.step[0]: _exact_statistics(f) for f in ours.features} == \
            {f.path.step[0]: _exact_statistics(f) for f in theirs.features}
        for a, b in zip(sorted(ours.features, key=str), sorted(theirs.features, key=str)):
            if a.HasField("num_stats"):
                np.testing.assert_allclose([a.num_stats.mean, a.num_stats.std_dev],
                                           [b.num_stats.mean, b.num_stats.std_dev], rtol=1e-9)

        assert_same_examples(*(
            read_examples(os.path.join(results.latest_output(c, "Transform", "transformed_examples"), f"Split-{split}", "*"))
            for c in (portable, in_memory)))

    ours, theirs = (os.path.join(results.latest_output(c, "Transform", "transform_graph"), "transform_fn", "assets")
                    for c in (portable, in_memory))
    assert sorted(os.listdir(ours)) == sorted(os.listdir(theirs)) and len(os.listdir(ours)) == 26
    for name in os.listdir(ours):
        with open(os.path.join(ours, name), "rb") as a, open(os.path.join(theirs, name), "rb") as b:
            assert a.read() == b.read(), name
    with open(os.path.join(results.latest_output(portable, "Transform", "transform_graph"), "transformed_metadata",
                           "asset_map")) as f:
        assert json.load(f)["vocab_C1"] == "vocab_C1"


def test_the_evaluator_on_the_portable_runner_computes_the_in_memory_runs_metrics(demo_run, portable_beam_args,
                                                                                  tmp_path):
    from components import evaluator
    from pipeline import pipeline as pipeline_lib
    from settings import configs
    from tests.helpers import evaluate

    pipeline_config = configs.PipelineConfig(output_root=demo_run[0])
    runs = {}
    for runner, args in (("in_memory", None), ("portable", portable_beam_args)):  # the same (newest) model
        runs[runner] = evaluate(evaluator.Executor, pipeline_lib.eval_config(0.0), pipeline_config,
                                str(tmp_path / runner), module_path=evaluator.MODULE_PATH, beam_pipeline_args=args)
    (in_memory, in_memory_plots, _), (portable, portable_plots, blessing) = runs["in_memory"], runs["portable"]
    assert portable == pytest.approx(in_memory, rel=1e-9)
    assert in_memory["example_count", "", False] > 200 and len(portable_plots[""].buckets) == 1002

    def plot(buckets):
        return [(b.num_weighted_examples.value, b.total_weighted_label.value) for b in buckets.buckets], \
            [b.total_weighted_refined_prediction.value for b in buckets.buckets]

    (counts, predictions), (expected_counts, expected_predictions) = plot(portable_plots[""]), plot(in_memory_plots[""])
    assert counts == expected_counts and predictions == pytest.approx(expected_predictions, rel=1e-9, abs=1e-12)
    assert blessing == ["BLESSED"]


def test_the_job_service_and_worker_pool_listen_on_loopback_only(portable_beam_args):
    import ipaddress

    import psutil

    services = [p for p in psutil.Process().children()
                if any(m in " ".join(p.cmdline()) for m in ("local_job_service_main", "worker_pool"))]
    assert len(services) == 2, [p.cmdline() for p in services]
    listening = [c.laddr for p in services for c in p.net_connections("inet") if c.status == psutil.CONN_LISTEN]
    ports = {int(arg.rsplit(":", 1)[1]) for arg in portable_beam_args if arg.startswith(("--job_endpoint=", "--environment_config="))}
    assert ports <= {address.port for address in listening}, listening
    ips = [ipaddress.ip_address(address.ip) for address in listening]
    assert all((getattr(ip, "ipv4_mapped", None) or ip).is_loopback for ip in ips), listening
