#!/usr/bin/env bash
# Regenerates the hashed locks from the pins: requirements.lock (every package of the image and the environment,
# from requirements.txt) and requirements-test.lock (the test suite's packages beyond it, from
# requirements-test.txt). Needs pip-tools (BUILD.md: "The locks"); resolves for CPython 3.10 on Linux x86-64.
# Extra pip-compile arguments pass through, e.g. `scripts/lock.sh -c constraints.txt` to hold versions.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
compile() {  # input, output, extra args
  local input="$1" output="$2"; shift 2
  pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-header --no-emit-index-url \
    --no-emit-find-links --annotation-style=line --output-file "$output" "$input" "$@"
  sed -i -E 's/ +# via -c [^,]*(, )?/ # via /; s/ # via $//' "$output"   # constraint files are no reason
}
compile requirements.txt requirements.lock "$@"
compile requirements-test.txt requirements-test.lock "$@"
# The test lock keeps only what the image lock lacks: the two install together (scripts/setup_env.sh).
python3 - <<'PY'
import re
def names(path):
    return {m.group(1).lower() for m in re.finditer(r"^([A-Za-z0-9_.-]+)==", open(path).read(), re.M)}
image = names("requirements.lock")
blocks = re.split(r"\n(?=[A-Za-z0-9_.-]+==)", open("requirements-test.lock").read())
kept = [b for b in blocks if not (m := re.match(r"([A-Za-z0-9_.-]+)==", b)) or m.group(1).lower() not in image]
open("requirements-test.lock", "w").write("\n".join(kept).rstrip("\n") + "\n")
PY
