#!/usr/bin/env bash
# Set up (if needed) and run the main job: MLOB, ML and MCMC side by side on bundled HSB data.
# Extra arguments go to `mlob-pp compare` (try --help).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$(bash "$here/scripts/setup.sh")"
cd "$here"
exec "$venv/bin/mlob-pp" compare "$@"
