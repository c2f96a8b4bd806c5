"""Studies that reproduce the paper with the Trainer's own model: configs, runner, statistics, reports."""
import settings  # noqa: F401  pylint: disable=unused-import  (selects Keras 2 before TensorFlow loads)
