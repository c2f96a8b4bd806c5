"""The curated input schema (ImportSchemaGen) built from the feature spec.

`schema.pbtxt` beside this file is what the pipeline imports; `python -m
transforms.schema` rewrites it, and a test keeps it equal to `build_schema()`.
"""
import os

from tensorflow_metadata.proto.v0 import schema_pb2
from google.protobuf import text_format

from transforms import features

SCHEMA_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schema.pbtxt")
TRAINING, SERVING = "TRAINING", "SERVING"


def build_schema() -> schema_pb2.Schema:
    """Label required and 0/1; every feature optional, one value when present."""
    schema = schema_pb2.Schema()
    schema.default_environment.extend([TRAINING, SERVING])
    label = schema.feature.add(name=features.LABEL_KEY, type=schema_pb2.INT)
    label.int_domain.min, label.int_domain.max, label.int_domain.is_categorical = 0, 1, True
    label.presence.min_fraction, label.presence.min_count = 1.0, 1
    label.value_count.min, label.value_count.max = 1, 1
    label.not_in_environment.append(SERVING)
    for name in features.NUMERIC_FEATURES + features.CATEGORICAL_FEATURES:
        kind = schema_pb2.INT if name in features.NUMERIC_FEATURES else schema_pb2.BYTES
        feature = schema.feature.add(name=name, type=kind)
        feature.presence.min_count = 0
        feature.value_count.min, feature.value_count.max = 1, 1
    return schema


def load_schema(path: str = SCHEMA_PATH) -> schema_pb2.Schema:
    with open(path) as f:
        return text_format.Parse(f.read(), schema_pb2.Schema())


if __name__ == "__main__":
    with open(SCHEMA_PATH, "w") as out:
        out.write(text_format.MessageToString(build_schema()))
    print(f"wrote {SCHEMA_PATH}")
