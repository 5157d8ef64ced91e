"""The service's MLflow webhook: created at start-up, or brought up to date (URL, events, secret) if it exists.

Idempotent: found by name, so restarting `serve` never piles up webhooks. Note MLflow caches webhooks for
MLFLOW_WEBHOOK_CACHE_TTL seconds (default 60): a new or changed webhook may miss events for that long, which is one
reason the reconcile poller exists.
"""

from __future__ import annotations

import logging
from typing import Any

from scanner.errors import RegistryError

log = logging.getLogger(__name__)

WEBHOOK_NAME = "model-scanner"
# Own scan.* tag events are delivered too and ignored; other tags under model_scanner.* trigger a re-scan.
EVENTS = ("model_version.created", "model_version_tag.set")


def ensure_webhook(client: Any, *, url: str, secret: str, name: str = WEBHOOK_NAME) -> str:
    """Creates or updates the webhook named `name` so that it posts EVENTS to `url`, signed with `secret`."""
    from mlflow.exceptions import MlflowException

    try:
        existing = [hook for hook in _all_webhooks(client) if hook.name == name]
        for duplicate in existing[1:]:
            client.delete_webhook(duplicate.webhook_id)
        if existing:
            hook = client.update_webhook(
                existing[0].webhook_id, url=url, events=list(EVENTS), secret=secret, status="ACTIVE"
            )
            log.info("updated webhook %s -> %s", name, url)
        else:
            hook = client.create_webhook(
                name=name,
                url=url,
                events=list(EVENTS),
                secret=secret,
                description="model-scanner: scan new model versions for backdoors",
            )
            log.info("created webhook %s -> %s", name, url)
    except MlflowException as error:
        raise RegistryError(
            f"could not create or update the MLflow webhook: {error.message}",
            hint="webhooks need an SQL backend; for a loopback receiver the server needs "
            "MLFLOW_WEBHOOK_ALLOWED_SCHEMES=http,https and MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true",
        ) from error
    return str(hook.webhook_id)


def _all_webhooks(client: Any) -> list[Any]:
    found: list[Any] = []
    token = None
    while True:
        page = client.list_webhooks(max_results=100, page_token=token)
        found.extend(page)
        token = page.token
        if not token:
            return found
