"""The artifact types our components add to TFX's."""
from tfx import types


class DeadLetters(types.Artifact):
    """The rows an ExampleGen rejected, as JSON lines (file, line number, reason, text).

    Kubeflow V2 finds a custom artifact type by importing its name as `module.Class` (one top-level module),
    so the type is named, and importable, as `components.DeadLetters` (components/__init__.py)."""
    TYPE_NAME = "components.DeadLetters"
