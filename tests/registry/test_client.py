"""RegistryClient.set_scan_tags writes scan.status last, whatever order the tags come in.

MLflow sets version tags one request at a time; the gate, `rescan` and the tests take scan.status's presence to mean
the whole set is there. The worker once added scan.engine after building the tags, so it landed after scan.status
(a reader in between saw a scan without its engine). The HTTP layer is replaced by a recorder: the order of the
requests is what is checked. The real server path: tests/registry/service/test_service.py, tests/registry/test_gate.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from scanner.registry import tags as scan_tags
from scanner.registry.client import RegistryClient


def test_scan_status_is_written_last(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.utils import rest_utils

    written: list[str] = []

    def record(creds: Any, endpoint: str, method: str, *, json: dict[str, str], **_: Any) -> None:
        written.append(json["key"])

    monkeypatch.setattr(rest_utils, "http_request", record)
    monkeypatch.setattr(rest_utils, "verify_rest_response", lambda response, endpoint: response)
    tags = {scan_tags.VERDICT: "clean", scan_tags.STATUS: "ok", scan_tags.ENGINE: "{}", scan_tags.SCORE: "0.1"}
    RegistryClient("http://127.0.0.1:9", token="tok").set_scan_tags("m", "1", tags)
    assert written == [scan_tags.VERDICT, scan_tags.ENGINE, scan_tags.SCORE, scan_tags.STATUS]
