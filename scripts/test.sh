#!/usr/bin/env bash
# Set up, then run every check CI runs: lint, strict types, and the test suite.
# PYTHON and VENV choose another interpreter, as for setup.sh; extra arguments go to pytest.
# The tests run on every core (pytest-xdist; `-n 0` after this command runs them in one process).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source "${VENV:-.venv}/bin/activate"
ruff check src tests bench examples
mypy
pytest -n auto --dist worksteal "$@"
