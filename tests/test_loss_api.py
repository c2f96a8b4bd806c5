"""The loss family as an API: selection and validation, the settings contract, serialization, the metric."""
import inspect

import numpy as np
import pytest
import tensorflow as tf

from settings import configs
from trainer import losses, metrics
from tests.helpers import ALL_LOSSES, Y, Z, bce, value, y_pred_for


def test_get_loss_validates_names_and_the_loss_own_parameters():
    with pytest.raises(ValueError, match="valid choices: bce, combined_pair, combined_list, rcr, jrc"):
        losses.get_loss("hinge")
    for params, message in [({"alpha": 1.5}, "alpha must be in \\[0, 1\\]"), ({"beta_pos": 0.0}, "beta_pos must be > 0"),
                            ({"temperature": 1.0}, "unknown loss parameter")]:
        with pytest.raises(ValueError, match=message):
            losses.get_loss("combined_pair", **params)
    for name, params, message in [("combined_contrastive", {"tau": -1.0}, "tau must be > 0"),
                                  ("focal", {"gamma": -1.0}, "gamma must be >= 0"), ("jrc", {"jrc_weight": 2.0}, "jrc_weight")]:
        with pytest.raises(ValueError, match=message):
            losses.get_loss(name, **params)
    # A loss checks only its own parameters: JRC's weight means nothing to Combined-Pair.
    assert losses.get_loss("combined_pair", jrc_weight=2.0, gamma=-1.0).get_config()["alpha"] == 0.7


def test_each_loss_class_takes_exactly_the_parameters_settings_list_and_its_defaults_apply():
    for name, cls in losses.LOSSES.items():
        accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "name", "kwargs"}
        assert accepted == set(configs.LOSS_CHOICES[name].parameters), name
        assert cls.__name__ == configs.LOSS_CHOICES[name].keras_class and issubclass(cls, tf.keras.losses.Loss)
    assert losses.build_loss(configs.LossConfig(name="combined_contrastive")).alpha == 0.9  # the paper's
    assert losses.build_loss(configs.LossConfig(name="combined_pair", alpha=0.3)).alpha == 0.3
    with pytest.raises(ValueError, match="alpha must be in"):
        losses.CombinedPair(alpha=1.5)  # a loss built directly checks its arguments too


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_get_config_round_trip(name):
    loss = losses.get_loss(name, alpha=0.3, beta_pos=0.2, gamma=1.5, tau=0.5, jrc_weight=0.25)
    restored = tf.keras.losses.deserialize(tf.keras.losses.serialize(loss))
    assert type(restored) is type(loss) and restored.get_config() == loss.get_config()
    y_pred = y_pred_for(name)
    assert value(name, Y, y_pred, alpha=0.3, beta_pos=0.2, gamma=1.5, tau=0.5, jrc_weight=0.25) == pytest.approx(
        float(restored(tf.constant(Y, tf.float32), tf.constant(y_pred, tf.float32))))


@pytest.mark.e2e
@pytest.mark.parametrize("name", ALL_LOSSES)
def test_model_compiled_with_each_loss_saves_and_reloads(name, tmp_path):
    width = {losses.LOGIT: 1, losses.TWO_LOGITS: 2, losses.LOGIT_AND_REPRESENTATION: 5}[losses.LOSSES[name].INPUT]
    inputs = tf.keras.Input(shape=(3,))
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(width)(inputs))
    loss = losses.get_loss(name, alpha=0.25, beta_pos=0.5)
    model.compile(optimizer="adam", loss=loss, metrics=[metrics.WeightedBCE(beta_pos=0.5)] if width == 1 else None)
    x, y = np.random.default_rng(0).normal(size=(8, 3)), np.array([1, 0, 0, 1, 0, 0, 0, 1], np.float32)
    model.fit(x, y, epochs=1, verbose=0)
    model.save(str(tmp_path / "model"))
    reloaded = tf.keras.models.load_model(str(tmp_path / "model"))
    assert type(reloaded.loss) is type(loss) and reloaded.loss.get_config() == loss.get_config()
    assert reloaded.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0), rel=1e-5)


def test_weighted_bce_metric_is_eq_15_from_logits():
    for beta_pos in (1.0, 0.1):
        metric = metrics.WeightedBCE(beta_pos=beta_pos)
        metric.update_state(Y, Z)
        assert float(metric.result()) == pytest.approx(bce(Y, Z, beta_pos), rel=1e-6)
