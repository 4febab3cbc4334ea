#!/usr/bin/env bash
# Build the sdist and the wheel, install the wheel WITHOUT extras into a fresh virtual
# environment and run the base-install smoke test (.ci/smoke_test.py) from outside the clone.
#   usage: bash .ci/smoke_wheel.sh PYTHON   (an interpreter that has `build`, e.g. .venv/bin/python)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${1:?usage: smoke_wheel.sh PYTHON}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$here"
echo "# building sdist and wheel (isolated build: build-system.requires from the index)"
"$py" -m build --outdir "$work/dist" . > "$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
if grep -i -E "SetuptoolsDeprecationWarning|is absent from the .packages. configuration|warning: (check|manifest)" "$work/build.log"; then
  echo "the build printed setuptools warnings (above)"; exit 1
fi
wheel="$(ls "$work"/dist/*.whl)"; sdist="$(ls "$work"/dist/*.tar.gz)"
echo "# built $(basename "$sdist") and $(basename "$wheel")"
base="$("$py" -c 'import sys; print(sys._base_executable)')"
"$base" -m venv "$work/venv"
quiet_pip() {  # pip, without the notes about unreachable local index folders of this machine
  "$work/venv/bin/python" -m pip "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
quiet_pip install --quiet --upgrade pip
echo "# installing the wheel without extras (pins from constraints.txt)"
quiet_pip install --quiet -c "$here/constraints.txt" "$wheel"
cp "$here/.ci/smoke_test.py" "$work/"
cd "$work"
MPLBACKEND=Agg "$work/venv/bin/python" -I "$work/smoke_test.py" "$wheel"
