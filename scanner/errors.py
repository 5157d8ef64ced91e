"""One exception root, and a base per extension point.

Every expected failure is a `ScannerError` with a stable `kind` (it lands in the JSON report and in MLflow tags) and
a one-line `hint` saying what to do about it. The CLI and the HTTP handlers are the only places that turn these into
messages and exit codes; anything that is not a `ScannerError` is a crash.
"""

from __future__ import annotations


def shortened(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, ending in '...' when cut: for one-line messages, tags and logs."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ScannerError(Exception):
    """Root of every error the scanner expects and explains."""

    kind = "scanner_error"
    hint = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint

    def one_line(self) -> str:
        message = " ".join(str(self).split())
        return f"{message} ({self.hint})" if self.hint else message


class UsageError(ScannerError):
    kind = "usage"


class IntakeError(ScannerError):
    """A model file that cannot be scanned safely: refused before anything runs."""

    kind = "intake"


class DetectorError(ScannerError):
    kind = "detector"


class TimeLimitExceeded(DetectorError):
    """A model's scan ran past its time limit: a graph that never ends (a Loop of 2^62 turns), or a model too big for
    this machine."""

    kind = "time_limit"
    hint = "raise --time-limit, or scan on a faster machine (--device cuda); a model that never finishes is suspect"

    @classmethod
    def ran_past(cls, seconds: float) -> TimeLimitExceeded:
        """Raised between batches once the scan's `scanner.findings.Deadline` has passed."""
        return cls(f"the scan ran past its time limit of {seconds:g} s")


class PolicyError(ScannerError):
    """A policy file that does not load or validate."""

    kind = "policy"


class ReportError(ScannerError):
    kind = "report"


class RegistryError(ScannerError):
    """The model registry could not be reached or answered something unexpected."""

    kind = "registry"


class MissingDependency(ScannerError):
    """An optional heavy runtime (onnxruntime, torch, mlflow, ray) is not installed."""

    kind = "missing_dependency"

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"this feature needs {package}, which is not installed",
            hint=f"install it with: pip install 'model-scanner[{extra}]'",
        )
