#!/usr/bin/env bash
# Serves the demo's pushed model over TF Serving's REST API on 127.0.0.1:8501.
# Extra flags pass to serving.server (e.g. --rest_api_port 9000, --model NAME=DIR).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup_env.sh"
source "$root/scripts/env.sh"
cd "$root"
exec python -m serving.server --model_base_path "${RANKLOSS_OUTPUT_ROOT:-$root/work}/serving/rankloss-tfx" "$@"
