"""Test-split metrics of one run, from labels and served click probabilities (numpy, no TensorFlow).

- AUC (scikit-learn), plain logloss, and the paper's β_pos-weighted BCE (Eq. 15):
      L = -1/N Σ_i [β_pos · y_i · log p_i + (1 - y_i) · log(1 - p_i)],
  and the same sum per unit weight (÷ Σ_i w_i, w = β_pos on a positive), the paper's reported figures;
- calibration: the mean prediction over the β-weighted click rate Σ w·y / Σ w of the rows each prediction
  decile holds (`calibration`; 1 is calibrated): a model trained with positives weighing β_pos estimates
  q = β·p / (β·p + 1 - p) row by row, and as q is not linear in p, its mean is not the split's one weighted
  rate (the plain CTR when β_pos = 1, where both references agree closely);
- calibration per predicted-CTR bucket (Fig. 8): equal-count buckets of the predictions, each with
  its mean prediction, observed CTR, β-weighted rate and relative bias (mean prediction / that rate - 1).
"""
import base64
from typing import Dict, List, Tuple

import numpy as np
from sklearn import metrics as sk_metrics

from equations import weighted_bce as eq15

EPSILON = 1e-7  # probabilities are clipped to [ε, 1 - ε], as Keras' BCE does


def weighted_bce(labels: np.ndarray, probabilities: np.ndarray, beta_pos: float, per: str = "row") -> float:
    """Eq. 15 on probabilities: Σ w·ℓ (w = β_pos on a positive, 1 on a negative) divided by the rows (`row`,
    Eq. 15's 1/N) or by Σ w (`weight`: the paper's reported figures, as `log_loss(sample_weight=w)`)."""
    if per not in ("row", "weight"):
        raise ValueError(f"per must be 'row' or 'weight', got {per!r}")
    p = np.clip(np.asarray(probabilities, np.float64), EPSILON, 1.0 - EPSILON)
    y = np.asarray(labels, np.float64)
    total = np.sum(eq15.weighted_terms(y, -(y * np.log(p) + (1.0 - y) * np.log(1.0 - p)), beta_pos))
    return float(total / (y.size if per == "row" else eq15.positive_weights(y, beta_pos).sum()))


def weighted_rate(labels: np.ndarray, beta_pos: float) -> float:
    """The β-weighted click rate Σ w·y / Σ w: what a model trained with positives weighing β_pos estimates."""
    clicks = float(np.sum(labels))
    return beta_pos * clicks / (beta_pos * clicks + (np.size(labels) - clicks))


def calibration_buckets(labels: np.ndarray, probabilities: np.ndarray, beta_pos: float = 1.0,
                        buckets: int = 10) -> List[Dict[str, float]]:
    """Equal-count buckets of the predictions (sorted ascending), each against its β-weighted click rate."""
    order = np.argsort(probabilities, kind="stable")
    out = []
    for part in np.array_split(order, buckets):
        if part.size == 0:
            continue
        observed, predicted = float(np.mean(labels[part])), float(np.mean(probabilities[part]))
        reference = weighted_rate(labels[part], beta_pos)
        out.append({"count": int(part.size), "mean_prediction": predicted, "observed_ctr": observed,
                    "weighted_rate": reference,
                    "relative_bias": predicted / reference - 1.0 if reference > 0 else float("nan")})
    return out


def calibration(buckets: List[Dict[str, float]]) -> float:
    """Σ_b n_b·(mean prediction)_b / Σ_b n_b·(β-weighted click rate)_b over `calibration_buckets`."""
    predicted = sum(b["count"] * b["mean_prediction"] for b in buckets)
    return float(predicted / sum(b["count"] * b["weighted_rate"] for b in buckets))


def split_metrics(labels: np.ndarray, probabilities: np.ndarray, beta_pos: float) -> Dict:
    labels = np.asarray(labels, np.float64).reshape(-1)
    probabilities = np.asarray(probabilities, np.float64).reshape(-1)
    if labels.shape != probabilities.shape or labels.size == 0:
        raise ValueError(f"need as many labels as probabilities (> 0), got {labels.shape} and {probabilities.shape}")
    if len(np.unique(labels)) < 2:
        raise ValueError("the test split has one class only: AUC is undefined")
    p = np.clip(probabilities, EPSILON, 1.0 - EPSILON)
    buckets = calibration_buckets(labels, probabilities, beta_pos)
    return {
        "examples": int(labels.size),
        "auc": float(sk_metrics.roc_auc_score(labels, probabilities)),
        "logloss": float(sk_metrics.log_loss(labels, p, labels=[0, 1])),
        "weighted_bce": weighted_bce(labels, probabilities, beta_pos),
        "weighted_bce_per_weight": weighted_bce(labels, probabilities, beta_pos, per="weight"),
        "calibration": calibration(buckets),
        "calibration_buckets": buckets,
    }


def encode_scores(labels: np.ndarray, probabilities: np.ndarray) -> Dict[str, str]:
    """A run's test labels (packed bits) and float32 probabilities, base64 in a results line, so that later
    analyses (DeLong's test-row variance) can pair two runs row by row."""
    labels = np.asarray(labels).reshape(-1) > 0.5
    return {"rows": str(labels.size), "labels": base64.b64encode(np.packbits(labels).tobytes()).decode("ascii"),
            "probabilities": base64.b64encode(np.asarray(probabilities, "<f4").reshape(-1).tobytes()).decode("ascii")}


def decode_scores(encoded: Dict[str, str]) -> Tuple[np.ndarray, np.ndarray]:
    """(labels as 0/1 floats, probabilities) from `encode_scores`."""
    rows = int(encoded["rows"])
    bits = np.unpackbits(np.frombuffer(base64.b64decode(encoded["labels"]), np.uint8))[:rows]
    return bits.astype(np.float64), np.frombuffer(base64.b64decode(encoded["probabilities"]), "<f4").astype(np.float64)
