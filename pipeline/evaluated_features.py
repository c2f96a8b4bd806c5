"""The Evaluator decoding only the features its evaluation reads.

TFMA turns every decoded feature of every example into a per-example extract, in Python (its unbatch
extractor). The model does not need them: its `serving_default` signature takes the serialized
example, which TFMA passes from the raw record column. On the 600k-row benchmark's 60k test rows
(py-spy), 22 of the Evaluator's 68 s went to splitting 40 features per example when the metrics
read one of them, the label.

`EvaluatorExecutor` reads the examples a file per Beam element (pipeline/file_reads.py) and projects
the reader (tfx-bsl's `TFXIO.Project`) onto `evaluated_feature_names`: every model's label and
example-weight keys and every slicing spec's feature keys. The metrics (labels, predictions and
weights) are the same; a metric that reads other features from the examples would need them named
here. The projection needs the schema, which the pipeline gives the Evaluator.
"""
from typing import Set

import tensorflow_model_analysis as tfma
from google.protobuf import json_format
from tfx import components
from tfx.components.evaluator import executor as evaluator_executor
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_component_specs as specs

from pipeline import file_reads


def evaluated_feature_names(eval_config: tfma.EvalConfig) -> Set[str]:
    """The features `eval_config` reads from the examples: labels, example weights, slice keys."""
    names = set()
    for spec in eval_config.model_specs:
        names.update(filter(None, (spec.label_key, spec.example_weight_key)))
        names.update(spec.label_keys.values())
        names.update(spec.example_weight_keys.values())
    slicing_specs = list(eval_config.slicing_specs)
    for cross in eval_config.cross_slicing_specs:
        slicing_specs += [cross.baseline_spec, *cross.slicing_specs]
    for slicing in slicing_specs:
        names.update(slicing.feature_keys)
        names.update(slicing.feature_values)
    return names


class EvaluatorExecutor(evaluator_executor.Executor):
    """TFX's Evaluator, decoding only `evaluated_feature_names`, a file per Beam element."""

    def Do(self, input_dict, output_dict, exec_properties):  # pylint: disable=invalid-name
        eval_config = json_format.Parse(exec_properties[specs.EVAL_CONFIG_KEY], tfma.EvalConfig())
        if specs.SCHEMA_KEY not in input_dict:
            raise ValueError("Evaluator: the projection onto the evaluated features needs the schema input")
        names = sorted(evaluated_feature_names(eval_config))
        file_format = file_reads.GZIP_FORMAT if file_reads.gzipped_tf_examples(input_dict[specs.EXAMPLES_KEY]) else None
        with file_reads.tfx_reads_file_at_a_time(project=names, file_format=file_format):
            return super().Do(input_dict, output_dict, exec_properties)


class Evaluator(components.Evaluator):
    """TFX's Evaluator (its id, outputs and ML Metadata) running `EvaluatorExecutor`."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(EvaluatorExecutor)
