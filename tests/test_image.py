"""The image builds from the lock: every locked package is a wheel for the image's platform or is compiled in the
Dockerfile's builder stage, and the Dockerfile, the lock and the local environment agree (no Docker engine here)."""
import os
import re
import subprocess
import sys

from tests.helpers import ROOT

# The image's platform: CPython 3.10 on Debian 12 (python:3.10-slim), glibc 2.36, so manylinux up to 2_36.
PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in range(36, 4, -1)] + [
    "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]


def _text(name):
    with open(os.path.join(ROOT, name), encoding="utf-8") as f:
        return f.read()


def _pins(text):
    return {m.group(1).lower(): m.group(2) for m in re.finditer(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(\S+)", text, re.M)}


def built_in_the_image():
    """The packages the Dockerfile's builder stage compiles from source (its `--no-binary` list)."""
    return re.search(r"--no-binary=([\w,.-]+)", _text("Dockerfile")).group(1).split(",")


def unresolved_for_the_image(lock_text, from_source, tmp_path):
    """The first locked package with no wheel for the image's platform among those not built from source, as pip
    names it; None when every one resolves. Metadata only: pip downloads no wheel for a dry run."""
    pins = [f"{name}=={version}" for name, version in _pins(lock_text).items() if name not in from_source]
    requirements = tmp_path / "wheels-only.txt"
    requirements.write_text("\n".join(pins) + "\n")
    platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps",
                           "--only-binary=:all:", *platforms, "--python-version", "3.10", "--implementation", "cp",
                           "--abi", "cp310", "--target", str(tmp_path / "target"), "--quiet", "-r", str(requirements)],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode == 0:
        return None
    missing = re.search(r"No matching distribution found for (\S+)", proc.stderr)
    assert missing, proc.stderr[-3000:]
    return missing.group(1)


def test_every_locked_package_is_a_wheel_for_the_image_or_built_in_its_builder_stage(tmp_path):
    from_source = built_in_the_image()
    lock = _text("requirements.lock")
    assert set(from_source) <= set(_pins(lock)), "the builder stage compiles a package the lock does not hold"
    missing = unresolved_for_the_image(lock, from_source, tmp_path)
    assert missing is None, (f"{missing} has no wheel for CPython 3.10 on manylinux x86-64: add it to the "
                             "Dockerfile's --no-binary list, where the builder stage compiles it")


def test_a_source_only_package_left_out_of_the_builder_stage_is_named(tmp_path):
    from_source = [name for name in built_in_the_image() if name != "pyfarmhash"]
    assert unresolved_for_the_image(_text("requirements.lock"), from_source, tmp_path) == "pyfarmhash==0.3.2"


def test_the_lock_holds_every_pin_and_the_image_and_the_environment_install_it_with_hashes():
    pins, lock, test_lock = _pins(_text("requirements.txt")), _pins(_text("requirements.lock")), \
        _pins(_text("requirements-test.lock"))
    assert {name: lock.get(name) for name in pins} == pins  # the lock was generated from these pins
    assert {name: test_lock.get(name, lock.get(name)) for name in _pins(_text("requirements-test.txt"))} == \
        _pins(_text("requirements-test.txt"))
    assert not set(test_lock) & set(lock)  # the test packages stay out of the image
    for text in (_text("requirements.lock"), _text("requirements-test.lock")):
        entries = re.split(r"\n(?=[A-Za-z0-9_.-]+==)", text.split("\n", 1)[1] if text.startswith("#") else text)
        assert all("--hash=sha256:" in entry for entry in entries if re.match(r"[A-Za-z0-9_.-]+==", entry))
    dockerfile, setup = _text("Dockerfile"), _text("scripts/setup_env.sh")
    assert "COPY requirements.lock /tmp/requirements.lock" in dockerfile and "--require-hashes" in dockerfile
    assert "requirements-test" not in dockerfile and "requirements.txt" not in dockerfile
    assert '--require-hashes -r "$root/requirements.lock" -r "$root/requirements-test.lock"' in setup

