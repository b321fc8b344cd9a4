#!/usr/bin/env bash
# The main job: set up, then `statewise demo`: the five example processes on the embedded
# defaults (SQLite, the offline model), a summary per workflow, then the dashboard to decide
# the waiting human tasks. Extra arguments go to `statewise demo` (e.g. --no-serve, --port).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source .venv/bin/activate
exec statewise demo "$@"
