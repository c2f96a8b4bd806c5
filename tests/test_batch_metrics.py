"""The Evaluator's batch metrics: closed forms, AUC against scikit-learn's, and sums that do not depend on
how the examples are batched."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from sklearn import metrics as sk_metrics
from tensorflow_model_analysis.api import types
from tensorflow_model_analysis.metrics import metric_types

from components import batch_metrics

KEY = metric_types.MetricKey(name="_batch_sums")


def _sums(labels, predictions, weights=None):
    labels, predictions = np.asarray(labels, float), np.asarray(predictions, float)
    weights = np.ones_like(labels) if weights is None else np.asarray(weights, float)
    return batch_metrics.batch_sums(labels, predictions, weights)


def _combine(batches, example_weighted=False):
    key = KEY._replace(example_weighted=example_weighted)
    combiner = batch_metrics._BatchSumsCombiner(key)  # pylint: disable=protected-access
    accumulator = combiner.create_accumulator()
    for labels, predictions, weights in batches:
        accumulator = combiner.add_input(accumulator, metric_types.StandardMetricInputs(
            labels=labels, predictions=predictions, example_weights=weights))
    return combiner.extract_output(accumulator)[key]


def test_the_closed_forms_on_four_examples():
    y, p = np.array([1, 0, 1, 0.]), np.array([0.9, 0.2, 0.35, 0.4])
    sums = _sums(y, p)
    assert batch_metrics.BatchExampleCount.value(sums) == 4
    assert batch_metrics.BatchMeanLabel.value(sums) == 0.5
    assert batch_metrics.BatchMeanPrediction.value(sums) == pytest.approx(0.4625)
    assert batch_metrics.BatchCalibration.value(sums) == pytest.approx(1.85 / 2)
    l1, l0 = np.log(0.9) + np.log(0.35), np.log(0.8) + np.log(0.6)
    assert batch_metrics.BatchLogLoss.value(sums) == pytest.approx(-(l1 + l0) / 4, rel=1e-12)
    assert batch_metrics.BatchWeightedBCE.value(sums, beta_pos=0.1) == pytest.approx(-(0.1 * l1 + l0) / 4, rel=1e-12)
    # pairs (positive, negative): (0.9, 0.2) (0.9, 0.4) (0.35, 0.2) ranked right, (0.35, 0.4) wrong: 3 / 4
    assert batch_metrics.auc(sums) == 0.75


def test_auc_counts_a_pair_within_one_bucket_as_half():
    # 0.50001 and 0.50002 share bucket 5001; 0.3 and 0.7 do not
    sums = _sums([1, 0, 1, 0], [0.50001, 0.50002, 0.7, 0.3])
    assert batch_metrics.auc(sums) == pytest.approx((1 + 0.5 + 1 + 1) / 4)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.floats(0, 1), st.floats(0.1, 3)), min_size=2, max_size=60),
       st.integers(1, 7))
def test_sums_do_not_depend_on_the_batching_and_auc_is_sklearns_up_to_ties_within_a_bucket(rows, batch):
    y, p, w = (np.array(column, float) for column in zip(*rows))
    whole = _combine([(y, p, w)], example_weighted=True)
    batched = _combine([(y[i:i + batch], p[i:i + batch], w[i:i + batch]) for i in range(0, len(y), batch)],
                       example_weighted=True)
    for name in ("weights", "labels", "predictions"):
        np.testing.assert_allclose(getattr(batched, name), getattr(whole, name), atol=1e-12)
    assert batched.log_p_positives == pytest.approx(whole.log_p_positives, abs=1e-9)
    assert batched.examples == whole.examples == len(y)
    if 0 < y.sum() < len(y):
        exact = sk_metrics.roc_auc_score(y, p, sample_weight=w)
        buckets = batch_metrics.bucket_of(p)
        # the bucketed AUC moves only pairs tied within a bucket (by at most half a pair each)
        same_bucket = sum(wi * wj for i, (yi, wi) in enumerate(zip(y, w)) for j, (yj, wj) in enumerate(zip(y, w))
                          if yi == 1 and yj == 0 and buckets[i] == buckets[j])
        bound = 0.5 * same_bucket / (np.sum(w * y) * np.sum(w * (1 - y)))
        assert abs(batch_metrics.auc(whole) - exact) <= bound + 1e-12


def test_unweighted_metrics_ignore_the_example_weights_and_a_var_len_label_is_one_per_example():
    labels = types.VarLenTensorValue(values=np.array([1, 0, 0]), indices=np.array([[0, 0], [1, 0], [2, 0]]),
                                     dense_shape=np.array([3, 1]))
    sums = _combine([(labels, np.array([[0.9], [0.1], [0.2]], np.float32), np.array([5., 5., 5.]))])
    assert (sums.examples, sums.weights.sum(), sums.labels.sum()) == (3, 3, 1)
    missing = types.VarLenTensorValue(values=np.array([1, 0]), indices=np.array([[0, 0], [2, 0]]),
                                      dense_shape=np.array([3, 1]))
    with pytest.raises(ValueError, match="exactly one label; 3 examples have 2"):
        _combine([(missing, np.array([0.9, 0.1, 0.2]), None)])


def test_bad_batches_are_refused_by_name():
    with pytest.raises(ValueError, match="2 labels, 3 predictions"):
        _combine([(np.array([1, 0]), np.array([0.9, 0.1, 0.2]), None)])
    for labels in ([2, 0], [np.nan, 1]):
        with pytest.raises(ValueError, match=r"labels must lie in \[0, 1\] \(a click or not\); 1 do not"):
            _combine([(np.array(labels, float), np.array([0.9, 0.1]), None)])
    with pytest.raises(ValueError, match="1 of 2 predictions are NaN"):
        _combine([(np.array([1, 0]), np.array([np.nan, 0.1]), None)])
    with pytest.raises(ValueError, match="beta_pos must be > 0"):
        batch_metrics.BatchWeightedBCE(beta_pos=0.0)
    with pytest.raises(ValueError, match="no sub keys"):
        batch_metrics.BatchAUC().computations(sub_keys=[metric_types.SubKey(class_id=1)])


def test_the_calibration_plot_merges_ten_buckets_into_each_of_tfmas():
    plot = batch_metrics.calibration_plot(_sums([1, 0, 1], [0.0004, 0.0009, 0.5]))
    assert len(plot.buckets) == 1002
    first = plot.buckets[1]  # [0, 0.001)
    assert (first.lower_threshold_inclusive, first.upper_threshold_exclusive) == (0.0, 0.001)
    assert (first.num_weighted_examples.value, first.total_weighted_label.value) == (2, 1)
    assert first.total_weighted_refined_prediction.value == pytest.approx(0.0013)
    assert plot.buckets[501].num_weighted_examples.value == 1 and plot.buckets[0].num_weighted_examples.value == 0
