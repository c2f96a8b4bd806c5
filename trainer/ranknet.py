"""RankNet over all in-batch positive × negative pairs (Eq. 9), with a hand-written gradient.

L = 1/(N+ N-) Σ_{i∈P} Σ_{j∈N-} log(1 + e^{-(z_i - z_j)}); its pair gradient is σ(z_j - z_i) (Eq. 12).
One pass over the N+ × N- pairs yields the loss and the per-logit gradients at once. The pass computes
e^{z_j - z_i} as e^{z_j - c}·e^{c - z_i} (two exp per logit, not two per pair) in one XLA-fused kernel,
and falls back to per-pair softplus when the logits span more than `_FACTORISED_SPREAD`.
"""
from typing import Optional, Tuple

import tensorflow as tf

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
    weights = tf.ones_like(logits) if sample_weight is None else tf.reshape(tf.cast(sample_weight, tf.float32), [-1])
    positive = labels > 0.5
    z_pos, z_neg = tf.boolean_mask(logits, positive), tf.boolean_mask(logits, ~positive)
    w_pos, w_neg = tf.boolean_mask(weights, positive), tf.boolean_mask(weights, ~positive)
    pairs = tf.cast(tf.size(z_pos) * tf.size(z_neg), tf.float32)
    return _pairwise_softplus_sum(z_pos, z_neg, w_pos, w_neg) / tf.maximum(pairs, 1.0)
