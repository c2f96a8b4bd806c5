"""Scoring against the generator's true probabilities: closed forms, brute force, and the redrawn test split."""
import itertools
import json

import numpy as np
import pytest
import tensorflow as tf
from sklearn import metrics as sk_metrics

from experiments import stats, truth
from ingestion import generate
from settings.configs import DataConfig
from transforms import rows, splits


def _brute_force_expected_auc(p, s):
    above = pairs = 0.0
    for i, j in itertools.permutations(range(p.size), 2):
        weight = p[i] * (1.0 - p[j])
        pairs += weight
        above += weight * (1.0 if s[i] > s[j] else 0.5 if s[i] == s[j] else 0.0)
    return above / pairs


def test_expected_auc_is_the_pair_count_over_distinct_rows_ties_counting_half():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.01, 0.99, 40)
    s = np.round(rng.uniform(0, 1, 40), 1)  # rounded: many ties
    assert truth.expected_auc(p, s) == pytest.approx(_brute_force_expected_auc(p, s), abs=1e-12)


def test_expected_auc_of_certain_labels_is_the_ordinary_auc_and_the_true_scores_beat_any_other():
    rng = np.random.default_rng(1)
    labels = (rng.uniform(size=200) < 0.3).astype(float)
    scores = rng.normal(size=200) + labels
    assert truth.expected_auc(labels, scores) == pytest.approx(sk_metrics.roc_auc_score(labels, scores), abs=1e-12)
    p = rng.uniform(0.05, 0.95, 300)
    assert truth.expected_auc(p, p) > truth.expected_auc(p, p + rng.normal(0, 0.2, 300))
    assert truth.expected_auc(p, -p) == pytest.approx(1.0 - truth.expected_auc(p, p), abs=1e-12)
    with pytest.raises(ValueError, match="as many"):
        truth.expected_auc(p, p[:-1])


def test_expected_weighted_bce_by_hand():
    # rows p = (0.2, 0.6), predictions q = (0.25, 0.5), beta 0.5:
    # sum = -(0.5*0.2*ln .25 + 0.8*ln .75 + 0.5*0.6*ln .5 + 0.4*ln .5); weights 0.5*0.2+0.8 + 0.5*0.6+0.4 = 1.6
    total = -(0.1 * np.log(0.25) + 0.8 * np.log(0.75) + 0.3 * np.log(0.5) + 0.4 * np.log(0.5))
    p, q = np.array([0.2, 0.6]), np.array([0.25, 0.5])
    assert truth.expected_weighted_bce(p, q, 0.5) == pytest.approx(total / 2)
    assert truth.expected_weighted_bce(p, q, 0.5, per="weight") == pytest.approx(total / 1.6)
    with pytest.raises(ValueError, match="per must be"):
        truth.expected_weighted_bce(p, q, 0.5, per="batch")


def test_a_rows_frequency_is_its_rarest_present_ids_train_count():
    train = np.array([[1, 2], [1, 2], [1, 0], [3, 2]])  # field 0: id 1 x3, id 3 x1; field 1: id 2 x3
    test = np.array([[1, 2], [3, 2], [4, 2], [1, 0], [0, 0]])
    counts = truth.rarest_id_counts(train, test)
    assert counts[:4].tolist() == [3, 1, 0, 3]  # id 4 never seen: 0; a missing field is left out
    assert counts[4] == np.iinfo(np.int64).max   # nothing present: no rarity, the most frequent bucket
    assert truth.bucket_of(np.array([0, 4, 5, 50, 51, 10 ** 9])).tolist() == ["<5", "<5", "5-50", "5-50", ">50", ">50"]


def test_the_redrawn_test_split_is_the_generators_written_one(tmp_path):
    data = DataConfig(num_rows=3000, max_cardinality=200)
    report = generate.generate(str(tmp_path / "logs.tsv"), data.num_rows, data.ctr, data.seed, data.max_cardinality)
    test = truth.redraw_test_split(data)
    assert test.labels.size == report["splits"]["test"]["rows"] == len(test.examples)
    assert test.labels.mean() == pytest.approx(report["splits"]["test"]["ctr"])
    assert sk_metrics.roc_auc_score(test.labels, test.probabilities) == pytest.approx(
        report["splits"]["test"]["bayes_auc"])
    written = [line for number, line in enumerate(open(tmp_path / "logs.tsv").read().splitlines(), 1)
               if splits.split_of(number) == "test"]
    expected = rows.to_examples([rows.parse_row(line, "\t") for line in written])
    assert [tf.train.Example.FromString(e) for e in test.examples] == [tf.train.Example.FromString(e)
                                                                       for e in expected]
    described = test.describe()
    assert sum(b["rows"] for b in described["buckets"].values()) == test.labels.size
    assert described["bayes_expected_auc"] == pytest.approx(truth.expected_auc(test.probabilities,
                                                                                test.probabilities))
    metrics = test.metrics(test.probabilities, 1.0)
    assert metrics["expected_auc"] == pytest.approx(described["bayes_expected_auc"])
    assert set(metrics["buckets"]) <= {"<5", "5-50", ">50"} and json.dumps(metrics)
    with pytest.raises(ValueError, match="predictions for"):
        test.metrics(test.probabilities[1:], 1.0)


@pytest.mark.parametrize("low,high,expected", [(0.0001, 0.002, 1), (-0.002, 0.0007, -1), (-0.001, 0.0009, 0),
                                               (-0.001, 0.0008, 0)])
def test_the_pre_registered_rule(low, high, expected):
    assert stats.pre_registered_rule(low, high, 0.0008) == expected
    with pytest.raises(ValueError, match="need an interval"):
        stats.pre_registered_rule(float("nan"), high, 0.0008)
