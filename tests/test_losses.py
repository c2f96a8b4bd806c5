"""Loss values against closed forms, gradients against the paper's derivations, edge cases."""
import itertools

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings, strategies as st

from trainer import losses
from tests.helpers import ALL_LOSSES, Y, Z, bce, sigmoid, value, y_pred_for

POS, NEG = Y == 1, Y == 0


def ranknet(y, z):
    pairs = [np.log1p(np.exp(-(zi - zj))) for zi, zj in itertools.product(z[y == 1], z[y == 0])]
    return np.mean(pairs) if pairs else 0.0


def list_ce(y, scores, beta_pos=1.0):
    """Eq. 3 / 5; no positives: the sum over P is empty, 0."""
    denominator = np.sum(np.where(y == 1, beta_pos, 1.0) * scores)
    return -np.mean(np.log(scores[y == 1] / denominator)) if (y == 1).any() else 0.0


def jrc(y, two, w, beta_pos=1.0):
    softmax = np.exp(two) / np.exp(two).sum(1, keepdims=True)
    clf = -np.mean(np.where(y == 1, beta_pos, 1.0) * np.log(softmax[np.arange(len(y)), y.astype(int)]))
    column = np.exp(two) / np.exp(two).sum(0, keepdims=True)  # in-batch softmax per column
    return (1 - w) * clf + w * -np.mean(np.log(column[np.arange(len(y)), y.astype(int)]))


def focal(y, z, gamma, beta_pos=1.0, normalized=False):
    p = sigmoid(z)
    weights = p ** gamma + (1 - np.mean(p[y == 0] ** gamma)) if normalized and (y == 0).any() else p ** gamma
    return -np.mean(beta_pos * y * (1 - p) ** gamma * np.log(p) + (1 - y) * weights * np.log(1 - p))


def contrastive(y, rep, tau):
    unit = rep / np.linalg.norm(rep, axis=1, keepdims=True)
    sim = unit @ unit.T / tau
    terms = []
    for i in range(len(y)):
        others = [a for a in range(len(y)) if a != i]
        positives = [p for p in others if y[p] == y[i]]
        norm = np.log(np.sum(np.exp(sim[i, others])))
        terms.append(-np.mean([sim[i, p] - norm for p in positives]) if positives else 0.0)
    return np.mean(terms)


def reference(name, y, z, two=None, rep=None, alpha=0.4, beta_pos=0.5, gamma=2.0, tau=0.4, w=0.3):
    """The paper's equations in NumPy, for every loss."""
    return {
        "bce": lambda: bce(y, z, beta_pos),
        "combined_pair": lambda: alpha * bce(y, z, beta_pos) + (1 - alpha) * ranknet(y, z),
        "combined_list": lambda: alpha * bce(y, z, beta_pos) + (1 - alpha) * list_ce(y, np.exp(z), beta_pos),
        "rcr": lambda: alpha * bce(y, z, beta_pos) + (1 - alpha) * list_ce(y, sigmoid(z), beta_pos),
        "jrc": lambda: jrc(y, two, w, beta_pos),
        "focal": lambda: focal(y, z, gamma, beta_pos),
        "focal_norm": lambda: focal(y, z, gamma, beta_pos, normalized=True),
        "combined_contrastive": lambda: alpha * bce(y, z, beta_pos) + (1 - alpha) * contrastive(y, rep, tau),
    }[name]()


def gradient(name, y, y_pred, sample_weight=None, **params):
    var = tf.Variable(y_pred, dtype=tf.float32)
    with tf.GradientTape() as tape:
        loss = losses.get_loss(name, **params)(tf.constant(y, tf.float32), var, sample_weight=sample_weight)
    return loss.numpy(), tape.gradient(loss, var).numpy()


# ---- closed forms -------------------------------------------------------------------------

@pytest.mark.parametrize("beta_pos", [1.0, 0.1])
def test_bce_matches_eq_15_for_both_shapes(beta_pos):
    assert value("bce", Y, Z, beta_pos=beta_pos) == pytest.approx(bce(Y, Z, beta_pos), rel=1e-6)
    assert value("bce", Y[:, None], Z[:, None], beta_pos=beta_pos) == pytest.approx(bce(Y, Z, beta_pos), rel=1e-6)


@pytest.mark.parametrize("alpha,beta_pos", [(0.7, 0.1), (0.5, 1.0), (0.0, 1.0)])
def test_combined_pair_is_alpha_bce_plus_ranknet_eq_8_9(alpha, beta_pos):
    expected = alpha * bce(Y, Z, beta_pos) + (1 - alpha) * ranknet(Y, Z)
    assert value("combined_pair", Y, Z, alpha=alpha, beta_pos=beta_pos) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("beta_pos", [1.0, 0.2])
def test_combined_list_and_rcr_eq_3_and_5(beta_pos):
    alpha = 0.4
    listnet = list_ce(Y, np.exp(Z), beta_pos)
    listce = list_ce(Y, sigmoid(Z), beta_pos)
    assert value("combined_list", Y, Z, alpha=alpha, beta_pos=beta_pos) == pytest.approx(
        alpha * bce(Y, Z, beta_pos) + (1 - alpha) * listnet, rel=1e-6)
    assert value("rcr", Y, Z, alpha=alpha, beta_pos=beta_pos) == pytest.approx(
        alpha * bce(Y, Z, beta_pos) + (1 - alpha) * listce, rel=1e-6)


def test_jrc_eq_6_7():
    two = np.random.default_rng(1).normal(size=(len(Y), 2))
    assert value("jrc", Y, two, jrc_weight=0.3) == pytest.approx(jrc(Y, two, 0.3), rel=1e-6)


@pytest.mark.parametrize("gamma", [0.0, 1.0, 2.5])
def test_focal_eq_16(gamma):
    assert value("focal", Y, Z, gamma=gamma) == pytest.approx(focal(Y, Z, gamma), rel=1e-5)


def test_focal_norm_eq_17_and_average_negative_weight_is_one():
    gamma = 2.0
    p = sigmoid(Z)
    weights = p ** gamma + (1 - np.mean(p[NEG] ** gamma))
    assert np.mean(weights[NEG]) == pytest.approx(1.0)
    assert value("focal_norm", Y, Z, gamma=gamma) == pytest.approx(focal(Y, Z, gamma, normalized=True), rel=1e-5)
    loss = losses.get_loss("focal_norm", gamma=gamma)
    p_gamma = tf.constant(p ** gamma, tf.float32)
    got = loss.negative_weights(tf.constant(Y, tf.float32), p_gamma).numpy()
    assert got[NEG].mean() == pytest.approx(1.0, rel=1e-6)


def test_combined_contrastive_eq_18_19():
    rep = np.random.default_rng(2).normal(size=(len(Y), 3))
    expected = 0.9 * bce(Y, Z) + 0.1 * contrastive(Y, rep, 0.4)
    got = value("combined_contrastive", Y, y_pred_for("combined_contrastive", representation=rep), alpha=0.9, tau=0.4)
    assert got == pytest.approx(expected, rel=1e-5)


# ---- gradients ----------------------------------------------------------------------------

def test_bce_gradients_eq_10_and_11():
    _, grad = gradient("bce", Y, Z)
    n = len(Y)
    np.testing.assert_allclose(grad[NEG], sigmoid(Z[NEG]) / n, rtol=1e-5)            # Eq. 10: p̂_j / N
    np.testing.assert_allclose(grad[POS], -(1 - sigmoid(Z[POS])) / n, rtol=1e-5)     # Eq. 11


def test_combined_pair_gradients_eq_12_and_table_3():
    alpha = 0.6
    _, grad = gradient("combined_pair", Y, Z, alpha=alpha)
    n, n_pos, n_neg = len(Y), POS.sum(), NEG.sum()
    for j in np.flatnonzero(NEG):
        rank = np.sum(sigmoid(Z[j] - Z[POS])) / (n_pos * n_neg)                      # Eq. 12 / Tab. 3
        assert grad[j] == pytest.approx(alpha * sigmoid(Z[j]) / n + (1 - alpha) * rank, rel=1e-5)
    for i in np.flatnonzero(POS):
        rank = -np.sum(1 - sigmoid(Z[i] - Z[NEG])) / (n_pos * n_neg)                 # Tab. 3
        assert grad[i] == pytest.approx(-alpha * (1 - sigmoid(Z[i])) / n + (1 - alpha) * rank, rel=1e-5)


def test_ranknet_negative_gradient_exceeds_bce_when_positives_score_low_eq_13():
    y = np.array([1.0, 1.0, 0.0, 0.0, 0.0])
    z = np.array([-2.0, -1.5, -3.0, -2.5, -4.0])    # sparse regime: every logit < 0
    _, pair_grad = gradient("combined_pair", y, z, alpha=0.0)
    n_pos, n_neg = 2, 3
    bce_per_negative = sigmoid(z[y == 0])            # ∇_z BCE per example (before 1/N)
    assert np.all(pair_grad[y == 0] * n_neg > bce_per_negative)


@pytest.mark.parametrize("scale", [3.0, 12.0, 40.0, 500.0])  # spreads below and above the factorised limit
def test_hand_written_ranknet_gradient_matches_autodiff(scale):
    rng = np.random.default_rng(3)
    y = (rng.random(300) < 0.25).astype(np.float32)
    z = rng.normal(scale=scale, size=300).astype(np.float32)
    w = rng.random(300).astype(np.float32)
    var = tf.Variable(z)
    with tf.GradientTape(persistent=True) as tape:
        fast = losses.ranknet(tf.constant(y), var, tf.constant(w))
        d = tf.boolean_mask(var, y == 0)[None, :] - tf.boolean_mask(var, y == 1)[:, None]
        pair_w = tf.boolean_mask(w, y == 1)[:, None] * tf.boolean_mask(w, y == 0)[None, :]
        naive = tf.reduce_sum(pair_w * tf.nn.softplus(d)) / tf.cast(tf.size(d), tf.float32)
    assert float(fast) == pytest.approx(float(naive), rel=1e-5)
    np.testing.assert_allclose(tape.gradient(fast, var), tape.gradient(naive, var), rtol=1e-4, atol=1e-9)
    closed_form = np.sum(pair_w.numpy() * np.logaddexp(0.0, d.numpy().astype(np.float64))) / d.numpy().size
    assert float(fast) == pytest.approx(closed_form, rel=1e-5)


# ---- properties ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["combined_pair", "combined_list", "rcr", "combined_contrastive"])
def test_alpha_one_reproduces_bce_exactly(name):
    got = value(name, Y, y_pred_for(name), alpha=1.0, beta_pos=0.3)
    assert got == pytest.approx(value("bce", Y, Z, beta_pos=0.3), rel=1e-7)


def test_ranknet_and_listnet_unchanged_by_a_constant_shift():
    for name in ("combined_pair", "combined_list"):
        assert value(name, Y, Z + 5.0, alpha=0.0) == pytest.approx(value(name, Y, Z, alpha=0.0), rel=1e-5)


def test_gamma_zero_focal_is_bce():
    assert value("focal", Y, Z, gamma=0.0) == pytest.approx(bce(Y, Z), rel=1e-6)
    assert value("focal_norm", Y, Z, gamma=0.0) == pytest.approx(bce(Y, Z), rel=1e-6)


DEGENERATE = {
    "no positives": (np.zeros(5), np.linspace(-2, 2, 5)),
    "no negatives": (np.ones(5), np.linspace(-2, 2, 5)),
    "huge logits": (np.array([1.0, 0.0, 1.0, 0.0]), np.array([1e3, -1e3, -1e3, 1e3])),
    "batch of one": (np.array([1.0]), np.array([0.2])),
}


@pytest.mark.parametrize("name", ALL_LOSSES)
@pytest.mark.parametrize("case", list(DEGENERATE))
def test_degenerate_batches_stay_finite(name, case):
    y, z = DEGENERATE[case]
    loss, grad = gradient(name, y, y_pred_for(name, z))
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    loss, grad = gradient(name, y, y_pred_for(name, z), sample_weight=tf.zeros(len(y)))
    assert np.isfinite(loss) and np.all(np.isfinite(grad))


@pytest.mark.parametrize("name", ALL_LOSSES)
@pytest.mark.parametrize("labels", [np.zeros(5), np.ones(5)], ids=["no positives", "no negatives"])
def test_one_class_batches_give_what_the_equations_give(name, labels):
    """No positives: pair and list terms sum over an empty P (0). No negatives: RankNet has no pair (0),
    ListNet / ListCE are the list cross-entropy among the positives (Eq. 3, 5: non-zero for N+ > 1),
    JRC and the contrastive term are defined as usual, Focal' has no negative to reweight."""
    z = np.linspace(-2, 2, 5)
    rng = np.random.default_rng(4)
    two, rep = np.stack([-z / 2, z / 2], axis=1), rng.normal(size=(5, 4))
    y_pred = {losses.TWO_LOGITS: two, losses.LOGIT_AND_REPRESENTATION: np.concatenate([z[:, None], rep], 1)}.get(
        losses.LOSSES[name].INPUT, z)
    params = dict(alpha=0.4, beta_pos=0.5, gamma=2.0, tau=0.4, jrc_weight=0.3)
    expected = reference(name, labels, z, two, rep, alpha=0.4, beta_pos=0.5, gamma=2.0, tau=0.4, w=0.3)
    assert value(name, labels, y_pred, **params) == pytest.approx(expected, rel=1e-5, abs=1e-7)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), name=st.sampled_from(ALL_LOSSES))
def test_finite_for_random_logits_and_labels(data, name):
    n = data.draw(st.integers(1, 40))
    labels = np.array(data.draw(st.lists(st.sampled_from([0.0, 1.0]), min_size=n, max_size=n)))
    logits = np.array(data.draw(st.lists(st.floats(-1e3, 1e3), min_size=n, max_size=n)))
    beta_pos = data.draw(st.floats(0.01, 1.0))
    loss, grad = gradient(name, labels, y_pred_for(name, logits), beta_pos=beta_pos)
    # A list cross-entropy term is log(Σ_k w_k s_k / s_i) ≥ log(β_pos s_i / s_i) = log β_pos, below 0 for
    # β_pos < 1 (positives carry β_pos in the denominator): Combined-List and RCR may go that far below 0.
    floor = (1 - losses.get_loss(name).alpha) * np.log(beta_pos) if name in ("combined_list", "rcr") else 0.0
    assert np.isfinite(loss) and loss >= floor - 1e-6 and np.all(np.isfinite(grad))
