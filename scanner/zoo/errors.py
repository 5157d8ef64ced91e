"""The zoo's exception base."""

from __future__ import annotations

from scanner.errors import ScannerError


class ZooError(ScannerError):
    """A zoo build that cannot go on: a bad request, a failed export, a model that would not train to the bar."""

    kind = "zoo"
