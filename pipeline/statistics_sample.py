"""StatisticsGen on a sample of each split, drawn before decoding.

TFDV's `StatsOptions.sample_rate` samples the rows after tfx-bsl has decoded every one of them, and
decoding is about half of StatisticsGen's per-row cost (BUILD.md). `--statistics-sample-rate` (below
1) sets that option, and `SamplesBeforeDecoding` has the file-at-a-time reader (pipeline/file_reads.py)
decode only the rows `file_reads.in_sample` picks, a fixed fraction by each record's fingerprint, while
TFDV samples nothing more. The statistics then describe the sample (their `num_examples` counts it),
and the artifact's `sample_rate_by_split` property (TFX's own) records the rate of every split; the
demo's summary states it. Inputs other than gzipped `tf.Example` TFRecords, or rates set per split, are left to
TFX and TFDV as they are.
"""
from tensorflow_data_validation.statistics import stats_options
from tfx.components.statistics_gen import executor as statistics_gen_executor
from tfx.types import artifact_utils, standard_component_specs as specs
from tfx.utils import json_utils

from pipeline import file_reads


class SamplesBeforeDecoding:
    """StatisticsGen executor mixin: TFDV's `sample_rate` applied by the reader, before decoding."""

    def Do(self, input_dict, output_dict, exec_properties):  # pylint: disable=invalid-name
        options_json = exec_properties.get(specs.STATS_OPTIONS_JSON_KEY)
        options = stats_options.StatsOptions.from_json(options_json) if options_json else None
        rate = options.sample_rate if options is not None else None
        if (rate is None or rate >= 1.0 or exec_properties.get(specs.SAMPLE_RATE_BY_SPLIT_KEY)
                or not file_reads.gzipped_tf_examples(input_dict[specs.EXAMPLES_KEY])):
            return super().Do(input_dict, output_dict, exec_properties)
        options.sample_rate = None  # the reader samples; TFDV describes all it decodes
        with file_reads.tfx_reads_file_at_a_time(sample_rate=rate):
            super().Do(input_dict, output_dict, {**exec_properties, specs.STATS_OPTIONS_JSON_KEY: options.to_json()})
        statistics = artifact_utils.get_single_instance(output_dict[specs.STATISTICS_KEY])
        splits = artifact_utils.decode_split_names(statistics.split_names)
        statistics.set_json_value_custom_property(statistics_gen_executor.SAMPLE_RATE_BY_SPLIT_PROPERTY_NAME,
                                                  json_utils.dumps({split: rate for split in splits}))
        return None
