#!/usr/bin/env bash
# Create (or reuse) the project's Python 3.10 virtualenv at .venv from the hashed locks: requirements.lock (what
# the image installs too) and requirements-test.lock. Skips the install when the locks are unchanged since the
# last successful build.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${RANKLOSS_VENV:-$root/.venv}"
stamp="$venv/.requirements.sha256"

find_python() {
  if [ -n "${RANKLOSS_PYTHON:-}" ]; then echo "$RANKLOSS_PYTHON"; return; fi
  for cand in "env PYENV_VERSION=3.10.13 python3.10" python3.10; do
    if $cand -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1; then
      echo "$cand"; return
    fi
  done
  return 1
}

want="$(cat "$root/requirements.lock" "$root/requirements-test.lock" | sha256sum | cut -d' ' -f1)"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "[setup] environment up to date: $venv"
  exit 0
fi

if ! py="$(find_python)"; then
  cat >&2 <<'MSG'
[setup] ERROR: Python 3.10 not found. TFX 1.16 needs Python >= 3.9 and < 3.11.
  Install it, e.g.   pyenv install 3.10.13   (then this script finds it via PYENV_VERSION=3.10.13)
  or                 apt-get install python3.10 python3.10-venv
  or point RANKLOSS_PYTHON at a Python 3.10 interpreter.
MSG
  exit 1
fi

echo "[setup] building $venv with $($py --version 2>&1) (about 2 minutes)"
rm -rf "$venv"
$py -m venv "$venv"
pip_install() {  # hide pip's notes about optional local package folders that do not exist
  "$venv/bin/python" -m pip install --quiet "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
pip_install --upgrade "pip==24.2"
pip_install --require-hashes -r "$root/requirements.lock" -r "$root/requirements-test.lock"
echo "$want" > "$stamp"
echo "[setup] done: $venv"
