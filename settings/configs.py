"""Every knob of rankloss-tfx, typed, with its valid values: the one place for settings.

`PipelineConfig` nests one dataclass per concern. Each field is declared with `setting(...)`
(settings/fields.py): its default, its help text, and optionally its flag name, its valid choices or a
check, and whether a run's results can depend on it. `validate()` reads those declarations, so a new
knob is one field here (its flag follows, see settings/flags.py).
The Transform and the Trainer receive their parts through `custom_config` as plain dicts.
"""
import dataclasses
import os
import re
from typing import Any, Dict, List, Optional, Tuple

from settings.vertex import VertexConfig
from settings.fields import (Check, NON_NEGATIVE, OPEN_UNIT_INTERVAL, POSITIVE, POSITIVE_WIDTHS, RATE, UNIT_INTERVAL,
                             field_problems, from_dict, json_ready, result_values, setting)

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OBJECT_STORE_SCHEMES = ("gs://", "s3://")


@dataclasses.dataclass(frozen=True)
class LossChoice:
    """A loss `--loss` may name: its `tf.keras.losses.Loss` class in trainer/losses.py and the parameters it
    takes (their defaults are the class's)."""
    keras_class: str
    parameters: Tuple[str, ...]


# The one registry of losses: the flag's choices, the Trainer's classes and their parameters all come from it.
LOSS_CHOICES: Dict[str, LossChoice] = {
    "bce": LossChoice("WeightedBinaryCrossentropy", ("beta_pos",)),
    "combined_pair": LossChoice("CombinedPair", ("alpha", "beta_pos")),
    "combined_list": LossChoice("CombinedList", ("alpha", "beta_pos")),
    "rcr": LossChoice("RCR", ("alpha", "beta_pos")),
    "jrc": LossChoice("JRC", ("jrc_weight", "beta_pos")),
    "focal": LossChoice("Focal", ("gamma", "beta_pos")),
    "focal_norm": LossChoice("NormalizedFocal", ("gamma", "beta_pos")),
    "combined_contrastive": LossChoice("CombinedContrastive", ("alpha", "beta_pos", "tau")),
}
LOSSES = tuple(LOSS_CHOICES)
OPTIMIZERS = ("adam", "lazy_adam")
PRECISIONS = ("float32", "mixed_bfloat16")
STRUCTURES = ("parallel", "stacked")
EMBEDDING_REGULARIZATIONS = ("table", "batch")
INPUT_FORMATS = ("tsv", "csv")

LOSS_PARAMETER_CHECKS: Dict[str, Check] = {"alpha": UNIT_INTERVAL, "beta_pos": POSITIVE, "gamma": NON_NEGATIVE,
                                           "tau": POSITIVE, "jrc_weight": UNIT_INTERVAL}


def check_loss_parameter(name: str, value: float) -> None:
    """Raises ValueError for an unknown loss parameter or a value outside its range."""
    if name not in LOSS_PARAMETER_CHECKS:
        raise ValueError(f"unknown loss parameter {name!r}; valid: {', '.join(LOSS_PARAMETER_CHECKS)}")
    predicate, description = LOSS_PARAMETER_CHECKS[name]
    if not predicate(value):
        raise ValueError(f"loss parameter {name} must be {description}, got {value}")


@dataclasses.dataclass
class DataConfig:
    """The embedded generator (ingestion/generate.py)."""

    num_rows: int = setting(60_000, "rows the embedded generator writes", flag="--rows", check=POSITIVE,
                            changes_results=True)
    ctr: float = setting(0.256, "generator click-through rate (Criteo's: 0.256)", check=OPEN_UNIT_INTERVAL,
                         changes_results=True)
    seed: int = setting(7, "generator seed", flag="--data-seed", changes_results=True)
    max_cardinality: int = setting(30, "tokens per categorical field at most (1000000: Criteo-like vocabularies)",
                                   check=POSITIVE, changes_results=True)


@dataclasses.dataclass
class TransformConfig:
    """Vocabulary preprocessing (transforms/preprocessing.py). The Trainer reads what it needs of the
    result (each field's id range) from the Transform output itself, never from these settings."""

    min_category_count: int = setting(1, "vocabulary frequency threshold (BARS Criteo_x1: 1, Criteo_x4: 10)",
                                      check=POSITIVE, changes_results=True)
    max_vocabulary_size: Optional[int] = setting(
        None, "per field, at most this many most frequent tokens get ids; the rest hash into --num-oov-buckets "
              "(unset: no cap; MLPerf's DLRM caps Criteo 1TB at 40000000)", check=POSITIVE, changes_results=True)
    num_oov_buckets: int = setting(1, "hashed buckets for out-of-vocabulary categories (and tokens past the cap)",
                                   check=POSITIVE, changes_results=True)
    output_files: Optional[int] = setting(None, "transformed example files per split, at least (unset: one per training "
                                          "replica, so each reads its own)", check=POSITIVE, changes_results=True)

    def for_workers(self, training_replicas: int) -> "TransformConfig":
        """These settings with `output_files` resolved for a training job of `training_replicas` (0: none)."""
        return dataclasses.replace(self, output_files=self.output_files or max(1, training_replicas))


@dataclasses.dataclass
class ModelConfig:
    """DCN V2 (Wang et al. 2021) as in BARS DCNv2_criteo_x1."""

    structure: str = setting("parallel", "DCN V2 structure", choices=STRUCTURES, changes_results=True)
    embedding_dim: int = setting(10, "embedding size of every field", check=POSITIVE, changes_results=True)
    num_cross_layers: int = setting(3, "number of cross layers", flag="--cross-layers", check=NON_NEGATIVE,
                                    changes_results=True)
    cross_projection_dim: Optional[int] = setting(None, "low-rank cross projection (full rank when unset)",
                                                  flag="--projection-dim", check=POSITIVE, changes_results=True)
    dnn_units: Tuple[int, ...] = setting((500, 500, 500), "comma-separated DNN widths, e.g. 500,500,500",
                                         check=POSITIVE_WIDTHS, changes_results=True)
    dropout: float = setting(0.1, "DNN dropout rate", check=(lambda v: 0.0 <= v < 1.0, "in [0, 1)"),
                             changes_results=True)
    embedding_l2: float = setting(1e-5, "L2 weight on the embeddings", check=NON_NEGATIVE, changes_results=True)
    embedding_regularization: str = setting(
        "table", "embedding L2 over the whole table, or over the batch's rows (needed by lazy_adam)",
        choices=EMBEDDING_REGULARIZATIONS, changes_results=True)


@dataclasses.dataclass
class LossConfig:
    """Training objective (trainer/losses.py). An unset parameter takes the chosen loss's default."""

    name: str = setting("bce", "training loss (README: Choosing the loss)", flag="--loss", choices=LOSSES,
                        changes_results=True)
    alpha: Optional[float] = setting(None, "BCE weight α of combination losses, Eq. 4, 8, 18 (unset: the loss's own)",
                                     changes_results=True)
    beta_pos: float = setting(1.0, "weight on positives simulating sparse feedback (Eq. 15)", changes_results=True)
    gamma: Optional[float] = setting(None, "focal exponent γ, Eq. 16-17 (unset: the loss's own)", changes_results=True)
    tau: Optional[float] = setting(None, "contrastive temperature τ, Eq. 19 (unset: the loss's own)",
                                   changes_results=True)
    jrc_weight: Optional[float] = setting(None, "weight of JRC's ranking term, Eq. 6-7 (unset: the loss's own)",
                                          changes_results=True)
    negative_sampling_rate: float = setting(1.0, "fraction of negatives kept in training (§4.5.2)", check=RATE,
                                            changes_results=True)

    def parameters(self) -> Dict[str, float]:
        """The loss parameters set for this loss, by name: what `trainer.losses.get_loss` takes."""
        takes = LOSS_CHOICES[self.name].parameters if self.name in LOSS_CHOICES else ()
        return {p: getattr(self, p) for p in takes if getattr(self, p) is not None}


@dataclasses.dataclass
class TrainConfig:
    """Optimisation regime (Adam, clipping, plateau schedule, early stopping).

    `cache_dataset` and `cache_limit_mb` change speed and memory only: they choose whether a split is held
    in memory or streamed, and the study runner records the path taken in a run's identity
    (`trainer.data.train_input_path`), since the two shuffle alike only within one streaming window."""

    batch_size: int = setting(1024, "training batch size (BARS Criteo_x1: 4096; 1024 suits the embedded data's "
                                    "42k training rows)", check=POSITIVE, changes_results=True)
    learning_rate: float = setting(1e-3, "initial learning rate", check=POSITIVE, changes_results=True)
    clipnorm: float = setting(10.0, "global gradient-norm clip, 0 for none (FuxiCTR clip_grad_norm_)",
                              check=NON_NEGATIVE, changes_results=True)
    optimizer: str = setting("adam", "adam (reference) or lazy_adam (row-wise embedding updates)",
                             choices=OPTIMIZERS, changes_results=True)
    precision: str = setting("float32", "float32, or mixed_bfloat16 (float32 logit and loss)", choices=PRECISIONS,
                             changes_results=True)
    jit_compile: bool = setting(False, "compile the train step with XLA", changes_results=True)
    cache_dataset: bool = setting(False, "parse the train and eval splits into memory once, whatever their size",
                                  changes_results=False)
    cache_limit_mb: int = setting(2048, "hold a split in memory when its tables fit in this many MB (twice that "
                                        "while loading), else stream it; 0: always stream", check=NON_NEGATIVE,
                                  changes_results=False)
    epochs: int = setting(100, "maximum epochs", check=POSITIVE, changes_results=True)
    steps_per_epoch: Optional[int] = setting(None, "train steps per epoch (one pass when unset)", check=POSITIVE,
                                             changes_results=True)
    eval_steps: Optional[int] = setting(None, "validation steps per epoch (one pass when unset)", check=POSITIVE,
                                        changes_results=True)
    lr_decay_factor: float = setting(0.1, "learning-rate factor on a validation plateau", check=RATE,
                                     changes_results=True)
    min_learning_rate: float = setting(1e-6, "learning-rate floor", check=NON_NEGATIVE, changes_results=True)
    early_stop_patience: int = setting(2, "epochs without improvement before stopping", check=POSITIVE,
                                       changes_results=True)
    min_improvement: float = setting(1e-4, "validation-AUC gain that counts as an improvement (checkpoint, "
                                           "learning-rate decay, early stopping)", check=NON_NEGATIVE,
                                     changes_results=True)
    ps_min_shard_kb: int = setting(256, "parameter servers: a variable is split across them in shards of at least "
                                        "this many KiB, one per server at most", check=POSITIVE, changes_results=False)
    seed: int = setting(2024, "training seed", flag="--train-seed", changes_results=True)
    deterministic: bool = setting(True, "deterministic ops: the same seed repeats a run", changes_results=True)
    gradient_diagnostics: bool = setting(False, "log per-batch gradient norms (negatives' logits, DNN, cross)",
                                         changes_results=True)  # a study's record holds the norms
    diagnostics_window: int = setting(50, "batches per gradient-norm mean / p90 summary", check=POSITIVE,
                                      changes_results=False)  # the summary files only, no record reads them


def _default_output_root() -> str:
    # RANKLOSS_OUTPUT_ROOT lets the tfx CLI (which passes no flags) write elsewhere.
    return os.environ.get("RANKLOSS_OUTPUT_ROOT", os.path.join(PROJECT_ROOT, "work"))


@dataclasses.dataclass
class PipelineConfig:
    """Where the pipeline reads and writes, plus each component's settings."""

    pipeline_name: str = setting("rankloss-tfx", "TFX pipeline name")
    output_root: str = setting(None, "where data, artifacts and models go: a folder, gs:// or s3://", factory=_default_output_root)
    input: str = setting("", "raw Criteo logs the pipeline ingests: a file or glob (local, gs://, s3://); "
                              "empty: the embedded generator's file under the output root")
    input_format: str = setting("tsv", "the raw logs' format: tsv (Criteo's) or csv (a header row allowed)",
                                choices=INPUT_FORMATS)
    min_eval_auc: float = setting(0.55, "Evaluator blessing: AUC floor on the test split", check=UNIT_INTERVAL)
    statistics_sample_rate: float = setting(1.0, "fraction of each split StatisticsGen describes and ExampleValidator "
                                            "checks, drawn before decoding (for millions of rows)", check=RATE)
    beam_pipeline_args: List[str] = setting(None, "Beam arguments of the Beam components (after --, or --beam-arg)",
        factory=lambda: ["--direct_running_mode=in_memory", "--direct_num_workers=1"])
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    transform: TransformConfig = dataclasses.field(default_factory=TransformConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    vertex: VertexConfig = dataclasses.field(default_factory=VertexConfig)

    # Derived locations, all under output_root.
    @property
    def raw_data_path(self) -> str:
        return os.path.join(self.output_root, "data", "criteo_generated.tsv")

    @property
    def logs_path(self) -> str:
        """The raw logs the pipeline's ExampleGen ingests: `--input`, else the embedded generator's file."""
        return self.input or self.raw_data_path

    @property
    def pipeline_root(self) -> str:
        return os.path.join(self.output_root, "tfx", self.pipeline_name)

    @property
    def metadata_path(self) -> str:
        """The local runner's ML Metadata: SQLite, so a local file (~/.rankloss-tfx/metadata/) for an object store root."""
        if self.output_root.startswith(OBJECT_STORE_SCHEMES):
            return os.path.join(os.path.expanduser("~"), ".rankloss-tfx", "metadata", re.sub(r"\W+", "_", self.output_root),
                                "metadata.sqlite")
        return os.path.join(self.output_root, "tfx", "metadata.sqlite")

    @property
    def serving_root(self) -> str:
        return os.path.join(self.output_root, "serving", self.pipeline_name)


SECTIONS = ("data", "transform", "model", "loss", "train")  # every one is read by a run's identity
TRAINING_SECTIONS = ("transform", "model", "loss", "train")  # what the pipeline runs on ingested data
VERTEX_SECTION = "vertex"  # only the Kubeflow V2 / Vertex AI compiler takes these flags


@dataclasses.dataclass
class TrainerSettings:
    """What the Trainer receives through `custom_config`."""

    model: ModelConfig
    loss: LossConfig
    train: TrainConfig

    @classmethod
    def from_pipeline_config(cls, config: PipelineConfig) -> "TrainerSettings":
        return cls(config.model, config.loss, config.train)

    def to_custom_config(self) -> Dict[str, Any]:
        return {f.name: dataclasses.asdict(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def identity(self) -> Dict[str, Any]:
        """The settings a run's results can depend on (JSON-ready), by section."""
        return {f.name: json_ready(result_values(getattr(self, f.name))) for f in dataclasses.fields(self)}

    @classmethod
    def from_custom_config(cls, custom_config: Dict[str, Any]) -> "TrainerSettings":
        return cls(**{f.name: from_dict(f.type, custom_config.get(f.name, {})) for f in dataclasses.fields(cls)})


class SettingsError(ValueError):
    """Invalid settings; the message names every problem, its flag and the valid values."""


def _loss_problems(loss: LossConfig) -> List[str]:
    problems = []
    takes = LOSS_CHOICES[loss.name].parameters if loss.name in LOSS_CHOICES else LOSS_PARAMETER_CHECKS
    for name in LOSS_PARAMETER_CHECKS:
        value = getattr(loss, name)
        if value is None:
            continue
        if name not in takes:
            problems.append(f"--{name.replace('_', '-')}: loss {loss.name!r} takes no {name} "
                            f"(its parameters: {', '.join(takes)})")
            continue
        try:
            check_loss_parameter(name, value)
        except ValueError as error:
            problems.append(f"--{name.replace('_', '-')}: {error}")
    return problems


def validate(config: PipelineConfig) -> None:
    """Raises SettingsError naming every invalid setting of `config`, with its flag and valid values."""
    problems = field_problems(config)
    for name in SECTIONS + (VERTEX_SECTION,):
        problems += field_problems(getattr(config, name))
    problems += _loss_problems(config.loss)
    if config.train.optimizer == "lazy_adam" and config.model.embedding_l2 and \
            config.model.embedding_regularization == "table":
        problems.append("--optimizer lazy_adam needs --embedding-regularization batch: a table-wide L2 makes every "
                        "embedding gradient dense (or set --embedding-l2 0)")
    problems += config.vertex.job_problems(config.train.steps_per_epoch, config.train.eval_steps)
    if problems:
        raise SettingsError("invalid settings:\n  " + "\n  ".join(problems))
