"""Memory of the model's variables per training task, under each strategy: the demo's measured, Criteo's projected.

    python -m benchmarks.memory [--output-root work] [--parameter-servers 2] [--batch-size 4096]

The demo's row: the vocabulary sizes of a finished pipeline's Transform output under `--output-root` (run
`python -m demo` first) and the variables of the DCN V2 built on them, counted. The Criteo rows: the same
model with the embedding table's rows assumed, each assumption in the row's name: Criteo_x1 at min count 1
(`--criteo-x1-rows`, the figure the Dataflow sizing assumes, settings/vertex.py), Criteo 1TB with MLPerf
DLRM's 40M cap per field (`--criteo-1tb-rows`, the sum of that reference's 26 table sizes).

Bytes: float32 variables; Adam keeps two more slots of each variable (`×3`); the embedding table is
`rows × embedding_dim × 4` bytes. Per task:
- one process, or each MultiWorkerMirroredStrategy worker: the whole table and the dense layers, with slots;
- each of P parameter servers: 1/P of both (a variable split evenly by rows);
- each parameter-server worker: no variable kept, the rows one batch looks up (`batch × 26 × d × 4` bytes,
  an upper bound) and the dense layers read for its step.
"""
import argparse

from benchmarks import results
from settings import configs
from transforms import features

ADAM_COPIES = 3  # the variable, Adam's m and v
MLPERF_1TB_ROWS = 187_767_399  # MLPerf DLRM's Criteo 1TB tables, each field capped at 40,000,000 rows


def dense_parameters(model: configs.ModelConfig) -> int:
    """Parameters of DCN V2 outside the categorical table (they do not depend on the vocabularies)."""
    from trainer import model as model_lib  # pylint: disable=import-outside-toplevel

    dcn = model_lib.DCNV2({k: 1 for k in features.CATEGORICAL_FEATURES}, model)
    dcn(model_lib.zero_row())
    return model_lib.count_parameters(dcn) - len(features.CATEGORICAL_FEATURES) * model.embedding_dim


def row(name: str, table_rows: int, dense: int, model: configs.ModelConfig, servers: int, batch: int) -> list:
    table = table_rows * model.embedding_dim * 4
    whole = (table + dense * 4) * ADAM_COPIES
    looked_up = batch * len(features.CATEGORICAL_FEATURES) * model.embedding_dim * 4
    return [name, table_rows, table / 2**20, whole / 2**20, whole / servers / 2**20, (looked_up + dense * 4) / 2**20]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-root", default=configs.PipelineConfig().output_root)
    parser.add_argument("--parameter-servers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4096, help="examples per worker step")
    parser.add_argument("--criteo-x1-rows", type=int, default=configs.VertexConfig().vocabulary_tokens)
    parser.add_argument("--criteo-1tb-rows", type=int, default=MLPERF_1TB_ROWS)
    args = parser.parse_args()
    from pipeline import results as pipeline_results  # pylint: disable=import-outside-toplevel
    from trainer import model as model_lib  # pylint: disable=import-outside-toplevel
    import tensorflow_transform as tft  # pylint: disable=import-outside-toplevel

    model = configs.ModelConfig()
    _, graph = pipeline_results.latest_transform_output(configs.PipelineConfig(output_root=args.output_root))
    demo_rows = sum(model_lib.vocabulary_sizes_from_transform(tft.TFTransformOutput(graph)).values())
    dense = dense_parameters(model)
    rows = [row("demo (measured vocabularies)", demo_rows, dense, model, args.parameter_servers, args.batch_size),
            row("Criteo_x1, min count 1 (assumed rows)", args.criteo_x1_rows, dense, model, args.parameter_servers,
                args.batch_size),
            row("Criteo 1TB, 40M cap per field (MLPerf's tables)", args.criteo_1tb_rows, dense, model,
                args.parameter_servers, args.batch_size)]
    columns = ["data", "table rows", "table MiB", "one process or MWMS worker, with Adam MiB",
               f"each of {args.parameter_servers} parameter servers MiB", "each parameter-server worker MiB"]
    note = (f"DCN V2 as configured by default (embedding {model.embedding_dim}, {dense:,} dense parameters); "
            f"float32; Adam: x{ADAM_COPIES}; batch {args.batch_size} per worker step")
    for values in [columns] + rows:
        print(" | ".join(f"{v:,.2f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else v
                         for v in values))
    run = results.Run("memory")
    run.table("memory of the model's variables per task", columns, rows, note)
    run.save()


if __name__ == "__main__":
    main()
