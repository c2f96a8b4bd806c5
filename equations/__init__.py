"""The paper's formulas that several layers compute (the loss, the Evaluator's metrics, the studies), each
written once with arithmetic operators alone, so NumPy arrays and TensorFlow tensors take it alike."""
import settings  # noqa: F401  (selects Keras 2 before TensorFlow is imported)
