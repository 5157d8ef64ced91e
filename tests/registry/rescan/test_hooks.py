"""The shipped schedules (cron, systemd, Kubernetes) run `rescan` with options the CLI really accepts."""

import shlex

import yaml

from scanner.cli import build_parser


def parses(argv):
    args = build_parser().parse_args(argv)
    assert args.command == "rescan"
    return args


def test_cron_line(repo_root):
    lines = (repo_root / "hooks" / "cron" / "model-scanner-rescan").read_text().splitlines()
    (job,) = [line for line in lines if line and line[0].isdigit()]
    fields = job.split(None, 6)
    assert fields[5] == "model-scanner"  # /etc/cron.d lines name the user
    command = shlex.split(fields[6].split("||")[0])
    assert command[0].endswith("/model-scanner")
    args = parses(command[1:])
    assert args.stale_only and args.max_age.days == 30 and args.report_format == "markdown"


def test_systemd_units(repo_root):
    service = (repo_root / "hooks" / "systemd" / "model-scanner-rescan.service").read_text()
    (exec_start,) = [line for line in service.splitlines() if line.startswith("ExecStart=")]
    args = parses(shlex.split(exec_start.removeprefix("ExecStart="))[1:])
    assert args.stale_only
    timer = (repo_root / "hooks" / "systemd" / "model-scanner-rescan.timer").read_text()
    assert "OnCalendar=" in timer and "Persistent=true" in timer


def test_kubernetes_cronjob(repo_root):
    document = yaml.safe_load((repo_root / "hooks" / "k8s" / "rescan-cronjob.yaml").read_text())
    assert (document["apiVersion"], document["kind"]) == ("batch/v1", "CronJob")
    assert document["spec"]["concurrencyPolicy"] == "Forbid"
    (container,) = document["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    args = parses(container["args"])
    assert args.stale_only
    env = {entry["name"] for entry in container["env"]}
    assert {"MLFLOW_TRACKING_URI", "MODEL_SCANNER_TOKEN"} <= env


def test_rescan_needs_a_tracking_server(repo_root):
    import subprocess
    import sys

    env = {"PATH": "/usr/bin:/bin"}
    completed = subprocess.run(
        [sys.executable, "-m", "scanner", "rescan"], cwd=repo_root, capture_output=True, text=True, env=env
    )
    assert completed.returncode == 2
    assert "--tracking-uri" in completed.stderr
