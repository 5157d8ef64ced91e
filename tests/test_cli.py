import subprocess
import sys

from scanner.cli import main


def test_help_lists_every_command(capsys):
    try:
        main(["--help"])
    except SystemExit as exit:
        assert exit.code == 0
    out = capsys.readouterr().out
    for command in ("scan", "policy", "zoo", "detector", "serve", "rescan"):
        assert command in out


def test_import_scanner_loads_no_heavy_runtime(repo_root):
    code = "import sys, scanner, scanner.cli\nprint(sorted({'torch', 'onnxruntime', 'mlflow'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=repo_root, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
