"""`model-scanner serve`: scan every model version registered in MLflow, and tag it with the verdict."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scanner.commands.options import add_budget, add_max_model_size
from scanner.errors import RegistryError, UsageError

if TYPE_CHECKING:
    from scanner.registry.service import ScannerService

log = logging.getLogger(__name__)

TOKEN_ENV = "MODEL_SCANNER_TOKEN"
SECRET_ENV = "MODEL_SCANNER_WEBHOOK_SECRET"
STATE_ENV = "MODEL_SCANNER_STATE"

# Each call to MLflow: 2 retries, 1 s and 2 s apart, 30 s per read (the operator's own settings win).
MLFLOW_CALL_BOUNDS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}
# SIGTERM to exit: a job still running then is requeued at the next start.
SHUTDOWN_S = 8.0

EPILOG = """\
examples:
  # beside `mlflow server --app-name model-scanner-gate ...` (same MODEL_SCANNER_TOKEN for both)
  MODEL_SCANNER_TOKEN=... model-scanner serve --tracking-uri http://127.0.0.1:5000 --policy policies/default.yaml

  # MLflow reaches this host under another name
  model-scanner serve --tracking-uri http://mlflow:5000 --listen 0.0.0.0:8765 --public-url http://scanner:8765/webhook

It receives MLflow webhooks (model_version.created) on --listen, stores them in a durable queue (--state-dir), scans
each version once per (model digest, detector versions, policy, --budget) and writes the scan.* tags, with the JSON
report and heatmaps logged as artifacts on the version's run. A poller (--reconcile-interval) catches versions the
webhooks missed. The webhook secret comes from $MODEL_SCANNER_WEBHOOK_SECRET, or is made once and kept in the state dir.
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="scan MLflow model versions as they are registered (webhook receiver, queue, workers)",
        description="Scan every model version registered in an MLflow server and tag it with the verdict.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--tracking-uri", required=True, help="the MLflow server, e.g. http://127.0.0.1:5000")
    parser.add_argument("--policy", help="policy file (default: the shipped default policy)")
    parser.add_argument("--listen", default="127.0.0.1:8765", help="HOST:PORT for webhooks (default: %(default)s)")
    parser.add_argument("--public-url", help="the URL MLflow posts to (default: http://HOST:PORT/webhook)")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get(STATE_ENV, ".model-scanner")),
        help="queue database and webhook secret (default: $MODEL_SCANNER_STATE or ./.model-scanner)",
    )
    parser.add_argument("--detectors", help="comma-separated, e.g. one-pixel,ban (default: every detector installed)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        help="jobs at a time: a version MLflow fails on holds up one worker, not the queue (default: %(default)s, "
        "from this machine's CPUs)",
    )
    parser.add_argument(
        "--reconcile-interval", type=float, default=60.0, help="seconds between registry polls (default: %(default)s)"
    )
    parser.add_argument("--no-webhook", action="store_true", help="do not create the MLflow webhook (poll only)")
    parser.add_argument(
        "--mlflow-wait",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="at start, how long to wait for an unreachable MLflow server before giving up (default: %(default)s)",
    )
    add_max_model_size(parser)
    add_budget(parser)
    parser.set_defaults(run=run)


def default_workers() -> int:
    """At least two, so that one stuck job never stalls the queue; one more per 4 CPUs, up to 4 (scans are CPU-bound
    and each one already uses several threads)."""
    return min(4, max(2, (os.cpu_count() or 1) // 4))


def _listen_address(text: str) -> tuple[str, int]:
    host, _, port_text = text.rpartition(":")
    try:
        port = int(port_text)
    except ValueError as error:
        raise UsageError(f"--listen {text!r}: expected HOST:PORT", hint="e.g. --listen 127.0.0.1:8765") from error
    if not 0 <= port <= 65535:
        raise UsageError(f"--listen {text!r}: port must be 0-65535", hint="e.g. --listen 127.0.0.1:8765")
    return host or "127.0.0.1", port


def webhook_secret(state_dir: Path) -> str:
    """$MODEL_SCANNER_WEBHOOK_SECRET, else a secret made once and kept (mode 0600) in the state dir.

    A blank secret is refused wherever it comes from: anyone can sign a delivery with the empty string.
    """
    from_env = os.environ.get(SECRET_ENV)
    if from_env is not None:
        return _usable_secret(from_env, f"${SECRET_ENV}", hint=f"set ${SECRET_ENV} to a long random string")
    path = state_dir / "webhook-secret"
    if path.is_file():
        try:
            kept = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as error:
            raise UsageError(
                f"cannot read the webhook secret {path}: {error}", hint=f"fix or delete it, or set ${SECRET_ENV}"
            ) from None
        return _usable_secret(kept, str(path), hint=f"delete it (serve then makes one) or set ${SECRET_ENV}")
    state_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
        stream.write(secret)
    return secret


def _usable_secret(secret: str, source: str, *, hint: str) -> str:
    if not secret.strip():
        raise UsageError(f"the webhook secret from {source} is empty: anyone could sign a webhook delivery", hint=hint)
    return secret


class _StopRequested(BaseException):
    """SIGTERM/SIGINT before the service runs: unwinds whatever start-up is doing (a BaseException, so that no
    `except Exception` on the way, such as a retry loop's, swallows it)."""


def run(args: argparse.Namespace) -> int:
    stop = threading.Event()
    starting = True

    def on_signal(signum: int, frame: object) -> None:
        stop.set()
        if starting:
            raise _StopRequested

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    try:
        service = _start(args, stop)
        starting = False
    except _StopRequested:
        print("model-scanner serve: stopped before it started", file=sys.stderr, flush=True)
        return 0
    if service is None:  # asked to stop while waiting for MLflow
        return 0
    try:
        while not stop.wait(1.0):
            pass
    finally:
        print("model-scanner serve: stopping", file=sys.stderr, flush=True)
        stopped = service.stop(timeout_s=SHUTDOWN_S)
    if not stopped:
        # A job's thread is still inside MLflow or a scan, and the interpreter's exit would wait for the thread pools
        # it uses (an artifact download's, say). The queue is safe on a hard exit (WAL, synchronous writes) and the
        # next start requeues the job.
        logging.shutdown()
        sys.stderr.flush()
        os._exit(0)
    return 0


def _start(args: argparse.Namespace, stop: threading.Event) -> ScannerService | None:
    from scanner.registry.engine import build_engine
    from scanner.registry.reachability import wait_until_reachable
    from scanner.registry.service import ScannerService, ServiceConfig

    # MLflow's download progress bars would flood the service's log, one per scanned version.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # MLflow's client retries a failing call for minutes by default (7 retries, backoff factor 2, 120 s per read):
    # a version it answers 500 on would hold a worker that long, and a server that is down would too. The service
    # retries jobs itself (with backoff, MAX_ATTEMPTS) and the poller catches up, so each call is kept short.
    for name, value in MLFLOW_CALL_BOUNDS.items():
        os.environ.setdefault(name, value)
    host, port = _listen_address(args.listen)
    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    token = os.environ.get(TOKEN_ENV) or None
    if token is None:
        log.warning("%s is not set: a server running the gate will refuse this service's scan tags", TOKEN_ENV)
    secret = webhook_secret(args.state_dir)  # before the slow engine: a bad secret fails at once
    # Before the slow engine too, and without MLflow's minutes of retries: a server that is down is named at once.
    unreachable = wait_until_reachable(
        args.tracking_uri,
        wait_s=max(0.0, args.mlflow_wait),
        stop=stop,
        on_failure=lambda reason: log.error(
            "MLflow at %s is unreachable (%s); waiting up to %g s for it (--mlflow-wait)",
            args.tracking_uri,
            reason,
            args.mlflow_wait,
        ),
    )
    if stop.is_set():
        print("model-scanner serve: stopped before it started", file=sys.stderr, flush=True)
        return None
    if unreachable is not None:
        raise RegistryError(
            f"MLflow at {args.tracking_uri} is unreachable: {unreachable}",
            hint="start the MLflow server, or check --tracking-uri",
        )
    names = [d.strip() for d in args.detectors.split(",") if d.strip()] if args.detectors else None
    engine = build_engine(
        args.policy, names, device=args.device, max_model_bytes=args.max_model_size, budget=args.budget
    )
    config = ServiceConfig(
        tracking_uri=args.tracking_uri,
        queue_path=args.state_dir / "queue.db",
        webhook_secret=secret,
        scanner_token=token,
        listen_host=host,
        listen_port=port,
        public_url=args.public_url,
        workers=args.workers,
        reconcile_interval_s=args.reconcile_interval,
        register_webhook=not args.no_webhook,
    )
    service = ScannerService(config, engine)
    try:
        service.start()
    except BaseException:  # a signal, or MLflow gone since the check: leave the queue and the port to the next start
        service.stop(timeout_s=1)
        raise
    print(
        f"model-scanner serve: webhooks on {service.webhook_url}, policy {engine.policy_label}, "
        f"queue {config.queue_path}",
        file=sys.stderr,
        flush=True,
    )
    return service
