"""Options that more than one command takes, defined once so that they read and check the same everywhere."""

from __future__ import annotations

import argparse

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
