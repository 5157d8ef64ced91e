"""`make demo`: an MLflow registry that refuses to promote a backdoored model.

Starts a local MLflow server (sqlite, light settings) with the model-scanner gate and the scanner service, prepares
a clean and a backdoored digit classifier (trained once by the zoo, about a minute, then cached in
$MODEL_SCANNER_CACHE), registers both, waits for the verdicts, tries to promote both, and stops everything it
started. Nothing is downloaded.
Run `make demo DEMO_ARGS=--keep` (or `.venv/bin/python hooks/demo.py --keep`) to leave the server up afterwards and
look around in the MLflow UI; without it, the demo says so where it prints the UI links.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import secrets
import sys
import tempfile
import textwrap
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

PROMOTIONS = (("alias", "champion"), ("stage", "Production"))
VERDICT_TIMEOUT_S = 900  # BAN takes a while on a busy 2-core machine (about 90 s a model at load 15)


def say(text: str = "", *, end: str = "\n") -> None:
    print(text, end=end, flush=True)


@contextmanager
def step(number: int, total: int, text: str) -> Iterator[None]:
    say(f"  {number}/{total} {text} ... ", end="")
    started = time.monotonic()
    yield
    say(f"({time.monotonic() - started:.0f} s)")


def cache_dir() -> Path:
    return Path(os.environ.get("MODEL_SCANNER_CACHE", Path.home() / ".cache" / "model-scanner"))


def demo_models() -> tuple[Any, Any, Path]:
    """A clean and a backdoored digits16 model from a small zoo in the cache (built on first use, ~1 min)."""
    from scanner.zoo.build import build_zoo

    out = cache_dir() / "demo-zoo" / "digits16-patch"
    # A patch trigger: the kind of backdoor the one-pixel signature sees best (see bench/RESULTS.md for
    # the attacks it handles less well).
    entries = build_zoo("digits16", 1, 1, out, seed=7, attacks=("patch",))
    clean = next(e for e in entries if not e.backdoored)
    backdoored = next(e for e in entries if e.backdoored)
    return clean, backdoored, out


def register(url: str, onnx_path: Path, name: str, clean_sample: Path) -> str:
    import mlflow
    import onnx

    mlflow.set_tracking_uri(url)
    # MLflow prints run links and "Successfully registered model" notes of its own.
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        mlflow.set_experiment("model-scanner-demo")
        with mlflow.start_run(run_name=name):
            info = mlflow.onnx.log_model(onnx.load(str(onnx_path)), name="model", save_as_external_data=False)
            mlflow.log_artifact(str(clean_sample))  # clean_sample.npz at the run's root: BAN's clean data
        return str(mlflow.register_model(info.model_uri, name).version)


def wait_for_scan(client: Any, name: str, version: str) -> dict[str, str]:
    deadline = time.monotonic() + VERDICT_TIMEOUT_S
    while time.monotonic() < deadline:
        version_tags = dict(client.get_model_version(name, version).tags)
        if version_tags.get("scan.status") not in (None, "pending"):
            return version_tags
        time.sleep(0.5)
    raise SystemExit(f"demo: no verdict for {name} v{version} after {VERDICT_TIMEOUT_S} s (see the log above)")


def try_promotion(client: Any, name: str, version: str, kind: str, target: str) -> str | None:
    """None when the registry accepted the promotion, else its refusal message."""
    from mlflow.exceptions import RestException

    try:
        if kind == "alias":
            client.set_registered_model_alias(name, target, version)
        else:
            client.transition_model_version_stage(name, version, target)
    except RestException as refusal:
        return str(refusal.message)  # starts with the error code, PERMISSION_DENIED
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", action="store_true", help="leave the MLflow server running until Ctrl-C")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.ERROR, format="  [%(name)s] %(message)s")
    # MLflow's own notes (experiment created, version registered, download bars) would drown the demo's lines.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

    from mlflow import MlflowClient

    from scanner.policy import load_builtin_policy
    from scanner.registry.engine import build_engine
    from scanner.registry.local_server import LocalMlflowServer, entry_point_dir
    from scanner.registry.service import ScannerService, ServiceConfig

    logging.getLogger("mlflow").setLevel(logging.ERROR)

    say("model-scanner demo: an MLflow model registry that refuses backdoored models\n")
    total = 6
    with tempfile.TemporaryDirectory(prefix="model-scanner-demo-") as scratch:
        state = Path(scratch)
        token = secrets.token_urlsafe(24)
        policy_file = state / "policy.yaml"
        from scanner.policy import builtin_policy_text

        policy_file.write_text(builtin_policy_text("default"), encoding="utf-8")
        server = LocalMlflowServer(
            state / "mlflow",
            pythonpath=[entry_point_dir(state / "entry-points"), REPO_ROOT],
            env={"MODEL_SCANNER_POLICY": str(policy_file), "MODEL_SCANNER_TOKEN": token},
        )
        with step(1, total, "starting an MLflow server with the model-scanner gate"):
            server.start()
            say(server.url, end=" ")
        service = None
        try:
            with step(2, total, "starting the scanner service (webhook receiver, queue, workers)"):
                engine = build_engine(str(policy_file), None, device="cpu")  # every detector installed
                detectors = [detector.name for detector in engine.detectors]
                service = ScannerService(
                    ServiceConfig(
                        tracking_uri=server.url,
                        queue_path=state / "queue.db",
                        webhook_secret=secrets.token_urlsafe(24),
                        scanner_token=token,
                        reconcile_interval_s=5,
                    ),
                    engine,
                )
                service.start()
                say(f"detectors {', '.join(detectors)}; policy {load_builtin_policy('default').label}", end=" ")
            with step(3, total, "preparing a clean and a backdoored digit classifier"):
                clean, backdoored, zoo_dir = demo_models()
                say(f"cached in {zoo_dir}", end=" ")
            say(f"        clean:      {clean.arch}, accuracy {clean.clean_acc:.2f}")
            say(
                f"        backdoored: {backdoored.arch}, {backdoored.attack} trigger -> class {backdoored.target}, "
                f"accuracy {backdoored.clean_acc:.2f}, attack success {backdoored.asr or 0:.2f}"
            )
            models = {"digits-clean": clean, "digits-backdoored": backdoored}
            versions: dict[str, str] = {}
            with step(4, total, "registering both in MLflow"):
                for name, entry in models.items():
                    sample = state / "clean_sample.npz"
                    sample.write_bytes(entry.clean_data_path(zoo_dir).read_bytes())
                    versions[name] = register(server.url, entry.path(zoo_dir), name, sample)
                say(", ".join(f"{n} v{v}" for n, v in versions.items()), end=" ")
            client = MlflowClient(server.url, registry_uri=server.url)
            verdicts: dict[str, dict[str, str]] = {}
            with step(5, total, "waiting for the scanner's verdicts (sent by MLflow webhooks)"):
                for name, version in versions.items():
                    verdicts[name] = wait_for_scan(client, name, version)
            for name, found in verdicts.items():
                say(
                    f"        {name:<18} {found.get('scan.verdict', '?'):<11} score {found.get('scan.score') or '-':<7}"
                    f"status {found.get('scan.status')}"
                )
            say(f"  6/{total} promoting both to alias 'champion' and stage 'Production' ...")
            refused_reports: list[tuple[str, str]] = []
            for name, version in versions.items():
                for kind, target in PROMOTIONS:
                    refusal = try_promotion(client, name, version, kind, target)
                    if refusal is None:
                        say(f"        ✔ {name} v{version} -> {kind} {target}: promoted")
                    else:
                        say(f"        ✘ {name} v{version} -> {kind} {target}: REFUSED")
                        say(textwrap.fill(refusal, width=116, initial_indent=" " * 12, subsequent_indent=" " * 14))
                        refused_reports.append((name, verdicts[name].get("scan.report", "")))
            say()
            for name, report in dict(refused_reports).items():
                version = versions[name]
                say(f"  Why {name} was refused, in the MLflow UI: {server.url}/#/models/{name}/versions/{version}")
                say("    tags scan.verdict / scan.score / scan.decision on the version page; the JSON report and")
                say(f"    the one-pixel heatmap are artifacts of its source run: {report}")
            say(ui_note(server.url, keep=args.keep))
            if args.keep:
                _wait_for_interrupt()
        finally:
            say("\n  stopping the scanner service and the MLflow server ... ", end="")
            if service is not None:
                service.stop(timeout_s=10)
            server.stop()
            say("done.")
    return 0


def ui_note(url: str, *, keep: bool) -> str:
    """What becomes of the UI links above: they only work while the server runs."""
    if keep:
        return f"\n  The MLflow UI is at {url} - press Ctrl-C to stop."
    return (
        "\n  The links above work only while the server runs, and it stops now: to look around in the MLflow UI,"
        "\n  run `make demo DEMO_ARGS=--keep` (or `.venv/bin/python hooks/demo.py --keep`) and press Ctrl-C when done."
    )


def _wait_for_interrupt(sleep: Callable[[float], None] = time.sleep) -> None:
    try:
        while True:
            sleep(1)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
