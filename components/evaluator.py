"""TFX's Evaluator, decoding only the features its evaluation reads, with TFMA's extracts kept batched.

TFMA turns every decoded feature of every example into a per-example extract, in Python (its unbatch
extractor). The model does not need them: its `serving_default` signature takes the serialized
example, which TFMA passes from the raw record column, and the metrics read one feature, the label.

`Executor` reads the examples a file per Beam element (components/file_reads.py) and projects
the reader (tfx-bsl's `TFXIO.Project`) onto `evaluated_feature_names`: every model's label and
example-weight keys and every slicing spec's feature keys, parsed by `tf.io.parse_example`. A metric
that reads other features from the examples would need them named here. The projection needs the
schema, which the pipeline gives the Evaluator.

TFMA then splits each record batch into per-example extracts for its metrics, one Python call per
example and metric. `custom_extractors` (TFX's Evaluator calls it, named by `module_path`) keeps
TFMA's extractors but that split, so the metrics of `components.batch_metrics` see a whole batch per
call. Only those metrics, on the overall slice, are correct on batches: `check_batched` refuses the rest.
The metric values and the calibration plot are TFMA's (tests/test_evaluator.py).
"""
from typing import Any, List, Set

import tensorflow_model_analysis as tfma
from google.protobuf import json_format
from tfx import components
from tfx.components.evaluator import executor as evaluator_executor
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_component_specs as specs
from tensorflow_model_analysis.extractors import unbatch_extractor

from components import batch_metrics, file_reads

MODULE_PATH = __name__  # the Evaluator's `module_path`: TFX finds `custom_extractors` here


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


def check_batched(eval_config: tfma.EvalConfig) -> None:
    """Raise unless every metric of `eval_config` is one of `components.batch_metrics`, on the overall slice
    alone: a per-example metric would count batches as examples, a feature slice would slice batches."""
    for spec in eval_config.metrics_specs:
        for metric in spec.metrics:
            if metric.module != batch_metrics.__name__:
                raise ValueError(f"Evaluator: metric {metric.class_name!r} (module {metric.module!r}) is not "
                                 f"computed on batches; use one of {batch_metrics.__name__}'s")
    if any(spec != tfma.SlicingSpec() for spec in eval_config.slicing_specs) or eval_config.cross_slicing_specs:
        raise ValueError("Evaluator: batched extracts are evaluated on the overall slice only; "
                         f"got slicing specs {list(eval_config.slicing_specs)} and cross slicing specs "
                         f"{list(eval_config.cross_slicing_specs)}")
    if eval_config.options.compute_confidence_intervals.value or eval_config.options.min_slice_size.value > 1:
        raise ValueError("Evaluator: confidence intervals and min_slice_size resample or count extracts, "
                         "which are batches here")


def custom_extractors(eval_shared_model: Any, eval_config: tfma.EvalConfig,
                      tensor_adapter_config: Any) -> List[tfma.extractors.Extractor]:
    """TFMA's default extractors for `eval_config`, without the one that splits batches into examples."""
    check_batched(eval_config)
    extractors = tfma.default_extractors(eval_shared_model=eval_shared_model, eval_config=eval_config,
                                         tensor_adapter_config=tensor_adapter_config)
    return [e for e in extractors if e.stage_name != unbatch_extractor.UNBATCH_EXTRACTOR_STAGE_NAME]


class Executor(evaluator_executor.Executor):
    """TFX's Evaluator, decoding only `evaluated_feature_names`, a file per Beam element."""

    def Do(self, input_dict, output_dict, exec_properties):  # pylint: disable=invalid-name
        eval_config = json_format.Parse(exec_properties[specs.EVAL_CONFIG_KEY], tfma.EvalConfig())
        if specs.SCHEMA_KEY not in input_dict:
            raise ValueError("Evaluator: the projection onto the evaluated features needs the schema input")
        names = sorted(evaluated_feature_names(eval_config))
        file_format = file_reads.GZIP_FORMAT if file_reads.gzipped_tf_examples(input_dict[specs.EXAMPLES_KEY]) else None
        with file_reads.tfx_reads_file_at_a_time(project=names, file_format=file_format, parse_in_tensorflow=True):
            return super().Do(input_dict, output_dict, exec_properties)


class Evaluator(components.Evaluator):
    """TFX's Evaluator (its id, outputs and ML Metadata) running `Executor` on batched extracts."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(self, **kwargs):
        super().__init__(module_path=MODULE_PATH, **kwargs)
