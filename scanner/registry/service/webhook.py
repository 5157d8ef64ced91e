"""MLflow webhook deliveries: signature check (v1 HMAC-SHA256), freshness, and what an event asks of the scanner.

Pure functions over headers and the raw body, so the HTTP receiver stays a thin shell and tests can feed real
captured deliveries. MLflow signs `f"{delivery_id}.{timestamp}.{raw_body}"` with the webhook's secret and sends
`X-MLflow-Signature: v1,<base64 digest>`; retries (3, at about +0 s, +3 s, +7 s) reuse the delivery id, timestamp and
signature, so the freshness window must be wider than MLflow's retry schedule.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass

from scanner.errors import RegistryError, shortened
from scanner.registry.tags import INPUT_TAG_PREFIX

SIGNATURE_HEADER = "X-MLflow-Signature"
DELIVERY_ID_HEADER = "X-MLflow-Delivery-Id"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"

# Wide enough for MLflow's retries (+7 s) and clock skew between hosts; narrow enough that a captured delivery
# cannot be replayed later (and within the window its delivery id is already recorded).
DEFAULT_MAX_AGE_S = 300
MAX_FUTURE_SKEW_S = 60


class WebhookRejected(RegistryError):
    """A delivery that must not be acted on; `status` is the HTTP answer the receiver gives."""

    kind = "webhook_rejected"

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message, hint="check the webhook's secret and the clocks of the MLflow server and this host")
        self.status = status


class Intent(str, enum.Enum):
    """What the scanner should do about an event."""

    SCAN = "scan"  # a new version, or an input tag changed: (re-)scan it
    IGNORE = "ignore"  # our own scan.* tags, aliases, other entities


@dataclass(frozen=True)
class Delivery:
    delivery_id: str
    timestamp: int
    entity: str
    action: str
    model_name: str | None
    model_version: str | None
    tag_key: str | None

    @property
    def event(self) -> str:
        return f"{self.entity}.{self.action}"

    @property
    def intent(self) -> Intent:
        if self.model_name is None or self.model_version is None:
            return Intent.IGNORE
        if self.event == "model_version.created":
            return Intent.SCAN
        if self.event == "model_version_tag.set" and (self.tag_key or "").startswith(INPUT_TAG_PREFIX):
            return Intent.SCAN
        return Intent.IGNORE


def signature_for(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    payload = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), payload, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def _header(headers: Mapping[str, str], name: str) -> str:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    raise WebhookRejected(f"missing header {name}", status=401)


def verify_delivery(
    headers: Mapping[str, str], body: bytes, *, secret: str, now: float, max_age_s: float = DEFAULT_MAX_AGE_S
) -> Delivery:
    """Checks signature and freshness, then parses the body. Raises WebhookRejected (401 or 400)."""
    delivery_id = _header(headers, DELIVERY_ID_HEADER)
    timestamp_text = _header(headers, TIMESTAMP_HEADER)
    signature = _header(headers, SIGNATURE_HEADER)
    expected = signature_for(secret, delivery_id, timestamp_text, body)
    # Constant-time on the whole header: no early exit on the version prefix or the digest.
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        raise WebhookRejected("bad signature", status=401)
    try:
        timestamp = int(timestamp_text)
    except ValueError as error:
        raise WebhookRejected(f"timestamp is not an integer: {timestamp_text!r}", status=401) from error
    if now - timestamp > max_age_s:
        raise WebhookRejected(f"stale delivery: timestamp {int(now - timestamp)} s old (max {max_age_s:g})", status=401)
    if timestamp - now > MAX_FUTURE_SKEW_S:
        raise WebhookRejected(f"timestamp {int(timestamp - now)} s in the future", status=401)
    return parse_delivery(delivery_id, timestamp, body)


def parse_delivery(delivery_id: str, timestamp: int, body: bytes) -> Delivery:
    try:
        document = json.loads(body)
    except RecursionError:
        raise WebhookRejected("body is not a webhook: its JSON nests too deeply", status=400) from None
    except (UnicodeDecodeError, ValueError) as error:  # ValueError: also numbers over Python's digit limit
        raise WebhookRejected(f"body is not JSON: {shortened(str(error), 120)}", status=400) from None
    if not isinstance(document, dict):
        raise WebhookRejected("body is not a JSON object", status=400)
    entity, action, data = document.get("entity"), document.get("action"), document.get("data")
    if not isinstance(entity, str) or not isinstance(action, str) or not isinstance(data, dict):
        raise WebhookRejected("body lacks entity, action or data", status=400)
    name, version, key = data.get("name"), data.get("version"), data.get("key")
    return Delivery(
        delivery_id=delivery_id,
        timestamp=timestamp,
        entity=entity,
        action=action,
        model_name=name if isinstance(name, str) and name else None,
        model_version=str(version) if isinstance(version, (str, int)) and str(version) else None,
        tag_key=key if isinstance(key, str) else None,
    )
