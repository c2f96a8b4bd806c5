"""Test metrics against the generator's true click probabilities, which removes the labels' noise.

The generator knows each row's true probability p_i. A model's scores s_i are judged on the test split by
- the expected AUC: the AUC's pair count with every row a positive of weight p_i and a negative of weight
  1 - p_i, over distinct rows,
      AUC* = Σ_{i≠j} p_i (1 - p_j) [1(s_i > s_j) + ½ 1(s_i = s_j)] / Σ_{i≠j} p_i (1 - p_j);
- the expected weighted BCE (Eq. 15 with y_i replaced by its expectation p_i), per row and per unit weight:
      L* = -Σ_i [β_pos p_i log q_i + (1 - p_i) log(1 - q_i)] / N   (or / Σ_i (β_pos p_i + 1 - p_i)),
  q_i the served probability;
- both again by how often the row's ids occur in train: the train count of its rarest categorical id
  (missing fields left out), in buckets < 5, 5-50 and > 50 (`FREQUENCY_BUCKETS`), where rare ids'
  embeddings get few updates.
The test rows are scored through the serving path (raw `tf.Example`s -> Transform graph -> model ->
calibration), in line order, so each score meets its row's p_i.
"""
import dataclasses
from typing import Dict, List

import numpy as np
import tensorflow as tf
from sklearn import metrics as sk_metrics

from experiments.metrics import EPSILON
from ingestion import generate
from serving import signatures
from settings.configs import DataConfig
from transforms import features, rows, splits

FREQUENCY_BUCKETS = (("<5", 0, 5), ("5-50", 5, 51), (">50", 51, np.inf))  # (name, low, high): low <= count < high


def expected_auc(true_probabilities: np.ndarray, scores: np.ndarray) -> float:
    """AUC* above, from scikit-learn's weighted AUC over the rows taken once as positives (weight p) and once
    as negatives (weight 1 - p), less the pairs of a row with itself (each a tie: ½ p_i (1 - p_i))."""
    p, s = np.asarray(true_probabilities, np.float64), np.asarray(scores, np.float64)
    if p.shape != s.shape or p.size < 2:
        raise ValueError(f"need as many true probabilities as scores (>= 2), got {p.shape} and {s.shape}")
    weighted = sk_metrics.roc_auc_score(np.r_[np.ones_like(p), np.zeros_like(p)], np.r_[s, s],
                                        sample_weight=np.r_[p, 1.0 - p])
    pairs, self_pairs = p.sum() * (1.0 - p).sum(), float(np.sum(p * (1.0 - p)))
    return float((weighted * pairs - 0.5 * self_pairs) / (pairs - self_pairs))


def expected_weighted_bce(true_probabilities: np.ndarray, predictions: np.ndarray, beta_pos: float,
                          per: str = "row") -> float:
    """L* above: per row (`row`, Eq. 15's 1/N) or per unit of expected weight (`weight`)."""
    if per not in ("row", "weight"):
        raise ValueError(f"per must be 'row' or 'weight', got {per!r}")
    p = np.asarray(true_probabilities, np.float64)
    q = np.clip(np.asarray(predictions, np.float64), EPSILON, 1.0 - EPSILON)
    total = -np.sum(beta_pos * p * np.log(q) + (1.0 - p) * np.log(1.0 - q))
    return float(total / (p.size if per == "row" else np.sum(beta_pos * p + 1.0 - p)))


def rarest_id_counts(train_ranks: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """Per row of `ranks` [N, fields] (0 = missing), the train count of its rarest present id."""
    rarest = np.full(ranks.shape[0], np.iinfo(np.int64).max)
    for field in range(ranks.shape[1]):
        counts = np.bincount(train_ranks[:, field], minlength=int(ranks[:, field].max()) + 1)
        counts[0] = np.iinfo(np.int64).max  # a missing field says nothing of rarity
        rarest = np.minimum(rarest, counts[ranks[:, field]])
    return rarest


def bucket_of(counts: np.ndarray) -> np.ndarray:
    """The `FREQUENCY_BUCKETS` name of each rarest-id count."""
    out = np.empty(counts.shape, dtype=object)
    for name, low, high in FREQUENCY_BUCKETS:
        out[(counts >= low) & (counts < high)] = name
    return out


@dataclasses.dataclass
class HeldOutTruth:
    """The generator's test split in line order: raw serialized examples, labels, true probabilities, buckets."""

    examples: List[bytes]
    labels: np.ndarray
    probabilities: np.ndarray
    buckets: np.ndarray

    def describe(self) -> Dict:
        """Rows and the Bayes ceiling (the true probabilities as scores), overall and per bucket."""
        out = {"rows": int(self.labels.size), "bayes_expected_auc": expected_auc(self.probabilities,
                                                                                 self.probabilities)}
        out["buckets"] = {name: {"rows": int(np.sum(self.buckets == name))} for name, _, _ in FREQUENCY_BUCKETS}
        return out

    def metrics(self, predictions: np.ndarray, beta_pos: float) -> Dict:
        """Expected AUC and weighted BCE of `predictions` (the test rows' served probabilities), overall and per
        bucket (a bucket with fewer than 2 rows has none), with the AUC on the realised labels beside them."""
        predictions = np.asarray(predictions, np.float64).reshape(-1)
        if predictions.shape != self.probabilities.shape:
            raise ValueError(f"{predictions.size} predictions for {self.probabilities.size} test rows")

        def scored(mask: np.ndarray) -> Dict:
            p, q = self.probabilities[mask], predictions[mask]
            return {"rows": int(mask.sum()), "expected_auc": expected_auc(p, q),
                    "expected_weighted_bce": expected_weighted_bce(p, q, beta_pos),
                    "expected_weighted_bce_per_weight": expected_weighted_bce(p, q, beta_pos, per="weight")}

        out = {**scored(np.ones(predictions.size, bool)),
               "auc": float(sk_metrics.roc_auc_score(self.labels, predictions))}
        out["buckets"] = {name: scored(self.buckets == name) for name, _, _ in FREQUENCY_BUCKETS
                          if np.sum(self.buckets == name) >= 2}
        return out


def redraw_test_split(data: DataConfig) -> HeldOutTruth:
    """Redraws the generator's rows (`ingestion.generate.draw_rows`, deterministic in `data`) and keeps the test
    split's, each bucketed by its rarest id's count in the train split."""
    truth = generate.GroundTruth(data.seed, data.ctr, data.max_cardinality)
    labels, ranks, numeric, probabilities = (np.concatenate(c) for c in zip(
        *generate.draw_rows(truth, data.num_rows, data.seed)))
    split = splits.split_index(np.arange(1, data.num_rows + 1))
    train, test = split == splits.SPLITS.index("train"), split == splits.SPLITS.index("test")
    lines = generate.format_rows(truth, labels[test], ranks[test], numeric[test]).splitlines()
    examples = rows.to_examples([rows.parse_row(line, rows.DELIMITERS["tsv"]) for line in lines])
    return HeldOutTruth(examples, labels[test].astype(np.float64), probabilities[test],
                     bucket_of(rarest_id_counts(ranks[train], ranks[test])))


class Scorer:
    """Scores the test rows through the serving path: raw examples -> Transform graph -> model -> calibration."""

    def __init__(self, truth: HeldOutTruth, tf_transform_output, batch_size: int = 4096):
        self.truth = truth
        self._transform = tf_transform_output.transform_features_layer()
        spec = tf_transform_output.raw_feature_spec()
        spec.pop(features.LABEL_KEY)
        self._batches = [tf.io.parse_example(tf.constant(truth.examples[start:start + batch_size]), spec)
                         for start in range(0, len(truth.examples), batch_size)]

    def metrics(self, ctr_model: tf.keras.Model, beta_pos: float) -> Dict:
        predictions = np.concatenate([signatures.click_probability(ctr_model, self._transform(raw)).numpy()
                                      for raw in self._batches])
        return self.truth.metrics(predictions, beta_pos)


class ScoreFirstEpoch(tf.keras.callbacks.Callback):
    """Keeps `Scorer.metrics` of the model after exactly one epoch (one pass over the data, as a streaming
    deployment trains) in `first_epoch`."""

    def __init__(self, scorer: Scorer, beta_pos: float):
        super().__init__()
        self.scorer, self.beta_pos = scorer, beta_pos
        self.first_epoch: Dict = {}

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if epoch == 0:
            self.first_epoch = self.scorer.metrics(self.model.ctr_model, self.beta_pos)
