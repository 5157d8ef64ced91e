"""Options that more than one command takes, defined once so that they read and check the same everywhere."""

from __future__ import annotations

import argparse
import math
import re

from scanner.findings import Budget, BudgetUnit
from scanner.scan import DEFAULT_BUDGET, DEFAULT_BUDGET_S

_SIZE_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


def add_max_model_size(parser: argparse.ArgumentParser) -> None:
    """--max-model-size, for every command that loads models (scan, serve, rescan)."""
    parser.add_argument(
        "--max-model-size",
        metavar="SIZE",
        type=model_size,
        help="largest model file (with its external data) the intake accepts, e.g. 1.5GiB or 800MB "
        "(default 1GiB; at most 2GiB, ONNX's protobuf limit)",
    )


def model_size(text: str) -> int:
    """'1.5GiB', '800MB', '123456' -> bytes, within what one ONNX protocol buffer can hold."""
    from scanner.intake.limits import PROTOBUF_LIMIT_BYTES

    number = text.strip().upper().rstrip("BIKMG")
    unit = text.strip().upper()[len(number) :]
    try:
        size = float(number) * _SIZE_UNITS[unit]
    except (ValueError, KeyError):
        raise argparse.ArgumentTypeError(f"expected a size like 1.5GiB, 800MB or 123456, got {text!r}") from None
    if not 1 <= size <= PROTOBUF_LIMIT_BYTES + 1:  # checked as a float: also refuses inf and nan
        raise argparse.ArgumentTypeError(f"{text!r} is not between 1 byte and 2GiB (ONNX's protobuf limit)")
    return min(int(size), PROTOBUF_LIMIT_BYTES)


_SECONDS_PER = {"": 1, "s": 1, "m": 60, "h": 3600}
_PASSES_PER = {"": 1, "k": 10**3, "M": 10**6}
BUDGET_FORMS = "seconds (600, 600s, 10m, 1h) or forward passes (150000passes, 150kpasses, 2Mpasses); 0 for none"


def add_budget(parser: argparse.ArgumentParser) -> None:
    """--budget, for every command that scans (scan, serve, rescan): the same meaning and default everywhere."""
    parser.add_argument(
        "--budget",
        metavar="BUDGET",
        type=budget,
        default=DEFAULT_BUDGET,
        help="what one model's detectors should take together (shared evenly): seconds (600, 10m), which each fits "
        "its settings to from the model's measured cost of a forward pass on this machine, or forward passes "
        "(150kpasses: a pass with its backward counts 3), the same settings on any machine; the report says which "
        f"applied and when a detector reduced its settings (default {DEFAULT_BUDGET_S:g}s, 0 for full settings always)",
    )


def budget(text: str) -> Budget | None:
    """'600', '600s', '10m', '1h' -> seconds; '150000passes', '150kpasses', '2Mpasses' -> passes; 0 -> None (full
    settings). Units are case-sensitive: 'm' is minutes, 'M' a million passes."""
    match = re.fullmatch(r"(\d+(?:\.\d*)?)(?:([smh]?)|([kM]?)passes)", text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"expected {BUDGET_FORMS}, got {text!r}")
    number, seconds_unit, passes_unit = match.groups()
    if passes_unit is None:
        amount, unit = float(number) * _SECONDS_PER[seconds_unit], BudgetUnit.SECONDS
    else:
        amount, unit = float(number) * _PASSES_PER[passes_unit], BudgetUnit.PASSES
    if not amount < math.inf:
        raise argparse.ArgumentTypeError(f"expected {BUDGET_FORMS}, got {text!r}")
    return Budget(amount, unit) if amount else None
