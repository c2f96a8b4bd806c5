"""The pipeline's inputs: the embedded generator's logs, or the user's, ingested once into TFRecords.

Each step is skipped when its output is already there for the same inputs (a stamp records what
was ingested), so the demo and the study runner re-run only what changed.
"""
import json
import os
from typing import Dict, Optional

from apache_beam.io.filesystems import FileSystems

from ingestion import convert, generate
from settings import configs
from runtime import object_storage

STAMP_FILE = "source.json"


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


def _source_stamp(config: configs.PipelineConfig, source_path: str) -> Dict:
    """What identifies the ingested input: its path, size and modification time."""
    object_storage.configure_beam_file_systems(config.beam_pipeline_args)
    matched = FileSystems.match([source_path])[0].metadata_list
    if not matched:
        raise FileNotFoundError(f"no click logs at {source_path}")
    return {"path": source_path, "bytes": matched[0].size_in_bytes, "mtime": matched[0].last_updated_in_seconds}


def _ingested_stamp(config: configs.PipelineConfig) -> Optional[Dict]:
    stamp_path = os.path.join(config.tfrecord_root, STAMP_FILE)
    return convert.read_json(stamp_path) if FileSystems.exists(stamp_path) else None


def is_ingested(config: configs.PipelineConfig, source: Optional[str] = None) -> bool:
    """Whether `config.tfrecord_root` already holds the TFRecords of `source` (default: the embedded data)."""
    return _ingested_stamp(config) == _source_stamp(config, source or config.raw_data_path)


def ingest(config: configs.PipelineConfig, source: Optional[str] = None, file_format: str = "tsv") -> Dict:
    """Runs the Beam ingestion of `source` (default: the embedded data) unless the TFRecords are already
    there for this exact input; returns the per-split row counts."""
    source_path = source or config.raw_data_path
    stamp = _source_stamp(config, source_path)
    if _ingested_stamp(config) == stamp:
        print(f"  reusing TFRecords under {config.tfrecord_root}")
        return convert.read_counts(config.tfrecord_root)
    counts = convert.run([source_path], config.tfrecord_root, file_format, config.beam_pipeline_args)
    with FileSystems.create(os.path.join(config.tfrecord_root, STAMP_FILE)) as f:
        f.write(json.dumps(stamp).encode("utf-8"))
    return counts

