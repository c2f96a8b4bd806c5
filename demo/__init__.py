"""The demo app: `python -m demo` generates the embedded data, ingests it, runs the local pipeline and
prints what it trained and measured."""
import settings  # noqa: F401  (selects Keras 2 before TensorFlow is imported)
