#!/usr/bin/env bash
# Test command: build the environment, then run the test suite (pytest's exit status decides).
# Extra arguments go to pytest (e.g. -k losses). Two pytest-xdist workers share out the tests; each
# builds the session fixtures it needs (the demo run among them) for itself.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$here/setup_env.sh"
source "$here/env.sh"
cd "$root"
exec python -m pytest -n 2 "$@"
