"""Export signatures and serving tools."""
import os

# TFRS needs Keras 2: select tf-keras before TensorFlow is first imported.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
