#!/usr/bin/env bash
# Create (or reuse) a virtual environment with Python >= 3.12 and install mlob_pp into it.
#   MLOB_PP_VENV    where the environment lives (default: .venv in the repository)
#   MLOB_PP_PYTHON  interpreter to use (default: the first Python >= 3.12 found)
#   MLOB_PP_FRESH=1 delete and recreate the environment
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${MLOB_PP_VENV:-$here/.venv}"

is_ok() {  # prints the interpreter's path if it is Python >= 3.12
  "$1" -c 'import sys; assert sys.version_info >= (3, 12); print(sys.executable)' 2>/dev/null
}

find_python() {
  local c
  if [ -n "${MLOB_PP_PYTHON:-}" ]; then
    is_ok "$MLOB_PP_PYTHON" && return 0
    echo "MLOB_PP_PYTHON=$MLOB_PP_PYTHON is not a Python >= 3.12" >&2; return 1
  fi
  for c in python3.12 python3.13 python3.14 python3; do
    if command -v "$c" >/dev/null 2>&1; then is_ok "$(command -v "$c")" && return 0; fi
  done
  # pyenv installs: shims do not run them unless selected, so look at the versions directly
  local root="${PYENV_ROOT:-}"
  if [ -z "$root" ] && command -v pyenv >/dev/null 2>&1; then root="$(pyenv root)"; fi
  [ -z "$root" ] && root="$HOME/.pyenv"
  for c in $(ls -d "$root"/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -V); do
    is_ok "$c" && return 0
  done
  for c in /usr/local/bin/python3.1[2-9] /usr/bin/python3.1[2-9]; do
    [ -x "$c" ] && is_ok "$c" && return 0
  done
  return 1
}

if [ "${MLOB_PP_FRESH:-0}" = "1" ]; then rm -rf "$venv"; fi
if [ ! -x "$venv/bin/python" ] || ! is_ok "$venv/bin/python" >/dev/null; then
  if ! py="$(find_python)"; then
    cat >&2 <<'MSG'
mlob_pp needs Python >= 3.12 (PyMC 6 and ArviZ 1.x do not install on older versions; pip on
3.11 silently falls back to PyMC 5 / ArviZ 0.x, whose API differs). No such interpreter was
found on PATH, in pyenv's versions or in /usr. Install one (e.g. `pyenv install 3.12`) or point
MLOB_PP_PYTHON at it, then run this command again.
MSG
    exit 1
  fi
  echo "# creating $venv with $py" >&2
  rm -rf "$venv"
  "$py" -m venv "$venv"
fi
stamp="$venv/.mlob_pp_installed"
if [ ! -f "$stamp" ] || [ "$here/pyproject.toml" -nt "$stamp" ] || [ "$here/constraints.txt" -nt "$stamp" ]; then
  echo "# installing mlob_pp and its pinned dependencies into $venv" >&2
  "$venv/bin/python" -m pip install --quiet --upgrade pip >&2
  "$venv/bin/python" -m pip install --quiet -c "$here/constraints.txt" -e "$here[all,dev,docs]" >&2
  touch "$stamp"
fi
echo "$venv"
