"""Gradient diagnostics: the norms match the paper's closed forms and training is unchanged."""
import csv
import os

import numpy as np
import pytest
import tensorflow as tf

from settings.configs import ModelConfig
from trainer import diagnostics, losses, model as model_lib
from trainer.training_model import TrainingModel
from tests.helpers import SMALL_VOCAB, transformed_batch

CONFIG = ModelConfig(dnn_units=(16, 8), embedding_dim=4, num_cross_layers=2, dropout=0.0)


def _sparse_batch(n=64, positives=4, seed=0):
    x, _ = transformed_batch(n, seed)
    y = np.zeros((n, 1), np.float32)
    y[:positives] = 1.0
    return x, tf.constant(y)


def _compiled(model_class, loss, seed=5):
    tf.keras.utils.set_random_seed(seed)
    model = model_class(model_lib.DCNV2(SMALL_VOCAB, CONFIG))
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-2, clipnorm=10.0), loss=loss)
    return model


def _logits(model, x):
    return model.ctr_model(x).numpy().ravel().astype(np.float64)


@pytest.mark.e2e
def test_bce_negative_logit_gradient_norm_is_eq_10():
    x, y = _sparse_batch()
    model = _compiled(diagnostics.DiagnosedTrainingModel, losses.get_loss("bce"))
    model(x)
    z, labels = _logits(model, x), y.numpy().ravel()
    expected = np.linalg.norm(1.0 / (1.0 + np.exp(-z[labels == 0])) / len(z))  # ∂BCE/∂z_j = p̂_j / N
    logs = model.train_on_batch(x, y, return_dict=True)
    assert logs["grad_norm_negative_logits"] == pytest.approx(expected, rel=1e-4)
    assert logs["grad_norm_dnn"] > 0.0 and logs["grad_norm_cross"] > 0.0


@pytest.mark.e2e
def test_combined_pair_negative_logit_gradient_is_eq_8_to_13():
    x, y = _sparse_batch()
    alpha = 0.7
    model = _compiled(diagnostics.DiagnosedTrainingModel, losses.get_loss("combined_pair", alpha=alpha))
    model(x)
    z, labels = _logits(model, x), y.numpy().ravel()
    z_pos, z_neg = z[labels == 1], z[labels == 0]
    pair_sigma = 1.0 / (1.0 + np.exp(-(z_neg[None, :] - z_pos[:, None])))   # σ(z_j - z_i), Eq. 12
    gradient = alpha / len(z) / (1.0 + np.exp(-z_neg)) + (1 - alpha) * pair_sigma.sum(0) / pair_sigma.size
    logs = model.train_on_batch(x, y, return_dict=True)
    assert logs["grad_norm_negative_logits"] == pytest.approx(np.linalg.norm(gradient), rel=1e-4)


@pytest.mark.e2e
def test_diagnosed_step_updates_weights_exactly_like_the_plain_step():
    x, y = _sparse_batch(seed=2)
    loss = losses.get_loss("combined_pair", alpha=0.5)
    plain = _compiled(TrainingModel, loss)
    diagnosed = _compiled(diagnostics.DiagnosedTrainingModel, loss)
    plain(x), diagnosed(x)
    diagnosed.set_weights(plain.get_weights())
    for _ in range(3):
        plain_logs = plain.train_on_batch(x, y, return_dict=True)
        diagnosed_logs = diagnosed.train_on_batch(x, y, return_dict=True)
    assert diagnosed_logs["loss"] == pytest.approx(plain_logs["loss"], rel=1e-5)
    for a, b in zip(plain.get_weights(), diagnosed.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


@pytest.mark.e2e
def test_logger_writes_every_batch_and_window_summaries(tmp_path):
    x, y = _sparse_batch(n=256, positives=40)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)         # 8 batches
    model = _compiled(diagnostics.DiagnosedTrainingModel, losses.get_loss("bce"))
    model.fit(dataset, epochs=2, verbose=0, callbacks=[diagnostics.GradientDiagnosticsLogger(str(tmp_path), 5)])
    with open(tmp_path / diagnostics.BATCH_CSV) as f:
        batches = list(csv.DictReader(f))
    with open(tmp_path / diagnostics.WINDOW_CSV) as f:
        windows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in batches] == list(range(1, 17))
    assert [(int(r["last_step"]), int(r["batches"])) for r in windows] == [(5, 5), (10, 5), (15, 5), (16, 1)]
    first = np.array([float(r["grad_norm_dnn"]) for r in batches[:5]])
    assert float(windows[0]["grad_norm_dnn_mean"]) == pytest.approx(first.mean())
    assert float(windows[0]["grad_norm_dnn_p90"]) == pytest.approx(np.percentile(first, 90))
    assert os.listdir(tmp_path / "gradient_diagnostics")  # TensorBoard event file


def test_window_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="window"):
        diagnostics.GradientDiagnosticsLogger(str(tmp_path), 0)


def test_the_bottom_layers_elementwise_gradient_summaries_are_figure_3s():
    """Mean and nearest-rank p90 of |∂L/∂W| over the bottom DNN kernel and the first cross kernel, as the
    paper's Fig. 3 plots them, against the gradients computed apart."""
    x, y = _sparse_batch(seed=4)
    loss = losses.get_loss("combined_pair", alpha=0.5)
    model = _compiled(diagnostics.DiagnosedTrainingModel, loss)
    model(x)
    dnn_kernel = model.ctr_model.dnn_layers[0].kernel
    cross_kernel = next(v for v in model.ctr_model.cross_layers[0].trainable_variables if "kernel" in v.name)
    with tf.GradientTape() as tape:
        representation = model.ctr_model.representation(x, training=True)
        value = model.compute_loss(x, y, model.loss_output(representation, model.ctr_model.logit_layer(representation)))
    expected = {}
    for tower, gradient in zip(("dnn", "cross"), tape.gradient(value, [dnn_kernel, cross_kernel])):
        magnitude = np.abs(gradient.numpy()).ravel()
        expected[f"grad_abs_mean_{tower}_bottom"] = magnitude.mean()
        expected[f"grad_abs_p90_{tower}_bottom"] = np.percentile(magnitude, 90, method="inverted_cdf")
    logs = model.train_on_batch(x, y, return_dict=True)
    for key, value in expected.items():
        assert logs[key] == pytest.approx(value, rel=1e-5), key


def test_nearest_rank_quantile_is_numpys_inverted_cdf():
    values = np.random.default_rng(1).normal(size=(7, 13)).astype(np.float32)
    for q in (0.1, 0.5, 0.9, 1.0):
        assert float(diagnostics.nearest_rank_quantile(tf.constant(values), q)) == pytest.approx(
            np.percentile(values, 100 * q, method="inverted_cdf"))


@pytest.mark.e2e
def test_the_representation_gradient_shows_what_combined_contrastive_adds_beyond_its_logits():
    """BCE: ∂L/∂h_j = (∂L/∂z_j)·w, so the norms differ by ‖w‖. Combined-Contrastive: on the logits exactly α
    times BCE's (its extra term does not read them); on the representations not, where that term acts."""
    x, y = _sparse_batch(seed=6)
    alpha = 0.6
    warm = _compiled(TrainingModel, losses.get_loss("bce"))     # away from the near-zero initial representations
    for _ in range(30):
        warm.train_on_batch(x, y)

    def first_step(loss):
        model = diagnostics.DiagnosedTrainingModel(model_lib.DCNV2(SMALL_VOCAB, CONFIG), loss.INPUT)  # reads h if it needs
        model.compile(optimizer=tf.keras.optimizers.Adam(1e-2, clipnorm=10.0), loss=loss)
        model(x)
        model.ctr_model.set_weights(warm.ctr_model.get_weights())
        w = np.linalg.norm(model.ctr_model.logit_layer.kernel.numpy())
        return model.train_on_batch(x, y, return_dict=True), w

    bce, w = first_step(losses.get_loss("bce"))
    assert bce["grad_norm_negative_representations"] == pytest.approx(bce["grad_norm_negative_logits"] * w, rel=1e-4)
    contrastive, _ = first_step(losses.get_loss("combined_contrastive", alpha=alpha))
    assert contrastive["grad_norm_negative_logits"] == pytest.approx(alpha * bce["grad_norm_negative_logits"], rel=1e-4)
    assert contrastive["grad_norm_negative_representations"] != pytest.approx(
        alpha * bce["grad_norm_negative_representations"], rel=1e-2)
