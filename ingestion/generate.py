"""Seeded generator of Criteo-format click logs with a known ground truth.

Writes the Kaggle `train.txt` layout: tab-separated label, I1-I13 non-negative
integers, C1-C26 8-hex-digit tokens, empty string for a missing value, at
Criteo-like missing rates. Category popularity is Zipf over Criteo's cardinalities,
capped at `max_cardinality` tokens per field. Labels are Bernoulli draws from a hidden
logit with per-token effects, factorised field-pair interactions (what DCN's cross
layers model) and numeric-by-category interactions; the bias is solved so the CTR
hits the target. The labels come from this click model alone: nothing in it refers
to a loss, and β_pos (Eq. 15) is applied by the Trainer, not here.

Because the true probabilities are known, the generator reports the Bayes-optimal
AUC and logloss per split: the best any model can score on this data. How close a
model gets depends on how many parameters the hidden logit has per training row.
The default (30 tokens per field, 2 field pairs, weak numeric-by-category terms) is
learnable at the demo's size: on 60k rows the reference DCN V2 gets within about
0.015 AUC of the optimum (README, "The embedded data"). `--max-cardinality 1000000`
gives Criteo-like vocabularies (fields over 10^5 tokens), where most tokens are too
rare to learn at any size this machine trains, as in the real logs.

    python -m ingestion.generate --rows 60000 --out work/data/criteo_generated.tsv
"""
import json
import os
from typing import Dict, Iterator, Tuple

import numpy as np
from apache_beam.io.filesystems import FileSystems
from sklearn import metrics

from settings import flags
from runtime import object_storage
from settings.configs import DataConfig
from transforms import features, rows, splits

# Approximate Criteo (Kaggle) missing rates and cardinalities per field.
NUMERIC_MISSING = (0.45, 0.0, 0.21, 0.22, 0.026, 0.22, 0.043, 0.0005, 0.043, 0.45, 0.043, 0.76, 0.22)
CATEGORICAL_MISSING = (0, 0, .034, .034, 0, .12, 0, 0, 0, 0, 0, .034, 0, 0, 0, .034, 0, 0, .44, .44,
                       .034, .76, 0, .034, .44, .44)
CRITEO_CARDINALITY = (1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683, 8351593, 3194, 27,
                      14992, 5461306, 10, 5652, 2173, 4, 7046547, 18, 15, 286181, 105, 142572)
INTERACTION_DIM = 4
NUM_FIELD_PAIRS = 2   # categorical field pairs with a factorised interaction
NUM_CAT_PAIRS = 6     # (numeric, categorical) field pairs with a count-by-token interaction
NUM_CAT_SCALE = 0.03  # weight of those interactions, per unit of log1p(count)
LOGIT_SCALE = 1.7  # standard deviation of the non-bias logit; sets the Bayes AUC near Criteo's 0.8
CHUNK_ROWS = 200_000


def _hash_uniform(*keys: np.ndarray) -> np.ndarray:
    """Uniform(0, 1) values from a hash of integer keys (stateless per-token draws)."""
    h = np.zeros(np.broadcast(*keys).shape, dtype=np.uint64)
    for key in keys:
        h = splits.mix64(h ^ np.asarray(key, dtype=np.uint64))
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53) + 0.5 / float(1 << 53)


def _hash_normal(*keys: np.ndarray) -> np.ndarray:
    """Standard normal values from a hash of integer keys (Box-Muller)."""
    u1 = _hash_uniform(*keys, 1)
    u2 = _hash_uniform(*keys, 2)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


class GroundTruth:
    """The hidden click model: per-field parameters drawn once from the seed."""

    def __init__(self, seed: int, ctr: float, max_cardinality: int):
        if max_cardinality < 1:
            raise ValueError(f"max_cardinality must be positive, got {max_cardinality}")
        self.seed = seed
        self.cardinality = tuple(min(c, max_cardinality) for c in CRITEO_CARDINALITY)
        rng = np.random.default_rng(seed)
        n_num, n_cat = len(features.NUMERIC_FEATURES), len(features.CATEGORICAL_FEATURES)
        self.zipf_s = rng.uniform(1.05, 1.3, size=n_cat)
        self.cat_scale = rng.gamma(1.5, 0.35, size=n_cat)          # first-order effect per field
        self.num_mu = rng.uniform(0.3, 5.0, size=n_num)             # log1p(count) location
        self.num_sigma = rng.uniform(0.6, 1.6, size=n_num)
        self.num_linear = rng.normal(0.0, 0.25, size=n_num)
        self.num_quadratic = rng.normal(0.0, 0.05, size=n_num)
        pairs = set()
        while len(pairs) < NUM_FIELD_PAIRS:
            a, b = sorted(rng.choice(n_cat, size=2, replace=False))
            pairs.add((int(a), int(b)))
        self.pairs = sorted(pairs)
        self.pair_scale = rng.uniform(0.4, 1.0, size=NUM_FIELD_PAIRS)
        # numeric x categorical interactions: (numeric field, categorical field)
        self.num_cat_pairs = [(int(i), int(j)) for i, j in zip(
            rng.choice(n_num, NUM_CAT_PAIRS, replace=False), rng.choice(n_cat, NUM_CAT_PAIRS, replace=False))]
        self.logit_norm = 1.0
        self.bias = 0.0
        self._calibrate(ctr)

    def _calibrate(self, ctr: float) -> None:
        """Scales the logit to LOGIT_SCALE and solves the bias for the target CTR."""
        rng = np.random.default_rng(self.seed + 1)
        _, ranks, numeric = self.sample_features(rng, 50_000)
        raw = self.logit_without_bias(ranks, numeric)
        self.logit_norm = LOGIT_SCALE / raw.std()
        z = raw * self.logit_norm
        lo, hi = -20.0, 20.0
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            if (1.0 / (1.0 + np.exp(-(z + mid)))).mean() < ctr:
                lo = mid
            else:
                hi = mid
        self.bias = 0.5 * (lo + hi)

    def sample_features(self, rng: np.random.Generator, n: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Draws (missing masks, category ranks, integer counts) for n rows.

        ranks[:, k] is the Zipf rank (1-based) of the token in field C{k+1}, 0 when missing;
        numeric[:, k] is the count for I{k+1}, -1 when missing.
        """
        n_num, n_cat = len(features.NUMERIC_FEATURES), len(features.CATEGORICAL_FEATURES)
        ranks = np.zeros((n, n_cat), dtype=np.int64)
        for k in range(n_cat):
            card, s = self.cardinality[k], self.zipf_s[k]
            u = rng.random(n)
            # inverse CDF of a continuous Zipf (bounded Pareto) on [1, card + 1)
            r = np.floor(((np.power(card + 1.0, 1.0 - s) - 1.0) * u + 1.0) ** (1.0 / (1.0 - s)))
            ranks[:, k] = np.clip(r, 1, card).astype(np.int64)
            ranks[rng.random(n) < CATEGORICAL_MISSING[k], k] = 0
        log_counts = rng.normal(self.num_mu, self.num_sigma, size=(n, n_num))
        numeric = np.rint(np.expm1(np.maximum(log_counts, 0.0))).astype(np.int64)
        numeric[rng.random((n, n_num)) < np.asarray(NUMERIC_MISSING)] = -1
        missing = np.concatenate([numeric < 0, ranks == 0], axis=1)
        return missing, ranks, numeric

    def _token_vectors(self, field: int, ranks: np.ndarray) -> np.ndarray:
        """Latent interaction vectors of tokens (zero for a missing token)."""
        dims = np.arange(INTERACTION_DIM, dtype=np.uint64)
        v = _hash_normal(self.seed, 1000 + field, ranks[:, None].astype(np.uint64), dims)
        return v * (ranks[:, None] > 0) / np.sqrt(INTERACTION_DIM)

    def logit_without_bias(self, ranks: np.ndarray, numeric: np.ndarray) -> np.ndarray:
        """The hidden logit before scaling and bias."""
        z = np.zeros(ranks.shape[0])
        for k in range(ranks.shape[1]):
            effect = _hash_normal(self.seed, k, ranks[:, k].astype(np.uint64))
            z += self.cat_scale[k] * effect * (ranks[:, k] > 0)
        t = np.log1p(np.maximum(numeric, 0)).astype(np.float64)  # missing counts as 0
        z += (self.num_linear * t + self.num_quadratic * t * t).sum(axis=1)
        for (a, b), scale in zip(self.pairs, self.pair_scale):
            z += scale * np.sum(self._token_vectors(a, ranks[:, a]) * self._token_vectors(b, ranks[:, b]), axis=1)
        for i, j in self.num_cat_pairs:
            z += NUM_CAT_SCALE * t[:, i] * _hash_normal(self.seed, 2000 + j, ranks[:, j].astype(np.uint64)) * (ranks[:, j] > 0)
        return z

    def probability(self, ranks: np.ndarray, numeric: np.ndarray) -> np.ndarray:
        z = self.logit_without_bias(ranks, numeric) * self.logit_norm + self.bias
        return 1.0 / (1.0 + np.exp(-z))

    def tokens(self, field: int, ranks: np.ndarray) -> np.ndarray:
        """8-hex-digit tokens for ranks of one field ('' when missing)."""
        h = (splits.mix64(np.uint64(self.seed * 100 + field) ^ splits.mix64(ranks.astype(np.uint64)))
             & np.uint64(0xFFFFFFFF))
        out = np.char.mod("%08x", h.astype(np.int64)).astype(object)
        out[ranks == 0] = ""
        return out


def bayes_metrics(labels: np.ndarray, probabilities: np.ndarray) -> Dict[str, float]:
    """AUC and logloss of the true probabilities: the best any model can score (NaN AUC for one class)."""
    one_class = len(np.unique(labels)) < 2
    return {"bayes_auc": float("nan") if one_class else float(metrics.roc_auc_score(labels, probabilities)),
            "bayes_logloss": float(metrics.log_loss(labels, probabilities, labels=[0, 1]))}


def draw_rows(truth: GroundTruth, num_rows: int,
              seed: int) -> Iterator[Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """(labels, ranks, counts, true probabilities) of the rows in line order, in chunks: what `generate` writes."""
    rng = np.random.default_rng([seed, 2])
    for start in range(0, num_rows, CHUNK_ROWS):
        n = min(CHUNK_ROWS, num_rows - start)
        _, ranks, numeric = truth.sample_features(rng, n)
        p = truth.probability(ranks, numeric)
        labels = (rng.random(n) < p).astype(np.int64)
        yield labels, ranks, numeric, p


def format_rows(truth: GroundTruth, labels: np.ndarray, ranks: np.ndarray, numeric: np.ndarray) -> str:
    columns = [labels.astype(str).astype(object)]
    for k in range(numeric.shape[1]):
        col = numeric[:, k].astype(str).astype(object)
        col[numeric[:, k] < 0] = ""
        columns.append(col)
    columns += [truth.tokens(k, ranks[:, k]) for k in range(ranks.shape[1])]
    lines = columns[0]
    for col in columns[1:]:
        lines = lines + rows.DELIMITERS["tsv"] + col
    return "\n".join(lines) + "\n"


def generate(out_path: str, num_rows: int, ctr: float = DataConfig.ctr, seed: int = DataConfig.seed,
             max_cardinality: int = DataConfig.max_cardinality) -> Dict:
    """Writes `num_rows` Criteo TSV rows to `out_path` (.gz compresses) and returns the report.

    The report (also written to `<out_path>.meta.json`, deleted first and written last, so that rows
    without their report are never taken for another run's) holds the realised CTR and
    missing rates and, per split, row count, CTR, Bayes-optimal AUC and logloss.
    """
    if num_rows <= 0:
        raise ValueError(f"num_rows must be positive, got {num_rows}")
    if not 0.0 < ctr < 1.0:
        raise ValueError(f"ctr must be in (0, 1), got {ctr}")
    truth = GroundTruth(seed, ctr, max_cardinality)
    if not object_storage.is_object_store(out_path):
        out_path = os.path.abspath(out_path)
        os.makedirs(os.path.dirname(out_path), exist_ok=True)
    all_labels, all_p, missing_counts = [], [], np.zeros(features.NUM_COLUMNS - 1)
    meta_path = out_path + ".meta.json"
    if FileSystems.exists(meta_path):  # the report goes first, so an interrupted run leaves rows without one
        FileSystems.delete([meta_path])
    with FileSystems.create(out_path) as f:  # a local, gs:// or s3:// path; .gz compresses
        for labels, ranks, numeric, p in draw_rows(truth, num_rows, seed):
            f.write(format_rows(truth, labels, ranks, numeric).encode("utf-8"))
            all_labels.append(labels)
            all_p.append(p)
            missing_counts += np.concatenate([(numeric < 0).sum(0), (ranks == 0).sum(0)])
    labels, p = np.concatenate(all_labels), np.concatenate(all_p)
    split_ids = splits.split_index(np.arange(1, num_rows + 1))
    report = {
        "path": out_path,
        "rows": num_rows, "seed": seed, "target_ctr": ctr, "max_cardinality": max_cardinality,
        "ctr": float(labels.mean()),
        "missing_rate": dict(zip(features.NUMERIC_FEATURES + features.CATEGORICAL_FEATURES,
                                 (missing_counts / num_rows).round(4).tolist())),
        "splits": {},
    }
    for i, name in enumerate(splits.SPLITS):
        mask = split_ids == i
        report["splits"][name] = {
            "rows": int(mask.sum()), "ctr": float(labels[mask].mean()) if mask.any() else float("nan"),
            **bayes_metrics(labels[mask], p[mask]),
        }
    with FileSystems.create(meta_path) as f:
        f.write(json.dumps(report, indent=2).encode("utf-8"))
    return report


def main() -> None:
    parser = flags.StrictParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="output path (.gz for gzip)")
    flags.add_flags(parser, sections=("data",))
    config, args = flags.parse(parser)
    object_storage.configure_beam_file_systems()
    report = generate(args.out, config.data.num_rows, config.data.ctr, config.data.seed, config.data.max_cardinality)
    print(json.dumps(report["splits"], indent=2))
    print(f"[generate] wrote {report['rows']} rows (CTR {report['ctr']:.4f}) to {report['path']}")


if __name__ == "__main__":
    main()
