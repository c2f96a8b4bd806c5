"""Loss values against closed forms and gradients against the paper's derivations."""
import numpy as np
import pytest
import tensorflow as tf

from trainer import losses


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _bce_closed_form(y, z, beta_pos=1.0):
    p = _sigmoid(z)
    return -np.mean(beta_pos * y * np.log(p) + (1 - y) * np.log(1 - p))


Y = np.array([1.0, 0.0, 0.0, 1.0, 0.0, 0.0])
Z = np.array([0.3, -1.2, 0.5, -0.4, 2.0, -3.0])


@pytest.mark.parametrize("beta_pos", [1.0, 0.1])
def test_bce_matches_eq_15(beta_pos):
    loss = losses.get_loss("bce", beta_pos=beta_pos)
    assert float(loss(Y, Z)) == pytest.approx(_bce_closed_form(Y, Z, beta_pos), rel=1e-6)
    assert float(loss(Y[:, None], Z[:, None])) == pytest.approx(_bce_closed_form(Y, Z, beta_pos), rel=1e-6)


def test_bce_gradient_on_negatives_is_p_hat_over_n_eq_10():
    z = tf.Variable(Z, dtype=tf.float32)
    with tf.GradientTape() as tape:
        value = losses.get_loss("bce")(tf.constant(Y), z)
    grad = tape.gradient(value, z).numpy()
    n = len(Y)
    np.testing.assert_allclose(grad[Y == 0], _sigmoid(Z[Y == 0]) / n, rtol=1e-5)
    np.testing.assert_allclose(grad[Y == 1], -(1 - _sigmoid(Z[Y == 1])) / n, rtol=1e-5)  # Eq. 11


def test_unknown_loss_lists_choices():
    with pytest.raises(ValueError, match="valid choices: bce"):
        losses.get_loss("hinge")
