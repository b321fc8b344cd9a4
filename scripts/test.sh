#!/usr/bin/env bash
# Set up, then run every check CI runs: lint, strict types, and the test suite.
# PYTHON and VENV choose another interpreter, as for setup.sh; extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source "${VENV:-.venv}/bin/activate"
ruff check src tests bench examples
mypy
pytest "$@"
