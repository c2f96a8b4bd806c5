"""Scripts that print speed ratios measured side by side in one run (not tests)."""
import settings  # noqa: F401  pylint: disable=unused-import  (selects Keras 2 before TensorFlow loads)
