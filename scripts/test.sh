#!/usr/bin/env bash
# Set up, then run every check CI runs: lint, strict types, and the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source .venv/bin/activate
ruff check src tests bench examples
mypy
pytest "$@"
