"""Serving: signatures attached at export, the TF Serving REST server and its client."""
import settings  # noqa: F401  pylint: disable=unused-import  (selects Keras 2 before TensorFlow loads)
