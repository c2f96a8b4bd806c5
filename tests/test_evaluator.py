"""The Evaluator decodes only the features its evaluation reads, keeps TFMA's extracts batched, and computes
the metrics and blessing TFX's computes with TFMA's own metrics."""
import os

import pytest
import tensorflow_model_analysis as tfma
from google.protobuf import json_format
from tfx.components.evaluator import executor as tfx_evaluator
from tfx.components.util import tfxio_utils

from components import evaluator, file_reads
from pipeline import pipeline as pipeline_lib
from settings import configs
from transforms import features
from transforms.schema import load_schema
from tests.helpers import evaluate, examples_artifact

pytestmark = pytest.mark.e2e  # runs the pipeline, a server or a trainer end to end


def test_the_evaluated_features_are_the_labels_weights_and_slice_keys():
    assert evaluator.evaluated_feature_names(pipeline_lib.eval_config(0.5)) == {features.LABEL_KEY}
    config = tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(label_key="label", example_weight_key="w"),
                     tfma.ModelSpec(label_keys={"head": "y2"}, example_weight_keys={"head": "w2"})],
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=["C1"], feature_values={"C2": "x"})],
        cross_slicing_specs=[tfma.CrossSlicingSpec(baseline_spec=tfma.SlicingSpec(feature_keys=["C3"]),
                                                   slicing_specs=[tfma.SlicingSpec(feature_keys=["C4"])])])
    assert evaluator.evaluated_feature_names(config) == {"label", "w", "y2", "w2", "C1", "C2", "C3", "C4"}


def test_within_the_executor_tfx_builds_a_projected_file_at_a_time_reader(ingested):
    examples = [examples_artifact(ingested[0])]
    pattern = os.path.join(ingested[0], "Split-test", "*")
    factory = tfxio_utils.get_tfxio_factory_from_artifact(  # as TFX's Evaluator builds its reader
        examples, ["t"], schema=load_schema(), raw_record_column_name=tfma.ARROW_INPUT_COLUMN)
    with file_reads.tfx_reads_file_at_a_time(project=[features.LABEL_KEY], file_format=file_reads.GZIP_FORMAT):
        reader = factory(pattern)
    assert type(reader.projected) is file_reads.FileAtATimeTFExampleRecord  # pylint: disable=unidiomatic-typecheck
    assert sorted(reader.ArrowSchema().names) == sorted([features.LABEL_KEY, tfma.ARROW_INPUT_COLUMN])
    assert len(factory(pattern).ArrowSchema().names) == len(load_schema().feature) + 1  # outside: every feature


# TFMA's own metrics, as TFX's Evaluator computes them example by example (β_pos = 1: weighted BCE = logloss).
STOCK_METRICS = tfma.MetricsSpec(metrics=[
    tfma.MetricConfig(class_name="ExampleCount"), tfma.MetricConfig(class_name="AUC"),
    tfma.MetricConfig(class_name="BinaryCrossentropy", config='{"name": "logloss"}'),
    tfma.MetricConfig(class_name="Calibration"), tfma.MetricConfig(class_name="MeanLabel"),
    tfma.MetricConfig(class_name="MeanPrediction"), tfma.MetricConfig(class_name="CalibrationPlot")])


def test_the_evaluator_computes_tfxs_metrics_plot_and_blessing(demo_run, tmp_path):
    pipeline_config = configs.PipelineConfig(output_root=demo_run[0])
    ours_config = pipeline_lib.eval_config(0.5, beta_pos=1.0)
    stock_config = tfma.EvalConfig(model_specs=ours_config.model_specs, slicing_specs=ours_config.slicing_specs)
    stock_config.metrics_specs.add().CopyFrom(STOCK_METRICS)
    stock_config.metrics_specs[0].metrics[1].threshold.CopyFrom(ours_config.metrics_specs[0].metrics[1].threshold)
    ours, our_plot, our_blessing = evaluate(evaluator.Executor, ours_config, pipeline_config,
                                             str(tmp_path / "ours"), module_path=evaluator.MODULE_PATH)
    theirs, their_plot, their_blessing = evaluate(tfx_evaluator.Executor, stock_config, pipeline_config,
                                                   str(tmp_path / "tfx"))
    assert set(ours) == set(theirs) | {("weighted_bce", "", False)}
    # TFMA batches the examples for the model as Beam's timing goes, and the model's float32 outputs
    # depend on the batch's shape (oneDNN's kernels: 42 of 2,000 test predictions moved by up to 6e-8
    # between one batch and batches of 37); Keras sums the logloss in float32: they agree to 1e-6.
    for key, value in theirs.items():
        assert ours[key] == pytest.approx(value, rel=1e-6), key
    assert ours["weighted_bce", "", False] == pytest.approx(ours["logloss", "", False], rel=1e-12)
    assert len(our_plot[""].buckets) == len(their_plot[""].buckets) == 1002
    for mine, stock in zip(our_plot[""].buckets, their_plot[""].buckets):
        assert mine.lower_threshold_inclusive == pytest.approx(stock.lower_threshold_inclusive)
        assert mine.num_weighted_examples.value == stock.num_weighted_examples.value
        assert mine.total_weighted_label.value == stock.total_weighted_label.value
        assert mine.total_weighted_refined_prediction.value == pytest.approx(
            stock.total_weighted_refined_prediction.value, rel=1e-6, abs=1e-9)
    assert our_blessing == their_blessing == ["BLESSED"]


def test_against_a_baseline_the_evaluator_computes_each_models_metrics_and_their_difference(demo_run, tmp_path):
    pipeline_config = configs.PipelineConfig(output_root=demo_run[0])
    config = pipeline_lib.eval_config(0.5)
    config.model_specs[0].name = "candidate"
    baseline = config.model_specs.add()
    baseline.CopyFrom(config.model_specs[0])
    baseline.name, baseline.is_baseline = "baseline", True
    metrics, plots, blessing = evaluate(evaluator.Executor, config, pipeline_config, str(tmp_path),
                                         baseline=True, module_path=evaluator.MODULE_PATH)
    assert metrics["auc", "candidate", False] == metrics["auc", "baseline", False] > 0.5
    assert plots["candidate"] == plots["baseline"]
    assert metrics["auc", "candidate", True] == 0.0  # the same model: no change, so no regression
    assert blessing == ["BLESSED"]


def test_the_batched_evaluation_refuses_what_it_would_compute_wrongly():
    config = pipeline_lib.eval_config(0.5)
    evaluator.check_batched(config)
    per_example = tfma.EvalConfig()
    per_example.CopyFrom(config)
    per_example.metrics_specs[0].metrics.add(class_name="ExampleCount")
    with pytest.raises(ValueError, match="'ExampleCount'.*not computed on batches"):
        evaluator.check_batched(per_example)
    sliced = tfma.EvalConfig()
    sliced.CopyFrom(config)
    sliced.slicing_specs.add(feature_keys=["C1"])
    with pytest.raises(ValueError, match="overall slice only"):
        evaluator.check_batched(sliced)
    resampled = tfma.EvalConfig()
    resampled.CopyFrom(config)
    resampled.options.compute_confidence_intervals.value = True
    with pytest.raises(ValueError, match="confidence intervals"):
        evaluator.check_batched(resampled)


def test_the_evaluator_refuses_to_run_without_the_schema():
    with pytest.raises(ValueError, match="schema"):
        evaluator.Executor().Do(
            {"examples": [], "model": []}, {},
            {"eval_config": json_format.MessageToJson(pipeline_lib.eval_config(0.5))})
