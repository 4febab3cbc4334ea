#!/usr/bin/env bash
# Set up (if needed) and run the main job: MLOB, ML and MCMC side by side on bundled HSB data.
# Extra arguments go to `mlob-pp compare` (try --help).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$(bash "$here/scripts/setup.sh")"
cd "$here"
if "$venv/bin/python" -c "import mlob_pp.cli.compare" 2>/dev/null; then
  exec "$venv/bin/mlob-pp" compare "$@"
else
  exec "$venv/bin/mlob-pp" fit "$@"
fi
