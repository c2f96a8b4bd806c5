"""The paper's training objectives as serializable `tf.keras.losses.Loss` classes.

Equation numbers refer to Lin et al., "Understanding the Ranking Loss for Recommendation
with Sparse User Feedback", KDD'24. Every loss takes logits, never probabilities, labels
y ∈ {0, 1} of shape [B] or [B, 1], and optional sample weights. β_pos (`beta_pos`) weights the
positives' pointwise terms to simulate sparse feedback (Eq. 15); sums are divided by the batch
size N, not by the sum of weights (as the authors' code does).

What a loss reads from the model is its `INPUT` (see trainer/training_model.py):
- `logit`: one click logit z per example, [B] or [B, 1];
- `two_logits`: JRC's non-click / click logits [B, 2]; the served probability is
  softmax([z0, z1])[1] = σ(z1 - z0);
- `logit_and_representation`: [B, 1 + R], the logit then the penultimate representation.

One-class batches give what the equations give: with no positives, RankNet, ListNet and ListCE
sum over an empty P (0); with no negatives, RankNet has no pair (0), while ListNet and ListCE are
the list cross-entropy among the positives (Eq. 3, 5: non-zero for N+ > 1); JRC, Focal and the
contrastive term are defined as usual, and Focal' has no negative to reweight. Every loss stays
finite for logits of ±1e3, batch size 1 and zero sample weights.
"""
from typing import Dict, Optional, Tuple

import tensorflow as tf

from equations import weighted_bce
from settings import configs
from trainer.ranknet import ranknet

REGISTER_PACKAGE = "rankloss"
LOGIT, TWO_LOGITS, LOGIT_AND_REPRESENTATION = "logit", "two_logits", "logit_and_representation"


def _flat(x: tf.Tensor) -> tf.Tensor:
    """[B] or [B, 1] -> [B] float32."""
    return tf.reshape(tf.cast(x, tf.float32), [-1])


def weighted_bce_terms(labels: tf.Tensor, logits: tf.Tensor, beta_pos: float) -> tf.Tensor:
    """Per-example β_pos-weighted binary cross-entropy from logits (Eq. 15), stable for any logit."""
    return weighted_bce.weighted_terms(labels, tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits),
                                       beta_pos)


def _batch_mean(terms: tf.Tensor, sample_weight: Optional[tf.Tensor]) -> tf.Tensor:
    """Σ (weighted) terms / N."""
    if sample_weight is not None:
        terms = terms * _flat(sample_weight)
    return tf.reduce_sum(terms) / tf.maximum(tf.cast(tf.size(terms), tf.float32), 1.0)


def list_cross_entropy(labels: tf.Tensor, log_scores: tf.Tensor, beta_pos: float,
                       sample_weight: Optional[tf.Tensor] = None) -> tf.Tensor:
    """-1/N+ Σ_i∈P log(s_i / Σ_k w_k s_k) with log s given, w_k = β_pos for positives (Eq. 3, 5).

    s = exp(z) is ListNet (Combined-List), s = σ(z) is RCR's ListCE. As in the authors' code,
    positives' terms in the denominator carry β_pos, so for β_pos < 1 a term can be as low as
    log β_pos < 0 (one positive that outscores every negative). 0 when the batch has no positive.
    """
    positive = labels > 0.5
    log_denominator = tf.reduce_logsumexp(log_scores + tf.math.log(weighted_bce.positive_weights(labels, beta_pos)))
    terms = log_denominator - log_scores
    if sample_weight is not None:
        terms = terms * _flat(sample_weight)
    num_positive = tf.reduce_sum(tf.cast(positive, tf.float32))
    return tf.reduce_sum(tf.where(positive, terms, 0.0)) / tf.maximum(num_positive, 1.0)


class _BatchLoss(tf.keras.losses.Loss):
    """Base of every loss here: one value per batch (a mean over the batch's examples or pairs), serializable
    parameters. Keras reads that value as `SUM_OVER_BATCH_SIZE`-reduced: under a strategy with several
    replicas it divides the value by the replica count before the replicas' gradients are summed, so the
    step follows the mean of the replicas' losses (see `trainer.distribution`).

    Each subclass is named by an entry of `settings.configs.LOSS_CHOICES`, which lists its parameters;
    their defaults are the subclass's `__init__` defaults. Arguments are checked when the loss is built.
    """

    INPUT = LOGIT

    def __init__(self, name: str, parameters: Dict[str, float], **kwargs):
        kwargs.pop("reduction", None)  # always per batch; present in configs from get_config
        super().__init__(name=name, reduction=tf.keras.losses.Reduction.SUM_OVER_BATCH_SIZE, **kwargs)
        for key, value in parameters.items():
            configs.check_loss_parameter(key, value)
            setattr(self, key, value)

    def __call__(self, y_true, y_pred, sample_weight=None):
        with tf.name_scope(self.name):
            return self.batch_loss(_flat(y_true), tf.cast(y_pred, tf.float32), sample_weight)

    def call(self, y_true, y_pred):
        return self.batch_loss(_flat(y_true), tf.cast(y_pred, tf.float32), None)

    def batch_loss(self, labels: tf.Tensor, y_pred: tf.Tensor, sample_weight: Optional[tf.Tensor]) -> tf.Tensor:
        raise NotImplementedError

    def get_config(self) -> Dict:
        return {**super().get_config(), **{p: getattr(self, p) for p in self.parameter_names()}}

    @classmethod
    def parameter_names(cls) -> Tuple[str, ...]:
        """The parameters `settings.configs.LOSS_CHOICES` lists for this class."""
        return next(c.parameters for c in configs.LOSS_CHOICES.values() if c.keras_class == cls.__name__)


def _register(cls):
    return tf.keras.utils.register_keras_serializable(package=REGISTER_PACKAGE)(cls)


@_register
class WeightedBinaryCrossentropy(_BatchLoss):
    """BCE with weight β_pos on positives (Eq. 15; Eq. 1 when β_pos = 1):
    L = -1/N Σ_i [β_pos·y_i·log σ(z_i) + (1 - y_i)·log(1 - σ(z_i))]."""


    def __init__(self, beta_pos: float = 1.0, name: str = "bce", **kwargs):
        super().__init__(name, {"beta_pos": beta_pos}, **kwargs)

    def batch_loss(self, labels, y_pred, sample_weight):
        return _batch_mean(weighted_bce_terms(labels, _flat(y_pred), self.beta_pos), sample_weight)


class _Combined(_BatchLoss):
    """α·BCE_β + (1 - α)·ranking term (Eq. 4)."""

    alpha: float
    beta_pos: float

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
        super().__init__(name, {"alpha": alpha, "beta_pos": beta_pos}, **kwargs)

    def ranking_term(self, labels, y_pred, sample_weight):
        return ranknet(labels, _flat(y_pred), sample_weight)


@_register
class CombinedList(_Combined):
    """Combined-List: α·BCE_β + (1 - α)·ListNet (Eq. 3), softmax denominator with β_pos on positives."""


    def __init__(self, alpha: float = 0.5, beta_pos: float = 1.0, name: str = "combined_list", **kwargs):
        super().__init__(name, {"alpha": alpha, "beta_pos": beta_pos}, **kwargs)

    def ranking_term(self, labels, y_pred, sample_weight):
        return list_cross_entropy(labels, _flat(y_pred), self.beta_pos, sample_weight)


@_register
class RCR(_Combined):
    """RCR: α·BCE_β + (1 - α)·ListCE (Eq. 5), the list cross-entropy with σ(z) in place of exp(z)."""


    def __init__(self, alpha: float = 0.5, beta_pos: float = 1.0, name: str = "rcr", **kwargs):
        super().__init__(name, {"alpha": alpha, "beta_pos": beta_pos}, **kwargs)

    def ranking_term(self, labels, y_pred, sample_weight):
        return list_cross_entropy(labels, tf.math.log_sigmoid(_flat(y_pred)), self.beta_pos, sample_weight)


@_register
class JRC(_BatchLoss):
    """JRC: (1 - w)·L_clf + w·L_rank on two logits [z0, z1] per example, w = `jrc_weight` (Eq. 6-7).

    L_clf = -1/N Σ_i β_i log softmax([z_i0, z_i1])[y_i]   (two-way calibration, β_pos on positives)
    L_rank = -1/N Σ_i log( exp(z_{i,y_i}) / Σ_k exp(z_{k,y_i}) )   (in-batch softmax per column)
    The served click probability is softmax([z0, z1])[1] = σ(z1 - z0).
    """

    INPUT = TWO_LOGITS

    def __init__(self, jrc_weight: float = 0.5, beta_pos: float = 1.0, name: str = "jrc", **kwargs):
        super().__init__(name, {"jrc_weight": jrc_weight, "beta_pos": beta_pos}, **kwargs)

    def batch_loss(self, labels, y_pred, sample_weight):
        z = tf.reshape(y_pred, [-1, 2])
        clf = _batch_mean(weighted_bce_terms(labels, z[:, 1] - z[:, 0], self.beta_pos), sample_weight)
        own = tf.where(labels > 0.5, z[:, 1], z[:, 0])
        column_norm = tf.reduce_logsumexp(z, axis=0)                       # [2]: log Σ_k exp(z_k0), exp(z_k1)
        rank_terms = tf.where(labels > 0.5, column_norm[1], column_norm[0]) - own
        return (1.0 - self.jrc_weight) * clf + self.jrc_weight * _batch_mean(rank_terms, sample_weight)


@_register
class Focal(_BatchLoss):
    """Focal loss (Eq. 16): -1/N Σ [β y (1-p)^γ log p + (1-y) p^γ log(1-p)], p = σ(z)."""


    def __init__(self, gamma: float = 2.0, beta_pos: float = 1.0, name: str = "focal", **kwargs):
        super().__init__(name, {"gamma": gamma, "beta_pos": beta_pos}, **kwargs)

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

    def __init__(self, alpha: float = 0.9, beta_pos: float = 1.0, tau: float = 0.4,
                 name: str = "combined_contrastive", **kwargs):
        super().__init__(name, {"alpha": alpha, "beta_pos": beta_pos, "tau": tau}, **kwargs)

    def ranking_term(self, labels, y_pred, sample_weight):
        return supervised_contrastive(labels, y_pred[:, 1:], self.tau)


LOSSES = {name: globals()[choice.keras_class] for name, choice in configs.LOSS_CHOICES.items()}


def get_loss(name: str, **params: float) -> tf.keras.losses.Loss:
    """The loss `name` with the parameters it takes from `params`; other known parameters are ignored.

    Raises ValueError naming the valid choices for an unknown loss or parameter name, or naming the
    parameter when one of the loss's own is out of range (the loss checks only its own).
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid choices: {', '.join(LOSSES)}")
    unknown = set(params) - set(configs.LOSS_PARAMETER_CHECKS)
    if unknown:
        raise ValueError(f"unknown loss parameter(s) {sorted(unknown)}; "
                         f"valid: {', '.join(configs.LOSS_PARAMETER_CHECKS)}")
    return LOSSES[name](**{k: v for k, v in params.items() if k in configs.LOSS_CHOICES[name].parameters})


def build_loss(loss: configs.LossConfig) -> tf.keras.losses.Loss:
    """The configured loss: the parameters set in `loss`, the loss's defaults for the rest."""
    return get_loss(loss.name, **loss.parameters())
