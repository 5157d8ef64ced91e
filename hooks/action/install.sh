#!/usr/bin/env bash
# Installs model-scanner into a venv the Action caches. CPU ONNX Runtime and the pinned CPU torch by default.
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${MODEL_SCANNER_VENV:-$HOME/.cache/model-scanner-action/venv}"
"${PYTHON:-python3}" -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check -c "$here/constraints.txt")
"${pip[@]}" --upgrade pip
if [ -n "${INSTALL:-}" ]; then
  "${pip[@]}" "$INSTALL"
else
  # torch from its pin first, from the CPU index, so nothing below can pull a CUDA build.
  "${pip[@]}" torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple
  "${pip[@]}" "$here[cpu,torch]"
fi
"$venv/bin/python" -m scanner --version
