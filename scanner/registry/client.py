"""The few MLflow registry calls the service makes, in one place: read versions, write scan tags, log reports.

Scan tags go through the REST API with the scanner's token header (`X-Model-Scanner-Token`), which the gate requires
for any `scan.*` write; everything else goes through MlflowClient. mlflow is imported lazily.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from scanner.errors import RegistryError
from scanner.registry import tags as scan_tags
from scanner.registry.source import mlflow_client

log = logging.getLogger(__name__)

TOKEN_HEADER = "X-Model-Scanner-Token"
SET_TAG_ENDPOINT = "/api/2.0/mlflow/model-versions/set-tag"
# Where reports land when a version has no run of its own.
SCANS_EXPERIMENT = "model-scanner"


class VersionGone(RegistryError):
    """The model version was deleted before the scanner got to it: nothing left to do."""

    kind = "version_gone"


@dataclass(frozen=True)
class VersionInfo:
    name: str
    version: str
    run_id: str | None
    tags: Mapping[str, str] = field(default_factory=dict)


class RegistryClient:
    def __init__(self, tracking_uri: str, *, token: str | None) -> None:
        self.tracking_uri = tracking_uri
        self.token = token
        self.mlflow = mlflow_client(tracking_uri)

    def version(self, name: str, version: str) -> VersionInfo:
        from mlflow.exceptions import MlflowException

        try:
            found = self.mlflow.get_model_version(name, version)
        except MlflowException as error:
            raise _translate(error, f"models:/{name}/{version}") from error
        return _info(found)

    def all_versions(self, *, page_size: int = 200) -> Iterator[VersionInfo]:
        """Every registered model version (paged), for the reconcile poller and re-scans."""
        from mlflow.exceptions import MlflowException

        token = None
        while True:
            try:
                page = self.mlflow.search_model_versions(max_results=page_size, page_token=token)
            except MlflowException as error:
                raise _translate(error, "search_model_versions") from error
            for found in page:
                yield _info(found)
            token = page.token
            if not token:
                return

    def set_scan_tags(self, name: str, version: str, tags: Mapping[str, str]) -> None:
        from mlflow.exceptions import MlflowException
        from mlflow.utils import credentials, rest_utils

        rest: Any = rest_utils  # untyped upstream
        creds = cast(Any, credentials).get_default_host_creds(self.tracking_uri)
        headers = {TOKEN_HEADER: self.token} if self.token else None
        # One request per tag: scan.status goes last, so that readers (the gate, the tests) may take its presence to
        # mean that the whole set is there, whatever order the caller built the tags in.
        for key, value in sorted(tags.items(), key=lambda item: item[0] == scan_tags.STATUS):
            body = {"name": name, "version": str(version), "key": key, "value": value}
            try:
                response = rest.http_request(
                    creds, SET_TAG_ENDPOINT, "POST", json=body, extra_headers=headers, timeout=30
                )
                rest.verify_rest_response(response, SET_TAG_ENDPOINT)
            except MlflowException as error:
                raise _translate(error, f"models:/{name}/{version} tag {key}") from error

    def log_report(self, info: VersionInfo, files: list[Path]) -> str:
        """Logs the scan's report and pictures where the version's page leads; returns their artifact URI.

        On the version's own run when it has one (the version page links "Source run"; artifacts under
        model-scanner/<name>/v<version>/), else on a run named after the version in experiment "model-scanner".
        """
        from mlflow.exceptions import MlflowException

        artifact_path = f"model-scanner/{info.name}/v{info.version}"
        try:
            run_id = info.run_id or self._scan_run(info)
            for path in files:
                self.mlflow.log_artifact(run_id, str(path), artifact_path)
            root = self.mlflow.get_run(run_id).info.artifact_uri
        except MlflowException as error:
            raise _translate(error, f"models:/{info.name}/{info.version} report") from error
        return f"{root.rstrip('/')}/{artifact_path}"

    def _scan_run(self, info: VersionInfo) -> str:
        experiment = self.mlflow.get_experiment_by_name(SCANS_EXPERIMENT)
        experiment_id = experiment.experiment_id if experiment else self.mlflow.create_experiment(SCANS_EXPERIMENT)
        run = self.mlflow.create_run(
            experiment_id,
            run_name=f"scan {info.name} v{info.version}",
            tags={"model_scanner.model": info.name, "model_scanner.version": info.version},
        )
        self.mlflow.set_terminated(run.info.run_id)
        return str(run.info.run_id)


def _info(found: Any) -> VersionInfo:
    return VersionInfo(
        name=found.name, version=str(found.version), run_id=found.run_id or None, tags=dict(found.tags or {})
    )


def _translate(error: Any, what: str) -> RegistryError:
    if getattr(error, "error_code", None) == "RESOURCE_DOES_NOT_EXIST":
        return VersionGone(f"{what}: no longer exists")
    return RegistryError(f"{what}: {error.message}", hint="check --tracking-uri and that the MLflow server is up")
