"""`run_fn`: the TFX Trainer entry point (data -> DCN V2 -> fit -> export).

Regime (BARS DCNv2_criteo_x1): Adam with gradient clipping, validation AUC every
epoch, best checkpoint kept, learning rate ×0.1 on a plateau, early stop after
`early_stop_patience` epochs without improvement, best weights exported
(trainer/schedule.py). Seeded and, by default, deterministic; an interrupted run
resumes from its last epoch when the Trainer runs again with the same inputs.
"""
import dataclasses
import hashlib
import json
import os
from typing import Any, Dict, List

from absl import logging
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tfx import v1 as tfx

from pipeline import configs
from serving import signatures
from trainer import calibration, data, diagnostics, losses, metrics, model as model_lib, optimizers, schedule
from trainer.objective import TrainingModel

BEST_CHECKPOINT = "best.weights.h5"
SCHEDULE_STATE = "schedule.json"


@dataclasses.dataclass
class TrainerSettings:
    """What the Trainer receives through `custom_config`."""

    model: configs.ModelConfig
    loss: configs.LossConfig
    train: configs.TrainConfig
    transform: configs.TransformConfig

    @classmethod
    def from_pipeline_config(cls, config: configs.PipelineConfig) -> "TrainerSettings":
        return cls(config.model, config.loss, config.train, config.transform)

    def to_custom_config(self) -> Dict[str, Any]:
        return {f.name: configs.to_dict(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_custom_config(cls, custom_config: Dict[str, Any]) -> "TrainerSettings":
        return cls(**{f.name: configs.from_dict(f.type, custom_config.get(f.name, {}))
                      for f in dataclasses.fields(cls)})


def build_loss(loss: configs.LossConfig) -> tf.keras.losses.Loss:
    """The configured loss; raises ValueError naming valid choices for a bad name or parameter."""
    if not 0.0 < loss.negative_sampling_rate <= 1.0:
        raise ValueError(f"negative_sampling_rate must be in (0, 1], got {loss.negative_sampling_rate}")
    return losses.get_loss(loss.name, alpha=loss.alpha, beta_pos=loss.beta_pos, gamma=loss.gamma,
                           tau=loss.tau, jrc_weight=loss.jrc_weight)


def compile_model(model: tf.keras.Model, settings: TrainerSettings, loss: tf.keras.losses.Loss) -> None:
    """Adam (or row-wise Adam) with global-norm clipping; AUC, plain logloss and the paper's β_pos-weighted BCE."""
    train = settings.train
    model.compile(
        optimizer=optimizers.make_optimizer(train.optimizer, train.learning_rate, train.clipnorm),
        loss=loss, jit_compile=train.jit_compile,
        metrics=[tf.keras.metrics.AUC(from_logits=True, name="auc"),
                 tf.keras.metrics.BinaryCrossentropy(from_logits=True, name="logloss"),
                 metrics.WeightedBCE(beta_pos=settings.loss.beta_pos, name="weighted_bce")])


def fit_calibration(ctr_model: model_lib.DCNV2, eval_ds: tf.data.Dataset) -> None:
    """Fits isotonic calibration of σ(logit) on the eval split into the exported model (§4.5.2)."""
    predictions, labels = [], []
    for batch_features, batch_labels in eval_ds:
        predictions.append(tf.sigmoid(ctr_model(batch_features)).numpy().ravel())
        labels.append(batch_labels.numpy().ravel())
    ctr_model.calibration.set_knots(*calibration.fit_isotonic(np.concatenate(predictions), np.concatenate(labels)))


def resume_dir(fn_args: tfx.components.FnArgs) -> str:
    """Where an interrupted run's backup lives: beside the Trainer's executions, keyed by its inputs and
    settings, so the re-run of a failed Trainer (a new execution) finds it and resumes."""
    key = json.dumps([fn_args.custom_config, sorted(fn_args.train_files), fn_args.transform_output], sort_keys=True)
    trainer_dir = os.path.dirname(os.path.dirname(fn_args.model_run_dir.rstrip("/")))
    return os.path.join(trainer_dir, "resume", hashlib.sha256(key.encode()).hexdigest()[:16])


def callbacks(settings: TrainerSettings, run_dir: str, backup_dir: str) -> List[tf.keras.callbacks.Callback]:
    """TensorBoard, optional gradient diagnostics, the validation schedule and backup/resume."""
    train = settings.train
    diagnostics_logger = ([diagnostics.GradientDiagnosticsLogger(run_dir, train.diagnostics_window)]
                          if train.gradient_diagnostics else [])
    return diagnostics_logger + [
        tf.keras.callbacks.TensorBoard(log_dir=run_dir, update_freq="epoch"),
        schedule.ValidationSchedule(os.path.join(run_dir, BEST_CHECKPOINT), os.path.join(backup_dir, SCHEDULE_STATE),
                                    decay_factor=train.lr_decay_factor, min_learning_rate=train.min_learning_rate,
                                    patience=train.early_stop_patience),
        tf.keras.callbacks.BackupAndRestore(backup_dir, delete_checkpoint=True),
    ]


PRECISIONS = ("float32", "mixed_bfloat16")


def validate_settings(settings: TrainerSettings) -> None:
    """Raises ValueError naming the valid choices for a bad loss, optimizer or precision."""
    build_loss(settings.loss)
    if settings.train.optimizer not in optimizers.OPTIMIZERS:
        raise ValueError(f"unknown optimizer {settings.train.optimizer!r}; "
                         f"valid choices: {', '.join(optimizers.OPTIMIZERS)}")
    if settings.train.precision not in PRECISIONS:
        raise ValueError(f"unknown precision {settings.train.precision!r}; valid choices: {', '.join(PRECISIONS)}")
    if settings.model.embedding_regularization not in model_lib.EMBEDDING_REGULARIZATION:
        raise ValueError(f"unknown embedding regularization {settings.model.embedding_regularization!r}; "
                         f"valid choices: {', '.join(model_lib.EMBEDDING_REGULARIZATION)}")
    if (settings.train.optimizer == "lazy_adam" and settings.model.embedding_l2
            and settings.model.embedding_regularization == "table"):
        raise ValueError("optimizer lazy_adam needs embedding_regularization 'batch': a table-wide L2 makes every "
                         "embedding gradient dense (or set embedding_l2 to 0)")


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """Trains DCN V2 with the configured loss and exports the serving SavedModel."""
    settings = TrainerSettings.from_custom_config(fn_args.custom_config or {})
    validate_settings(settings)
    previous_policy = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy(settings.train.precision)
    try:
        _train_and_export(fn_args, settings)
    finally:  # the local runner may run other components in this process
        tf.keras.mixed_precision.set_global_policy(previous_policy)


def _train_and_export(fn_args: tfx.components.FnArgs, settings: TrainerSettings) -> None:
    train = settings.train
    tf.keras.utils.set_random_seed(train.seed)
    if train.deterministic:
        tf.config.experimental.enable_op_determinism()
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    feature_spec = tf_transform_output.transformed_feature_spec()

    loss = build_loss(settings.loss)
    train_ds = data.make_dataset(fn_args.train_files, feature_spec, train.batch_size, shuffle=True, seed=train.seed,
                                 cache=train.cache_dataset)
    if settings.loss.negative_sampling_rate < 1.0:
        train_ds = train_ds.map(data.negative_sampler(settings.loss.negative_sampling_rate, train.seed))
    if train.steps_per_epoch:
        train_ds = train_ds.repeat()
    eval_ds = data.make_dataset(fn_args.eval_files, feature_spec, train.batch_size, cache=train.cache_dataset)

    vocabulary_sizes = model_lib.vocabulary_sizes_from_transform(
        tf_transform_output, settings.transform.num_oov_buckets)
    ctr_model = model_lib.DCNV2(vocabulary_sizes, settings.model)
    model_class = diagnostics.DiagnosedTrainingModel if train.gradient_diagnostics else TrainingModel
    training_model = model_class(ctr_model, loss.INPUT)
    compile_model(training_model, settings, loss)
    for batch_features, _ in train_ds.take(1):
        training_model(batch_features)  # builds the variables so they can be counted
    logging.info("[trainer] DCN V2 (%s): %d trainable parameters; vocabulary sizes %s", settings.model.structure,
                 model_lib.count_parameters(ctr_model), json.dumps(vocabulary_sizes))
    logging.info("[trainer] loss %s", json.dumps(loss.get_config()))

    backup_dir = resume_dir(fn_args)
    if tf.io.gfile.exists(backup_dir):
        logging.info("[trainer] resuming an interrupted run from %s", backup_dir)
    run_callbacks = callbacks(settings, fn_args.model_run_dir, backup_dir)
    training_model.fit(train_ds, epochs=train.epochs, steps_per_epoch=train.steps_per_epoch,
                       validation_data=eval_ds, validation_steps=train.eval_steps, callbacks=run_callbacks, verbose=2)
    validation = next(c for c in run_callbacks if isinstance(c, schedule.ValidationSchedule))
    training_model.load_weights(os.path.join(fn_args.model_run_dir, BEST_CHECKPOINT))
    logging.info("[trainer] best epoch %d of %d: val_auc %.5f", validation.best_epoch, len(validation.history),
                 validation.best)
    if tf.io.gfile.exists(backup_dir):  # finished: nothing to resume
        tf.io.gfile.rmtree(backup_dir)
    if settings.loss.negative_sampling_rate < 1.0:
        fit_calibration(ctr_model, eval_ds)
        logging.info("[trainer] isotonic calibration fitted on the eval split (negative sampling r=%.3g)",
                     settings.loss.negative_sampling_rate)
    signatures.export(ctr_model, tf_transform_output, fn_args.serving_model_dir)
