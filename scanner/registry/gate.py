"""The MLflow gate: an `mlflow.app` server plugin that refuses promotions the policy forbids.

Started as `mlflow server --app-name model-scanner-gate ...` with MODEL_SCANNER_POLICY (a policy file; the shipped
default when unset) and MODEL_SCANNER_TOKEN (the secret `serve` sends in X-Model-Scanner-Token). Before MLflow
handles a registry request, it parses it with MLflow's own parser (so it judges exactly what MLflow will act on)
and checks:
- a stage transition or an alias assignment: the version's `scan.*` tags are judged by the policy for that stage or
  alias (an unscanned version is judged as such: refused when the policy fails closed), and only if the version's
  files still hash to what was scanned (`scan.files`); else the version is judged as never scanned;
- a rename: every stage and alias the model holds is judged again under the new name (policies and waivers name
  models);
- a write or delete of a `scan.*` tag or a `model_scanner.*` input hint, or a new version created with one: only with
  the scanner's token.
Refusals are HTTP 403 in MLflow's error shape, so MlflowClient raises RestException(error_code=PERMISSION_DENIED); a
request the gate cannot resolve to a name, version, stage, alias or key is refused with 400 (fail closed).
The policy file is re-read when it changes; a broken edit keeps the last good policy (and is logged), and with no
good policy at all every promotion is refused. Works under uvicorn (MLflow's default) and gunicorn.
"""

from __future__ import annotations

import hmac
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from scanner.errors import ScannerError, shortened
from scanner.findings import Action, ScanResult, Status
from scanner.policy.model import PromotionTarget
from scanner.registry import tags as scan_tags
from scanner.registry.client import TOKEN_HEADER
from scanner.registry.model_files import files_digest
from scanner.registry.tags import INPUT_TAG_PREFIX

log = logging.getLogger(__name__)

POLICY_ENV = "MODEL_SCANNER_POLICY"
TOKEN_ENV = "MODEL_SCANNER_TOKEN"

# The registry operations the gate judges, by the name of MLflow's request message (model_registry.proto). Every
# other registry operation changes nothing the gate protects (descriptions, registered-model tags, deletions,
# removing an alias).
TRANSITION_STAGE = "TransitionModelVersionStage"
SET_ALIAS = "SetRegisteredModelAlias"
SET_VERSION_TAG = "SetModelVersionTag"
DELETE_VERSION_TAG = "DeleteModelVersionTag"
CREATE_VERSION = "CreateModelVersion"
RENAME_MODEL = "RenameRegisteredModel"
JUDGED_OPERATIONS = frozenset(
    {TRANSITION_STAGE, SET_ALIAS, SET_VERSION_TAG, DELETE_VERSION_TAG, CREATE_VERSION, RENAME_MODEL}
)


@dataclass(frozen=True)
class Refusal:
    message: str
    status: int = 403

    @property
    def error_code(self) -> str:
        return "PERMISSION_DENIED" if self.status == 403 else "INVALID_PARAMETER_VALUE"


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


class Registry(Protocol):
    """What the gate reads from MLflow's own stores (in the server process; a fake in unit tests)."""

    def tags(self, name: str, version: str) -> Mapping[str, str] | None:
        """The version's tags; None when the version does not exist."""
        ...

    def promotions(self, name: str) -> Sequence[tuple[str, PromotionTarget]]:
        """Every (version, stage or alias) the registered model `name` holds now, protected or not."""
        ...

    def files_digest(self, name: str, version: str) -> str | None:
        """model_files.files_digest of the version's files as stored now; None when they cannot be read."""
        ...


@dataclass(frozen=True)
class RegistryRequest:
    """A registry request as MLflow's handler will act on it: the operation (its protobuf request message's name)
    and the message's fields, parsed by MLflow's own `_get_request_message`."""

    operation: str
    fields: Mapping[str, Any]

    def text(self, field: str) -> str:
        value = self.fields.get(field)
        return value if isinstance(value, str) else ""


class Gate:
    def __init__(self, policy: PolicySource, *, token: str | None, registry: Registry) -> None:
        self.policy = policy
        self.token = token
        self.registry = registry

    def check(self, request: RegistryRequest, headers: Mapping[str, str]) -> Refusal | None:
        """None lets MLflow handle the request; a Refusal answers 403 (or 400) with its message."""
        operation = request.operation
        if operation in (TRANSITION_STAGE, SET_ALIAS):
            name, version = request.text("name"), request.text("version")
            stage = request.text("stage") if operation == TRANSITION_STAGE else None
            alias = request.text("alias") if operation == SET_ALIAS else None
            if not (name and version and (stage or alias)):
                return _unresolved(
                    request, "name, version and " + ("stage" if operation == TRANSITION_STAGE else "alias")
                )
            return self._promotion(name, version, PromotionTarget(model_name=name, stage=stage, alias=alias))
        if operation in (SET_VERSION_TAG, DELETE_VERSION_TAG):
            name, version, key = request.text("name"), request.text("version"), request.text("key")
            if not (name and version and key):
                return _unresolved(request, "name, version and key")
            return self._tag_write(key, headers, "set" if operation == SET_VERSION_TAG else "delete")
        if operation == CREATE_VERSION:
            tags = request.fields.get("tags") or []
            if not isinstance(tags, list) or not all(isinstance(tag, Mapping) for tag in tags):
                return _unresolved(request, "tags")
            for tag in tags:
                refusal = self._tag_write(str(tag.get("key", "")), headers, "set")
                if refusal:
                    return refusal
            return None
        if operation == RENAME_MODEL:
            name, new_name = request.text("name"), request.text("new_name")
            if not (name and new_name):
                return _unresolved(request, "name and new_name")
            return self._rename(name, new_name)
        return None

    def _tag_write(self, key: str, headers: Mapping[str, str], verb: str) -> Refusal | None:
        if not is_guarded_tag(key):
            return None
        offered = _header(headers, TOKEN_HEADER)
        if self.token and offered and hmac.compare_digest(offered.encode(), self.token.encode()):
            return None
        why = "the gate has no MODEL_SCANNER_TOKEN configured" if not self.token else "the request lacks its token"
        return Refusal(f"only model-scanner may {verb} {key} tags ({why})")

    def _rename(self, name: str, new_name: str) -> Refusal | None:
        """A rename carries every stage and alias to the new name, where the policy (and its waivers) may differ:
        each is judged again as if it were being promoted under the new name."""
        try:
            promotions = self.registry.promotions(name)
        except Exception as error:  # a rename the gate cannot judge is refused
            return Refusal(f"renaming {name} refused: cannot list its stages and aliases: {shortened(str(error), 300)}")
        for version, held in promotions:
            target = PromotionTarget(model_name=new_name, stage=held.stage, alias=held.alias)
            refusal = self._promotion(name, version, target)
            if refusal is not None:
                return Refusal(f"renaming {name} to {new_name} refused: it would carry {refusal.message}")
        return None

    def _promotion(self, name: str, version: str, target: PromotionTarget) -> Refusal | None:
        from scanner.policy.evaluate import evaluate

        policy = self.policy.current()
        where = f"{name} version {version}"
        if policy is None:
            return Refusal(
                f"{target.describe()} refused for {where}: the gate has no valid policy ({self.policy.problem})"
            )
        version_tags = self.registry.tags(name, version)
        if version_tags is None:
            return None  # no such version: let MLflow answer its own RESOURCE_DOES_NOT_EXIST
        tagged = scan_tags.read_scan(f"models:/{name}/{version}", version_tags)
        stale = self._stale_files(name, version, tagged.result, version_tags)
        result = None if stale else tagged.result
        decision = evaluate(policy, result, target)
        if decision.action is not Action.BLOCK:
            if decision.action is Action.WARN:
                warnings = [*decision.reasons, stale] if stale else list(decision.reasons)
                log.warning("%s allowed with a warning: %s", target.describe(), "; ".join(warnings))
            return None
        if stale:
            verdict = f"{tagged.result.verdict.value if tagged.result else 'unknown'}, not for these files: {stale}"
        else:
            verdict = tagged.result.verdict.value if tagged.result else (tagged.status or "unscanned")
        promotion = f"stage {target.stage}" if target.stage else f"alias {target.alias}"
        reasons = "; ".join(decision.reasons) or "no reason given"
        return Refusal(
            f"model-scanner refused {promotion} for {where} (verdict: {verdict}, rule: {decision.rule or 'policy'}, "
            f"policy: {policy.label}): {reasons}"
        )

    def _stale_files(self, name: str, version: str, result: ScanResult | None, version_tags: Mapping[str, str]) -> str:
        """Why the scan does not speak for the version's files as they are now ('' when it does)."""
        if result is None or result.status is Status.ERROR:
            return ""  # judged as unscanned or failed already
        scanned = version_tags.get(scan_tags.FILES)
        if not scanned:
            return "the scan recorded no digest of the version's files (scan.files); re-scan it"
        now = self.registry.files_digest(name, version)
        if now is None:
            return "the version's files cannot be read to compare them with the scan"
        if not hmac.compare_digest(now, scanned):
            return "the version's files changed since the scan (scan.files differs); re-scan it"
        return ""


def is_guarded_tag(key: str) -> bool:
    """Tags only the scanner may write: its results (scan.*) and the inputs of a scan (model_scanner.* hints)."""
    return scan_tags.is_scan_tag(key) or key.startswith(INPUT_TAG_PREFIX)


def _unresolved(request: RegistryRequest, what: str) -> Refusal:
    return Refusal(f"model-scanner refused {request.operation}: the request does not name its {what}", status=400)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    return next((value for key, value in headers.items() if key.lower() == lowered), None)


class StoreRegistry:
    """The Registry of the MLflow server the gate runs in: its registry store and its artifact storage, read
    in-process (never over HTTP: a gunicorn worker would wait on itself)."""

    def tags(self, name: str, version: str) -> Mapping[str, str] | None:
        from mlflow.exceptions import MlflowException
        from mlflow.server.handlers import _get_model_registry_store

        try:
            store: Any = _get_model_registry_store()
            found = store.get_model_version(name, version)
        except MlflowException:
            return None
        return dict(found.tags or {})

    def promotions(self, name: str) -> Sequence[tuple[str, PromotionTarget]]:
        from mlflow.exceptions import MlflowException
        from mlflow.server.handlers import _get_model_registry_store

        store: Any = _get_model_registry_store()
        try:
            model = store.get_registered_model(name)
        except MlflowException:
            return ()  # no such model: MLflow answers the rename itself
        aliases: Mapping[str, Any] = model.aliases or {}  # alias -> version
        held = [(str(version), PromotionTarget(name, alias=alias)) for alias, version in aliases.items()]
        token = None
        while True:
            page = store.search_model_versions(
                filter_string=f"name = '{_quoted(name)}'", max_results=1000, page_token=token
            )
            held += [
                (str(found.version), PromotionTarget(name, stage=found.current_stage))
                for found in page
                if found.current_stage and found.current_stage.lower() != "none"
            ]
            token = page.token
            if not token:
                return held

    def files_digest(self, name: str, version: str) -> str | None:
        try:
            with tempfile.TemporaryDirectory(prefix="model-scanner-gate-") as scratch:
                return files_digest(_download_version(name, version, Path(scratch)))
        except Exception as error:  # any failure to read the files fails closed: the promotion is refused
            log.warning("cannot read the files of %s version %s: %s", name, version, shortened(str(error), 300))
            log.debug("why the files of %s version %s cannot be read", name, version, exc_info=error)
            return None


def _quoted(name: str) -> str:
    return name.replace("\\", "\\\\").replace("'", "\\'")


def _download_version(name: str, version: str, dest: Path) -> Path:
    """The version's artifact location downloaded under `dest`, through the server's own stores and artifact storage
    (as MLflow's artifact handlers resolve them), so the gate reads what a client downloading the version gets."""
    from mlflow.server import handlers as untyped

    handlers: Any = untyped
    uri = _storage_uri(handlers, handlers._get_model_registry_store().get_model_version_download_uri(name, version))
    if handlers._is_servable_proxied_run_artifact_root(uri):
        repo = handlers._get_artifact_repo_mlflow_artifacts()
        path = handlers._get_proxied_run_artifact_destination_path(proxied_artifact_root=uri)
        path = handlers._get_workspace_scoped_repo_path_if_enabled(path)
        return Path(repo.download_artifacts(path, dst_path=str(dest)))
    repo = handlers._get_artifact_repository_for_uri(uri)
    return Path(repo.download_artifacts("", dst_path=str(dest)))


def _storage_uri(handlers: Any, uri: str, depth: int = 0) -> str:
    """`runs:/RUN/path`, `models:/m-ID[/path]` and `models:/NAME/VERSION` resolved in-process to where the files are
    stored, as a client's runs:/ and models:/ artifact repositories resolve them over REST."""
    if depth > 5:
        raise ValueError(f"{uri}: model URIs that lead to each other")
    if uri.startswith("runs:/"):
        run_id, _, path = uri.removeprefix("runs:/").lstrip("/").partition("/")
        root = handlers._get_tracking_store().get_run(run_id).info.artifact_uri
        return _storage_uri(handlers, f"{root.rstrip('/')}/{path}".rstrip("/"), depth + 1)
    if uri.startswith("models:/"):
        first, _, rest = uri.removeprefix("models:/").lstrip("/").partition("/")
        if first.startswith("m-"):
            root = handlers._get_tracking_store().get_logged_model(first).artifact_location
            return _storage_uri(handlers, f"{root.rstrip('/')}/{rest}".rstrip("/"), depth + 1)
        version, _, path = rest.partition("/")
        if not version or path or "@" in first:
            raise ValueError(f"{uri}: not a model version the gate can resolve")
        inner = handlers._get_model_registry_store().get_model_version_download_uri(first, version)
        return _storage_uri(handlers, inner, depth + 1)
    return uri


def gate_from_environment() -> Gate:
    return Gate(
        PolicySource(os.environ.get(POLICY_ENV) or None),
        token=os.environ.get(TOKEN_ENV) or None,
        registry=StoreRegistry(),
    )


RequestParser = Callable[[Any], RegistryRequest | None]


def registry_request_parser() -> RequestParser:
    """Parses a Flask request to a registry operation exactly as MLflow's handler will: the route Flask matched
    (both API prefixes, any static prefix) names the request message, and MLflow's own `_get_request_message`
    fills it (query arguments for GET, else the JSON body, a JSON string holding the object decoded again, camelCase
    and snake_case field names). None: not an operation the gate judges. Raises when MLflow's parsing raises."""
    from google.protobuf.json_format import MessageToDict
    from mlflow.protos.model_registry_pb2 import ModelRegistryService
    from mlflow.server import handlers as untyped

    handlers: Any = untyped
    routes = {
        (path, method): message_class
        for path, message_class, methods in handlers.get_service_endpoints(ModelRegistryService, lambda cls: cls)
        for method in methods
        if message_class.__name__ in JUDGED_OPERATIONS
    }

    def parse(flask_request: Any) -> RegistryRequest | None:
        rule = flask_request.url_rule
        message_class = routes.get((rule.rule, flask_request.method)) if rule is not None else None
        if message_class is None:
            return None
        message = handlers._get_request_message(message_class(), flask_request=flask_request)
        fields = MessageToDict(message, preserving_proto_field_name=True)
        return RegistryRequest(operation=message_class.__name__, fields=fields)

    return parse


def install(app: Any, gate: Gate) -> None:
    """Registers the gate as a Flask before_request hook on MLflow's server app."""
    from flask import jsonify, request

    parse = registry_request_parser()

    def before_request() -> Any:
        try:
            parsed = parse(request)
        except Exception as error:  # what the gate cannot read, it does not let through
            refusal: Refusal | None = Refusal(
                f"model-scanner refused a request it cannot parse: {shortened(str(error), 300)}", status=400
            )
        else:
            refusal = None if parsed is None else gate.check(parsed, dict(request.headers.items()))
        if refusal is None:
            return None
        log.warning("refused %s %s: %s", request.method, request.path, refusal.message)
        return jsonify({"error_code": refusal.error_code, "message": refusal.message}), refusal.status

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
