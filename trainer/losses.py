"""The paper's training objectives as serializable `tf.keras.losses.Loss` classes.

Equation numbers refer to Lin et al., "Understanding the Ranking Loss for Recommendation
with Sparse User Feedback", KDD'24. Every loss takes logits, never probabilities, labels
y ∈ {0, 1} of shape [B] or [B, 1], and optional sample weights. β_pos (`beta_pos`) weights the
positives' pointwise terms to simulate sparse feedback (Eq. 15); sums are divided by the batch
size N, not by the sum of weights (as the authors' code does).

What a loss reads from the model is its `INPUT` (see trainer/objective.py):
- `logit`: one click logit z per example, [B] or [B, 1];
- `two_logits`: JRC's non-click / click logits [B, 2]; the served probability is
  softmax([z0, z1])[1] = σ(z1 - z0);
- `logit_and_representation`: [B, 1 + R], the logit then the penultimate representation.

A batch with no positives or no negatives makes pairwise and listwise terms 0; every loss
stays finite for logits of ±1e3, batch size 1 and zero sample weights.
"""
from typing import Dict, Optional, Tuple

import tensorflow as tf

REGISTER_PACKAGE = "rankloss"
LOGIT, TWO_LOGITS, LOGIT_AND_REPRESENTATION = "logit", "two_logits", "logit_and_representation"


def _flat(x: tf.Tensor) -> tf.Tensor:
    """[B] or [B, 1] -> [B] float32."""
    return tf.reshape(tf.cast(x, tf.float32), [-1])


def positive_weights(labels: tf.Tensor, beta_pos: float) -> tf.Tensor:
    """β_pos for positives, 1 for negatives (Eq. 15)."""
    return 1.0 + (beta_pos - 1.0) * labels


def weighted_bce_terms(labels: tf.Tensor, logits: tf.Tensor, beta_pos: float) -> tf.Tensor:
    """Per-example β_pos-weighted binary cross-entropy from logits (Eq. 15), stable for any logit."""
    return tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits) * positive_weights(labels, beta_pos)


def _batch_mean(terms: tf.Tensor, sample_weight: Optional[tf.Tensor]) -> tf.Tensor:
    """Σ (weighted) terms / N."""
    if sample_weight is not None:
        terms = terms * _flat(sample_weight)
    return tf.reduce_sum(terms) / tf.maximum(tf.cast(tf.size(terms), tf.float32), 1.0)


def _split_by_label(labels: tf.Tensor, values: tf.Tensor,
                    weights: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    positive = labels > 0.5
    return (tf.boolean_mask(values, positive), tf.boolean_mask(values, ~positive),
            tf.boolean_mask(weights, positive), tf.boolean_mask(weights, ~positive))


# Largest logit spread for which exp(z - c) of every logit, c the mid-range, stays within exp(±40):
# then the pair products exp(z_j - z_i) stay within exp(±80), far from float32 overflow.
_FACTORISED_SPREAD = 80.0
# The compiled pair kernel sees N+ and N- padded up to a multiple of this (zero-weight padding),
# so XLA compiles a handful of shapes instead of one per batch composition.
_PAIR_BLOCK = 128


def _weighted_pair_sums(terms: tf.Tensor, sigma: tf.Tensor, positive_weight: tf.Tensor,
                        negative_weight: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Σ_ij w_i w_j terms_ij and the per-logit gradients -w_i Σ_j w_j σ_ij, w_j Σ_i w_i σ_ij.

    Row sums fuse with the elementwise pass under XLA; the column sums are one [1, N+] × [N+, N-]
    product (XLA:CPU's speed for the transposed mat-vec form varies several-fold with N-).
    """
    loss = tf.reduce_sum(positive_weight * tf.reduce_sum(terms * negative_weight[tf.newaxis, :], axis=1))
    grad_positive = -positive_weight * tf.reduce_sum(sigma * negative_weight[tf.newaxis, :], axis=1)
    grad_negative = negative_weight * tf.matmul(positive_weight[tf.newaxis, :], sigma)[0]
    return loss, grad_positive, grad_negative


@tf.function(jit_compile=True)
def _factorised_pair_sums(positive_logits: tf.Tensor, negative_logits: tf.Tensor, positive_weight: tf.Tensor,
                          negative_weight: tf.Tensor, center: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Loss and per-logit gradients from a_ij = exp(z_j - z_i) = exp(z_j - c)·exp(c - z_i).

    Two exp per logit instead of two per pair; per pair one multiply, one log1p (softplus(d) =
    log1p(a)) and one divide (σ(d) = a / (1 + a)). XLA fuses the pass with its reductions, so no
    N+ × N- intermediate is written to memory.
    """
    a = tf.exp(negative_logits - center)[tf.newaxis, :] * tf.exp(center - positive_logits)[:, tf.newaxis]
    return _weighted_pair_sums(tf.math.log1p(a), a / (1.0 + a), positive_weight, negative_weight)


def _stable_pair_sums(positive_logits: tf.Tensor, negative_logits: tf.Tensor, positive_weight: tf.Tensor,
                      negative_weight: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """The same sums with per-pair softplus(d) and σ(d): stable for any spread of the logits."""
    d = negative_logits[tf.newaxis, :] - positive_logits[:, tf.newaxis]
    return _weighted_pair_sums(tf.nn.softplus(d), tf.sigmoid(d), positive_weight, negative_weight)


def _pad_to_block(values: tf.Tensor, weights: tf.Tensor, fill: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    size = tf.shape(values)[0]
    padding = [[0, (size + _PAIR_BLOCK - 1) // _PAIR_BLOCK * _PAIR_BLOCK - size]]
    return tf.pad(values, padding, constant_values=fill), tf.pad(weights, padding)


@tf.custom_gradient
def _pairwise_softplus_sum(positive_logits: tf.Tensor, negative_logits: tf.Tensor,
                           positive_weight: tf.Tensor, negative_weight: tf.Tensor) -> tf.Tensor:
    """Σ_ij w_i w_j log(1 + exp(z_j - z_i)) over positives i × negatives j, with its gradient.

    One pass over the N+ × N- pairs gives both the loss terms and the pair gradient σ(z_j - z_i)
    (Eq. 12), reduced at once to the per-logit gradients ∂/∂z_j = w_j Σ_i w_i σ_ij and
    ∂/∂z_i = -w_i Σ_j w_j σ_ij. When the logits span at most `_FACTORISED_SPREAD` (always, in
    practice) the pass is the compiled factorised kernel; otherwise the per-pair stable form.
    Both are exact in float32.
    """
    num_positive, num_negative = tf.shape(positive_logits)[0], tf.shape(negative_logits)[0]
    logits = tf.concat([positive_logits, negative_logits], axis=0)
    low, high = tf.reduce_min(logits), tf.reduce_max(logits)

    def factorised():
        center = (low + high) / 2.0
        z_pos, w_pos = _pad_to_block(positive_logits, positive_weight, center)
        z_neg, w_neg = _pad_to_block(negative_logits, negative_weight, center)
        loss, grad_positive, grad_negative = _factorised_pair_sums(z_pos, z_neg, w_pos, w_neg, center)
        return loss, grad_positive[:num_positive], grad_negative[:num_negative]

    loss, grad_positive, grad_negative = tf.cond(
        high - low <= _FACTORISED_SPREAD, factorised,
        lambda: _stable_pair_sums(positive_logits, negative_logits, positive_weight, negative_weight))

    def grad(upstream):
        return upstream * grad_positive, upstream * grad_negative, None, None

    return loss, grad


def ranknet(labels: tf.Tensor, logits: tf.Tensor, sample_weight: Optional[tf.Tensor] = None) -> tf.Tensor:
    """RankNet over all in-batch positive × negative pairs (Eq. 9).

    L = 1/(N+ N-) Σ_i∈P Σ_j∈N log(1 + exp(-(z_i - z_j))); 0 when N+ = 0 or N- = 0.
    A sample weight w weights each pair by w_i·w_j.
    """
    weights = tf.ones_like(logits) if sample_weight is None else _flat(sample_weight)
    z_pos, z_neg, w_pos, w_neg = _split_by_label(labels, logits, weights)
    pairs = tf.cast(tf.size(z_pos) * tf.size(z_neg), tf.float32)
    return _pairwise_softplus_sum(z_pos, z_neg, w_pos, w_neg) / tf.maximum(pairs, 1.0)


def list_cross_entropy(labels: tf.Tensor, log_scores: tf.Tensor, beta_pos: float,
                       sample_weight: Optional[tf.Tensor] = None) -> tf.Tensor:
    """-1/N+ Σ_i∈P log(s_i / Σ_k w_k s_k) with log s given, w_k = β_pos for positives (Eq. 3, 5).

    s = exp(z) is ListNet (Combined-List), s = σ(z) is RCR's ListCE. As in the authors' code,
    positives' terms in the denominator carry β_pos. 0 when the batch has no positive.
    """
    positive = labels > 0.5
    log_denominator = tf.reduce_logsumexp(log_scores + tf.math.log(positive_weights(labels, beta_pos)))
    terms = log_denominator - log_scores
    if sample_weight is not None:
        terms = terms * _flat(sample_weight)
    num_positive = tf.reduce_sum(tf.cast(positive, tf.float32))
    return tf.reduce_sum(tf.where(positive, terms, 0.0)) / tf.maximum(num_positive, 1.0)


class _RankLoss(tf.keras.losses.Loss):
    """Base: per-batch losses (no per-example reduction); serializable parameters."""

    INPUT = LOGIT
    PARAMETERS: Tuple[str, ...] = ()

    def __init__(self, name: str, **kwargs):
        kwargs.pop("reduction", None)  # always per batch; present in configs from get_config
        super().__init__(name=name, reduction=tf.keras.losses.Reduction.NONE, **kwargs)

    def __call__(self, y_true, y_pred, sample_weight=None):
        with tf.name_scope(self.name):
            return self.batch_loss(_flat(y_true), tf.cast(y_pred, tf.float32), sample_weight)

    def call(self, y_true, y_pred):
        return self.batch_loss(_flat(y_true), tf.cast(y_pred, tf.float32), None)

    def batch_loss(self, labels: tf.Tensor, y_pred: tf.Tensor, sample_weight: Optional[tf.Tensor]) -> tf.Tensor:
        raise NotImplementedError

    def get_config(self) -> Dict:
        return {**super().get_config(), **{p: getattr(self, p) for p in self.PARAMETERS}}


def _register(cls):
    return tf.keras.utils.register_keras_serializable(package=REGISTER_PACKAGE)(cls)


@_register
class WeightedBinaryCrossentropy(_RankLoss):
    """BCE with weight β_pos on positives (Eq. 15; Eq. 1 when β_pos = 1):
    L = -1/N Σ_i [β_pos·y_i·log σ(z_i) + (1 - y_i)·log(1 - σ(z_i))]."""

    PARAMETERS = ("beta_pos",)

    def __init__(self, beta_pos: float = 1.0, name: str = "bce", **kwargs):
        super().__init__(name=name, **kwargs)
        self.beta_pos = beta_pos

    def batch_loss(self, labels, y_pred, sample_weight):
        return _batch_mean(weighted_bce_terms(labels, _flat(y_pred), self.beta_pos), sample_weight)


class _Combined(_RankLoss):
    """α·BCE_β + (1 - α)·ranking term (Eq. 4)."""

    PARAMETERS = ("alpha", "beta_pos")

    def __init__(self, alpha: float, beta_pos: float, name: str, **kwargs):
        super().__init__(name=name, **kwargs)
        self.alpha, self.beta_pos = alpha, beta_pos

    def batch_loss(self, labels, y_pred, sample_weight):
        logits = _flat(y_pred[:, 0] if self.INPUT == LOGIT_AND_REPRESENTATION else y_pred)
        bce = _batch_mean(weighted_bce_terms(labels, logits, self.beta_pos), sample_weight)
        return self.alpha * bce + (1.0 - self.alpha) * self.ranking_term(labels, y_pred, sample_weight)

    def ranking_term(self, labels, y_pred, sample_weight) -> tf.Tensor:
        raise NotImplementedError


@_register
class CombinedPair(_Combined):
    """Combined-Pair: α·BCE_β + (1 - α)·RankNet over the N+·N- in-batch pairs (Eq. 8-9).
    β_pos weights the BCE term only."""

    def __init__(self, alpha: float = 0.7, beta_pos: float = 1.0, name: str = "combined_pair", **kwargs):
        super().__init__(alpha, beta_pos, name, **kwargs)

    def ranking_term(self, labels, y_pred, sample_weight):
        return ranknet(labels, _flat(y_pred), sample_weight)


@_register
class CombinedList(_Combined):
    """Combined-List: α·BCE_β + (1 - α)·ListNet (Eq. 3), softmax denominator with β_pos on positives."""

    def __init__(self, alpha: float = 0.5, beta_pos: float = 1.0, name: str = "combined_list", **kwargs):
        super().__init__(alpha, beta_pos, name, **kwargs)

    def ranking_term(self, labels, y_pred, sample_weight):
        return list_cross_entropy(labels, _flat(y_pred), self.beta_pos, sample_weight)


@_register
class RCR(_Combined):
    """RCR: α·BCE_β + (1 - α)·ListCE (Eq. 5), the list cross-entropy with σ(z) in place of exp(z)."""

    def __init__(self, alpha: float = 0.5, beta_pos: float = 1.0, name: str = "rcr", **kwargs):
        super().__init__(alpha, beta_pos, name, **kwargs)

    def ranking_term(self, labels, y_pred, sample_weight):
        return list_cross_entropy(labels, tf.math.log_sigmoid(_flat(y_pred)), self.beta_pos, sample_weight)


@_register
class JRC(_RankLoss):
    """JRC: (1 - w)·L_clf + w·L_rank on two logits [z0, z1] per example, w = `jrc_weight` (Eq. 6-7).

    L_clf = -1/N Σ_i β_i log softmax([z_i0, z_i1])[y_i]   (two-way calibration, β_pos on positives)
    L_rank = -1/N Σ_i log( exp(z_{i,y_i}) / Σ_k exp(z_{k,y_i}) )   (in-batch softmax per column)
    The served click probability is softmax([z0, z1])[1] = σ(z1 - z0).
    """

    INPUT = TWO_LOGITS
    PARAMETERS = ("jrc_weight", "beta_pos")

    def __init__(self, jrc_weight: float = 0.5, beta_pos: float = 1.0, name: str = "jrc", **kwargs):
        super().__init__(name=name, **kwargs)
        self.jrc_weight, self.beta_pos = jrc_weight, beta_pos

    def batch_loss(self, labels, y_pred, sample_weight):
        z = tf.reshape(y_pred, [-1, 2])
        clf = _batch_mean(weighted_bce_terms(labels, z[:, 1] - z[:, 0], self.beta_pos), sample_weight)
        own = tf.where(labels > 0.5, z[:, 1], z[:, 0])
        column_norm = tf.reduce_logsumexp(z, axis=0)                       # [2]: log Σ_k exp(z_k0), exp(z_k1)
        rank_terms = tf.where(labels > 0.5, column_norm[1], column_norm[0]) - own
        return (1.0 - self.jrc_weight) * clf + self.jrc_weight * _batch_mean(rank_terms, sample_weight)


@_register
class Focal(_RankLoss):
    """Focal loss (Eq. 16): -1/N Σ [β y (1-p)^γ log p + (1-y) p^γ log(1-p)], p = σ(z)."""

    PARAMETERS = ("gamma", "beta_pos")

    def __init__(self, gamma: float = 2.0, beta_pos: float = 1.0, name: str = "focal", **kwargs):
        super().__init__(name=name, **kwargs)
        self.gamma, self.beta_pos = gamma, beta_pos

    def negative_weights(self, labels: tf.Tensor, p_gamma: tf.Tensor) -> tf.Tensor:
        return p_gamma

    def batch_loss(self, labels, y_pred, sample_weight):
        z = _flat(y_pred)
        log_p, log_not_p = -tf.nn.softplus(-z), -tf.nn.softplus(z)
        positive = self.beta_pos * tf.exp(self.gamma * log_not_p) * -log_p          # (1-p)^γ·(-log p)
        negative = self.negative_weights(labels, tf.exp(self.gamma * log_p)) * -log_not_p
        return _batch_mean(labels * positive + (1.0 - labels) * negative, sample_weight)


@_register
class NormalizedFocal(Focal):
    """Focal' (Eq. 17): a negative's weight is p_i^γ + (1 - Σ_k∈N p_k^γ / N-), so the
    average negative weight is 1, as in BCE."""

    def __init__(self, gamma: float = 2.0, beta_pos: float = 1.0, name: str = "focal_norm", **kwargs):
        super().__init__(gamma=gamma, beta_pos=beta_pos, name=name, **kwargs)

    def negative_weights(self, labels, p_gamma):
        negatives = 1.0 - labels
        mean_negative = tf.reduce_sum(p_gamma * negatives) / tf.maximum(tf.reduce_sum(negatives), 1.0)
        return p_gamma + (1.0 - mean_negative)


def supervised_contrastive(labels: tf.Tensor, embeddings: tf.Tensor, tau: float) -> tf.Tensor:
    """Eq. 19: 1/N Σ_i -1/|P(i)| Σ_p∈P(i) log( exp(z_i·z_p/τ) / Σ_a∈A(i) exp(z_i·z_a/τ) ).

    Embeddings are L2-normalised first (as in supervised contrastive learning); A(i) is the batch
    without i, P(i) the rest of i's class. An anchor with empty P(i) contributes 0.
    """
    z = tf.math.l2_normalize(embeddings, axis=1)
    n = tf.shape(z)[0]
    similarity = tf.matmul(z, z, transpose_b=True) / tau
    not_self = ~tf.eye(n, dtype=tf.bool)
    log_norm = tf.reduce_logsumexp(tf.where(not_self, similarity, -1e9), axis=1, keepdims=True)
    same_class = tf.equal(labels[:, tf.newaxis], labels[tf.newaxis, :]) & not_self
    same = tf.cast(same_class, tf.float32)
    per_anchor = -tf.reduce_sum(same * (similarity - log_norm), axis=1) / tf.maximum(tf.reduce_sum(same, 1), 1.0)
    return tf.reduce_sum(per_anchor) / tf.maximum(tf.cast(n, tf.float32), 1.0)


@_register
class CombinedContrastive(_Combined):
    """Combined-Contrastive: α·BCE_β + (1 - α)·supervised contrastive loss on the model's
    penultimate representation (Eq. 18-19); the paper's α = 0.9, τ = 0.4."""

    INPUT = LOGIT_AND_REPRESENTATION
    PARAMETERS = ("alpha", "beta_pos", "tau")

    def __init__(self, alpha: float = 0.9, beta_pos: float = 1.0, tau: float = 0.4,
                 name: str = "combined_contrastive", **kwargs):
        super().__init__(alpha, beta_pos, name, **kwargs)
        self.tau = tau

    def ranking_term(self, labels, y_pred, sample_weight):
        return supervised_contrastive(labels, y_pred[:, 1:], self.tau)


LOSSES = {
    "bce": WeightedBinaryCrossentropy,
    "combined_pair": CombinedPair,
    "combined_list": CombinedList,
    "rcr": RCR,
    "jrc": JRC,
    "focal": Focal,
    "focal_norm": NormalizedFocal,
    "combined_contrastive": CombinedContrastive,
}

# Valid ranges: name -> (check, description).
_RANGES = {
    "alpha": (lambda v: 0.0 <= v <= 1.0, "in [0, 1]"),
    "beta_pos": (lambda v: v > 0.0, "> 0"),
    "gamma": (lambda v: v >= 0.0, ">= 0"),
    "tau": (lambda v: v > 0.0, "> 0"),
    "jrc_weight": (lambda v: 0.0 <= v <= 1.0, "in [0, 1]"),
}


def get_loss(name: str, **params: float) -> tf.keras.losses.Loss:
    """The loss `name` with the parameters it takes from `params`; others are ignored.

    Raises ValueError naming the valid choices for an unknown name or an out-of-range parameter.
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid choices: {', '.join(LOSSES)}")
    cls = LOSSES[name]
    kwargs = {}
    for key, value in params.items():
        if key not in _RANGES:
            raise ValueError(f"unknown loss parameter {key!r}; valid: {', '.join(_RANGES)}")
        check, description = _RANGES[key]
        if not check(value):
            raise ValueError(f"loss parameter {key} must be {description}, got {value}")
        if key in cls.PARAMETERS:
            kwargs[key] = value
    return cls(**kwargs)
