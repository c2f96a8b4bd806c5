#!/usr/bin/env bash
# Main command: build the environment, then generate data, ingest it and run the TFX pipeline.
# Flags pass through to `python -m demo` (e.g. --rows 200000 --loss combined_pair --alpha 0.7).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$here/setup_env.sh"
source "$here/env.sh"
cd "$root"
exec python -m demo "$@"
