"""The pipeline's inputs: the embedded generator's logs, or the user's, ingested once into TFRecords.

Each step is skipped when its output is already there for the same inputs (a stamp records what
was ingested), so the demo and the study runner re-run only what changed.
"""
import json
import os
from typing import Dict, Optional

from ingestion import convert, generate
from settings import configs


def prepare_data(config: configs.PipelineConfig) -> Dict:
    """Generates (when absent or different) and returns the generator's report."""
    meta_path = config.raw_data_path + ".meta.json"
    wanted = {"rows": config.data.num_rows, "seed": config.data.seed, "target_ctr": config.data.ctr,
              "max_cardinality": config.data.max_cardinality}
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            report = json.load(f)
        if {k: report.get(k) for k in wanted} == wanted and os.path.exists(config.raw_data_path):
            print(f"  reusing {config.raw_data_path} ({report['rows']} rows)")
            return report
    data = config.data
    report = generate.generate(config.raw_data_path, data.num_rows, data.ctr, data.seed, data.max_cardinality)
    print(f"  wrote {report['rows']} rows, CTR {report['ctr']:.4f} -> {config.raw_data_path}")
    return report


def ingest(config: configs.PipelineConfig, source: Optional[str] = None, file_format: str = "tsv") -> Dict:
    """Runs the Beam ingestion of `source` (default: the embedded data) unless the TFRecords are already
    there for this exact input; returns the per-split row counts."""
    source_path = source or config.raw_data_path
    stamp_path = os.path.join(config.tfrecord_root, "source.json")
    stat = os.stat(source_path)
    stamp = {"path": source_path, "bytes": stat.st_size, "mtime": stat.st_mtime}
    if os.path.exists(stamp_path):
        with open(stamp_path) as f:
            if json.load(f) == stamp:
                print(f"  reusing TFRecords under {config.tfrecord_root}")
                return convert.read_counts(config.tfrecord_root)
    counts = convert.run([source_path], config.tfrecord_root, file_format, config.beam_pipeline_args)
    with open(stamp_path, "w") as f:
        json.dump(stamp, f)
    return counts
