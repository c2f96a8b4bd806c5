"""`run_fn`: the TFX Trainer entry point (data -> DCN V2 -> fit -> export).

Regime (BARS DCNv2_criteo_x1): Adam with gradient clipping, validation AUC every
epoch, best checkpoint kept, learning rate ×0.1 on a plateau, early stop after
`early_stop_patience` epochs without improvement, best weights exported.
"""
import dataclasses
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
from trainer import calibration, data, diagnostics, losses, metrics, model as model_lib
from trainer.objective import TrainingModel

BEST_CHECKPOINT = "best.weights.h5"


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


def compile_model(model: tf.keras.Model, settings: TrainerSettings) -> None:
    """Adam with gradient clipping; AUC, plain logloss and the paper's β_pos-weighted BCE."""
    model.compile(
        optimizer=tf.keras.optimizers.Adam(settings.train.learning_rate, clipnorm=settings.train.clipnorm),
        loss=build_loss(settings.loss),
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


def callbacks(settings: TrainerSettings, run_dir: str) -> List[tf.keras.callbacks.Callback]:
    train = settings.train
    diagnostics_logger = ([diagnostics.GradientDiagnosticsLogger(run_dir, train.diagnostics_window)]
                          if train.gradient_diagnostics else [])
    return diagnostics_logger + [
        tf.keras.callbacks.TensorBoard(log_dir=run_dir, update_freq="epoch"),
        tf.keras.callbacks.ModelCheckpoint(os.path.join(run_dir, BEST_CHECKPOINT), monitor="val_auc", mode="max",
                                           save_best_only=True, save_weights_only=True),
        tf.keras.callbacks.ReduceLROnPlateau(monitor="val_auc", mode="max", factor=train.lr_decay_factor,
                                             patience=1, min_lr=train.min_learning_rate),
        tf.keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=train.early_stop_patience),
    ]


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """Trains DCN V2 with the configured loss and exports the serving SavedModel."""
    settings = TrainerSettings.from_custom_config(fn_args.custom_config or {})
    train = settings.train
    tf.keras.utils.set_random_seed(train.seed)
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    feature_spec = tf_transform_output.transformed_feature_spec()

    loss = build_loss(settings.loss)
    train_ds = data.make_dataset(fn_args.train_files, feature_spec, train.batch_size, shuffle=True, seed=train.seed)
    if settings.loss.negative_sampling_rate < 1.0:
        train_ds = train_ds.map(data.negative_sampler(settings.loss.negative_sampling_rate, train.seed))
    if train.steps_per_epoch:
        train_ds = train_ds.repeat()
    eval_ds = data.make_dataset(fn_args.eval_files, feature_spec, train.batch_size)

    vocabulary_sizes = model_lib.vocabulary_sizes_from_transform(
        tf_transform_output, settings.transform.num_oov_buckets)
    ctr_model = model_lib.DCNV2(vocabulary_sizes, settings.model)
    model_class = diagnostics.DiagnosedTrainingModel if train.gradient_diagnostics else TrainingModel
    training_model = model_class(ctr_model, loss.INPUT)
    compile_model(training_model, settings)
    for batch_features, _ in train_ds.take(1):
        training_model(batch_features)  # builds the variables so they can be counted
    logging.info("[trainer] DCN V2 (%s): %d trainable parameters; vocabulary sizes %s", settings.model.structure,
                 model_lib.count_parameters(ctr_model), json.dumps(vocabulary_sizes))
    logging.info("[trainer] loss %s", json.dumps(loss.get_config()))

    history = training_model.fit(train_ds, epochs=train.epochs, steps_per_epoch=train.steps_per_epoch,
                            validation_data=eval_ds, validation_steps=train.eval_steps,
                            callbacks=callbacks(settings, fn_args.model_run_dir), verbose=2)
    training_model.load_weights(os.path.join(fn_args.model_run_dir, BEST_CHECKPOINT))
    best_epoch = max(range(len(history.history["val_auc"])), key=history.history["val_auc"].__getitem__)
    logging.info("[trainer] best epoch %d of %d: val_auc %.5f", best_epoch + 1, len(history.history["val_auc"]),
                 history.history["val_auc"][best_epoch])
    if settings.loss.negative_sampling_rate < 1.0:
        fit_calibration(ctr_model, eval_ds)
        logging.info("[trainer] isotonic calibration fitted on the eval split (negative sampling r=%.3g)",
                     settings.loss.negative_sampling_rate)
    signatures.export(ctr_model, tf_transform_output, fn_args.serving_model_dir)
