#!/usr/bin/env bash
# The main job: set up, then run the example workflows on the embedded defaults (SQLite).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source .venv/bin/activate
bash examples/demo.sh "${1:-demo.sqlite}"
