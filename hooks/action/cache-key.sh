#!/usr/bin/env bash
# Prints `key=...` for actions/cache: the runner, the Python, the install spec and the scanner's own dependency
# files. hashFiles() cannot see the action's folder (it lies outside the workspace), hence this script.
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
digest="$(cat "$here/pyproject.toml" "$here/constraints.txt" <(printf '%s' "${INSTALL:-}") | sha256sum | cut -c1-16)"
echo "key=model-scanner-${RUNNER_OS:-local}-${RUNNER_ARCH:-x64}-py${PYTHON_VERSION:-3}-${digest}"
