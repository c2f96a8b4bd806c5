"""The input files of an ingestion: what its `--input` patterns match (local, gs://, s3://), each file once."""
import logging
from typing import Dict, List, Sequence

from apache_beam.io.filesystems import FileSystems


def expand(patterns: Sequence[str]) -> List[str]:
    """The files the patterns match, each once, in the patterns' order; an unmatched pattern is an error,
    and a file that more than one pattern matches is logged."""
    paths: Dict[str, None] = {}  # in first-matched order
    for pattern in patterns:
        matched = sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)
        if not matched:
            raise FileNotFoundError(f"no input file matches {pattern!r}")
        again = [path for path in matched if path in paths]
        if again:
            logging.warning("[ingest] input pattern %r matches %d file(s) an earlier pattern already matched (%s); "
                            "each file is read once", pattern, len(again), ", ".join(again))
        paths.update(dict.fromkeys(matched))
    return list(paths)
