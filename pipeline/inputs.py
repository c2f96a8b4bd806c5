"""The pipeline's default input: the embedded generator's logs, written once under the output root.

Generation is skipped when the file is already there for the same generator settings (its report
records them), so the demo and the study runner re-run only what changed; the pipeline's ExampleGen
ingests the file (and its own cache skips that when the file is unchanged).
"""
from typing import Dict

from apache_beam.io.filesystems import FileSystems

from ingestion import convert, generate
from runtime import object_storage
from settings import configs


def prepare_data(config: configs.PipelineConfig) -> Dict:
    """Generates (when absent or different) and returns the generator's report."""
    object_storage.configure_beam_file_systems(config.beam_pipeline_args)
    meta_path = config.raw_data_path + ".meta.json"
    wanted = {"rows": config.data.num_rows, "seed": config.data.seed, "target_ctr": config.data.ctr,
              "max_cardinality": config.data.max_cardinality}
    if FileSystems.exists(meta_path):
        report = convert.read_json(meta_path)
        if {k: report.get(k) for k in wanted} == wanted and FileSystems.exists(config.raw_data_path):
            print(f"  reusing {config.raw_data_path} ({report['rows']} rows)")
            return report
    data = config.data
    report = generate.generate(config.raw_data_path, data.num_rows, data.ctr, data.seed, data.max_cardinality)
    print(f"  wrote {report['rows']} rows, CTR {report['ctr']:.4f} -> {config.raw_data_path}")
    return report
