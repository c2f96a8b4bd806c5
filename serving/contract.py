"""The serving contract: signature names, their inputs and outputs, and the missing-value markers.

Shared by the export (serving/signatures.py), the server and the clients; imports no TensorFlow, so
a client that only sends requests stays light.
"""
PROBABILITY_KEY = "probabilities"
EXAMPLES_INPUT = "examples"
DEFAULT_SIGNATURE, RAW_SIGNATURE = "serving_default", "serving_raw"
NUMERIC_MISSING, CATEGORICAL_MISSING = float("nan"), b""
