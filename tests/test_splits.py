"""The deterministic 7:2:1 split."""
import numpy as np

from transforms import splits


def test_split_is_deterministic_and_7_2_1():
    lines = np.arange(1, 100_001)
    first, second = splits.split_index(lines), splits.split_index(lines)
    assert np.array_equal(first, second)
    fractions = np.bincount(first, minlength=3) / len(lines)
    np.testing.assert_allclose(fractions, [0.7, 0.2, 0.1], atol=0.005)


def test_scalar_and_vector_agree_up_to_the_largest_line_numbers():
    lines = np.concatenate([np.arange(1, 5000), [45_840_617, 2 ** 40 + 7, 2 ** 63 - 1]])
    vector = splits.split_index(lines)
    assert [splits.split_of(int(n)) for n in lines] == [splits.SPLITS[i] for i in vector]
