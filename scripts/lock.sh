#!/usr/bin/env bash
# Refreshes the lock files in requirements/ from pyproject.toml's ranges: the newest versions
# that satisfy them, each with its hashes. Run it when you change a dependency or want newer
# ones, then run scripts/test.sh on the result and commit both. Nothing else ever resolves
# versions: setup.sh installs exactly what a lock file says.
#
#   bash scripts/lock.sh            # every interpreter in requirements/README.md that is on PATH
#   bash scripts/lock.sh 3.13       # one of them
set -euo pipefail
cd "$(dirname "$0")/.."
pip_tools="pip-tools==7.7.0"

source scripts/interpreter.sh

lock() {  # lock VERSION EXTRAS...: resolve with that interpreter, since markers depend on it
  local version=$1; shift
  local python
  if ! python=$(find_python "$version"); then
    echo "skipping Python $version: no python$version found (PATH or pyenv)" >&2
    return 0
  fi
  local tools; tools=$(mktemp -d)
  "$python" -m venv "$tools"
  "$tools/bin/python" -m pip install --quiet --disable-pip-version-check "$pip_tools"
  local extras=()
  for extra in "$@"; do extras+=(--extra "$extra"); done
  "$tools/bin/pip-compile" --quiet --generate-hashes --allow-unsafe --strip-extras \
    --no-emit-index-url --no-emit-find-links --no-emit-trusted-host --upgrade \
    --build-deps-for=editable \
    "${extras[@]}" --output-file "requirements/py$version.txt" pyproject.toml
  rm -rf "$tools"
  # statewise itself is in the graph (its `dev` extra names its other extras); it is installed
  # from the checkout, not from the lock, so its block (a machine-specific file URL with no
  # hash, which `pip install --require-hashes` would refuse) goes with its `# via` lines,
  # whatever pip-tools writes there.
  sed -i -e '/^# WARNING: pip install will require/,/^# Consider using a hashable URL/d' \
    -e '/^statewise @ /{:via' -e 'N;s/\n    #.*$//;t via' -e 'D}' \
    "requirements/py$version.txt"
  echo "wrote requirements/py$version.txt"
}

want=${1:-all}
# 3.11 carries the CPU build of torch the offline model runs on.
[[ $want == all || $want == 3.11 ]] && lock 3.11 dev
# PyPI has no CPU-only torch for newer interpreters (only a several-GB CUDA build), so they run
# without the `local` extra; the tests of the offline model skip there, saying why.
for version in 3.12 3.13; do
  [[ $want == all || $want == "$version" ]] && lock "$version" ai postgres service otel examples test
done
exit 0
