#!/usr/bin/env bash
# Set up (if needed) and run the test suite (everything except tests marked slow), including
# every notebook in notebooks/ in its small CI configuration. Extra arguments go to pytest.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$(bash "$here/scripts/setup.sh")"
cd "$here"
export MPLBACKEND=Agg MLOB_PP_FAST=1
exec "$venv/bin/python" -m pytest -m "not slow" "$@"
