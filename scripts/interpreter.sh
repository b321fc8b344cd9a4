# Sourced by setup.sh and lock.sh: find_python VERSION prints a working python of that minor
# version, from PATH or from pyenv's installed versions (which a shim may not expose).
find_python() {
  local version=$1 candidate
  for candidate in "python$version" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$version"*/bin/"python$version"; do
    if "$candidate" -c 'pass' >/dev/null 2>&1; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}
