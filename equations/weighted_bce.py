"""The β_pos-weighted binary cross-entropy (Eq. 15), the paper's simulation of sparse positive feedback:

    L = 1/N Σ_i w_i·ℓ_i,   ℓ_i = -[y_i·log p_i + (1 - y_i)·log(1 - p_i)],   w_i = 1 + (β_pos - 1)·y_i,

so a positive weighs β_pos and a negative 1 (Eq. 1 when β_pos = 1). The loss computes ℓ from logits
(`tf.nn.sigmoid_cross_entropy_with_logits`), the studies from probabilities, and the Evaluator from its
sums of ℓ by label: `weighted_terms` is linear in ℓ, so a sum per label weighs as its examples do.
"""


def positive_weights(labels, beta_pos: float):
    """w = 1 + (β_pos - 1)·y: β_pos on a positive, 1 on a negative."""
    return 1.0 + (beta_pos - 1.0) * labels


def weighted_terms(labels, cross_entropy, beta_pos: float):
    """w_i·ℓ_i for each example, from its label and its cross-entropy ℓ_i."""
    return positive_weights(labels, beta_pos) * cross_entropy
