"""The benchmarks compare like with like: the same thread count for TensorFlow and PyTorch."""
import subprocess
import sys

from tests.conftest import ROOT, project_env


def test_tensorflow_and_pytorch_get_the_same_thread_count():
    code = ("from benchmarks import trainer_speed as t\n"
            "t.set_tensorflow_threads(3)\n"
            "import tensorflow as tf\n"
            "print(tf.config.threading.get_intra_op_parallelism_threads(), "
            "tf.config.threading.get_inter_op_parallelism_threads())\n"
            "print(' '.join(t.torch_command('python', 4096, 7, 4, 3)))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=project_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    tensorflow_threads, torch_command = proc.stdout.strip().splitlines()[-2:]
    assert tensorflow_threads == "3 3"
    assert torch_command.endswith("--batch-size 4096 --rounds 7 --steps 4 --threads 3")
    with open(f"{ROOT}/benchmarks/torch_dcnv2.py") as f:
        script = f.read()
    assert "torch.set_num_threads(args.threads)" in script and "torch.set_num_interop_threads(args.threads)" in script
