"""Helpers that several test modules share."""
import glob
import json
import os

import tensorflow as tf

from ingestion import convert
from transforms import splits


def good_row(label="1", i1="5", c1="68fd1e64", separator="\t"):
    """A valid raw Criteo row (I2 and C26 missing)."""
    return separator.join([label, i1, "", "0"] + ["7"] * 10 + [c1] * 25 + [""])


def split_examples(output_dir, split):
    """The `tf.Example`s an ingestion wrote to one split."""
    files = glob.glob(os.path.join(output_dir, splits.split_dir_name(split), "*.tfrecord.gz"))
    return [tf.train.Example.FromString(r.numpy())
            for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def dead_letters(output_dir):
    """The dead letters an ingestion wrote, as dicts."""
    letters = []
    for path in glob.glob(os.path.join(output_dir, convert.DEAD_LETTER_DIR, "*")):
        with open(path) as f:
            letters += [json.loads(line) for line in f]
    return letters
