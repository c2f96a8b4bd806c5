"""The TFX pipeline: `create_pipeline`, its local and Kubeflow V2 runners, and the main command."""
import settings  # noqa: F401  pylint: disable=unused-import  (selects Keras 2 before TensorFlow loads)
