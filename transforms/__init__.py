"""The Criteo data contract (feature spec, row format, splits, schema) and the Transform `preprocessing_fn`."""
import settings  # noqa: F401  pylint: disable=unused-import  (selects Keras 2 before TensorFlow loads)
