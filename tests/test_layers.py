"""The package layers point one way, and each module keeps to one job and a readable size."""
import ast
import os
import subprocess
import sys

import pytest

from tests.helpers import ALLOWED, ROOT, project_env

# What each package may import (tests/helpers.py). `pipeline` names the Trainer and the Transform code by module
# path only; `serving` never reaches into ingestion or training; `settings` imports the standard library alone.
MAX_MODULE_LINES, EXEMPT = 300, {"transforms/schema.pbtxt"}


def _modules(package):
    folder = os.path.join(ROOT, package)
    return sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".py"))


def _imported_packages(path):
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names & set(ALLOWED)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_package_imports_only_the_layers_below_it(package):
    upward = {os.path.relpath(path, ROOT): sorted(_imported_packages(path) - ALLOWED[package] - {package})
              for path in _modules(package)}
    assert {path: found for path, found in upward.items() if found} == {}


def test_the_dependency_graph_has_no_cycle():
    def reaches(start, target, seen=()):
        return any(dep == target or (dep not in seen and reaches(dep, target, seen + (dep,)))
                   for dep in ALLOWED[start])
    assert not [package for package in ALLOWED if reaches(package, package)]


@pytest.mark.parametrize("module,forbidden", [
    ("settings.flags", ("tensorflow", "apache_beam", "tfx")),             # settings: no TensorFlow
    ("serving.client", ("apache_beam", "tensorflow_transform", "tfx")),  # a client parses a row without Beam
    ("serving.server", ("apache_beam", "tensorflow_transform", "tfx")),
])
@pytest.mark.e2e
def test_light_modules_load_no_heavy_framework(module, forbidden):
    code = f"import sys, {module}; print(sorted(m for m in {forbidden!r} if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=project_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.e2e
def test_a_local_pipeline_and_the_trainer_do_not_load_vertex_ai():
    # `from tfx import v1` loads google-cloud-aiplatform (about 5 s a process); only a Vertex AI Trainer needs it.
    code = ("import sys, trainer.task; from pipeline import local_runner, pipeline; from settings import configs; "
            "pipeline.create_pipeline(configs.PipelineConfig()); print('google.cloud.aiplatform' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=project_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "False"


def test_modules_stay_small_and_run_fn_reads_like_the_templates():
    sizes = {os.path.relpath(p, ROOT): sum(1 for _ in open(p, encoding="utf-8"))
             for package in list(ALLOWED) + ["tests"] for p in _modules(package)}
    assert {p: n for p, n in sizes.items() if n > MAX_MODULE_LINES and p not in EXEMPT} == {}
    assert sizes["trainer/task.py"] <= 120
    task = ast.parse(open(os.path.join(ROOT, "trainer", "task.py"), encoding="utf-8").read())
    run_fn = next(node for node in task.body if isinstance(node, ast.FunctionDef) and node.name == "run_fn")
    assert run_fn.end_lineno - run_fn.lineno + 1 <= 80


def test_keras_2_is_selected_in_one_python_place():
    setters = [os.path.relpath(p, ROOT) for package in ALLOWED for p in _modules(package)
               if 'environ.setdefault("TF_USE_LEGACY_KERAS"' in open(p, encoding="utf-8").read()]
    assert setters == ["settings/__init__.py"]
    for package in set(ALLOWED) - {"settings"}:  # every other package loads it before anything else
        first = ast.parse(open(os.path.join(ROOT, package, "__init__.py"), encoding="utf-8").read()).body[1]
        assert isinstance(first, ast.Import) and first.names[0].name == "settings", package


def test_no_function_outside_the_tests_is_named_like_a_test():
    named = [f"{os.path.relpath(path, ROOT)}:{node.lineno} {node.name}" for package in ALLOWED
             for path in _modules(package) for node in ast.walk(ast.parse(open(path, encoding="utf-8").read()))
             if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_")]
    assert named == []  # pytest or a reader would take them for tests


def test_settings_import_the_standard_library_alone():
    imported = {}
    for path in _modules("settings"):
        for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and getattr(node, "level", 0) == 0:
                roots = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module]
                imported.update({root.split(".")[0]: os.path.relpath(path, ROOT) for root in roots})
    assert {name: path for name, path in imported.items()
            if name not in sys.stdlib_module_names and name != "settings"} == {}


def _classes(package):
    for path in _modules(package):
        for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
            if isinstance(node, ast.ClassDef):
                yield os.path.relpath(path, ROOT), node


def test_each_customised_component_has_its_own_module_and_executor():
    """A component class of `components/` (one that names its executor: `EXECUTOR_SPEC`) is one per module,
    beside that executor; the pipeline's five customised components are there."""
    found = {}
    for path, node in _classes("components"):
        if any(isinstance(s, ast.Assign) and any(getattr(t, "id", "") == "EXECUTOR_SPEC" for t in s.targets)
               for s in node.body):
            found.setdefault(path, []).append(node.name)
    assert all(len(names) == 1 for names in found.values()), found
    assert sorted(n for names in found.values() for n in names) == [
        "Evaluator", "Pusher", "RawLogsExampleGen", "StatisticsGen", "Transform"]


def test_no_executor_is_a_mixin_chain():
    """Every class that defines an executor's `Do` has one base, a library's executor: behaviour is composed
    by calls inside `Do`, never by the order of classes chained through `super()`."""
    chains = [f"{path}: {node.name}{tuple(ast.unparse(b) for b in node.bases)}"
              for package in ALLOWED for path, node in _classes(package)
              if any(isinstance(f, ast.FunctionDef) and f.name == "Do" for f in node.body)
              and not (len(node.bases) == 1 and ast.unparse(node.bases[0]).endswith("Executor")
                       and not ast.unparse(node.bases[0]).startswith(tuple(ALLOWED)))]
    assert chains == []
