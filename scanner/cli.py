"""The command line: `model-scanner` and `python -m scanner`.

The only place that reads flags and MODEL_SCANNER_* variables, configures logging, and turns errors into exit codes:
0 every target allowed, 1 at least one target blocked, 2 an expected error (bad usage, bad config, a target that
could not be scanned), 3 a crash (a bug: please report it with the traceback).
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Sequence

from scanner import __version__
from scanner.commands import detector, policy, rescan, scan, serve, zoo
from scanner.errors import ScannerError

EXIT_ERROR = 2
EXIT_CRASH = 3

# Explicit registration: one module per subcommand, each with `register(subparsers)`.
COMMANDS = (scan, policy, zoo, detector, serve, rescan)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="model-scanner",
        description="Scan neural networks for backdoors (trojans) and gate their promotion in a model registry.",
        epilog="Run 'model-scanner COMMAND --help' for a command's options and examples.",
    )
    parser.add_argument("--version", action="version", version=f"model-scanner {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output on stderr (-vv: debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors on stderr, no progress bars")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def _configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    logging.basicConfig(level=level, stream=sys.stderr, format="model-scanner: %(levelname)s: %(message)s")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose, args.quiet)
    try:
        return int(args.run(args))
    except ScannerError as error:
        print(f"model-scanner: error: {error.one_line()}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("model-scanner: interrupted", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        print("model-scanner: internal error (a bug): please report it with the traceback above", file=sys.stderr)
        return EXIT_CRASH
