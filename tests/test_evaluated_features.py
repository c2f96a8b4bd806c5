"""The Evaluator decodes only the features its evaluation reads, and computes the metrics TFX's computes."""
import json
import os

import pytest
import tensorflow_model_analysis as tfma
from google.protobuf import json_format
from tfx.components.evaluator import executor as tfx_evaluator
from tfx.components.util import tfxio_utils
from tfx.types import standard_artifacts

from pipeline import evaluated_features, file_reads, pipeline as pipeline_lib
from settings import configs
from trainer import outside_pipeline
from tests.conftest import examples_artifact
from transforms import features
from transforms.schema import load_schema


def test_the_evaluated_features_are_the_labels_weights_and_slice_keys():
    assert evaluated_features.evaluated_feature_names(pipeline_lib.eval_config(0.5)) == {features.LABEL_KEY}
    config = tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(label_key="label", example_weight_key="w"),
                     tfma.ModelSpec(label_keys={"head": "y2"}, example_weight_keys={"head": "w2"})],
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=["C1"], feature_values={"C2": "x"})],
        cross_slicing_specs=[tfma.CrossSlicingSpec(baseline_spec=tfma.SlicingSpec(feature_keys=["C3"]),
                                                   slicing_specs=[tfma.SlicingSpec(feature_keys=["C4"])])])
    assert evaluated_features.evaluated_feature_names(config) == {"label", "w", "y2", "w2", "C1", "C2", "C3", "C4"}


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


def _newest(pipeline_root, path):
    return outside_pipeline.newest_execution_dir(os.path.join(pipeline_root, path, "*"))


def _evaluate(executor_class, pipeline_root, out_dir):
    model, schema = standard_artifacts.Model(), standard_artifacts.Schema()
    model.uri, schema.uri = _newest(pipeline_root, "Trainer/model"), _newest(pipeline_root, "ImportSchemaGen/schema")
    evaluation, blessing = standard_artifacts.ModelEvaluation(), standard_artifacts.ModelBlessing()
    evaluation.uri, blessing.uri = os.path.join(out_dir, "evaluation"), os.path.join(out_dir, "blessing")
    examples = examples_artifact(_newest(pipeline_root, "ImportExampleGen/examples"))
    properties = {"eval_config": json_format.MessageToJson(pipeline_lib.eval_config(0.5)),
                  "example_splits": json.dumps([pipeline_lib.EVALUATION_SPLIT])}
    executor_class().Do({"examples": [examples], "model": [model], "schema": [schema]},
                        {"evaluation": [evaluation], "blessing": [blessing]}, properties)
    [result] = tfma.load_metrics(evaluation.uri)
    metrics = {kv.key.name: kv.value.double_value.value for kv in result.metric_keys_and_values}
    return metrics, sorted(os.listdir(blessing.uri))


def test_the_evaluator_computes_tfxs_metrics_and_blessing(demo_run, tmp_path):
    pipeline_root = configs.PipelineConfig(output_root=demo_run[0]).pipeline_root
    ours, our_blessing = _evaluate(evaluated_features.EvaluatorExecutor, pipeline_root, str(tmp_path / "ours"))
    theirs, their_blessing = _evaluate(tfx_evaluator.Executor, pipeline_root, str(tmp_path / "tfx"))
    assert set(ours) == set(theirs) >= {"auc", "logloss", "weighted_bce", "calibration", "example_count"}
    # TFMA batches the examples for the model as Beam's timing goes, and the model's float32 outputs
    # depend on the batch's shape (oneDNN's kernels: 42 of 2,000 test predictions moved by up to 6e-8
    # between one batch and batches of 37), so the sums agree to float32 rounding, not float64's.
    for name, value in theirs.items():
        assert ours[name] == pytest.approx(value, rel=1e-6), name
    assert our_blessing == their_blessing and our_blessing[0] in ("BLESSED", "NOT_BLESSED")


def test_the_evaluator_refuses_to_run_without_the_schema():
    with pytest.raises(ValueError, match="schema"):
        evaluated_features.EvaluatorExecutor().Do(
            {"examples": [], "model": []}, {},
            {"eval_config": json_format.MessageToJson(pipeline_lib.eval_config(0.5))})
