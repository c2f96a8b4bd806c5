"""The embedded data generator: format, determinism, CTR, missing rates, Bayes metrics."""
import itertools
import re

import numpy as np
import pytest

from ingestion import generate
from transforms import splits
from transforms import features


def _rows(path):
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f]


def test_rows_have_criteo_layout(generated_tsv):
    path, report = generated_tsv
    rows = _rows(path)
    assert len(rows) == report["rows"] == 500
    for row in rows:
        assert len(row) == features.NUM_COLUMNS
        assert row[0] in ("0", "1")
        for value in row[1:14]:
            assert value == "" or (value.isdigit() and int(value) >= 0)
        for value in row[14:]:
            assert value == "" or re.fullmatch(r"[0-9a-f]{8}", value)


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a, b, c = (str(tmp_path / name) for name in ("a.tsv", "b.tsv", "c.tsv"))
    generate.generate(a, 300, seed=11)
    generate.generate(b, 300, seed=11)
    generate.generate(c, 300, seed=12)
    assert open(a).read() == open(b).read()
    assert open(a).read() != open(c).read()


@pytest.mark.parametrize("ctr", [0.256, 0.05])
def test_ctr_and_missing_rates_match_targets(tmp_path, ctr):
    report = generate.generate(str(tmp_path / "g.tsv.gz"), 20_000, ctr=ctr, seed=5)
    assert abs(report["ctr"] - ctr) < 0.015
    targets = dict(zip(features.NUMERIC_FEATURES + features.CATEGORICAL_FEATURES,
                       generate.NUMERIC_MISSING + generate.CATEGORICAL_MISSING))
    for name, rate in report["missing_rate"].items():
        assert abs(rate - targets[name]) < 0.02, name


def test_categorical_popularity_is_heavy_tailed(tmp_path):
    path = str(tmp_path / "g.tsv")
    generate.generate(path, 5_000, seed=2, max_cardinality=1_000_000)
    column = [row[14 + 2] for row in _rows(path) if row[14 + 2]]  # C3: 10^6 tokens at most
    _, counts = np.unique(column, return_counts=True)
    counts = np.sort(counts)[::-1]
    assert counts[0] > 20 * np.median(counts)  # a few tokens dominate (Zipf)
    assert len(counts) > 500                   # and the tail is long


def test_split_sizes_follow_7_2_1(generated_tsv):
    _, report = generated_tsv
    sizes = [report["splits"][s]["rows"] for s in splits.SPLITS]
    assert sum(sizes) == 500
    assert sizes[0] > sizes[1] > sizes[2] > 0


def test_bayes_metrics_are_those_of_the_true_probabilities(generated_tsv):
    _, report = generated_tsv
    for split in report["splits"].values():
        assert 0.6 < split["bayes_auc"] < 1.0
        assert 0.2 < split["bayes_logloss"] < 0.6


def test_bayes_metrics_match_pair_counting_and_the_logloss_closed_form():
    rng = np.random.default_rng(0)
    labels = (rng.random(60) < 0.3).astype(int)
    scores = np.round(rng.random(60), 1).clip(0.05, 0.95)  # ties on purpose
    pos, neg = scores[labels == 1], scores[labels == 0]
    pairs = [(1.0 if p > n else 0.5 if p == n else 0.0) for p, n in itertools.product(pos, neg)]
    logloss = -np.mean(labels * np.log(scores) + (1 - labels) * np.log(1 - scores))
    metrics = generate.bayes_metrics(labels, scores)
    assert metrics["bayes_auc"] == pytest.approx(np.mean(pairs))
    assert metrics["bayes_logloss"] == pytest.approx(logloss, rel=1e-6)
    assert np.isnan(generate.bayes_metrics(np.zeros(5, int), np.full(5, 0.2))["bayes_auc"])  # one class: no AUC


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="ctr"):
        generate.generate(str(tmp_path / "x.tsv"), 10, ctr=1.5)
    with pytest.raises(ValueError, match="num_rows"):
        generate.generate(str(tmp_path / "x.tsv"), 0)
    with pytest.raises(ValueError, match="max_cardinality"):
        generate.generate(str(tmp_path / "x.tsv"), 10, max_cardinality=0)


def test_a_generation_interrupted_before_its_report_is_not_reused_as_the_earlier_data(tmp_path, monkeypatch):
    from pipeline import inputs  # pylint: disable=import-outside-toplevel
    from settings import configs  # pylint: disable=import-outside-toplevel

    config = configs.PipelineConfig(output_root=str(tmp_path))
    config.data.num_rows = 200
    inputs.prepare_data(config)
    with open(config.raw_data_path) as f:
        seed_7 = f.read()
    with monkeypatch.context() as patch:  # another seed's run dies after its rows, before its report
        patch.setattr(generate, "bayes_metrics", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
        with pytest.raises(KeyboardInterrupt):
            generate.generate(config.raw_data_path, 200, 0.256, seed=8)
    inputs.prepare_data(config)
    with open(config.raw_data_path) as f:
        assert f.read() == seed_7
