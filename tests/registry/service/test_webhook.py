"""Signature, freshness and parsing of MLflow webhook deliveries, on real captured deliveries."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from scanner.registry.service.webhook import (
    DELIVERY_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Intent,
    WebhookRejected,
    signature_for,
    verify_delivery,
)

DELIVERIES = Path(__file__).resolve().parents[2] / "data" / "mlflow-webhooks"
CAPTURED_SECRET = "s3cret"  # what the captured deliveries were signed with (INDEX.md there)
ALL_CAPTURED = sorted(
    p.relative_to(DELIVERIES).as_posix() for p in DELIVERIES.rglob("*_*.json") if not p.name.startswith("rest_")
)
Captured = Callable[[str], dict[str, Any]]


def _sent_at(delivery: dict[str, Any]) -> float:
    return float(delivery["headers"][TIMESTAMP_HEADER])


@pytest.mark.parametrize("name", ALL_CAPTURED)
def test_every_captured_delivery_verifies(name: str, captured: Captured) -> None:
    delivery = captured(name)
    parsed = verify_delivery(
        delivery["headers"], delivery["raw_body"].encode(), secret=CAPTURED_SECRET, now=delivery["received_at"]
    )
    assert parsed.delivery_id == delivery["headers"][DELIVERY_ID_HEADER]
    assert parsed.event == f"{delivery['json']['entity']}.{delivery['json']['action']}"


def test_new_version_asks_for_a_scan(model_version_created: dict[str, Any]) -> None:
    parsed = verify_delivery(
        model_version_created["headers"],
        model_version_created["raw_body"].encode(),
        secret=CAPTURED_SECRET,
        now=_sent_at(model_version_created),
    )
    assert parsed.intent is Intent.SCAN
    assert (parsed.model_name, parsed.model_version) == ("tiny-classifier", "1")


def test_own_scan_tag_events_and_aliases_are_ignored(captured: Captured) -> None:
    for name in (
        "04_model_version_tag.set.json",
        "05_model_version_alias.created.json",
        "07_model_version_tag.deleted.json",
    ):
        delivery = captured(name)
        parsed = verify_delivery(
            delivery["headers"], delivery["raw_body"].encode(), secret=CAPTURED_SECRET, now=_sent_at(delivery)
        )
        assert parsed.intent is Intent.IGNORE, name


def test_forged_signature_is_refused(model_version_created: dict[str, Any]) -> None:
    body = model_version_created["raw_body"].replace("tiny-classifier", "other-model").encode()
    with pytest.raises(WebhookRejected) as refused:
        verify_delivery(
            model_version_created["headers"], body, secret=CAPTURED_SECRET, now=_sent_at(model_version_created)
        )
    assert refused.value.status == 401


def test_wrong_secret_is_refused(model_version_created: dict[str, Any]) -> None:
    with pytest.raises(WebhookRejected):
        verify_delivery(
            model_version_created["headers"],
            model_version_created["raw_body"].encode(),
            secret="not-the-secret",
            now=_sent_at(model_version_created),
        )


def test_stale_timestamp_is_refused_but_mlflow_retries_pass(model_version_created: dict[str, Any]) -> None:
    headers, body = model_version_created["headers"], model_version_created["raw_body"].encode()
    sent = _sent_at(model_version_created)
    # MLflow's last retry comes about 7 s after the first attempt, with the original timestamp.
    verify_delivery(headers, body, secret=CAPTURED_SECRET, now=sent + 10, max_age_s=300)
    with pytest.raises(WebhookRejected, match="stale"):
        verify_delivery(headers, body, secret=CAPTURED_SECRET, now=sent + 301, max_age_s=300)
    with pytest.raises(WebhookRejected, match="future"):
        verify_delivery(headers, body, secret=CAPTURED_SECRET, now=sent - 3600)


def test_missing_headers_are_refused(model_version_created: dict[str, Any]) -> None:
    headers = {k: v for k, v in model_version_created["headers"].items() if k != SIGNATURE_HEADER}
    with pytest.raises(WebhookRejected, match="missing header"):
        verify_delivery(headers, b"{}", secret=CAPTURED_SECRET, now=_sent_at(model_version_created))


DEEPLY_NESTED = b"[" * 100_000 + b"]" * 100_000
HUGE_NUMBER = b'{"entity": "model_version", "action": "created", "data": {"version": ' + b"9" * 5000 + b"}}"


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[1, 2]", b'{"entity": "model_version"}', b"\xff\xfe", DEEPLY_NESTED, HUGE_NUMBER],
    ids=["not-json", "array", "no-data", "not-utf8", "deeply-nested", "huge-number"],
)
def test_malformed_but_signed_body_is_a_400(body: bytes) -> None:
    headers = {
        DELIVERY_ID_HEADER: "d-1",
        TIMESTAMP_HEADER: "1000",
        SIGNATURE_HEADER: signature_for("k", "d-1", "1000", body),
    }
    with pytest.raises(WebhookRejected) as refused:
        verify_delivery(headers, body, secret="k", now=1000)
    assert refused.value.status == 400
    assert "\n" not in str(refused.value) and len(str(refused.value)) < 200  # one clear line, not the body


def test_signature_matches_mlflow_construction(model_version_created: dict[str, Any]) -> None:
    headers = model_version_created["headers"]
    expected = signature_for(
        CAPTURED_SECRET,
        headers[DELIVERY_ID_HEADER],
        headers[TIMESTAMP_HEADER],
        json.dumps(model_version_created["json"]).encode(),
    )
    assert expected == headers[SIGNATURE_HEADER]
