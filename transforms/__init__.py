"""Criteo feature spec and the Transform `preprocessing_fn`."""
import os

# TFRS needs Keras 2: select tf-keras before TensorFlow is first imported.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
