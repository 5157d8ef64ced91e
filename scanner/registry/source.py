"""`models:/name/version` and `models:/name@alias`: download a registered model and find the ONNX file to scan.

The ONNX file comes from the MLmodel file's `onnx` flavor. Pickled flavors (pytorch, sklearn, a pyfunc loader
module...) are refused, never loaded: unpickling runs code. So is an ONNX model that MLflow would load through other
code than its own onnx loader (a custom `loader_module`, `code` paths put on sys.path): the verdict on the ONNX file
would say nothing about what runs when the promoted model is loaded. Clean sample data for BAN may be logged as
`clean_sample.npz` beside the model (anywhere in the model's artifacts, or at the root of the version's run).
mlflow is imported inside the functions: `import scanner` stays light.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from scanner.errors import IntakeError, MissingDependency, RegistryError, UsageError
from scanner.intake.errors import shown
from scanner.registry.model_files import files_digest

log = logging.getLogger(__name__)

CLEAN_SAMPLE_NAME = "clean_sample.npz"
# Flavors whose model files are pickles (or load through pickles): refused by name.
PICKLED_FLAVORS = frozenset({"pytorch", "sklearn", "xgboost", "lightgbm", "catboost", "statsmodels", "h2o", "spacy"})
ONNX_LOADER = "mlflow.onnx"
MAX_MLMODEL_BYTES = 1 << 20  # an MLmodel file is a few KiB of YAML
_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>[^/@]+)|@(?P<alias>[^/@]+))/?$")


class PickledFlavorRefused(IntakeError):
    kind = "pickle_refused"
    hint = "log the model with mlflow.onnx.log_model (export it with torch.onnx.export) and register that version"


class NoOnnxFlavor(IntakeError):
    kind = "no_onnx_flavor"
    hint = "log the model with mlflow.onnx.log_model so that its MLmodel file has an onnx flavor"


class CustomLoaderRefused(IntakeError):
    kind = "custom_loader_module"
    hint = "log the model with mlflow.onnx.log_model, without code_paths, so that MLflow's own onnx loader loads it"


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str | None = None
    alias: str | None = None

    def __str__(self) -> str:
        return f"models:/{self.name}/{self.version}" if self.version else f"models:/{self.name}@{self.alias}"


@dataclass(frozen=True)
class FetchedModel:
    """A registered model version, downloaded: the ONNX file to scan and what was found beside it."""

    path: Path
    clean_data: Path | None
    name: str
    version: str
    run_id: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    files_sha256: str | None = None  # model_files.files_digest of everything downloaded (what the gate rechecks)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def is_models_uri(target: str) -> bool:
    return target.startswith("models:/")


def parse_models_uri(uri: str) -> ModelRef:
    match = _MODELS_URI.match(uri)
    if not match:
        raise UsageError(
            f"not a registered model URI: {uri!r}", hint="write models:/NAME/VERSION or models:/NAME@ALIAS"
        )
    return ModelRef(name=match["name"], version=match["version"], alias=match["alias"])


def mlflow_client(tracking_uri: str | None = None) -> Any:
    try:
        from mlflow import MlflowClient
    except ImportError as error:
        raise MissingDependency("mlflow", "mlflow") from error
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def fetch_model(uri: str, dest_dir: Path, *, client: Any | None = None) -> FetchedModel:
    """Downloads `uri`'s model artifacts into `dest_dir` and returns the ONNX file inside them.

    Raises RegistryError when the registry cannot be reached or has no such version, PickledFlavorRefused or
    NoOnnxFlavor when the version holds something we must not or cannot scan.
    """
    ref = parse_models_uri(uri)
    client = client or mlflow_client()
    version = _resolve(client, ref)
    model_dir = _download(client, version.name, str(version.version), dest_dir / "model")
    files_sha256 = files_digest(model_dir)  # before anything else lands beside the files
    onnx_path = onnx_file_of(model_dir)
    clean = _find_clean_sample(client, model_dir, version.run_id, dest_dir)
    return FetchedModel(
        path=onnx_path,
        clean_data=clean,
        name=version.name,
        version=str(version.version),
        run_id=version.run_id or None,
        tags=dict(version.tags or {}),
        files_sha256=files_sha256,
    )


def _resolve(client: Any, ref: ModelRef) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        if ref.version is not None:
            return client.get_model_version(ref.name, ref.version)
        return client.get_model_version_by_alias(ref.name, ref.alias)
    except MlflowException as error:
        raise RegistryError(
            f"{ref}: {error.message}", hint="check the model name, version or alias, and --tracking-uri"
        ) from error


def _download(client: Any, name: str, version: str, dest: Path) -> Path:
    """Downloads the version's artifacts under `dest`; returns the folder that holds them (and its MLmodel)."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    dest.mkdir(parents=True, exist_ok=True)
    try:
        # The version's own artifact location, resolved by this client's registry (a models:/ URI would be resolved
        # against the process's default registry instead).
        location = client.get_model_version_download_uri(name, version)
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=location, dst_path=str(dest), tracking_uri=client.tracking_uri
        )
    except (MlflowException, OSError) as error:
        raise RegistryError(f"models:/{name}/{version}: could not download its artifacts: {error}") from error
    return Path(local)


def onnx_file_of(model_dir: Path) -> Path:
    """The ONNX file named by `model_dir/MLmodel`'s onnx flavor, checked to lie inside `model_dir`."""
    mlmodel = model_dir / "MLmodel"
    if not mlmodel.is_file():
        raise NoOnnxFlavor(f"{model_dir.name}: no MLmodel file in the model's artifacts")
    size = mlmodel.stat().st_size
    if size > MAX_MLMODEL_BYTES:
        raise NoOnnxFlavor(f"MLmodel is {size} bytes, over the {MAX_MLMODEL_BYTES} an MLmodel file may have")
    try:
        document = yaml.safe_load(mlmodel.read_text(encoding="utf-8"))
    except RecursionError:
        raise NoOnnxFlavor("MLmodel nests too deeply to be a model's description") from None
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise NoOnnxFlavor(f"MLmodel is not valid YAML: {error}") from error
    flavors = document.get("flavors") if isinstance(document, dict) else None
    if not isinstance(flavors, dict):
        raise NoOnnxFlavor("MLmodel lists no flavors")
    onnx_flavor = flavors.get("onnx")
    if not isinstance(onnx_flavor, dict):
        pickled = sorted(PICKLED_FLAVORS & set(flavors) | _pickled_pyfunc(flavors))
        if pickled:
            raise PickledFlavorRefused(
                f"the model is a pickle ({', '.join(pickled)} flavor): loading it would run code from the file, "
                "so it is not scanned"
            )
        raise NoOnnxFlavor(f"the model has no onnx flavor (flavors: {', '.join(sorted(flavors))})")
    _refuse_code_run_on_load(flavors)
    data = onnx_flavor.get("data")
    if not isinstance(data, str) or not data:
        raise NoOnnxFlavor("the onnx flavor names no model file (key 'data')")
    root = model_dir.resolve()
    path = (model_dir / data).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise NoOnnxFlavor(f"the onnx flavor's file {data!r} is not a file inside the model's artifacts")
    return path


def _pickled_pyfunc(flavors: Mapping[str, Any]) -> set[str]:
    loader = _pyfunc_loader(flavors)
    if loader is not None and loader != ONNX_LOADER:
        return {f"python_function via {loader}"}
    return set()


def _pyfunc_loader(flavors: Mapping[str, Any]) -> str | None:
    pyfunc = flavors.get("python_function")
    loader = pyfunc.get("loader_module") if isinstance(pyfunc, dict) else None
    return None if loader is None else str(loader)


def _refuse_code_run_on_load(flavors: Mapping[str, Any]) -> None:
    """Refuses an ONNX model that `mlflow.pyfunc.load_model` (or the onnx flavor's loader) would load by running
    other code than MLflow's onnx loader: a loader module of its own, MLflow's pickle loaders, or `code` paths
    (MLflow puts them first on sys.path, where they can shadow any module the loader imports)."""
    with_code = sorted(name for name, conf in flavors.items() if isinstance(conf, dict) and conf.get("code"))
    if with_code:
        raise CustomLoaderRefused(
            f"the model ships code paths ({', '.join(shown(name) for name in with_code)} flavor): loading it through "
            "MLflow would run that code, so it is not scanned"
        )
    loader = _pyfunc_loader(flavors)
    if loader is None or loader == ONNX_LOADER:
        return
    if not loader.startswith("mlflow."):
        raise CustomLoaderRefused(
            f"the model's python_function loader_module is {shown(loader)!r}, not MLflow's onnx loader: loading it "
            "through mlflow.pyfunc would run that module, so it is not scanned"
        )
    raise PickledFlavorRefused(
        f"the model would load through {shown(loader)} (python_function flavor), not from its ONNX file alone: "
        "MLflow's other loaders unpickle or import code from the model, so it is not scanned"
    )


def _find_clean_sample(client: Any, model_dir: Path, run_id: str | None, dest_dir: Path) -> Path | None:
    beside = sorted(model_dir.rglob(CLEAN_SAMPLE_NAME))
    if beside:
        return beside[0]
    if not run_id:
        return None
    from mlflow.exceptions import MlflowException

    try:
        names = {entry.path for entry in client.list_artifacts(run_id)}
        if CLEAN_SAMPLE_NAME not in names:
            return None
        path = client.download_artifacts(run_id, CLEAN_SAMPLE_NAME, str(dest_dir))
    except (MlflowException, OSError) as error:
        log.warning("run %s: could not fetch %s: %s", run_id, CLEAN_SAMPLE_NAME, error)
        return None
    return Path(path)
