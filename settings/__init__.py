"""rankloss-tfx settings: typed configuration, valid choices, one `validate()`, command-line flags.

The bottom layer: it imports only the standard library, and every other package imports it first. That
makes this the one place where a Python process selects Keras 2 (tf-keras, which TensorFlow Recommenders
needs): `TF_USE_LEGACY_KERAS` must be set before TensorFlow is first imported. Shell entry points set it in
`scripts/env.sh`, containers in the Dockerfile.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
