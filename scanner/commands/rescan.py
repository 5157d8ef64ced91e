"""`model-scanner rescan`: scan a registry's versions again where their scan is missing, outdated or too old."""

from __future__ import annotations

import argparse
import os
import re
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from scanner.commands.options import add_budget, add_max_model_size
from scanner.errors import UsageError

TOKEN_ENV = "MODEL_SCANNER_TOKEN"
STATE_ENV = "MODEL_SCANNER_STATE"
POLICY_ENV = "MODEL_SCANNER_POLICY"
QUEUE_FILE = "queue.db"  # inside serve's --state-dir
EXIT_ALLOWED, EXIT_NEWLY_BLOCKED, EXIT_ERROR = 0, 1, 2
DEFAULT_DETECTORS = "one-pixel,ban"

EXAMPLES = """\
examples:
  # nightly (cron, systemd timer, Kubernetes CronJob: see hooks/): only what is stale, changes as Markdown
  model-scanner rescan --tracking-uri http://mlflow:5000 --stale-only --max-age 30d --format markdown

  # after upgrading the scanner: everything under fraud-*, on an existing Ray cluster (one GPU per scan if any)
  model-scanner rescan --tracking-uri http://mlflow:5000 --models 'fraud-*' --executor ray --ray-address auto

A version is stale when its scan is missing or failed, was made by other detector versions, another policy, scanner
version or --budget, or (with --max-age) is older than that. Without --stale-only every matching version is scanned.
Beside a running `serve`, pass its --state-dir (or $MODEL_SCANNER_STATE): versions serve has queued are left to it
and no version is scanned by both. Exit status: 0 nothing newly blocked, 1 a version became blocked, 2 a version
could not be scanned (or bad usage).
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "rescan",
        help="re-scan registered model versions whose scan is missing, outdated or too old",
        description="Re-scan the model versions of an MLflow registry, update their scan.* tags, and report only "
        "what changed (newly blocked, newly allowed).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI"),
        help="the MLflow server (default: $MLFLOW_TRACKING_URI)",
    )
    parser.add_argument(
        "--models",
        metavar="GLOB",
        action="append",
        default=[],
        help="registered model names to consider (fnmatch glob; repeatable; default: all)",
    )
    parser.add_argument("--stale-only", action="store_true", help="only versions whose scan is missing or stale")
    parser.add_argument("--max-age", metavar="AGE", type=parse_age, help="a scan older than this is stale: 30d, 12h")
    parser.add_argument("--executor", choices=["local", "ray"], default="local", help="where scans run")
    parser.add_argument("--ray-address", metavar="ADDR", help="an existing Ray cluster (default: start a local one)")
    parser.add_argument("--policy", metavar="FILE", help=f"policy file or built-in name (default: ${POLICY_ENV})")
    parser.add_argument("--detectors", default=DEFAULT_DETECTORS, help="comma-separated (default: %(default)s)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=os.environ.get(STATE_ENV),
        help="serve's state dir, to share its queue (default: $MODEL_SCANNER_STATE; none: no coordination)",
    )
    parser.add_argument("--format", dest="report_format", choices=["json", "markdown"], default="json")
    parser.add_argument("--output", metavar="FILE", type=Path, help="write the report here instead of stdout")
    parser.add_argument("--dry-run", action="store_true", help="list what would be re-scanned; scan nothing")
    add_max_model_size(parser)
    add_budget(parser)
    parser.set_defaults(run=run)


def parse_age(text: str) -> timedelta:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhdw])", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number and a unit (s, m, h, d, w), e.g. 30d")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[match[2]]
    return timedelta(**{unit: float(match[1])})


def run(args: argparse.Namespace) -> int:
    if not args.tracking_uri:
        raise UsageError("no MLflow server given", hint="pass --tracking-uri URI or set MLFLOW_TRACKING_URI")
    from scanner.detectors import DETECTORS
    from scanner.policy import BUILTIN_POLICIES, load_builtin_policy, load_policy
    from scanner.registry.client import RegistryClient
    from scanner.registry.queue import WorkQueue
    from scanner.registry.rescan.driver import Rescanner, RescanRequest
    from scanner.registry.rescan.executors import make_executor
    from scanner.registry.rescan.plan import summary_as_json, summary_as_markdown

    detectors = [name.strip() for name in args.detectors.split(",") if name.strip()]
    unknown = [name for name in detectors if name not in DETECTORS]
    if unknown or not detectors:
        raise UsageError(f"unknown detector(s): {', '.join(unknown)}", hint=f"choose from: {', '.join(DETECTORS)}")
    choice = args.policy or os.environ.get(POLICY_ENV)
    if choice is None:
        policy = load_builtin_policy()
    elif choice in BUILTIN_POLICIES and not Path(choice).exists():
        policy = load_builtin_policy(choice)
    else:
        policy = load_policy(choice)
    queue = WorkQueue(Path(args.state_dir) / QUEUE_FILE) if args.state_dir else None
    registry = RegistryClient(args.tracking_uri, token=os.environ.get(TOKEN_ENV))
    request = RescanRequest(
        models=tuple(args.models), stale_only=args.stale_only, max_age=args.max_age, dry_run=args.dry_run
    )
    try:
        with make_executor(args.executor, ray_address=args.ray_address) as executor:
            rescanner = Rescanner(
                registry,
                policy,
                detectors,
                executor,
                device=args.device,
                queue=queue,
                max_model_bytes=args.max_model_size,
                budget=args.budget,
            )
            summary = rescanner.run(request)
    finally:
        if queue is not None:
            queue.close()
    text = summary_as_markdown(summary) if args.report_format == "markdown" else summary_as_json(summary)
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
    if summary.failed:
        return EXIT_ERROR
    return EXIT_NEWLY_BLOCKED if summary.newly_blocked else EXIT_ALLOWED
