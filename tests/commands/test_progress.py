import io
import sys

from scanner.commands.progress import progress_bar


class Terminal(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def drive(monkeypatch, *, tty: bool, quiet: bool = False) -> str:
    stream = Terminal(tty)
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setenv("COLUMNS", "100")  # a pseudo-terminal of unknown width would draw nothing
    with progress_bar("models", quiet=quiet, unit="model") as progress:
        for done in range(1, 4):
            progress(done, 3)
    return stream.getvalue()


def test_a_bar_on_a_terminal(monkeypatch):
    drawn = drive(monkeypatch, tty=True)
    assert "models" in drawn and "3/3" in drawn


def test_silent_when_not_a_terminal_or_quiet(monkeypatch):
    assert drive(monkeypatch, tty=False) == ""
    assert drive(monkeypatch, tty=True, quiet=True) == ""
