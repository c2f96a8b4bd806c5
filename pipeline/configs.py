"""Every knob of rankloss-tfx in one typed place.

`PipelineConfig` nests one dataclass per concern. Runners build it from defaults
plus command-line overrides (`add_flags` / `from_flags`); the Transform and Trainer
receive their parts through `custom_config` as plain dicts (`to_dict`/`from_dict`).
"""
import argparse
import dataclasses
import os
from typing import Any, Dict, List, Optional, Tuple, Type, TypeVar

T = TypeVar("T")

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass
class DataConfig:
    """The embedded generator and the Beam ingestion job."""

    num_rows: int = 60_000            # generator size (demo default: a few minutes end to end)
    ctr: float = 0.256                # Criteo's click rate
    seed: int = 7
    input_format: str = "tsv"         # "tsv" (Kaggle train.txt) or "csv" (header + commas)


@dataclasses.dataclass
class TransformConfig:
    """Vocabulary and numeric preprocessing (see transforms/preprocessing.py)."""

    min_category_count: int = 1       # FuxiCTR min_categr_count: 1 in BARS Criteo_x1, 10 in Criteo_x4
    num_oov_buckets: int = 1


@dataclasses.dataclass
class ModelConfig:
    """DCN V2 (Wang et al. 2021) as in BARS DCNv2_criteo_x1."""

    structure: str = "parallel"       # "parallel" or "stacked"
    embedding_dim: int = 10
    num_cross_layers: int = 3
    cross_projection_dim: Optional[int] = None  # low-rank cross when set
    dnn_units: Tuple[int, ...] = (500, 500, 500)
    dropout: float = 0.1
    embedding_l2: float = 1e-5
    embedding_regularization: str = "table"     # L2 over the whole table, or "batch": the rows looked up


@dataclasses.dataclass
class LossConfig:
    """Training objective; names and parameters follow trainer.losses.get_loss."""

    name: str = "bce"
    alpha: float = 0.7                # weight of the BCE term in combination losses (Eq. 4, 8, 18)
    beta_pos: float = 1.0             # weight on positives simulating sparsity (Eq. 15)
    gamma: float = 2.0                # focal exponent (Eq. 16-17)
    tau: float = 0.4                  # contrastive temperature (Eq. 19)
    jrc_weight: float = 0.5           # weight of JRC's ranking term (Eq. 6-7)
    negative_sampling_rate: float = 1.0  # fraction r of negatives kept at training time


@dataclasses.dataclass
class TrainConfig:
    """Optimisation regime (Adam, clipping, plateau schedule, early stopping)."""

    batch_size: int = 4096
    learning_rate: float = 1e-3
    clipnorm: float = 10.0                 # global gradient norm clip (FuxiCTR clip_grad_norm_)
    optimizer: str = "adam"                # "adam" (reference) or "lazy_adam" (row-wise embedding updates)
    precision: str = "float32"             # "float32" or "mixed_bfloat16" (float32 logit and loss)
    jit_compile: bool = False              # XLA for the whole train step
    cache_dataset: bool = False            # keep the train/eval records in memory after the first pass
    epochs: int = 100
    steps_per_epoch: Optional[int] = None  # None: one pass over the train split
    eval_steps: Optional[int] = None       # None: one pass over the eval split
    lr_decay_factor: float = 0.1
    min_learning_rate: float = 1e-6
    early_stop_patience: int = 2
    seed: int = 2024
    deterministic: bool = True             # same seed -> same metrics (tf.config op determinism)
    gradient_diagnostics: bool = False     # log gradient norms per batch (trainer/diagnostics.py)
    diagnostics_window: int = 50           # batches per mean / p90 summary


@dataclasses.dataclass
class PipelineConfig:
    """Where the pipeline reads and writes, plus each component's settings."""

    pipeline_name: str = "rankloss-tfx"
    # RANKLOSS_OUTPUT_ROOT lets the tfx CLI (which passes no flags) write elsewhere.
    output_root: str = dataclasses.field(
        default_factory=lambda: os.environ.get("RANKLOSS_OUTPUT_ROOT", os.path.join(PROJECT_ROOT, "work")))
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    transform: TransformConfig = dataclasses.field(default_factory=TransformConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    min_eval_auc: float = 0.55        # Evaluator blessing: absolute AUC floor
    beam_pipeline_args: List[str] = dataclasses.field(
        default_factory=lambda: ["--direct_running_mode=in_memory", "--direct_num_workers=1"])

    # Derived locations, all under output_root.
    @property
    def raw_data_path(self) -> str:
        return os.path.join(self.output_root, "data", "criteo_generated.tsv")

    @property
    def tfrecord_root(self) -> str:
        return os.path.join(self.output_root, "tfrecords")

    @property
    def pipeline_root(self) -> str:
        return os.path.join(self.output_root, "tfx", self.pipeline_name)

    @property
    def metadata_path(self) -> str:
        return os.path.join(self.output_root, "tfx", "metadata.sqlite")

    @property
    def serving_root(self) -> str:
        return os.path.join(self.output_root, "serving", self.pipeline_name)


def to_dict(config: Any) -> Dict[str, Any]:
    """A JSON-friendly dict of a config dataclass (tuples become lists)."""
    return dataclasses.asdict(config)


def from_dict(cls: Type[T], values: Dict[str, Any]) -> T:
    """Rebuilds a config dataclass from `to_dict` output, recursing into nested configs."""
    kwargs = {}
    for field in dataclasses.fields(cls):
        if field.name not in values:
            continue
        value = values[field.name]
        if dataclasses.is_dataclass(field.type):
            value = from_dict(field.type, value)
        elif isinstance(value, list) and field.name != "beam_pipeline_args":
            value = tuple(value)
        kwargs[field.name] = value
    return cls(**kwargs)


# Command-line flags: (flag, section, field, type, help).
_FLAGS = [
    ("--output-root", None, "output_root", str, "where data, pipeline artifacts and models go"),
    ("--pipeline-name", None, "pipeline_name", str, "TFX pipeline name"),
    ("--rows", "data", "num_rows", int, "rows the embedded generator writes"),
    ("--ctr", "data", "ctr", float, "generator click-through rate"),
    ("--data-seed", "data", "seed", int, "generator seed"),
    ("--min-category-count", "transform", "min_category_count", int,
     "vocabulary frequency threshold (BARS Criteo_x1: 1, Criteo_x4: 10)"),
    ("--structure", "model", "structure", str, "DCN V2 structure: parallel or stacked"),
    ("--embedding-dim", "model", "embedding_dim", int, "embedding size of every field"),
    ("--cross-layers", "model", "num_cross_layers", int, "number of cross layers"),
    ("--projection-dim", "model", "cross_projection_dim", int, "low-rank cross projection"),
    ("--dnn-units", "model", "dnn_units", lambda s: tuple(int(u) for u in s.split(",")),
     "comma-separated DNN widths, e.g. 500,500,500"),
    ("--embedding-regularization", "model", "embedding_regularization", str,
     "embedding L2 on the whole table (table) or on the batch's rows (batch; needed by lazy_adam)"),
    ("--loss", "loss", "name", str, "training loss (see README)"),
    ("--alpha", "loss", "alpha", float, "BCE weight in combination losses"),
    ("--beta-pos", "loss", "beta_pos", float, "weight on positives (Eq. 15)"),
    ("--gamma", "loss", "gamma", float, "focal exponent"),
    ("--tau", "loss", "tau", float, "contrastive temperature"),
    ("--jrc-weight", "loss", "jrc_weight", float, "JRC ranking-term weight"),
    ("--negative-sampling-rate", "loss", "negative_sampling_rate", float,
     "fraction of negatives kept in training"),
    ("--min-eval-auc", None, "min_eval_auc", float, "Evaluator blessing: AUC floor on the test split"),
    ("--batch-size", "train", "batch_size", int, "training batch size"),
    ("--learning-rate", "train", "learning_rate", float, "Adam learning rate"),
    ("--epochs", "train", "epochs", int, "maximum epochs"),
    ("--steps-per-epoch", "train", "steps_per_epoch", int, "train steps per epoch"),
    ("--train-seed", "train", "seed", int, "training seed"),
    ("--optimizer", "train", "optimizer", str, "adam or lazy_adam (row-wise embedding updates)"),
    ("--precision", "train", "precision", str, "float32 or mixed_bfloat16"),
    ("--jit-compile", "train", "jit_compile", bool, "compile the train step with XLA"),
    ("--cache-dataset", "train", "cache_dataset", bool, "cache the Transform output in memory"),
    ("--deterministic", "train", "deterministic", bool, "deterministic ops: the same seed repeats a run"),
    ("--gradient-diagnostics", "train", "gradient_diagnostics", bool,
     "log per-batch gradient norms (negatives' logits, DNN, cross) to TensorBoard and CSV"),
    ("--diagnostics-window", "train", "diagnostics_window", int, "batches per gradient-norm mean / p90"),
]


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_flags(parser: argparse.ArgumentParser) -> None:
    """Adds one flag per configurable knob; unset flags keep the defaults."""
    for flag, _, _, kind, help_text in _FLAGS:
        if kind is bool:  # `--flag` alone means true; `--flag false` also works
            parser.add_argument(flag, type=_parse_bool, nargs="?", const=True, default=None, help=help_text)
        else:
            parser.add_argument(flag, type=kind, default=None, help=help_text)


def from_flags(args: argparse.Namespace, base: Optional[PipelineConfig] = None) -> PipelineConfig:
    """Applies parsed flags on top of `base` (defaults when None)."""
    config = base or PipelineConfig()
    for flag, section, field, _, _ in _FLAGS:
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        if value is None:
            continue
        target = config if section is None else getattr(config, section)
        setattr(target, field, value)
    if "://" not in config.output_root:  # keep gs://, s3://, hdfs:// roots as they are
        config.output_root = os.path.abspath(config.output_root)
    return config
