"""The MLflow gate: an `mlflow.app` server plugin that refuses promotions the policy forbids.

Started as `mlflow server --app-name model-scanner-gate ...` with MODEL_SCANNER_POLICY (a policy file; the shipped
default when unset) and MODEL_SCANNER_TOKEN (the secret `serve` sends in X-Model-Scanner-Token). Before MLflow
handles a request it checks:
- a stage transition or an alias assignment: the version's `scan.*` tags are judged by the policy for that stage or
  alias (an unscanned version is judged as such: refused when the policy fails closed);
- a write or delete of a `scan.*` tag, or a new version created with one: only with the scanner's token.
Refusals are HTTP 403 in MLflow's error shape, so MlflowClient raises RestException(error_code=PERMISSION_DENIED).
The policy file is re-read when it changes; a broken edit keeps the last good policy (and is logged), and with no
good policy at all every promotion is refused. Works under uvicorn (MLflow's default) and gunicorn.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scanner.errors import ScannerError
from scanner.findings import Action
from scanner.registry import tags as scan_tags
from scanner.registry.client import TOKEN_HEADER

log = logging.getLogger(__name__)

POLICY_ENV = "MODEL_SCANNER_POLICY"
TOKEN_ENV = "MODEL_SCANNER_TOKEN"

TRANSITION_STAGE = "/mlflow/model-versions/transition-stage"
SET_ALIAS = "/mlflow/registered-models/alias"
SET_VERSION_TAG = "/mlflow/model-versions/set-tag"
DELETE_VERSION_TAG = "/mlflow/model-versions/delete-tag"
CREATE_VERSION = "/mlflow/model-versions/create"

# Reads a version's tags from the server's own registry store; None when the version does not exist.
TagReader = Callable[[str, str], Mapping[str, str] | None]


@dataclass(frozen=True)
class Refusal:
    message: str


class PolicySource:
    """The policy at `path` (or the shipped default), re-read when the file's mtime or size changes."""

    def __init__(self, path: str | None) -> None:
        self.path = Path(path) if path else None
        self._lock = threading.Lock()
        self._stamp: tuple[float, int] | None = None
        self._policy: Any = None
        self.problem: str | None = None

    def current(self) -> Any:
        """The policy to judge with, or None if none ever loaded (then every promotion is refused)."""
        from scanner.policy import load_builtin_policy, load_policy

        with self._lock:
            if self.path is None:
                if self._policy is None:
                    self._policy = load_builtin_policy()
                return self._policy
            try:
                stat = self.path.stat()
                stamp = (stat.st_mtime, stat.st_size)
            except OSError as error:
                self.problem = f"cannot read policy {self.path}: {error}"
                log.error("%s", self.problem)
                return self._policy
            if stamp != self._stamp:
                try:
                    self._policy = load_policy(self.path)
                    self.problem = None
                    log.info("gate policy loaded: %s", self._policy.label)
                except ScannerError as error:
                    self.problem = f"policy {self.path} does not load: {error.one_line()}"
                    log.error("%s; keeping the last good policy", self.problem)
                self._stamp = stamp
            return self._policy


class Gate:
    def __init__(self, policy: PolicySource, *, token: str | None, read_tags: TagReader) -> None:
        self.policy = policy
        self.token = token
        self.read_tags = read_tags

    def check(
        self, method: str, path: str, body: Mapping[str, Any], args: Mapping[str, str], headers: Mapping[str, str]
    ) -> Refusal | None:
        """None lets MLflow handle the request; a Refusal answers 403 with its message."""
        path = path.rstrip("/")
        fields = {**args, **body}
        if method == "POST" and path.endswith(TRANSITION_STAGE):
            return self._promotion(
                str(fields.get("name", "")), str(fields.get("version", "")), stage=fields.get("stage")
            )
        if method == "POST" and path.endswith(SET_ALIAS):
            return self._promotion(
                str(fields.get("name", "")), str(fields.get("version", "")), alias=fields.get("alias")
            )
        if method == "POST" and path.endswith(SET_VERSION_TAG):
            return self._tag_write(str(fields.get("key", "")), headers, "set")
        if method == "DELETE" and path.endswith(DELETE_VERSION_TAG):
            return self._tag_write(str(fields.get("key", "")), headers, "delete")
        if method == "POST" and path.endswith(CREATE_VERSION):
            keys = [str(tag.get("key", "")) for tag in fields.get("tags") or [] if isinstance(tag, dict)]
            for key in keys:
                refusal = self._tag_write(key, headers, "set")
                if refusal:
                    return refusal
        return None

    def _tag_write(self, key: str, headers: Mapping[str, str], verb: str) -> Refusal | None:
        if not scan_tags.is_scan_tag(key):
            return None
        offered = _header(headers, TOKEN_HEADER)
        if self.token and offered and hmac.compare_digest(offered.encode(), self.token.encode()):
            return None
        why = "the gate has no MODEL_SCANNER_TOKEN configured" if not self.token else "the request lacks its token"
        return Refusal(f"only model-scanner may {verb} {key} tags ({why})")

    def _promotion(self, name: str, version: str, *, stage: Any = None, alias: Any = None) -> Refusal | None:
        from scanner.policy import PromotionTarget, evaluate

        target = PromotionTarget(
            model_name=name, stage=str(stage) if stage else None, alias=str(alias) if alias else None
        )
        policy = self.policy.current()
        where = f"{name} version {version}"
        if policy is None:
            return Refusal(
                f"{target.describe()} refused for {where}: the gate has no valid policy ({self.policy.problem})"
            )
        version_tags = self.read_tags(name, version)
        if version_tags is None:
            return None  # no such version: let MLflow answer its own RESOURCE_DOES_NOT_EXIST
        tagged = scan_tags.read_scan(f"models:/{name}/{version}", version_tags)
        decision = evaluate(policy, tagged.result, target)
        if decision.action is not Action.BLOCK:
            if decision.action is Action.WARN:
                log.warning("%s allowed with a warning: %s", target.describe(), "; ".join(decision.reasons))
            return None
        verdict = tagged.result.verdict.value if tagged.result else (tagged.status or "unscanned")
        promotion = f"stage {target.stage}" if target.stage else f"alias {target.alias}"
        reasons = "; ".join(decision.reasons) or "no reason given"
        return Refusal(
            f"model-scanner refused {promotion} for {where} (verdict: {verdict}, rule: {decision.rule or 'policy'}, "
            f"policy: {policy.label}): {reasons}"
        )


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    return next((value for key, value in headers.items() if key.lower() == lowered), None)


def _read_tags_from_store(name: str, version: str) -> Mapping[str, str] | None:
    from mlflow.exceptions import MlflowException
    from mlflow.server.handlers import _get_model_registry_store

    try:
        store: Any = _get_model_registry_store()
        found = store.get_model_version(name, version)
    except MlflowException:
        return None
    return dict(found.tags or {})


def gate_from_environment() -> Gate:
    return Gate(
        PolicySource(os.environ.get(POLICY_ENV) or None),
        token=os.environ.get(TOKEN_ENV) or None,
        read_tags=_read_tags_from_store,
    )


def install(app: Any, gate: Gate) -> None:
    """Registers the gate as a Flask before_request hook on MLflow's server app."""
    from flask import jsonify, request

    def before_request() -> Any:
        body = request.get_json(silent=True, force=True) if request.data else None
        refusal = gate.check(
            request.method,
            request.path,
            body if isinstance(body, dict) else {},
            request.args.to_dict(),
            dict(request.headers.items()),
        )
        if refusal is None:
            return None
        log.warning("refused %s %s: %s", request.method, request.path, refusal.message)
        return jsonify({"error_code": "PERMISSION_DENIED", "message": refusal.message}), 403

    app.before_request(before_request)


def create_app(app: Any = None) -> Any:
    """Entry point `model-scanner-gate` (group mlflow.app): MLflow's app with the gate in front."""
    from mlflow.server import app as mlflow_app

    flask_app = app if app is not None else mlflow_app
    gate = gate_from_environment()
    if gate.policy.path is not None:
        gate.policy.current()  # load (and log) the policy at start-up, not on the first promotion
    install(flask_app, gate)
    if os.environ.get("_MLFLOW_SGI_NAME") == "uvicorn":
        from mlflow.server.fastapi_app import create_fastapi_app

        return create_fastapi_app(flask_app)
    return flask_app
