"""Output folders that a run replaces whole: it writes beside the folder, and swaps in only a finished output.

Beam's writers replace only the files of the same name: a second run into a folder keeps every file of
the first that it does not overwrite (another shard count, the dead letters of a run that rejected
rows), and readers take them all. Inside `staged(folder)` a run writes into `<folder>.staging-<id>`
beside the folder; when the block ends without an error, the staging folder replaces the folder:
- on a local file system by renames (the old folder aside, the staging folder in, the old one deleted):
  a crash leaves the old output whole or the new one, never a mix (an old output set aside and not yet
  deleted stays as `<folder>.replaced-<id>`);
- on object stores (gs://, s3://), where a rename copies object by object: the old folder's `marker`
  (the file that says an output is whole) is deleted first, then the rest of it, then the new files
  are copied in with `marker` last: a folder with its marker holds exactly one run's output.
A block that raises deletes its staging folder and leaves the old output as it was.
"""
import contextlib
import os
import uuid
from typing import Iterator, List, Optional

from apache_beam.io.filesystems import FileSystems

from runtime import object_storage


def files_under(folder: str) -> List[str]:
    """Every file below `folder`, at any depth (local, gs:// or s3://)."""
    return sorted(m.path for m in FileSystems.match([FileSystems.join(folder.rstrip("/"), "**")])[0].metadata_list)


def _replace_by_rename(staging: str, folder: str) -> None:
    if not FileSystems.exists(folder):
        FileSystems.rename([staging], [folder])
        return
    aside = f"{folder}.replaced-{uuid.uuid4().hex[:12]}"
    FileSystems.rename([folder], [aside])
    FileSystems.rename([staging], [folder])
    FileSystems.delete([aside])


def _replace_by_copy(staging: str, folder: str, marker: Optional[str]) -> None:
    old = files_under(folder)
    last = [] if marker is None else [p for p in old if os.path.basename(p) == marker]
    if old:
        if last:
            FileSystems.delete(last)
        FileSystems.delete([p for p in old if p not in last])
    new = files_under(staging)
    destinations = [folder.rstrip("/") + p[len(staging.rstrip("/")):] for p in new]
    pairs = sorted(zip(new, destinations), key=lambda pair: os.path.basename(pair[0]) == marker)
    for source, destination in pairs:  # one at a time, so that the marker arrives last
        FileSystems.copy([source], [destination])
    FileSystems.delete(new)


@contextlib.contextmanager
def staged(folder: str, marker: Optional[str] = None) -> Iterator[str]:
    """Yields a staging folder to write `folder`'s new output into; swaps it in when the block succeeds."""
    if object_storage.is_object_store(folder):
        folder = folder.rstrip("/")
    else:
        folder = os.path.abspath(folder)
        if os.path.commonpath([folder, os.getcwd()]) == folder:
            raise ValueError(f"{folder} holds the working folder, and a run replaces its output folder whole: "
                             "give a folder beside or below the one you run from")
    staging = f"{folder}.staging-{uuid.uuid4().hex[:12]}"
    try:
        if not object_storage.is_object_store(folder):
            FileSystems.mkdirs(staging)  # a run that writes nothing still replaces the folder
        yield staging
        if object_storage.is_object_store(folder):
            _replace_by_copy(staging, folder, marker)
        else:
            _replace_by_rename(staging, folder)
    finally:
        leftover = files_under(staging) if object_storage.is_object_store(staging) else (
            [staging] if FileSystems.exists(staging) else [])
        if leftover:
            FileSystems.delete(leftover)
