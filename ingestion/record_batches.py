"""`WriteRecordBatches`: Beam's gzipped TFRecord writer, one element per batch of records.

Beam's `WriteToTFRecord` takes one element per record: each pays Beam's per-element cost, two CRCs and a
small write into a level-6 gzip stream, a quarter of the ingestion job when profiled. Here an element is a
list of serialized records (what `ParseBatches` yields): the batch is framed as TFRecords in one buffer
(Beam's own framing, `tfrecordio._TFRecordUtil`) and compressed in one call at gzip level 1. The files are
ordinary gzipped TFRecord files, one gzip member each, with the records in the order they came.
"""
import io
import zlib
from typing import List

import apache_beam as beam
from apache_beam.io import filebasedsink, tfrecordio
from apache_beam.io.filesystem import CompressionTypes

GZIP_LEVEL = 1  # every intermediate gzip file the pipeline writes (Transform's output too)
_GZIP_WBITS = 16 + zlib.MAX_WBITS  # a gzip header and trailer around the deflate stream


class _GzipFile:
    """Write-only gzip stream over a raw Beam file handle."""

    def __init__(self, raw):
        self._raw = raw
        self._compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, _GZIP_WBITS)

    def write(self, data: bytes) -> None:
        self._raw.write(self._compressor.compress(data))

    def close(self) -> None:
        self._raw.write(self._compressor.flush())
        self._raw.close()


def tfrecord_frames(records: List[bytes]) -> bytes:
    """The records framed as in a TFRecord file: length, its masked CRC32C, data, its masked CRC32C."""
    buffer = io.BytesIO()
    for record in records:
        tfrecordio._TFRecordUtil.write_record(buffer, record)  # pylint: disable=protected-access
    return buffer.getvalue()


class _RecordBatchSink(filebasedsink.FileBasedSink):
    def __init__(self, file_path_prefix: str, file_name_suffix: str):
        super().__init__(file_path_prefix, coder=None, file_name_suffix=file_name_suffix,
                         mime_type="application/octet-stream", compression_type=CompressionTypes.UNCOMPRESSED)

    def open(self, temp_path):
        return _GzipFile(super().open(temp_path))

    def write_record(self, file_handle, value: List[bytes]) -> None:
        file_handle.write(tfrecord_frames(value))


class WriteRecordBatches(beam.PTransform):
    """Lists of serialized records -> gzipped TFRecord files `<prefix>-SSSSS-of-NNNNN<suffix>`."""

    def __init__(self, file_path_prefix: str, file_name_suffix: str):
        super().__init__()
        self._sink = _RecordBatchSink(file_path_prefix, file_name_suffix)

    def expand(self, batches):
        return batches | beam.io.Write(self._sink)
