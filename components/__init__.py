"""TFX components we customise, one module each (ExampleGen, StatisticsGen, Transform, Evaluator, Pusher),
and the readers and writers their executors call. Each keeps TFX's component name, outputs and ML Metadata."""
import settings  # noqa: F401  (selects Keras 2 before TensorFlow is imported)
from components.artifacts import DeadLetters  # noqa: E402,F401  (Kubeflow V2 imports it by its type name)
