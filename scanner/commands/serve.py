"""`model-scanner serve`: not built yet (see the open issues)."""

from __future__ import annotations

import argparse
from typing import Any

from scanner.errors import UsageError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("serve", help="(not built yet)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    raise UsageError("'model-scanner serve' is not built yet")
