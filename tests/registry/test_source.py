"""models:/ targets: the ONNX file comes from the MLmodel onnx flavor; pickled flavors are refused unread."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from scanner.errors import RegistryError, UsageError
from scanner.registry.source import (
    CustomLoaderRefused,
    NoOnnxFlavor,
    PickledFlavorRefused,
    fetch_model,
    onnx_file_of,
    parse_models_uri,
)


def model_dir(tmp_path: Path, flavors: dict[str, Any], files: dict[str, bytes] | None = None) -> Path:
    directory = tmp_path / "model"
    directory.mkdir()
    (directory / "MLmodel").write_text(yaml.safe_dump({"flavors": flavors}))
    for name, content in (files or {}).items():
        (directory / name).write_bytes(content)
    return directory


def test_models_uris_parse() -> None:
    assert parse_models_uri("models:/fraud-cnn/3").version == "3"
    assert parse_models_uri("models:/fraud-cnn@champion").alias == "champion"
    for bad in ("models:/", "models:/a/b/c", "runs:/x/model", "models:/a@"):
        with pytest.raises(UsageError):
            parse_models_uri(bad)


def test_onnx_flavor_names_the_file(tmp_path: Path) -> None:
    directory = model_dir(tmp_path, {"onnx": {"data": "model.onnx"}}, {"model.onnx": b"x"})
    assert onnx_file_of(directory) == (directory / "model.onnx").resolve()


@pytest.mark.parametrize(
    "flavors",
    [
        {"pytorch": {"model_data": "data", "pickle_module_name": "mlflow.pytorch.pickle_module"}},
        {"sklearn": {"pickled_model": "model.pkl"}},
        {"python_function": {"loader_module": "mlflow.pytorch", "data": "data"}},
    ],
    ids=["pytorch", "sklearn", "pyfunc-loader"],
)
def test_pickled_flavors_are_refused(tmp_path: Path, flavors: dict[str, Any]) -> None:
    with pytest.raises(PickledFlavorRefused, match="pickle") as refused:
        onnx_file_of(model_dir(tmp_path, flavors))
    assert "onnx" in refused.value.hint


@pytest.mark.parametrize(
    ("flavors", "files"),
    [
        ({"onnx": {"data": "../outside.onnx"}}, {}),
        ({"onnx": {"data": "missing.onnx"}}, {}),
        ({"onnx": {}}, {}),
        ({"tensorflow": {"saved_model_dir": "tf"}}, {}),
    ],
    ids=["escapes", "missing", "no-data", "other-flavor"],
)
def test_unusable_mlmodels_are_refused(tmp_path: Path, flavors: dict[str, Any], files: dict[str, bytes]) -> None:
    (tmp_path / "outside.onnx").write_bytes(b"x")
    with pytest.raises(NoOnnxFlavor):
        onnx_file_of(model_dir(tmp_path, flavors, files))


@pytest.mark.server
def test_fetch_by_alias_with_clean_sample(
    gated_server: Any, register_model: Callable[..., str], service_model: Path, tmp_path: Path
) -> None:
    sample = tmp_path / "clean_sample.npz"
    np.savez(sample, x=np.zeros((4, 1, 16, 16), np.float32), y=np.zeros(4, np.int64))
    version = register_model(gated_server.url, service_model, "fetch-me", clean_sample=sample)
    client = gated_server.client()
    client.set_registered_model_alias("fetch-me", "candidate", version)  # not a protected alias

    fetched = fetch_model("models:/fetch-me@candidate", tmp_path / "dl", client=client)
    assert (fetched.name, fetched.version) == ("fetch-me", version)
    assert fetched.path.read_bytes() == service_model.read_bytes()
    assert fetched.clean_data is not None and fetched.clean_data.name == "clean_sample.npz"
    with pytest.raises(RegistryError):
        fetch_model("models:/fetch-me/999", tmp_path / "none", client=client)


def test_mlflow_onnx_models_pass(tmp_path: Path) -> None:
    # What mlflow.onnx.log_model writes (MLflow 3.17): MLflow's own onnx loader, no code paths.
    flavors = {
        "onnx": {"code": None, "data": "model.onnx", "onnx_version": "1.17.0", "providers": ["CPUExecutionProvider"]},
        "python_function": {
            "data": "model.onnx",
            "env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
            "loader_module": "mlflow.onnx",
            "python_version": "3.11.7",
        },
    }
    directory = model_dir(tmp_path, flavors, {"model.onnx": b"x"})
    assert onnx_file_of(directory) == (directory / "model.onnx").resolve()


@pytest.mark.parametrize(
    "flavors",
    [
        {"onnx": {"data": "model.onnx"}, "python_function": {"loader_module": "evil_module", "data": "model.onnx"}},
        {"onnx": {"data": "model.onnx", "code": "code"}},
        {"onnx": {"data": "model.onnx"}, "python_function": {"loader_module": "mlflow.onnx", "code": "code"}},
    ],
    ids=["custom-loader", "onnx-code-paths", "pyfunc-code-paths"],
)
def test_onnx_models_that_run_custom_code_on_load_are_refused(tmp_path: Path, flavors: dict[str, Any]) -> None:
    with pytest.raises(CustomLoaderRefused) as refused:
        onnx_file_of(model_dir(tmp_path, flavors, {"model.onnx": b"x"}))
    assert refused.value.kind == "custom_loader_module"
    assert "run" in str(refused.value) and refused.value.hint


def test_an_onnx_model_loaded_through_a_pickle_is_refused(tmp_path: Path) -> None:
    # mlflow.pyfunc.model unpickles python_model.pkl: the ONNX file is not what pyfunc would run.
    flavors = {"onnx": {"data": "model.onnx"}, "python_function": {"loader_module": "mlflow.pyfunc.model"}}
    with pytest.raises(PickledFlavorRefused, match=r"mlflow\.pyfunc\.model"):
        onnx_file_of(model_dir(tmp_path, flavors, {"model.onnx": b"x"}))


def test_a_deeply_nested_or_huge_mlmodel_is_refused(tmp_path: Path) -> None:
    deep = tmp_path / "deep"
    deep.mkdir()
    (deep / "MLmodel").write_text("flavors: " + "[" * 3000 + "]" * 3000 + "\n")
    with pytest.raises(NoOnnxFlavor, match="nests too deeply"):
        onnx_file_of(deep)
    huge = tmp_path / "huge"
    huge.mkdir()
    (huge / "MLmodel").write_text("flavors: {}\n" + "# padding\n" * 200_000)
    with pytest.raises(NoOnnxFlavor, match=r"MLmodel is \d+ bytes"):
        onnx_file_of(huge)
