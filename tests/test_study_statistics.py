"""Study statistics and test metrics against hand-computed values."""
import math

import numpy as np
import pytest
from sklearn import metrics as sk_metrics

from experiments import metrics, stats


def test_summary_is_mean_and_sample_std():
    summary = stats.summarize([1.0, 2.0, 3.0, 4.0])
    assert summary.mean == 2.5 and summary.n == 4
    assert summary.std == pytest.approx(math.sqrt(5.0 / 3.0))  # Σ(x - 2.5)² = 5, ddof 1
    assert math.isnan(stats.summarize([0.7]).std)
    with pytest.raises(ValueError, match="no values"):
        stats.summarize([])


def test_paired_interval_by_hand_not_significant():
    # d = [0.01, 0.02, 0.005]: mean 0.0116667, sd 0.0076376, t(0.975, 2) = 4.302653
    difference = stats.paired_difference({1: 0.80, 2: 0.82, 3: 0.81}, {1: 0.79, 2: 0.80, 3: 0.805})
    half = 4.302653 * 0.0076376 / math.sqrt(3)
    assert difference.mean == pytest.approx(0.0116667, abs=1e-7)
    assert (difference.low, difference.high) == pytest.approx((0.0116667 - half, 0.0116667 + half), abs=1e-6)
    assert not difference.significant
    assert "not significant" in difference.describe()


def test_paired_interval_by_hand_significant_and_pairs_by_seed():
    # Seeds pair up whatever the dict order; seed 9 has no partner and is left out.
    difference = stats.paired_difference({3: 0.512, 1: 0.510, 2: 0.511, 9: 0.9}, {1: 0.5, 2: 0.5, 3: 0.5})
    half = 4.302653 * 0.001 / math.sqrt(3)  # d = [0.010, 0.011, 0.012]
    assert difference.n == 3
    assert (difference.low, difference.high) == pytest.approx((0.011 - half, 0.011 + half), abs=1e-7)
    assert difference.significant
    below = stats.paired_difference({1: 0.49, 2: 0.489, 3: 0.488}, {1: 0.5, 2: 0.5, 3: 0.5})
    assert below.significant and below.high < 0


def test_one_seed_has_no_interval_and_no_common_seed_is_an_error():
    single = stats.paired_difference({1: 0.6}, {1: 0.5})
    assert single.n == 1 and not single.significant and "1 seed" in single.describe()
    with pytest.raises(ValueError, match="no common seeds"):
        stats.paired_difference({1: 0.6}, {2: 0.5})
    with pytest.raises(ValueError, match="confidence"):
        stats.paired_difference({1: 0.6}, {1: 0.5}, confidence=1.0)


def test_weighted_bce_is_eq_15():
    # -(β·log 0.8 + log(1 - 0.2)) / 2 with β = 0.5
    assert metrics.weighted_bce(np.array([1, 0]), np.array([0.8, 0.2]), 0.5) == pytest.approx(-0.75 * math.log(0.8))
    assert metrics.weighted_bce(np.array([1, 0]), np.array([0.8, 0.2]), 1.0) == pytest.approx(-math.log(0.8))


def test_split_metrics_by_hand():
    labels = np.array([0, 0, 1, 1, 0, 1])
    p = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
    result = metrics.split_metrics(labels, p, beta_pos=1.0)
    assert result["auc"] == pytest.approx(8 / 9)  # pairs (pos > neg): 0.35 loses to 0.4 only
    assert result["calibration"] == pytest.approx(p.mean() / 0.5)  # deciles 0, 0.5 and 1: 0.5 on average
    assert result["logloss"] == pytest.approx(metrics.weighted_bce(labels, p, 1.0))
    buckets = metrics.calibration_buckets(labels, p, buckets=3)
    assert [b["count"] for b in buckets] == [2, 2, 2]
    assert [b["observed_ctr"] for b in buckets] == [0.0, 0.5, 1.0]           # (0.1, 0.2), (0.35, 0.4), (0.8, 0.9)
    assert buckets[1]["relative_bias"] == pytest.approx(0.375 / 0.5 - 1.0)
    assert math.isnan(buckets[0]["relative_bias"])                             # no click: bias undefined
    with pytest.raises(ValueError, match="one class"):
        metrics.split_metrics(np.zeros(3), np.full(3, 0.2), 1.0)


def test_paired_p_value_by_hand():
    # d = [0.010, 0.011, 0.012]: t = 0.011 / (0.001 / √3) = 19.0526, two-sided p with 2 df
    difference = stats.paired_difference({1: 0.510, 2: 0.511, 3: 0.512}, {1: 0.5, 2: 0.5, 3: 0.5})
    t = 0.011 / (0.001 / math.sqrt(3))
    assert difference.p == pytest.approx(2 * (1 - 0.5 * (1 + t / math.sqrt(t * t + 2))), rel=1e-6)  # t(2) cdf
    assert stats.paired_difference({1: 0.5, 2: 0.6}, {1: 0.5, 2: 0.6}).p == 1.0      # no difference at all
    assert stats.paired_difference({1: 0.6, 2: 0.7}, {1: 0.5, 2: 0.6}).p == 0.0      # the same gain every seed
    alone = stats.one_sample({1: 0.010, 2: 0.011, 3: 0.012})
    assert (alone.mean, alone.low, alone.high, alone.p) == pytest.approx(
        (difference.mean, difference.low, difference.high, difference.p))


def test_holm_adjusts_step_down_and_keeps_the_order():
    # sorted p: 0.01 (x4), 0.02 (x3), 0.03 (x2), 0.04 (x1) -> 0.04, 0.06, 0.06 (monotone), 0.06
    assert stats.holm([0.03, 0.01, 0.04, 0.02]) == pytest.approx([0.06, 0.04, 0.06, 0.06])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])                     # capped at 1
    adjusted = stats.holm([0.01, math.nan, 0.04])                                   # NaN: untested, not counted
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.04)
    assert stats.holm([]) == []


def test_weighted_bce_per_weight_is_sklearns_log_loss_with_the_beta_weights():
    from sklearn.metrics import log_loss  # pylint: disable=import-outside-toplevel

    rng = np.random.default_rng(3)
    labels, p = (rng.random(500) < 0.2).astype(float), rng.uniform(0.01, 0.99, 500)
    weights = np.where(labels > 0, 0.1, 1.0)
    assert metrics.weighted_bce(labels, p, 0.1, per="weight") == pytest.approx(log_loss(labels, p, sample_weight=weights))
    per_row = metrics.weighted_bce(labels, p, 0.1)
    assert per_row == pytest.approx(metrics.weighted_bce(labels, p, 0.1, per="weight") * weights.sum() / labels.size)
    assert metrics.weighted_bce(labels, p, 1.0, per="weight") == pytest.approx(metrics.weighted_bce(labels, p, 1.0))
    with pytest.raises(ValueError, match="per must be"):
        metrics.weighted_bce(labels, p, 0.1, per="batch")


def test_calibration_under_beta_pos_is_against_the_beta_weighted_click_rate():
    labels = np.array([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])
    p = np.array([0.2, 0.1, 0.1, 0.1, 0.2, 0.1])
    reference = 0.5 * 2 / (0.5 * 2 + 4)                             # Σ w·y / Σ w with β_pos = 0.5: 0.2
    assert metrics.weighted_rate(labels, 0.5) == pytest.approx(reference)
    (bucket,) = metrics.calibration_buckets(labels, p, beta_pos=0.5, buckets=1)
    assert bucket["observed_ctr"] == pytest.approx(2 / 6) and bucket["weighted_rate"] == pytest.approx(reference)
    assert bucket["relative_bias"] == pytest.approx(p.mean() / reference - 1)


def test_delong_matches_the_pairwise_definition_and_scikit_learns_auc():
    rng = np.random.default_rng(0)
    labels = (rng.uniform(size=300) < 0.3).astype(float)
    scores = np.stack([rng.normal(size=300) + labels, np.round(rng.normal(size=300) + 0.5 * labels, 1)])  # ties
    auc, covariance = stats.delong(labels, scores)
    positives, negatives = scores[:, labels > 0.5], scores[:, labels < 0.5]
    psi = (positives[:, :, None] > negatives[:, None, :]) + 0.5 * (positives[:, :, None] == negatives[:, None, :])
    expected = np.cov(psi.mean(2)) / positives.shape[1] + np.cov(psi.mean(1)) / negatives.shape[1]
    assert auc == pytest.approx([sk_metrics.roc_auc_score(labels, s) for s in scores])
    np.testing.assert_allclose(covariance, expected, rtol=1e-12)
    with pytest.raises(ValueError, match="at least 2 rows of each class"):
        stats.delong(np.ones(5), np.zeros((1, 5)))


def test_extra_variance_widens_the_paired_interval_by_hand():
    # d = [0.010, 0.011, 0.012]: var(d)/3 = 1e-6/3; with 2e-6 more, se = sqrt(7/3) * 1e-3
    difference = stats.paired_difference({1: 0.51, 2: 0.511, 3: 0.512}, {1: 0.5, 2: 0.5, 3: 0.5},
                                         extra_variance=2e-6)
    half = 4.302653 * math.sqrt(7.0 / 3.0) * 1e-3
    assert (difference.low, difference.high) == pytest.approx((0.011 - half, 0.011 + half), abs=1e-7)
    with pytest.raises(ValueError, match="extra_variance"):
        stats.paired_difference({1: 0.1, 2: 0.2}, {1: 0.0, 2: 0.0}, extra_variance=-1.0)


def test_test_scores_round_trip_exactly():
    rng = np.random.default_rng(2)
    labels, probabilities = (rng.uniform(size=1001) < 0.2).astype(float), rng.uniform(size=1001).astype(np.float32)
    decoded_labels, decoded = metrics.decode_scores(metrics.encode_scores(labels, probabilities))
    assert decoded_labels.tolist() == labels.tolist() and decoded.tolist() == probabilities.tolist()


def test_a_model_exact_row_by_row_under_beta_pos_is_calibrated():
    # 1,000 rows of p = 0.8 (800 clicks) and 9,000 of p = 0.05 (450 clicks, one in 20), β_pos 0.1: a model exact row
    # by row predicts q = βp / (βp + 1 - p), 0.2857 and 0.005236. Each prediction decile's β-weighted click rate is
    # its q, so the model is calibrated (1); the split's one weighted rate, 125 / 8,875, would call it 2.36.
    labels = np.r_[np.arange(9000) % 20 == 0, np.arange(1000) < 800].astype(float)
    p = np.r_[np.full(9000, 0.05), np.full(1000, 0.8)]
    q = 0.1 * p / (0.1 * p + 1 - p)
    assert metrics.split_metrics(labels, q, beta_pos=0.1)["calibration"] == pytest.approx(1.0)
    assert q.mean() / metrics.weighted_rate(labels, 0.1) == pytest.approx(2.363, abs=1e-3)
