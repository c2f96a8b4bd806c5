"""The demo's closing summary: rows per split, the data path's rates, what was trained, the test metrics."""
from typing import Dict, List, Optional

from ingestion import convert
from pipeline import results
from settings import configs
from transforms import features

DATA_COMPONENTS = (("ingestion (ExampleGen)", results.EXAMPLE_GEN), ("StatisticsGen", "StatisticsGen"),
                   ("Transform", "Transform"))


def training_line(config: configs.PipelineConfig, train_rows: int) -> str:
    """What was trained, and how the demo's size compares with the reference regime."""
    model, train = config.model, config.train
    reference = model == configs.ModelConfig() and (train.learning_rate, train.optimizer,
                                                    train.precision) == (1e-3, "adam", "float32")
    steps = -(-train_rows // train.batch_size)
    return (f"trained: DCN V2 {model.structure}, {model.num_cross_layers} cross, DNN "
            f"{'-'.join(map(str, model.dnn_units))}, embeddings {model.embedding_dim}, {train.optimizer} "
            f"{train.learning_rate:g}, batch {train.batch_size}, {train.precision}"
            f"{' (the reference model of BARS DCNv2_criteo_x1, which trains with batch 4096)' if reference else ''}; "
            f"{train_rows:,} train rows = {steps} steps per epoch at this size (full Criteo_x1, 32M rows: ~7,800)")


def data_path_lines(config: configs.PipelineConfig, counts: Dict) -> List[str]:
    """This run's seconds and rows/s per stage from raw logs to transformed examples (ML Metadata's), and the
    hours Criteo_x1 would take at those rates."""
    rows_read = sum(split["read"] for split in counts["splits"].values())
    rows_written = sum(split["written"] for split in counts["splits"].values())
    components = results.component_seconds(config.metadata_path)
    stages = [(name, None if components[component][1] else components[component][0],
               rows_read if component == results.EXAMPLE_GEN else rows_written)
              for name, component in DATA_COMPONENTS]
    measured = [seconds for _, seconds, _ in stages]
    stages.append(("raw -> transformed", None if None in measured else sum(measured), rows_read))
    lines = [f"data path of this run, start-up included (so Criteo_x1's {features.CRITEO_X1_ROWS:,} rows would "
             "take at most the hours shown; python -m benchmarks.data_path measures the per-row rates apart):",
             f"  {'stage':22} {'seconds':>8} {'rows/s':>8} {'Criteo_x1':>10}"]
    for name, seconds, rows in stages:
        if seconds is None:
            lines.append(f"  {name:22} {'reused (cached), not measured':>28}")
        else:
            lines.append(f"  {name:22} {seconds:>8.1f} {rows / seconds:>8,.0f} "
                         f"{features.CRITEO_X1_ROWS * seconds / rows / 3600:>8.1f} h")
    if config.statistics_sample_rate < 1.0:
        lines.append(f"  StatisticsGen described a {config.statistics_sample_rate * 100:g} % sample of each split, drawn "
                     "before decoding (--statistics-sample-rate); its rows/s counts every row")
    return lines


def summary(config: configs.PipelineConfig, report: Optional[Dict], elapsed: float) -> str:
    """The closing summary; `report` is the generator's (None for the user's logs: no Bayes-optimal values)."""
    outcome, counts = results.latest_run(config), results.row_counts(config)
    metrics = outcome["metrics"]
    nan = float("nan")
    bayes = report["splits"]["test"] if report else {"bayes_auc": nan, "bayes_logloss": nan}
    lines = ["", "=" * 72, "rankloss-tfx demo finished in %.0fs" % elapsed, "",
             "rows per split (read = written + rejected):", convert.format_counts(counts), "",
             *data_path_lines(config, counts), "",
             training_line(config, counts["splits"]["train"]["written"]), "",
             f"test split ({metrics.get('example_count', float('nan')):.0f} examples), "
             f"loss {config.loss.name}:",
             f"  {'':14} {'model':>10} {'Bayes-optimal':>14}",
             f"  {'AUC':14} {metrics.get('auc', float('nan')):>10.4f} {bayes['bayes_auc']:>14.4f}"
             f"   (gap to the optimum: {bayes['bayes_auc'] - metrics.get('auc', float('nan')):.4f})",
             f"  {'logloss':14} {metrics.get('logloss', float('nan')):>10.4f} {bayes['bayes_logloss']:>14.4f}",
             f"  {'weighted BCE':14} {metrics.get('weighted_bce', float('nan')):>10.4f} "
             f"{'(Eq. 15, beta_pos %g)' % config.loss.beta_pos:>14}",
             f"  {'calibration':14} {metrics.get('calibration', float('nan')):>10.4f} {'1.0000':>14}",
             "", f"blessed: {outcome['blessed']}",
             f"pushed model: {outcome['pushed_path'] or 'not pushed (not blessed)'}",
             f"metadata: {config.metadata_path}", "=" * 72]
    return "\n".join(lines)
