"""The Trainer: DCN V2, the loss family, input pipeline, validation schedule and `run_fn`."""
import settings  # noqa: F401  pylint: disable=unused-import  (selects Keras 2 before TensorFlow loads)
