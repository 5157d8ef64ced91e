"""`model-scanner policy`: validate a policy file, or print a built-in one to start from."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Sized
from pathlib import Path
from typing import Any

from scanner.policy import BUILTIN_POLICIES, builtin_policy_text, validate_policy_file, validate_policy_text

EXAMPLES = f"""\
examples:
  model-scanner policy validate policies/default.yaml
  model-scanner policy validate my-policy.yaml --strict      # expired waivers fail too
  model-scanner policy show strict > my-policy.yaml          # start from a built-in policy

validate exits 0 when the policy is valid (warnings, such as an expired waiver, are printed), 1 with --strict when
there are warnings, 2 when it is invalid. Built-in policies: {", ".join(BUILTIN_POLICIES)}.
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "policy",
        help="validate or show policies",
        description="Work with YAML policies: validate one (every problem, with the path of the bad key), or print a "
        "built-in one.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    validate = actions.add_parser(
        "validate",
        help="check a policy file",
        description="Check a policy file against the schema and for meaning (globs, detectors, rule ids, dates).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    validate.add_argument(
        "file", metavar="FILE", help=f"a policy file, or a built-in name ({', '.join(BUILTIN_POLICIES)})"
    )
    validate.add_argument("--strict", action="store_true", help="exit 1 when there are warnings")
    validate.add_argument(
        "--today", type=_day, metavar="YYYY-MM-DD", help="judge waiver expiry as of this day (default: today)"
    )
    validate.set_defaults(run=run_validate)
    show = actions.add_parser(
        "show",
        help="print a built-in policy",
        description="Print a built-in policy's YAML, comments included, to start your own from.",
        epilog="example:\n  model-scanner policy show strict > my-policy.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    show.add_argument("name", choices=BUILTIN_POLICIES)
    show.set_defaults(run=run_show)


def run_validate(args: argparse.Namespace) -> int:
    if args.file in BUILTIN_POLICIES and not Path(args.file).exists():  # as --policy reads names
        validation = validate_policy_text(
            builtin_policy_text(args.file), source=args.file, base_dir=None, today=args.today
        )
    else:
        validation = validate_policy_file(args.file, today=args.today)
    for error in validation.errors:
        print(f"{validation.source}: error: {error}")
    if validation.more_errors:
        print(f"{validation.source}: error: ... and {validation.more_errors} more problems (fix these first)")
    for warning in validation.warnings:
        print(f"{validation.source}: warning: {warning}")
    if validation.policy is None:
        count = len(validation.errors) + validation.more_errors
        print(f"{validation.source}: invalid ({count} problem{'s' if count != 1 else ''})")
        return 2
    policy = validation.policy
    print(
        f"{validation.source}: valid: policy {policy.label}, {_count(policy.rules, 'rule')}, "
        f"{_count(policy.waivers, 'waiver')}, fail_closed {str(policy.fail_closed).lower()}"
    )
    return 1 if args.strict and validation.warnings else 0


def _count(items: Sized, noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def _day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}") from None


def run_show(args: argparse.Namespace) -> int:
    sys.stdout.write(builtin_policy_text(args.name))
    return 0
