"""What Criteo_x1 would cost in time and money on Dataflow and Vertex AI, from the per-row rates `data_path`
measured here (its result in benchmarks/results/data_path.json); an estimate, not a cloud measurement.

    python -m benchmarks.cloud_estimate [--workers 25] [--worker-cpus 8] [--replicas 4]

Assumptions, each a flag: every Dataflow worker vCPU runs one SDK process at the per-row rate measured on one
process here; work spreads evenly over the workers; each Beam job adds a fixed start-up; a training replica
trains at the Trainer's measured rate and replicas scale perfectly; the prices are list prices to check
against the current pricing pages (us-central1: Dataflow batch per vCPU-hour and per GB-hour, Vertex AI
training per replica-hour of the machine type).
"""
import argparse
import json
import os
from typing import Dict

from benchmarks import results
from transforms import features, splits

_SHARE = {name: buckets / sum(splits.SPLIT_BUCKETS) for name, buckets in zip(splits.SPLITS, splits.SPLIT_BUCKETS)}
CRITEO_X1 = {"rows": features.CRITEO_X1_ROWS, **{name: round(share * features.CRITEO_X1_ROWS)
                                                 for name, share in _SHARE.items()}}  # its 7:2:1 split
BEAM_STAGES = {"RawLogsExampleGen": "rows", "StatisticsGen": "rows", "Transform": "rows", "Evaluator": "test"}
INGESTION_NAMES = ("RawLogsExampleGen", "ingestion")  # the ingestion's stage before it joined the pipeline


def per_row_rates(record: Dict) -> Dict[str, float]:
    """{stage: rows per second per process} from a data_path result (its per-row rate column)."""
    table = record["tables"][0]
    stage, rate = table["columns"].index("stage"), table["columns"].index("per-row rate")
    rates = {row[stage]: row[rate] for row in table["rows"] if isinstance(row[rate], (int, float))}
    for name in INGESTION_NAMES:
        if name in rates:
            rates["RawLogsExampleGen"] = rates[name]
    missing = [stage for stage in [*BEAM_STAGES, "Trainer"] if stage not in rates]
    if missing:
        raise SystemExit(f"data_path measured no per-row rate for {', '.join(missing)} (start-up dominated at its "
                         "sizes): rerun python -m benchmarks.data_path with larger --rows and --small-rows")
    return rates


def estimate(rates: Dict[str, float], args: argparse.Namespace):
    cpus = args.workers * args.worker_cpus
    rows = []
    for stage, split in BEAM_STAGES.items():
        cpu_hours = CRITEO_X1[split] / rates[stage] / 3600
        hours = cpu_hours / cpus + args.startup_minutes / 60
        cost = hours * cpus * (args.vcpu_price + args.gb_per_cpu * args.gb_price)
        rows.append([f"{stage} (Dataflow)", CRITEO_X1[split], rates[stage], cpu_hours, hours * 60, cost])
    epoch_hours = CRITEO_X1["train"] / rates["Trainer"] / 3600 / args.replicas
    rows.append([f"Trainer, one epoch ({args.replicas} replicas)", CRITEO_X1["train"], rates["Trainer"],
                 epoch_hours * args.replicas, epoch_hours * 60, epoch_hours * args.replicas * args.replica_price])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=25, help="Dataflow workers")
    parser.add_argument("--worker-cpus", type=int, default=8, help="vCPUs per worker (n1-highmem-8)")
    parser.add_argument("--gb-per-cpu", type=float, default=6.5, help="GB of memory per vCPU (n1-highmem)")
    parser.add_argument("--startup-minutes", type=float, default=5.0, help="a Beam job's worker start-up")
    parser.add_argument("--vcpu-price", type=float, default=0.056, help="USD per Dataflow batch vCPU-hour")
    parser.add_argument("--gb-price", type=float, default=0.003557, help="USD per Dataflow batch GB-hour")
    parser.add_argument("--replicas", type=int, default=4, help="Vertex AI training replicas")
    parser.add_argument("--replica-price", type=float, default=0.437, help="USD per n1-standard-8 training hour")
    args = parser.parse_args()
    with open(os.path.join(results.RESULTS_DIR, "data_path.json")) as f:
        measured = json.load(f)
    rows = estimate(per_row_rates(measured), args)
    rows.append(["total, one epoch", "", "", sum(r[3] for r in rows), sum(r[4] for r in rows),
                 sum(r[5] for r in rows)])
    run = results.Run("cloud_estimate")
    run.table(f"Criteo_x1 estimated from data_path's per-row rates (commit {measured['commit']}): "
              f"{args.workers} Dataflow workers × {args.worker_cpus} vCPUs, {args.replicas} training replicas",
              ["stage", "rows", "rows/s per process (measured)", "process-hours", "minutes", "USD"], rows,
              "An estimate under the assumptions in benchmarks/cloud_estimate.py (prices: list prices to check); "
              "nothing here ran on Google Cloud.")
    run.save()


if __name__ == "__main__":
    main()
