"""The Beam steps on each local runner, side by side: seconds and rows/s per step.

    python -m benchmarks.beam_runners [--rows 60000] [--runners in_memory,multi_processing,portable]

The same generated rows go through the pipeline's DAG from the raw TSV (its ExampleGen ingests) up to
Transform (`create_data_pipeline`) once per runner:
- `in_memory`: the DirectRunner in this process (`--direct_running_mode=in_memory`, the default);
- `multi_processing`: the DirectRunner with `--direct_num_workers` SDK worker processes;
- `portable`: the PortableRunner against a local job service and an external worker pool
  (`pipeline.portable_beam`), the layout of Dataflow and Flink.
Component times come from ML Metadata (each execution's start and end), so they include each
component's fixed start-up; the rates are rows over those seconds.
"""
import argparse
import os
import shutil
import tempfile
from typing import Dict, List

from benchmarks import results as results_lib, stages
from pipeline import inputs, pipeline as pipeline_lib, portable_beam, results as pipeline_results
from settings import configs

STEPS = ("RawLogsExampleGen", "StatisticsGen", "Transform")


def run_steps(raw_path: str, output_root: str, beam_args: List[str]) -> Dict[str, float]:
    config = configs.PipelineConfig(output_root=output_root, beam_pipeline_args=beam_args)
    os.makedirs(os.path.dirname(config.raw_data_path), exist_ok=True)
    shutil.copy(raw_path, config.raw_data_path)
    return stages.stage_seconds(config, create=pipeline_lib.create_data_pipeline)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--runners", default="in_memory,multi_processing,portable")
    parser.add_argument("--workers", type=int, default=2, help="multi_processing's worker processes")
    args = parser.parse_args()
    runners = args.runners.split(",")
    unknown = set(runners) - {"in_memory", "multi_processing", "portable"}
    if unknown:
        parser.error(f"unknown runners {sorted(unknown)}; valid: in_memory, multi_processing, portable")

    work = tempfile.mkdtemp(prefix="beam_runners_")
    data = configs.PipelineConfig(output_root=os.path.join(work, "data"),
                                  data=configs.DataConfig(num_rows=args.rows))
    inputs.prepare_data(data)
    results = {}
    for runner in runners:
        output_root = os.path.join(work, runner)
        if runner == "portable":
            with portable_beam.local_services(os.path.join(work, "services")) as beam_args:
                results[runner] = run_steps(data.raw_data_path, output_root, beam_args)
        else:
            beam_args = (["--direct_running_mode=in_memory", "--direct_num_workers=1"] if runner == "in_memory" else
                         ["--direct_running_mode=multi_processing", f"--direct_num_workers={args.workers}"])
            results[runner] = run_steps(data.raw_data_path, output_root, beam_args)
        print(f"  {runner}: " + ", ".join(f"{step} {results[runner][step]:.1f} s" for step in STEPS), flush=True)
    counts = pipeline_results.row_counts(configs.PipelineConfig(output_root=os.path.join(work, runners[0])))
    rows = sum(split["read"] for split in counts["splits"].values())
    print(f"\n{rows:,} rows; seconds (rows/s) per step; ratios to {runners[0]}")
    print(f"{'step':<18}" + "".join(f"{r:>28}" for r in runners))
    table = []
    for step in STEPS:
        base = results[runners[0]][step]
        cells = [f"{results[r][step]:7.1f} s {rows / results[r][step]:>8,.0f}/s x{base / results[r][step]:4.2f}"
                 for r in runners]
        print(f"{step:<18}" + "".join(f"{c:>28}" for c in cells))
        table.append([step] + [f"{results[r][step]:.1f} s, {rows / results[r][step]:,.0f} rows/s, "
                               f"×{base / results[r][step]:.2f}" for r in runners])
    run = results_lib.Run("beam_runners")
    run.table(f"{rows:,} rows: seconds, rows/s and speed relative to {runners[0]}, per step", ["step"] + runners, table)
    run.save()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
