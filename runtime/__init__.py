"""What a process needs around the pipeline's code: object storage set-up (`object_storage`), the end of
an entry point's process (`process`), and the one module that patches library internals (`patches`)."""
import settings  # noqa: F401  (selects Keras 2 before TensorFlow is imported)
