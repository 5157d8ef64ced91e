"""The intake and the runtime module load no heavy runtime until a model is actually loaded or run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_importing_the_intake_and_runtime_loads_no_heavy_runtime(repo_root: Path) -> None:
    code = (
        "import sys, scanner.intake, scanner.runtime\n"
        "print(sorted({'torch', 'onnxruntime', 'onnx', 'mlflow'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=repo_root, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
