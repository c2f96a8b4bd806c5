"""Eq. 15 is written once (equations/weighted_bce.py); the loss, the Evaluator's metric and the studies' metric
compute it through that function and agree with the closed form on the same rows."""
import math

import numpy as np
import pytest
import tensorflow as tf

from components import batch_metrics
from equations import weighted_bce
from experiments import metrics as study_metrics
from trainer import losses

LABELS = np.array([1.0, 0.0, 0.0, 1.0, 0.0])
LOGITS = np.array([0.3, -1.2, 2.0, -0.5, 0.0])


def _closed_form(beta_pos):
    p = 1.0 / (1.0 + np.exp(-LOGITS))
    return -sum((beta_pos if y else 1.0) * math.log(q if y else 1.0 - q) for y, q in zip(LABELS, p)) / LABELS.size


@pytest.mark.parametrize("beta_pos", [1.0, 0.1, 3.0])
def test_the_loss_the_evaluator_and_the_studies_compute_eq_15_alike(beta_pos):
    expected = _closed_form(beta_pos)
    probabilities = 1.0 / (1.0 + np.exp(-LOGITS))
    loss = losses.WeightedBinaryCrossentropy(beta_pos=beta_pos)(tf.constant(LABELS, tf.float32),
                                                                 tf.constant(LOGITS, tf.float32))
    evaluator = batch_metrics.weighted_bce(batch_metrics.batch_sums(LABELS, probabilities, np.ones(5)), beta_pos)
    study = study_metrics.weighted_bce(LABELS, probabilities, beta_pos)
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    assert evaluator == pytest.approx(expected, rel=1e-9) and study == pytest.approx(expected, rel=1e-9)


def test_positives_weigh_beta_pos_and_negatives_one_for_arrays_and_tensors():
    assert weighted_bce.positive_weights(np.array([1.0, 0.0]), 0.25).tolist() == [0.25, 1.0]
    assert weighted_bce.weighted_terms(tf.constant([1.0, 0.0]), tf.constant([2.0, 2.0]), 0.25).numpy().tolist() == \
        [0.5, 2.0]
