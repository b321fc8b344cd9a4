#!/usr/bin/env bash
# Creates the virtual environment (once) and installs exactly what requirements/ locks for this
# interpreter, every file checked against its hash, then statewise itself from the checkout.
# Nothing is resolved here, so a release made overnight changes nothing until the lock is
# refreshed (scripts/lock.sh). Needs only Python 3.11+; everything else comes from PyPI.
#
#   PYTHON=python3.13 bash scripts/setup.sh    # another interpreter (a command, path or "3.13")
#   VENV=.venv-3.13                            # where the environment goes (default .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/interpreter.sh
# 3.11 by default: the offline model (CPU PyTorch) is locked for it alone.
python=${PYTHON:-$(find_python 3.11 || echo python3)}
if [[ $python =~ ^[0-9]+\.[0-9]+$ ]]; then
  python=$(find_python "$python") || { echo "no Python $PYTHON found on PATH or in pyenv" >&2; exit 1; }
fi
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "statewise needs Python 3.11 or newer as '$python' (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi
version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
lock="requirements/py$version.txt"
if [ ! -f "$lock" ]; then
  echo "no lock file for Python $version ($lock); locked: $(ls requirements/py*.txt | tr '\n' ' ')" >&2
  echo "use one of those (PYTHON=python3.11), or make one: bash scripts/lock.sh $version" >&2
  exit 1
fi
venv=${VENV:-.venv}
if [ -x "$venv/bin/python" ]; then
  have=$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  if [ "$have" != "$version" ]; then
    echo "$venv is Python $have, not $version: remove it, or set VENV=.venv-$version" >&2
    exit 1
  fi
else
  "$python" -m venv "$venv"
fi
# Installing is skipped when neither the lock nor pyproject.toml changed since the last one.
stamp="$venv/.statewise-installed"
wanted=$(cat "$lock" pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  pip=("$venv/bin/python" -m pip --disable-pip-version-check --quiet)
  "${pip[@]}" install --require-hashes --no-deps -r "$lock"
  # setuptools comes from the lock too, so the build uses no unlocked tool.
  "${pip[@]}" install --no-deps --no-build-isolation -e .
  echo "$wanted" > "$stamp"
fi
