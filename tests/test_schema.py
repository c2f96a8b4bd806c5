"""The curated schema file stays what features.py says."""
from transforms import features, schema


def test_schema_file_matches_feature_spec():
    assert schema.load_schema() == schema.build_schema()


def test_label_required_features_optional():
    by_name = {f.name: f for f in schema.build_schema().feature}
    assert list(by_name) == features.RAW_COLUMNS
    assert by_name["label"].presence.min_fraction == 1.0
    assert by_name["label"].int_domain.max == 1
    assert all(by_name[n].presence.min_count == 0 for n in features.NUMERIC_FEATURES + features.CATEGORICAL_FEATURES)
