import subprocess
import sys

import pytest

from scanner.cli import main


def test_help_lists_every_command(capsys):
    try:
        main(["--help"])
    except SystemExit as exit:
        assert exit.code == 0
    out = capsys.readouterr().out
    for command in ("scan", "policy", "zoo", "detector", "serve", "rescan"):
        assert command in out


def test_every_command_and_action_has_a_description():
    import argparse

    from scanner.cli import build_parser

    def commands(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield f"{path} {name}", sub
                    yield from commands(sub, f"{path} {name}")

    found = dict(commands(build_parser(), "model-scanner"))
    assert "model-scanner zoo" in found and "model-scanner zoo build" in found
    missing = [name for name, parser in found.items() if not parser.description]
    assert missing == []


def test_import_scanner_loads_no_heavy_runtime(repo_root):
    code = "import sys, scanner, scanner.cli\nprint(sorted({'torch', 'onnxruntime', 'mlflow'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=repo_root, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(
    "command", [["scan", "m.onnx"], ["serve", "--tracking-uri", "x"], ["rescan", "--tracking-uri", "x"]]
)
@pytest.mark.parametrize("size", ["inf", "1e400", "-inf", "nan", "1e400GiB", "1e30"])
def test_an_absurd_max_model_size_is_a_usage_error(capsys, command, size):
    with pytest.raises(SystemExit) as exit:
        main([*command, f"--max-model-size={size}"])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert f"error: argument --max-model-size: {size!r} is not between 1 byte and 2GiB" in err
    assert "Traceback" not in err
