"""Every entry point refuses bad settings once, at the edge, before any work, naming the valid choices."""
import os
import subprocess
import sys

import pytest

from settings import fields
from tests.helpers import ENUMERATED, ROOT, project_env

pytestmark = pytest.mark.e2e  # runs the pipeline, a server or a trainer end to end

BAD = {"--loss": "hinge", "--optimizer": "sgd", "--precision": "float16", "--structure": "stacked2",
       "--embedding-regularization": "rows"}
BAD_ARGV = [token for flag, value in BAD.items() for token in (flag, value)]


def _command(entry_point, output_root):
    tfx_cli = os.path.join(os.path.dirname(sys.executable), "tfx")
    return {
        "demo": [sys.executable, "-m", "demo", "--output-root", output_root] + BAD_ARGV,
        "local runner": [sys.executable, "-m", "pipeline.local_runner", "--output-root", output_root] + BAD_ARGV,
        "kubeflow compile": [sys.executable, "-m", "pipeline.kubeflow_v2_runner", "--image", "gcr.io/p/img:1",
                             "--output", os.path.join(output_root, "spec.json"), "--output-root", output_root]
                            + BAD_ARGV,
        "tfx cli": [tfx_cli, "pipeline", "create", "--engine", "local", "--pipeline_path",
                    os.path.join("pipeline", "local_runner.py")],  # flags come from RANKLOSS_FLAGS
    }[entry_point]


def test_the_bad_settings_cover_every_enumerated_field():
    assert sorted(BAD) == sorted(fields.flag_name(field) for _, field in ENUMERATED)


@pytest.mark.parametrize("entry_point", ["demo", "local runner", "kubeflow compile", "tfx cli"])
def test_every_entry_point_refuses_every_bad_enumerated_setting_before_any_work(entry_point, tmp_path):
    output_root = str(tmp_path / "out")
    env = project_env(RANKLOSS_FLAGS=" ".join(BAD_ARGV), RANKLOSS_OUTPUT_ROOT=output_root,
                      LOCAL_HOME=str(tmp_path / "tfx_home"))
    proc = subprocess.run(_command(entry_point, output_root), cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    said = proc.stdout + proc.stderr
    assert proc.returncode != 0, said[-3000:]
    for _, field in ENUMERATED:
        assert f"{fields.flag_name(field)}: unknown" in said, said[-3000:]
        assert "valid choices: " + ", ".join(field.metadata["choices"]) in said, said[-3000:]
    assert not os.path.exists(output_root)  # nothing generated, ingested, compiled or run
    assert not os.path.exists(tmp_path / "tfx_home" / "local")  # the tfx CLI registered no pipeline


@pytest.mark.parametrize("argv,message", [
    (["--beta_pos", "0.1"], "'--beta_pos' (did you mean --beta-pos?)"),          # not silently dropped
    (["--loss", "bce", "--alpha", "1.5"], "--alpha: loss 'bce' takes no alpha"),  # not range-checked for bce
])
def test_the_main_command_names_what_the_user_mistyped_before_any_work(tmp_path, argv, message):
    output_root = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "demo", "--output-root", str(output_root)] + argv,
                          cwd=ROOT, env=project_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr[-2000:]
    assert "must be in [0, 1]" not in proc.stderr
    assert not output_root.exists()
