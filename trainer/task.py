"""`run_fn`: the TFX Trainer entry point (settings -> data -> DCN V2 -> fit -> export); `train`, its fit.

Regime (BARS DCNv2_criteo_x1, trainer/schedule.py): validation AUC every epoch, best checkpoint
kept, learning rate ×0.1 on a plateau, early stop, best weights exported. Seeded and, by default,
deterministic; an interrupted run resumes from its last epoch when the Trainer runs again.
"""
import dataclasses
import json
import os
from typing import Dict, List, Optional, Sequence

from absl import logging
import tensorflow as tf
import tensorflow_transform as tft
from tfx.components.trainer.fn_args_utils import FnArgs

from serving import signatures
from settings.configs import TrainerSettings
from trainer import calibration, data, diagnostics, distribution, losses, model as model_lib, schedule
from trainer.training_model import TrainingModel, compile_training_model


@dataclasses.dataclass
class TrainedModel:
    """What `train` leaves: the model to export (best weights, calibration fitted) and the fit's record."""

    ctr_model: model_lib.DCNV2
    validation: schedule.ValidationSchedule
    history: Dict[str, List[float]]


def train(settings: TrainerSettings, train_files: List[str], eval_files: List[str],
          tf_transform_output: tft.TFTransformOutput, model_run_dir: str, backup_dir: str,
          strategy: Optional[tf.distribute.Strategy] = None,
          callbacks: Sequence[tf.keras.callbacks.Callback] = ()) -> TrainedModel:
    """Seeds, builds DCN V2 with the configured loss, fits under the validation schedule, loads the best
    weights and, when negatives were sampled, fits the calibration. An interrupted fit resumes from `backup_dir`.
    Under a multi-worker `strategy`, `batch_size` is per replica (`trainer.distribution`). `callbacks` run after
    the schedule's, on the training model (its `ctr_model` is the exported one)."""
    strategy = strategy or tf.distribute.get_strategy()
    train_config = settings.train
    tf.keras.utils.set_random_seed(train_config.seed)
    if train_config.deterministic and not distribution.uses_parameter_servers():  # asynchronous: cannot repeat
        tf.config.experimental.enable_op_determinism()

    # Data: the Transform output, parsed in global batches that each worker shards.
    replicas = strategy.num_replicas_in_sync
    global_settings = dataclasses.replace(
        settings, train=dataclasses.replace(train_config, batch_size=train_config.batch_size * replicas))
    vocabulary_sizes = model_lib.vocabulary_sizes_from_transform(tf_transform_output)
    shards = [distribution.file_shard(data.count_files(files), strategy) for files in (train_files, eval_files)]
    datasets = data.train_and_eval_datasets(train_files, eval_files, tf_transform_output.transformed_feature_spec(),
                                            global_settings, shards, distribution.uses_parameter_servers())
    if train_config.jit_compile:  # an XLA-compiled step cannot refuse a bad id: the input pipeline does
        datasets = [data.with_checked_ids(ds, vocabulary_sizes) for ds in datasets]
    train_ds, eval_ds = (distribution.shard_input(ds, shard, strategy) for ds, shard in zip(datasets, shards))

    # Model: the exported DCN V2 inside the training-time model the loss reads.
    loss = losses.build_loss(settings.loss)
    with model_lib.precision_policy(train_config.precision), strategy.scope():
        ctr_model = model_lib.DCNV2(vocabulary_sizes, settings.model, check_ids=not train_config.jit_compile)
        model_class = diagnostics.DiagnosedTrainingModel if train_config.gradient_diagnostics else TrainingModel
        training_model = model_class(ctr_model, loss.INPUT)
        compile_training_model(training_model, settings, loss)
        for batch_features, _ in train_ds.take(1):
            training_model(batch_features)  # builds the variables so they can be counted
    logging.info("[trainer] DCN V2 (%s): %d trainable parameters; vocabulary sizes %s", settings.model.structure,
                 model_lib.count_parameters(ctr_model), json.dumps(vocabulary_sizes))
    logging.info("[trainer] loss %s", json.dumps(loss.get_config()))
    if replicas > 1:
        logging.info("[trainer] %d replicas (%s): global batch %d", replicas, type(strategy).__name__,
                     train_config.batch_size * replicas)

    # Fit: the validation schedule keeps the best weights; a backup lets an interrupted run resume.
    if tf.io.gfile.exists(backup_dir):
        logging.info("[trainer] resuming an interrupted run from %s", backup_dir)
    callbacks = schedule.callbacks(train_config, model_run_dir, backup_dir,
                                   write_state=distribution.is_chief()) + list(callbacks)
    history = training_model.fit(
        train_ds, epochs=train_config.epochs, steps_per_epoch=train_config.steps_per_epoch, validation_data=eval_ds,
        validation_steps=train_config.eval_steps, callbacks=callbacks, verbose=2)
    validation = next(c for c in callbacks if isinstance(c, schedule.ValidationSchedule))
    distribution.barrier(strategy)  # the chief's best checkpoint is written
    training_model.load_weights(schedule.best_weights_path(backup_dir))
    training_model.save_weights(os.path.join(model_run_dir, schedule.BEST_CHECKPOINT))  # the run's artifact keeps it
    logging.info("[trainer] best epoch %d of %d: val_auc %.5f", validation.best_epoch, len(validation.history),
                 validation.best)
    # Finished: nothing to resume. The chief removes the backup once every worker has loaded the best weights
    # and its backup callback is done (another worker still writing its last epoch's copy under it re-created
    # the folder after the removal).
    distribution.barrier(strategy)
    if distribution.is_chief() and tf.io.gfile.exists(backup_dir):
        tf.io.gfile.rmtree(backup_dir)
    if settings.loss.negative_sampling_rate < 1.0:  # §4.5.2: map the sampled-data scores back to CTRs
        calibration.fit_calibration(ctr_model, eval_ds, settings.loss.beta_pos)
        logging.info("[trainer] isotonic calibration fitted on the eval split (negative sampling r=%.3g)",
                     settings.loss.negative_sampling_rate)
    return TrainedModel(ctr_model, validation, history.history)


def run_fn(fn_args: FnArgs) -> None:
    """Trains DCN V2 with the configured loss and exports the serving SavedModel; with a cluster in
    `TF_CONFIG`, on every worker, and only the chief's export lands (`trainer.distribution`)."""
    settings = TrainerSettings.from_custom_config(fn_args.custom_config or {})
    if distribution.serves_coordinator():  # a parameter-server cluster's worker or ps task
        distribution.serve(fn_args.serving_model_dir)
        return
    strategy = distribution.make_strategy(settings.train)
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    with distribution.writable_dir(fn_args.model_run_dir) as model_run_dir:
        trained = train(settings, fn_args.train_files, fn_args.eval_files, tf_transform_output,
                        model_run_dir, schedule.resume_dir(fn_args), strategy)
    exported = model_lib.whole_copy(trained.ctr_model) if distribution.uses_parameter_servers() else trained.ctr_model
    with distribution.writable_dir(fn_args.serving_model_dir) as serving_model_dir:
        signatures.export(exported, tf_transform_output, serving_model_dir)
    distribution.finish(strategy, fn_args.serving_model_dir)
