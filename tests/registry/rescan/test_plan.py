"""The re-scan's choice of versions and its change report: pure functions over tags."""

import json
from datetime import datetime, timedelta, timezone

from scanner.findings import Action, Decision, ErrorInfo, ScanResult, Status, Verdict
from scanner.registry.rescan.plan import (
    ChangeKind,
    Outcome,
    PlannedScan,
    RegisteredVersion,
    ScanStamp,
    Staleness,
    change_of,
    plan_rescan,
    staleness,
    summarise,
    summary_as_json,
    summary_as_markdown,
)

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=timezone.utc)


def engine_key(detectors=(("ban", "1"), ("one_pixel", "2")), policy="abc", scanner="0.1.0"):
    """Shaped like scanner.registry.engine.CoreScanEngine.key."""
    return json.dumps({"detectors": sorted(detectors), "policy": policy, "scanner": scanner})


STAMP = ScanStamp(scanner_version="0.1.0", policy="default@abc", engine_key=engine_key())


def tags(**overrides):
    base = {
        "scan.status": "scanned",
        "scan.decision": "allow",
        "scan.policy": "default@abc",
        "scan.scanner_version": "0.1.0",
        "scan.scanned_at": (NOW - timedelta(days=1)).isoformat(timespec="seconds"),
        "scan.engine": engine_key(),
        "scan.files": "0" * 64,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def test_a_current_scan_is_not_stale():
    assert staleness(tags(), STAMP, now=NOW, max_age=timedelta(days=7)) is None


def test_each_reason_for_a_new_scan():
    assert staleness({}, STAMP, now=NOW) is Staleness.NEVER_SCANNED
    assert staleness(tags(**{"scan.status": "pending"}), STAMP, now=NOW) is Staleness.NEVER_SCANNED
    assert staleness(tags(**{"scan.status": "error"}), STAMP, now=NOW) is Staleness.FAILED
    # Scanned before the verdict was bound to the version's files: the gate judges it unscanned, so it is scanned.
    assert staleness(tags(**{"scan.files": None}), STAMP, now=NOW) is Staleness.FILES_UNRECORDED
    old_detector = engine_key(detectors=(("ban", "1"), ("one_pixel", "1")))
    assert staleness(tags(**{"scan.engine": old_detector}), STAMP, now=NOW) is Staleness.DETECTOR_CHANGED
    fewer_detectors = engine_key(detectors=(("one_pixel", "2"),))
    assert staleness(tags(**{"scan.engine": fewer_detectors}), STAMP, now=NOW) is Staleness.DETECTOR_CHANGED
    old_policy = engine_key(policy="000")
    assert staleness(tags(**{"scan.engine": old_policy}), STAMP, now=NOW) is Staleness.POLICY_CHANGED
    assert staleness(tags(**{"scan.policy": "renamed@abc"}), STAMP, now=NOW) is Staleness.POLICY_CHANGED
    old_scanner = engine_key(scanner="0.0.9")
    assert staleness(tags(**{"scan.engine": old_scanner}), STAMP, now=NOW) is Staleness.SCANNER_CHANGED
    # Tagged by a scanner that did not record its engine: judged by the plain tags, detectors unknown.
    assert staleness(tags(**{"scan.engine": None}), STAMP, now=NOW) is Staleness.DETECTOR_CHANGED
    untracked_policy = {"scan.engine": None, "scan.policy": "strict@def"}
    assert staleness(tags(**untracked_policy), STAMP, now=NOW) is Staleness.POLICY_CHANGED
    untracked_scanner = {"scan.engine": None, "scan.scanner_version": "0.0.9"}
    assert staleness(tags(**untracked_scanner), STAMP, now=NOW) is Staleness.SCANNER_CHANGED
    assert staleness(tags(), STAMP, now=NOW, max_age=timedelta(hours=12)) is Staleness.EXPIRED
    assert staleness(tags(**{"scan.scanned_at": "yesterday"}), STAMP, now=NOW, max_age=timedelta(days=7)) is (
        Staleness.EXPIRED
    )


def test_plan_filters_by_name_glob_and_staleness():
    versions = [
        RegisteredVersion("fraud-cnn", "1", tags()),
        RegisteredVersion("fraud-cnn", "2", {}),
        RegisteredVersion(
            "vision-net", "1", tags(**{"scan.policy": "old@000", "scan.engine": engine_key(policy="000")})
        ),
    ]
    stale = plan_rescan(versions, STAMP, now=NOW, stale_only=True)
    assert [(p.version.uri, p.reason) for p in stale] == [
        ("models:/fraud-cnn/2", Staleness.NEVER_SCANNED),
        ("models:/vision-net/1", Staleness.POLICY_CHANGED),
    ]
    everything = plan_rescan(versions, STAMP, now=NOW, stale_only=False, models=["fraud-*"])
    assert [(p.version.uri, p.reason) for p in everything] == [
        ("models:/fraud-cnn/1", Staleness.REQUESTED),
        ("models:/fraud-cnn/2", Staleness.NEVER_SCANNED),
    ]


def result(action, *, verdict=Verdict.CLEAN, status=Status.SCANNED, score=0.1):
    decision = Decision(action=action, reasons=("rule",)) if action else None
    error = ErrorInfo("intake", "bad file") if status is Status.ERROR else None
    return ScanResult(
        target="t", sha256="s", status=status, verdict=verdict, score=score, decision=decision, error=error
    )


def outcome(before, action, **kwargs):
    version = RegisteredVersion("m", "3", tags(**{"scan.decision": before}))
    return Outcome(PlannedScan(version, Staleness.DETECTOR_CHANGED), result(action, **kwargs))


def test_only_changed_decisions_are_reported():
    assert change_of(outcome("allow", Action.ALLOW)) is None
    assert change_of(outcome("allow", Action.BLOCK, verdict=Verdict.BACKDOORED)).kind is ChangeKind.NEWLY_BLOCKED
    assert change_of(outcome("block", Action.ALLOW)).kind is ChangeKind.NEWLY_ALLOWED
    assert change_of(outcome(None, Action.ALLOW)).kind is ChangeKind.NEWLY_ALLOWED
    assert change_of(outcome("allow", Action.WARN)).kind is ChangeKind.NEWLY_WARNED
    failed = change_of(outcome("allow", None, status=Status.ERROR, verdict=Verdict.UNKNOWN))
    assert failed.kind is ChangeKind.FAILED and "bad file" in failed.message


def test_reports_list_changes_and_counts():
    outcomes = [outcome("allow", Action.ALLOW), outcome("allow", Action.BLOCK, verdict=Verdict.BACKDOORED, score=0.93)]
    summary = summarise(
        5, [o.planned for o in outcomes], outcomes, [("x", "1", "queued in serve")], seconds=1.5, executor="local"
    )
    document = json.loads(summary_as_json(summary))
    assert document["schema"] == "model-scanner/rescan/v1"
    assert (document["considered"], document["planned"], document["scanned"]) == (5, 2, 2)
    assert document["rescanned"] == ["models:/m/3", "models:/m/3"]
    assert document["reasons"] == {"detector_changed": 2}
    assert document["plan"][0] == {"version": "models:/m/3", "reason": "detector_changed"}
    assert [(c["name"], c["change"], c["before"], c["after"]) for c in document["changes"]] == [
        ("m", "newly_blocked", "allow", "block")
    ]
    markdown = summary_as_markdown(summary)
    assert "## Newly blocked (1)" in markdown and "| m | 3 | allow | block | backdoored | 0.930 |" in markdown
    assert "Newly allowed" not in markdown and "Skipped 1 version" in markdown


def test_engine_keys_parse_in_any_detector_order():
    from scanner.registry.rescan.plan import engine_parts

    one = engine_parts(engine_key(detectors=(("ban", "1"), ("one_pixel", "2"))))
    other = engine_parts(
        json.dumps({"detectors": [["one_pixel", "2"], ["ban", "1"]], "policy": "abc", "scanner": "0.1.0"})
    )
    assert one == other and one.detectors == (("ban", "1"), ("one_pixel", "2"))
    assert engine_parts("not json") is None and engine_parts(None) is None


def test_a_refit_of_the_shipped_files_makes_scans_stale():
    def with_data(data):
        return json.dumps({**json.loads(engine_key()), "data": data})

    stamp = ScanStamp(scanner_version="0.1.0", policy="default@abc", engine_key=with_data("new"))
    assert staleness(tags(**{"scan.engine": with_data("new")}), stamp, now=NOW) is None
    # Same detector versions, classifier or calibration refitted: the version must be scanned again.
    assert staleness(tags(**{"scan.engine": with_data("old")}), stamp, now=NOW) is Staleness.DETECTOR_CHANGED
    assert staleness(tags(), stamp, now=NOW) is Staleness.DETECTOR_CHANGED  # key written before the digest was


def test_the_engine_key_carries_the_shipped_files_digest():
    from scanner.detectors import shipped_data_digest
    from scanner.detectors.one_pixel import OnePixelDetector
    from scanner.policy.loader import load_builtin_policy
    from scanner.registry.engine import CoreScanEngine
    from scanner.registry.rescan.plan import engine_parts

    engine = CoreScanEngine([OnePixelDetector()], load_builtin_policy())
    parts = engine_parts(engine.key)
    assert parts is not None and parts.data == shipped_data_digest()
    assert len(parts.data) == 16 and int(parts.data, 16) >= 0


def test_a_scan_under_another_budget_is_stale_and_an_old_key_without_one_reads_as_stale():
    from scanner.detectors.one_pixel import OnePixelDetector
    from scanner.findings import Budget, BudgetUnit
    from scanner.policy.loader import load_builtin_policy
    from scanner.registry.engine import CoreScanEngine

    policy = load_builtin_policy()

    def key(budget):
        return CoreScanEngine([OnePixelDetector()], policy, budget=budget).key

    stamp = ScanStamp(scanner_version="0.1.0", policy=policy.label, engine_key=key(Budget(600)))
    scanned = {"scan.policy": policy.label}
    assert staleness(tags(**scanned, **{"scan.engine": key(Budget(600))}), stamp, now=NOW) is None
    for other in (Budget(120), Budget(600, BudgetUnit.PASSES), None):
        assert staleness(tags(**scanned, **{"scan.engine": key(other)}), stamp, now=NOW) is Staleness.BUDGET_CHANGED
    written_before_budgets = json.loads(key(Budget(600)))
    del written_before_budgets["budget"]
    old = tags(**scanned, **{"scan.engine": json.dumps(written_before_budgets)})
    assert staleness(old, stamp, now=NOW) is Staleness.BUDGET_CHANGED
    (planned,) = plan_rescan([RegisteredVersion("cnn", "1", old)], stamp, now=NOW, stale_only=True)
    assert planned.reason is Staleness.BUDGET_CHANGED
