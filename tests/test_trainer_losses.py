"""`run_fn` trains with every loss on real Transform output, and the serving graph never changes."""
import numpy as np
import pytest
import tensorflow as tf

from serving import contract
from serving.fingerprint import signature_fingerprint

pytestmark = pytest.mark.e2e  # runs the pipeline, a server or a trainer end to end


@pytest.fixture(scope="module")
def loaded_by_loss(exported_by_loss):
    """Each exported SavedModel, loaded once for the tests below."""
    return {run: tf.saved_model.load(path) for run, path in exported_by_loss.items()}


def test_every_loss_trains_and_exports_a_working_model(loaded_by_loss):
    example = tf.train.Example()
    example.features.feature["I1"].int64_list.value.append(3)
    example.features.feature["C1"].bytes_list.value.append(b"68fd1e64")
    for run, model in loaded_by_loss.items():
        probability = model.signatures["serving_default"](
            examples=tf.constant([example.SerializeToString()]))["probabilities"].numpy()
        assert probability.shape == (1,) and 0.0 < probability[0] < 1.0, run


@pytest.mark.parametrize("signature", [contract.DEFAULT_SIGNATURE, contract.RAW_SIGNATURE])
def test_serving_signature_is_identical_whatever_the_loss(exported_by_loss, loaded_by_loss, signature):
    reference = signature_fingerprint(exported_by_loss["bce"], signature, loaded_by_loss["bce"])
    if signature == contract.DEFAULT_SIGNATURE:
        assert reference["inputs"] == {"examples": (tf.string.as_datatype_enum, (-1,))}
    else:
        assert len(reference["inputs"]) == 39
    assert list(reference["outputs"]) == ["probabilities"]
    assert sum(reference["ops"].values()) > 50  # the whole Transform + DCN V2 graph was walked
    for run, path in exported_by_loss.items():
        assert signature_fingerprint(path, signature, loaded_by_loss[run]) == reference, run


def test_only_variable_values_differ(loaded_by_loss):
    # Layer names get per-process suffixes (dcnv2_1, dcnv2_2): compare variables in object-graph order.
    bce, pair = ([v.numpy() for v in loaded_by_loss[r].variables] for r in ("bce", "combined_pair"))
    assert [(v.dtype, v.shape) for v in bce] == [(v.dtype, v.shape) for v in pair]
    assert any(not np.array_equal(a, b) for a, b in zip(bce, pair))


def test_negative_sampling_exports_a_fitted_isotonic_calibration(loaded_by_loss):
    calibrated, plain = loaded_by_loss["negative_sampling"], loaded_by_loss["bce"]
    knots = {v.name: v.numpy() for v in calibrated.variables if "_knots" in v.name}    # x_knots, y_knots
    identity = {v.name: v.numpy() for v in plain.variables if "_knots" in v.name}
    assert len(knots) == 2 and not all(np.array_equal(knots[k], identity[k]) for k in knots)
    y_knots = next(v for k, v in knots.items() if "y_knots" in k)
    assert np.all(np.diff(y_knots) >= 0)  # isotonic
