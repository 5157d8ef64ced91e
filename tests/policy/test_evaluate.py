import dataclasses
import datetime as dt

import pytest

from scanner.findings import Action, DetectorResult, Status, Verdict
from scanner.policy import PromotionTarget, evaluate, load_builtin_policy, load_policy
from tests.policy.results import DIGEST, failed, scanned

TODAY = dt.date(2026, 6, 1)
PLAIN = PromotionTarget("fraud-cnn")
PRODUCTION = PromotionTarget("fraud-cnn", stage="Production")
STAGING = PromotionTarget("fraud-cnn", stage="staging")
CHAMPION = PromotionTarget("fraud-cnn", alias="champion")
BACKDOORED = scanned(0.93, Verdict.BACKDOORED, one_pixel=0.9, ban=0.96)
CLEAN = scanned(0.08, Verdict.CLEAN, one_pixel=0.1, ban=0.06)


@pytest.fixture(scope="module")
def default():
    return load_builtin_policy("default")


@pytest.mark.parametrize("target", [PLAIN, PRODUCTION, CHAMPION, PromotionTarget("x", alias="production")])
def test_default_blocks_a_backdoored_model_from_production_and_plain_scans(default, target):
    decision = evaluate(default, BACKDOORED, target, today=TODAY)
    assert decision.action is Action.BLOCK and decision.rule == "block-backdoored"
    assert decision.reasons[0].startswith("rule block-backdoored")
    assert "verdict backdoored" in decision.reasons[0] and "score 0.930" in decision.reasons[0]


@pytest.mark.parametrize("target", [STAGING, PromotionTarget("fraud-cnn", alias="candidate")])
def test_default_allows_other_promotions_and_says_why(default, target):
    decision = evaluate(default, BACKDOORED, target, today=TODAY)
    assert decision.action is Action.ALLOW and decision.rule is None
    assert decision.reasons == (f"policy default has no rule for the {target.describe()}: allowed",)


def test_default_allows_a_clean_model_with_a_reason(default):
    decision = evaluate(default, CLEAN, PRODUCTION, today=TODAY)
    assert decision.action is Action.ALLOW
    assert "status scanned, verdict clean, score 0.080" in decision.reasons[0]


def test_default_fails_closed_on_errors_and_unscanned_models(default):
    error = evaluate(default, failed(), CHAMPION, today=TODAY)
    assert error.action is Action.BLOCK and error.rule == "fail-closed"
    assert "could not be scanned (truncated: m.onnx was cut short)" in error.reasons[0]
    never = evaluate(default, None, PRODUCTION, today=TODAY)
    assert never.action is Action.BLOCK and "never scanned" in never.reasons[0]
    assert evaluate(default, None, STAGING, today=TODAY).action is Action.ALLOW


def test_default_warns_about_a_model_it_cannot_judge(default):
    result = dataclasses.replace(failed("not_applicable", "tabular model"), status=Status.NOT_APPLICABLE)
    decision = evaluate(default, result, PLAIN, today=TODAY)
    assert decision.action is Action.WARN and decision.rule == "warn-not-judged"


def test_audit_never_blocks(tmp_path):
    audit = load_builtin_policy("audit")
    for result in (BACKDOORED, failed(), None):
        for target in (PLAIN, PRODUCTION, CHAMPION):
            assert evaluate(audit, result, target, today=TODAY).action is Action.WARN
    assert evaluate(audit, CLEAN, PRODUCTION, today=TODAY).action is Action.ALLOW


def test_strict_requires_both_detectors_and_guards_staging():
    strict = load_builtin_policy("strict")
    without_ban = dataclasses.replace(
        CLEAN, detectors={**CLEAN.detectors, "ban": DetectorResult.not_applicable("ban", "no clean sample data")}
    )
    decision = evaluate(strict, without_ban, STAGING, today=TODAY)
    assert decision.action is Action.BLOCK and decision.rule == "required-detectors"
    assert "required detector ban did not scan the model (not_applicable: no clean sample data)" in decision.reasons[0]
    assert evaluate(strict, CLEAN, STAGING, today=TODAY).action is Action.ALLOW
    suspicious = scanned(0.35, Verdict.CLEAN, one_pixel=0.4, ban=0.3)
    assert evaluate(strict, suspicious, PLAIN, today=TODAY).rule == "block-suspicious"


RULES = """\
version: 1
rules:
  - id: ban-says-backdoored
    match: {detector: ban, models: ["fraud-*"]}
    when: {score_at_least: 0.9}
    action: block
  - id: one-pixel-missing
    match: {detector: one-pixel}
    when: {status: [unscanned, error]}
    action: warn
  - id: low-scores-note
    when: {score_below: 0.2}
    action: allow
waivers:
  - models: ["fraud-*"]
    sha256: "%s"
    rules: [ban-says-backdoored]
    reason: manual review found the trigger is a watermark
    approved_by: alice
    expires: 2026-05-31
"""


def test_rules_on_one_detector_its_status_and_waivers(policy_file):
    policy = load_policy(policy_file(RULES % DIGEST))
    only_ban = scanned(0.95, Verdict.BACKDOORED, ban=0.95)
    before = evaluate(policy, only_ban, PRODUCTION, today=dt.date(2026, 5, 31))
    assert before.action is Action.WARN and before.rule == "ban-says-backdoored"
    assert (
        f"waived to a warning by waiver for sha256 {DIGEST[:12]} as fraud-* (approved by alice, expires 2026-05-31"
        in (before.reasons[0])
    )
    assert any(r.startswith("rule one-pixel-missing") and "status unscanned" in r for r in before.reasons)
    after = evaluate(policy, only_ban, PRODUCTION, today=dt.date(2026, 6, 1))
    assert after.action is Action.BLOCK
    assert after.reasons[-1].endswith("expired on 2026-05-31 and no longer applies to ban-says-backdoored")
    other_digest = dataclasses.replace(only_ban, sha256="cd" * 32)
    assert evaluate(policy, other_digest, PRODUCTION, today=dt.date(2026, 5, 1)).action is Action.BLOCK
    assert evaluate(policy, only_ban, PromotionTarget("digits"), today=TODAY).action is Action.WARN


def test_an_allow_rule_gives_its_reason_but_never_overrides_a_block(policy_file):
    policy = load_policy(policy_file(RULES % DIGEST))
    decision = evaluate(policy, CLEAN, PLAIN, today=TODAY)
    assert decision.action is Action.ALLOW and decision.rule == "low-scores-note"
    assert decision.reasons[0].startswith("rule low-scores-note")
    mixed = scanned(0.1, Verdict.CLEAN, ban=0.95)
    assert evaluate(policy, mixed, PLAIN, today=TODAY).action is Action.BLOCK


def test_stage_names_match_case_insensitively_and_aliases_by_glob(policy_file):
    policy = load_policy(
        policy_file(
            """\
            version: 1
            rules:
              - id: guard
                match: {stages: [production], aliases: ["prod-*"]}
                action: block
            """
        )
    )
    assert evaluate(policy, CLEAN, PRODUCTION, today=TODAY).action is Action.BLOCK
    assert evaluate(policy, CLEAN, PromotionTarget("m", alias="prod-eu"), today=TODAY).action is Action.BLOCK
    assert evaluate(policy, CLEAN, PromotionTarget("m", alias="dev"), today=TODAY).action is Action.ALLOW
    assert evaluate(policy, CLEAN, PLAIN, today=TODAY).action is Action.ALLOW  # plain_scan not asked for


def test_evaluate_is_pure(default):
    first = evaluate(default, BACKDOORED, PLAIN, today=TODAY)
    assert evaluate(default, BACKDOORED, PLAIN, today=TODAY) == first


DIGEST_WAIVER = """\
version: 1
rules:
  - id: block-backdoored
    match: {aliases: [champion]}
    when: {verdict: [backdoored]}
    action: block
waivers:
  - sha256: "%s"
    reason: reviewed false positive
    approved_by: alice
    expires: 2026-12-31
  - models: ["fraud-*"]
    sha256: "%s"
    reason: reviewed false positive, for the fraud models only
    approved_by: alice
    expires: 2026-12-31
"""


def test_a_waiver_follows_the_bytes_not_the_name(policy_file):
    """A waiver covers the model file it names wherever it is registered (a copy is the same bytes), and never other
    bytes that were renamed or copied onto a waived name."""
    other = "cd" * 32
    policy = load_policy(policy_file(DIGEST_WAIVER % (DIGEST, other)))
    waived = BACKDOORED  # sha256 DIGEST
    for name in ("fraud-cnn", "renamed-anything"):
        assert evaluate(policy, waived, PromotionTarget(name, alias="champion"), today=TODAY).action is Action.WARN
    intruder = dataclasses.replace(BACKDOORED, sha256="ef" * 32)
    assert evaluate(policy, intruder, CHAMPION, today=TODAY).action is Action.BLOCK
    second = dataclasses.replace(BACKDOORED, sha256=other)
    assert evaluate(policy, second, CHAMPION, today=TODAY).action is Action.WARN
    assert evaluate(policy, second, PromotionTarget("vision", alias="champion"), today=TODAY).action is Action.BLOCK
    unknown_bytes = dataclasses.replace(BACKDOORED, sha256=None)
    assert evaluate(policy, unknown_bytes, CHAMPION, today=TODAY).action is Action.BLOCK


@pytest.mark.parametrize(("score", "action"), [(0.35, Action.WARN), (0.2, Action.ALLOW)])
def test_default_warns_on_a_suspicious_score_under_a_clean_verdict(default, score, action):
    """The suspicious band: a fused score of 0.3 or more under a clean verdict is a warning, never a block."""
    decision = evaluate(default, scanned(score, Verdict.CLEAN, one_pixel=score, ban=score), PRODUCTION, today=TODAY)
    assert decision.action is action
    assert decision.rule == ("warn-suspicious" if action is Action.WARN else None)
