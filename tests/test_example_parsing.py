"""TensorFlow's parse of tf.Example batches: the decoder's record batches, or the decoder where they could differ."""
import re

import pyarrow as pa
import pytest
import tensorflow as tf
from tfx_bsl.coders import example_coder

from components import example_parsing, file_reads
from transforms.schema import load_schema


def _example(**features) -> tf.train.Example:
    """A tf.Example of {name: [ints] | [floats] | [bytes] | None (no list)}."""
    example = tf.train.Example()
    for name, values in features.items():
        feature = example.features.feature[name]
        if values is None:
            continue
        kind = (feature.bytes_list if values and isinstance(values[0], bytes) else
                feature.float_list if values and isinstance(values[0], float) else feature.int64_list)
        kind.SetInParent()
        kind.value.extend(values)
    return example


def _entry(name: str, feature: tf.train.Feature) -> bytes:
    """One `Features` map entry, serialized as a field of `Example.features`' `feature`."""
    return tf.train.Features(feature={name: feature}).SerializeToString()


_ODD_RECORDS = {
    "present but empty list": _example(I1=[], C1=[b"a"]).SerializeToString(),
    "unknown feature with values": _example(I1=[3], X9=[b"x"]).SerializeToString(),
    "unknown feature without a list": _example(I1=[3], X9=None).SerializeToString(),
    "float in an int column": _example(I1=[3.5]).SerializeToString(),
    "repeated name, values last": b"\x0a" + bytes([len(b := _entry("I1", tf.train.Feature()) + _entry(
        "I1", _example(I1=[7]).features.feature["I1"]))]) + b,
    "repeated name, no list last": b"\x0a" + bytes([len(b := _entry("I1", _example(I1=[7]).features.feature["I1"])
                                                          + _entry("I1", tf.train.Feature()))]) + b,
}


@pytest.mark.parametrize("odd", sorted(_ODD_RECORDS))
@pytest.mark.parametrize("schema", [False, True])
def test_a_batch_tensorflow_might_read_otherwise_is_decoded_by_tfx_bsl(tmp_path, odd, schema):
    """Batches of 4 records, the third holding one record the parse and the decoder could read apart: every
    batch equals the decoder's (or the read fails as the decoder does), and the parser refused that batch."""
    normal = [_example(label=[i % 2], I1=[i], C1=[b"t%d" % i]).SerializeToString() for i in range(12)]
    records = normal[:9] + [_ODD_RECORDS[odd]] + normal[9:]
    path = str(tmp_path / "odd.gz")
    with tf.io.TFRecordWriter(path, "GZIP") as writer:
        for record in records:
            writer.write(record)
    serialized_schema = load_schema().SerializeToString() if schema else None
    decoder = example_coder.ExamplesToRecordBatchDecoder(serialized_schema)
    decode = file_reads.DecodeFiles(serialized_schema, None, 4)
    decode.setup()
    ours = []
    try:
        expected = [decoder.DecodeBatch(records[i:i + 4]) for i in range(0, len(records), 4)]
    except RuntimeError as decoder_error:  # the decoder rejects the batch: so does the read, after the others
        with pytest.raises(RuntimeError, match=re.escape(str(decoder_error))):
            ours.extend(decode.process(path))
        assert [batch.num_rows for batch in ours] == [4, 4]
    else:
        ours = list(decode.process(path))
        assert len(ours) == len(expected) == 4
        for i, (batch, want) in enumerate(zip(ours, expected)):
            assert batch.equals(want), (odd, i, batch.schema, want.schema)
    parser = decode._parser  # pylint: disable=protected-access
    decode.teardown()
    read_by_parser = [parser(tf.constant(records[i:i + 4])) is not None for i in range(0, len(records), 4)]
    # A name repeated with no list before its values reads the same both ways (the last entry wins).
    assert read_by_parser == [True, True, odd == "repeated name, values last", True], odd


def test_an_always_missing_column_is_left_to_the_decoder_without_a_schema():
    """Without a schema the decoder types a column with no value null: a batch in which every record lacks C1."""
    records = [_example(I1=[i], C1=[b"t"] if i < 4 else None).SerializeToString() for i in range(8)]
    parser = example_parsing.ExampleParser(
        example_coder.ExamplesToRecordBatchDecoder().DecodeBatch(records[:4]).schema, exact=True,
        decoder_has_schema=False)
    assert parser(tf.constant(records[:4])).equals(example_coder.ExamplesToRecordBatchDecoder().DecodeBatch(records[:4]))
    assert parser(tf.constant(records[4:])) is None
    assert example_coder.ExamplesToRecordBatchDecoder().DecodeBatch(records[4:]).schema.field("C1").type == pa.null()
