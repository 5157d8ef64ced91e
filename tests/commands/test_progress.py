import io
import sys

from scanner.commands.progress import progress_bar


class Terminal(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def drive(monkeypatch, *, tty: bool, quiet: bool = False, lines: bool = False) -> str:
    stream = Terminal(tty)
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setenv("COLUMNS", "100")  # a pseudo-terminal of unknown width would draw nothing
    with progress_bar("models", quiet=quiet, unit="model", lines=lines) as progress:
        for done in range(1, 4):
            progress(done, 3)
    return stream.getvalue()


def test_a_bar_on_a_terminal(monkeypatch):
    drawn = drive(monkeypatch, tty=True)
    assert "models" in drawn and "3/3" in drawn


def test_silent_when_not_a_terminal_or_quiet(monkeypatch):
    assert drive(monkeypatch, tty=False) == ""
    assert drive(monkeypatch, tty=True, quiet=True) == ""


def test_a_line_per_step_when_asked_and_not_a_terminal(monkeypatch):
    assert drive(monkeypatch, tty=False, lines=True) == "models: 1/3 models\nmodels: 2/3 models\nmodels: 3/3 models\n"
    assert drive(monkeypatch, tty=False, lines=True, quiet=True) == ""
    assert "1/3 models\n" not in drive(monkeypatch, tty=True, lines=True)  # a terminal gets the bar
