# Sourced by the scripts: the project's process environment.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export TF_USE_LEGACY_KERAS=1                 # TFRS needs Keras 2 (tf-keras), in every process
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
export PYTHONWARNINGS="${PYTHONWARNINGS:-ignore::FutureWarning}"
export PATH="$root/.venv/bin:$PATH"
