"""Isotonic calibration: the fitted knots against a hand-computed pool-adjacent-violators fit."""
import numpy as np
import pytest
import tensorflow as tf

from trainer import calibration


def test_knots_are_the_pool_adjacent_violators_fit_at_prediction_quantiles():
    predictions = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    labels = np.array([0.0, 1.0, 0.0, 0.0, 1.0, 1.0])
    # By hand: 1, 0 violate order and pool to 0.5; then 0.5 > 0 pools three to 1/3: fit 0, 1/3, 1/3, 1/3, 1, 1.
    x, y = calibration.fit_isotonic(predictions, labels, num_knots=6)
    np.testing.assert_allclose(x, [0.0, 0.2, 0.3, 0.4, 0.5, 1.0], rtol=1e-6)
    np.testing.assert_allclose(y, [1e-6, 1 / 3, 1 / 3, 1 / 3, 1 - 1e-6, 1 - 1e-6], rtol=1e-5)


def test_the_serving_layer_interpolates_the_knots_and_starts_as_identity():
    layer = calibration.PiecewiseLinearCalibration(num_knots=3)
    p = tf.constant([0.0, 0.25, 0.9])
    np.testing.assert_allclose(layer(p).numpy(), p.numpy(), rtol=1e-6)
    layer.set_knots(np.array([0.0, 0.5, 1.0], np.float32), np.array([0.1, 0.2, 0.6], np.float32))
    np.testing.assert_allclose(layer(p).numpy(), [0.1, 0.15, 0.52], rtol=1e-5)


def test_a_large_eval_split_gives_a_monotone_map_near_the_truth():
    rng = np.random.default_rng(0)
    predictions = rng.random(1_000_000)
    labels = (rng.random(1_000_000) < predictions).astype(float)
    x, y = calibration.fit_isotonic(predictions, labels)
    assert np.all(np.diff(y) >= 0) and np.all(np.diff(x) >= 0)
    assert np.interp(0.5, x, y) == pytest.approx(0.5, abs=0.02)  # labels drawn at the predicted rate


def test_with_beta_pos_the_map_targets_the_beta_weighted_click_rate():
    predictions = np.full(4, 0.3)
    labels = np.array([1.0, 1.0, 0.0, 0.0])
    # one pooled block: Σ w·y / Σ w = 2β / (2β + 2) = 1/3 at β = 0.5
    _, y = calibration.fit_isotonic(predictions, labels, beta_pos=0.5, num_knots=3)
    np.testing.assert_allclose(y, [1 / 3] * 3, rtol=1e-5)
