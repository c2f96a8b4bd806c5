"""Every replacement of a library symbol is guarded (runtime/patches.py), still reaches the code that calls it,
and has its effect; nothing else in the project assigns to a library's attributes."""
import ast
import inspect
import logging
import os
import re
import tempfile

import pytest
from tfx.components.statistics_gen import executor as tfx_statistics_gen
from tfx.components.transform import executor as tfx_transform
from tfx.components.util import tfxio_utils
from tfx.dsl.components.base.base_beam_executor import BaseBeamExecutor
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts
from tfx.utils import dependency_utils
from tfx_bsl.tfxio import tf_example_record

from components import file_reads, local_beam, statistics_gen, transform
from runtime import patches
from transforms.schema import load_schema
from transforms.splits import SPLITS
from tests.helpers import ALLOWED, ROOT, examples_artifact

PATCHED_SYMBOLS = [  # every library symbol the project replaces; a new one is added here and in runtime/patches.py
    "apache_beam.io.aws.clients.s3.boto3_client.boto3",
    "tfx.components.transform.executor._TEMP_DIR_IN_TRANSFORM_OUTPUT",
    "tfx.components.util.tfxio_utils.make_tfxio",
    "tfx.utils.dependency_utils.make_beam_dependency_flags",
]


def test_the_patched_symbols_are_these_and_each_names_the_versions_it_was_written_for():
    assert sorted(p.symbol for p in patches.PATCHES) == PATCHED_SYMBOLS
    pins = dict(re.sub(r"\[.*\]", "", line.split("#")[0].strip()).split("==")
                for line in open(os.path.join(ROOT, "requirements.txt")) if "==" in line.split("#")[0])
    for patch in patches.PATCHES:
        assert pins[patch.distribution] in patch.versions, patch.symbol
        assert patches.applies(patch), patch.symbol


def _library_names(tree):
    """Names a module binds by importing something outside the project."""
    project = set(ALLOWED) | {"tests"}
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            module = node.module if isinstance(node, ast.ImportFrom) else None
            for alias in node.names:
                root = (module or alias.name).split(".")[0]
                if getattr(node, "level", 0) == 0 and root not in project:
                    names.add((alias.asname or alias.name).split(".")[0])
    return names


def _base_name(node):
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def test_no_module_but_runtime_patches_assigns_to_a_library_attribute():
    found = []
    for package in ALLOWED:
        folder = os.path.join(ROOT, package)
        for name in sorted(f for f in os.listdir(folder) if f.endswith(".py")):
            path = os.path.join(folder, name)
            if os.path.relpath(path, ROOT) == os.path.join("runtime", "patches.py"):
                continue
            tree = ast.parse(open(path, encoding="utf-8").read())
            libraries = _library_names(tree)
            for node in ast.walk(tree):
                targets = node.targets if isinstance(node, ast.Assign) else (
                    [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else [])
                for target in targets:
                    if isinstance(target, ast.Attribute) and _base_name(target) in libraries:
                        found.append(f"{os.path.relpath(path, ROOT)}:{node.lineno}")
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                        and node.func.id in ("setattr", "delattr") and _base_name(node.args[0]) in libraries):
                    found.append(f"{os.path.relpath(path, ROOT)}:{node.lineno}")
    assert found == []  # patch a library only through runtime/patches.py, guarded by its versions


def test_on_another_library_version_a_patch_is_refused_loudly_and_the_library_keeps_its_own(monkeypatch, caplog):
    monkeypatch.setattr(patches, "installed_version", lambda distribution: "99.0.0")
    original = dependency_utils.make_beam_dependency_flags
    with caplog.at_level(logging.WARNING, logger=patches.__name__):
        with patches.patched(patches.TFX_SDIST, lambda _: list) as applied:
            assert not applied and dependency_utils.make_beam_dependency_flags is original
    assert "not patching tfx.utils.dependency_utils.make_beam_dependency_flags: written for tfx 1.16.0, " \
           "found 99.0.0" in caplog.text


def test_a_patch_is_undone_when_its_block_raises():
    original = dependency_utils.make_beam_dependency_flags
    with pytest.raises(RuntimeError):
        with patches.patched(patches.TFX_SDIST, lambda _: list):
            assert dependency_utils.make_beam_dependency_flags is list
            raise RuntimeError
    assert dependency_utils.make_beam_dependency_flags is original


def test_tfx_sdist_tfx_calls_the_symbol_and_builds_no_sdist_for_workers_on_this_machine():
    assert "dependency_utils.make_beam_dependency_flags(" in inspect.getsource(BaseBeamExecutor.__init__)
    make_flags = dependency_utils.make_beam_dependency_flags
    local = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
    with local_beam.no_tfx_sdist_for_local_workers(local):
        executor = tfx_statistics_gen.Executor(BaseBeamExecutor.Context(beam_pipeline_args=local))
    args = executor._beam_pipeline_args  # pylint: disable=protected-access
    assert args[:2] == local and not [arg for arg in args if arg.startswith("--extra_package")]
    assert dependency_utils.make_beam_dependency_flags is make_flags  # TFX's own again after
    for elsewhere in (["--runner=PortableRunner", "--job_endpoint=localhost:1"], ["--runner=DataflowRunner"]):
        with local_beam.no_tfx_sdist_for_local_workers(elsewhere):
            assert dependency_utils.make_beam_dependency_flags is make_flags, elsewhere


@pytest.mark.parametrize("output, beam_args, local", [
    ("s3://b/Transform/transform_graph/5", [], True),
    ("gs://b/Transform/transform_graph/5", ["--direct_running_mode=multi_processing"], True),
    ("s3://b/Transform/transform_graph/5", ["--runner=PortableRunner", "--job_endpoint=localhost:1"], False),
    ("gs://b/Transform/transform_graph/5", ["--runner=DataflowRunner"], False),
    ("/tmp/root/Transform/transform_graph/5", [], False)])
def test_transform_scratch_tfx_names_its_temp_path_by_the_symbol_and_it_is_local_under_the_direct_runner(
        output, beam_args, local):
    source = inspect.getsource(tfx_transform.Executor.Do)
    assert "temp_path = os.path.join(transform_output, _TEMP_DIR_IN_TRANSFORM_OUTPUT)" in source

    def tfx_temp_path():  # as TFX's Transform executor names it
        return os.path.join(output, tfx_transform._TEMP_DIR_IN_TRANSFORM_OUTPUT)  # pylint: disable=protected-access

    with pytest.raises(RuntimeError, match="failed"):
        with transform.local_scratch(output, beam_args):
            scratch = tfx_temp_path()
            if local:
                assert os.path.dirname(scratch) == tempfile.gettempdir() and os.path.isdir(scratch)
            else:
                assert scratch == output + "/.temp_path"
            raise RuntimeError("the transform failed")
    assert not os.path.exists(scratch) and tfx_temp_path() == output + "/.temp_path"


def test_beam_s3_clients_beam_makes_its_clients_through_the_symbol():
    from apache_beam.io.aws.clients.s3 import boto3_client  # pylint: disable=import-outside-toplevel
    # The effect, one client per configuration, is tests/test_object_storage.py's, on an S3 server.
    assert "boto3.session.Session()" in inspect.getsource(boto3_client.Client.__init__)


@pytest.mark.e2e
def test_tfxio_reader_tfx_builds_its_readers_through_the_symbol_and_reads_a_file_at_a_time(
        ingested, tmp_path, monkeypatch):
    """The two ways TFX builds these readers (StatisticsGen: `get_split_tfxio`; Transform: its processor's
    `_CreateTFXIO`) both go through `make_tfxio`; a StatisticsGen run builds only file-at-a-time readers."""
    examples, schema = examples_artifact(ingested[0]), load_schema()
    dataset = tfx_transform._Dataset(  # pylint: disable=protected-access
        os.path.join(ingested[0], "Split-train", "*"), "tfrecords_gzip", example_gen_pb2.FORMAT_TF_EXAMPLE,
        None, None, None)
    build = {
        "statistics_gen": lambda: tfxio_utils.get_split_tfxio([examples], "train", ["t"], schema=schema),
        "transform": lambda: tfx_transform.TransformProcessor()._CreateTFXIO(dataset, schema),  # pylint: disable=W0212
    }
    for name, make in build.items():
        assert type(make()) is tf_example_record.TFExampleRecord, name
        with file_reads.tfx_reads_file_at_a_time() as applied:
            assert applied and type(make()) is file_reads.FileAtATimeTFExampleRecord, name
        assert type(make()) is tf_example_record.TFExampleRecord, name

    built = []  # the readers a StatisticsGen run builds: one per split, each reading a file at a time
    at_a_time = file_reads.file_at_a_time
    monkeypatch.setattr(file_reads, "file_at_a_time", lambda *a, **k: built.append(type(at_a_time(*a, **k))) or
                        at_a_time(*a, **k))
    statistics = standard_artifacts.ExampleStatistics()
    statistics.uri = str(tmp_path / "statistics")
    statistics_gen.Executor().Do({"examples": [examples]}, {"statistics": [statistics]}, {})
    assert built == [file_reads.FileAtATimeTFExampleRecord] * len(SPLITS)
