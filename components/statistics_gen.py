"""StatisticsGen reading gzipped `tf.Example` files a file at a time, sampling before it decodes.

For Examples artifacts of gzipped `tf.Example` TFRecords (what the ExampleGen writes), TFX's executor
runs with the file-at-a-time reader (components/file_reads.py), which decodes each file's rows in large
batches on a few threads. With a sample rate below 1 in the statistics options (`--statistics-sample-rate`)
the reader decodes only the rows `file_reads.in_sample` picks, a fixed fraction by each record's
fingerprint, and TFDV samples nothing more: TFDV's own `sample_rate` would sample after every row was
decoded, and decoding is most of StatisticsGen's per-row cost. The statistics then describe the sample
(their `num_examples` counts it) and the artifact's `sample_rate_by_split` property (TFX's own) records
the rate of every split. Other inputs, and rates set per split, are left to TFX and TFDV as they are.
"""
from tensorflow_data_validation.statistics import stats_options
from tfx import components
from tfx.components.statistics_gen import executor as statistics_gen_executor
from tfx.dsl.components.base import executor_spec
from tfx.types import artifact_utils, standard_component_specs as specs
from tfx.utils import json_utils

from components import file_reads


class Executor(statistics_gen_executor.Executor):
    """TFX's StatisticsGen executor reading a file at a time, sampling before decoding (module docstring)."""

    def Do(self, input_dict, output_dict, exec_properties):  # pylint: disable=invalid-name
        if not file_reads.gzipped_tf_examples(input_dict[specs.EXAMPLES_KEY]):
            return super().Do(input_dict, output_dict, exec_properties)
        options_json = exec_properties.get(specs.STATS_OPTIONS_JSON_KEY)
        options = stats_options.StatsOptions.from_json(options_json) if options_json else None
        rate = options.sample_rate if options is not None else None
        if rate is None or rate >= 1.0 or exec_properties.get(specs.SAMPLE_RATE_BY_SPLIT_KEY):
            with file_reads.tfx_reads_file_at_a_time():
                return super().Do(input_dict, output_dict, exec_properties)
        with file_reads.tfx_reads_file_at_a_time(sample_rate=rate) as reads_file_at_a_time:
            if not reads_file_at_a_time:  # the patch does not apply here: TFDV samples, as without it
                return super().Do(input_dict, output_dict, exec_properties)
            options.sample_rate = None  # the reader samples; TFDV describes all it decodes
            super().Do(input_dict, output_dict, {**exec_properties, specs.STATS_OPTIONS_JSON_KEY: options.to_json()})
        statistics = artifact_utils.get_single_instance(output_dict[specs.STATISTICS_KEY])
        splits = artifact_utils.decode_split_names(statistics.split_names)
        statistics.set_json_value_custom_property(statistics_gen_executor.SAMPLE_RATE_BY_SPLIT_PROPERTY_NAME,
                                                  json_utils.dumps({split: rate for split in splits}))
        return None


class StatisticsGen(components.StatisticsGen):
    """TFX's StatisticsGen (its id, outputs and ML Metadata) running `Executor`."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
