"""Raw Criteo logs: the embedded generator and the Beam job that converts logs to split TFRecords."""
import settings  # noqa: F401  pylint: disable=unused-import  (selects Keras 2 before TensorFlow loads)
