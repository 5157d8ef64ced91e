"""Every hostile or broken file is refused before anything runs, with its own kind and a one-line message."""

from __future__ import annotations

import gzip
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from scanner.errors import IntakeError
from scanner.intake import REFUSALS, NotAnImageModel, RefusedFile, find_model_files, load_model
from tests.intake.builders import move_weights_outside, save, tiny_cnn
from tests.intake.hostile import (
    HOSTILE,
    HOSTILE_NEIGHBOURS,
    NOT_IMAGE_MODELS,
    PICKLE_MARKER,
    Builder,
    CreatesFileWhenUnpickled,
    external_data_absolute,
    external_data_dotdot,
    external_data_symlink,
    function_shadowing_a_runtime_kernel,
    gzipped_pickle,
    numpy_object_array,
    object_array_npz,
    pickle_after_a_pickle,
    pickle_mid_file,
    pickle_named_weights,
    pickle_padded_past_any_prefix,
    pickle_protocol_0_bin,
    pickle_written,
    raw_pickle,
    torch_zip_checkpoint,
    torch_zip_named_zip,
)


@pytest.mark.parametrize(("builder", "kind"), HOSTILE, ids=[builder.__name__ for builder, _ in HOSTILE])
def test_hostile_file_is_refused(tmp_path: Path, builder: Builder, kind: str) -> None:
    path = builder(tmp_path)

    with pytest.raises(IntakeError) as refused:
        load_model(path)

    assert refused.value.kind == kind
    assert type(refused.value) is not IntakeError, "each refusal has its own subclass"
    line = refused.value.one_line()
    assert "\n" not in line and path.name in line
    assert refused.value.hint, "every refusal says what to do"
    assert not (tmp_path / PICKLE_MARKER).exists()


@pytest.mark.parametrize(("builder", "kind"), NOT_IMAGE_MODELS, ids=[b.__name__ for b, _ in NOT_IMAGE_MODELS])
def test_model_without_image_input_is_not_applicable(tmp_path: Path, builder: Builder, kind: str) -> None:
    with pytest.raises(NotAnImageModel, match=r"not a batch of images|not an image batch") as refused:
        load_model(builder(tmp_path))
    assert refused.value.kind == kind == "not_applicable"


@pytest.mark.parametrize(
    "builder",
    [raw_pickle, torch_zip_checkpoint, pickle_protocol_0_bin, pickle_padded_past_any_prefix, numpy_object_array],
)
def test_pickle_would_have_run_code(tmp_path: Path, builder: Builder) -> None:
    """The pickle fixtures are real threats: loading them the usual way does create the marker file."""
    path = builder(tmp_path)
    with pytest.raises(IntakeError, match="refused unopened"):
        load_model(path)
    assert find_model_files(tmp_path) == [path]
    assert not (tmp_path / PICKLE_MARKER).exists()

    if builder is torch_zip_checkpoint:
        import torch

        torch.load(path, weights_only=False)["state"].close()
    elif builder is numpy_object_array:
        np.load(path, allow_pickle=True)[0].close()
    else:
        pickle.loads(path.read_bytes()).close()
    assert (tmp_path / PICKLE_MARKER).exists()


@pytest.mark.parametrize("builder", [external_data_dotdot, external_data_absolute, external_data_symlink])
def test_external_data_outside_is_named_in_the_message(tmp_path: Path, builder: Builder) -> None:
    with pytest.raises(IntakeError, match="external data") as refused:
        load_model(builder(tmp_path))
    assert refused.value.kind == "external_data_outside"


@pytest.mark.parametrize(("builder", "kind"), HOSTILE, ids=[builder.__name__ for builder, _ in HOSTILE])
def test_directory_scan_finds_the_hostile_file_and_nothing_else(tmp_path: Path, builder: Builder, kind: str) -> None:
    """Refused loudly, never skipped: a scan of the folder lists exactly the file to refuse."""
    path = builder(tmp_path)
    assert find_model_files(tmp_path) == [path], kind


def test_names_from_the_file_cannot_forge_lines(tmp_path: Path) -> None:
    """A newline in a file name or an operator domain is escaped, so it cannot forge a log or report line."""
    model = tiny_cnn()
    relu = next(node for node in model.graph.node if node.op_type == "Relu")
    relu.domain = "evil\nmodel-scanner: error: forged"
    path = save(model, tmp_path / "line\nbreak.onnx")

    with pytest.raises(IntakeError) as refused:
        load_model(path)

    assert "\n" not in str(refused.value)
    assert "line\\nbreak.onnx" in str(refused.value) and "evil\\nmodel-scanner" in str(refused.value)


def test_every_refusal_has_its_own_kind_and_a_remedy() -> None:
    kinds = [refusal.kind for refusal in REFUSALS]
    assert len(set(kinds)) == len(kinds) and "intake" not in kinds
    assert all(refusal.hint and "\n" not in refusal.hint for refusal in REFUSALS)
    assert {kind for _, kind in HOSTILE + NOT_IMAGE_MODELS} <= set(kinds)
    assert set(IntakeError.__subclasses__()) - set(REFUSALS) <= {
        cls for cls in IntakeError.__subclasses__() if not cls.__module__.startswith("scanner.intake")
    }


def test_external_data_in_a_function_attribute_default_is_checked(tmp_path: Path) -> None:
    """A place hand-written walkers forget: the default value of a model-local function's attribute."""
    from onnx import TensorProto, helper

    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "weights.bin").write_bytes(bytes(16))
    tensor = helper.make_tensor("default", TensorProto.FLOAT, [4], vals=[0.0] * 4)
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "../outside/weights.bin"), ("length", "16")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    function = onnx.FunctionProto(name="scale", domain="local", input=["x"], output=["y"])
    function.node.append(helper.make_node("Identity", ["x"], ["y"]))
    function.attribute_proto.append(helper.make_attribute("k", tensor))
    model = tiny_cnn()
    model.functions.append(function)

    with pytest.raises(IntakeError) as refused:
        load_model(save(model, tmp_path / "model" / "function.onnx"))
    assert refused.value.kind == "external_data_outside"


def test_a_link_swapped_in_after_the_check_is_not_followed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Between the path check and the read, an attacker replaces the checked file by a symlink out."""
    from scanner.intake import external_data

    path = external_data_symlink(tmp_path)  # model/weights.bin -> outside/weights.bin
    monkeypatch.setattr(external_data, "checked_location", lambda location, root, name: root / location)

    with pytest.raises(IntakeError) as refused:
        load_model(path)
    assert refused.value.kind == "unreadable"


def test_a_runtime_kernel_is_not_vouched_for_by_a_local_function(tmp_path: Path) -> None:
    """The shadowing fixture is real: ONNX Runtime runs its com.microsoft Gelu, not the function's Relu body."""
    path = function_shadowing_a_runtime_kernel(tmp_path)
    with pytest.raises(IntakeError, match="ONNX Runtime may run its own kernel") as refused:
        load_model(path)
    assert refused.value.kind == "custom_operator_domain"

    images = np.random.default_rng(0).normal(size=(4, 3, 8, 8)).astype(np.float32)
    shadowed = _scores(path.read_bytes(), images)
    as_the_body_says = _scores(tiny_cnn().SerializeToString(), images)  # the same net with a plain Relu
    assert not np.allclose(shadowed, as_the_body_says)


def test_a_local_function_in_a_domain_of_its_own_is_checked_and_run(tmp_path: Path) -> None:
    """Outside the runtime's domains a model-local function is its body: checked node by node, and run as written."""
    model = tiny_cnn()
    relu = next(node for node in model.graph.node if node.op_type == "Relu")
    relu.op_type, relu.domain = "Activation", "com.example.layers"
    model.opset_import.append(onnx.helper.make_opsetid("com.example.layers", 1))
    body = [onnx.helper.make_node("Relu", ["x"], ["y"])]
    opsets = [onnx.helper.make_opsetid("", 13)]
    model.functions.append(onnx.helper.make_function("com.example.layers", "Activation", ["x"], ["y"], body, opsets))

    artifact = load_model(save(model, tmp_path / "function.onnx"))

    images = np.random.default_rng(0).normal(size=(4, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(
        _scores(artifact.onnx_bytes, images), _scores(tiny_cnn().SerializeToString(), images), rtol=1e-6
    )


def _scores(onnx_bytes: bytes, images: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    return np.asarray(session.run(["scores"], {"image": images})[0])


@pytest.mark.parametrize(("builder", "kind"), HOSTILE_NEIGHBOURS, ids=[b.__name__ for b, _ in HOSTILE_NEIGHBOURS])
def test_a_hostile_neighbour_of_a_valid_model_is_refused_by_name(tmp_path: Path, builder: Builder, kind: str) -> None:
    model = save(tiny_cnn(), tmp_path / "model.onnx")
    path = builder(tmp_path)

    found = find_model_files(tmp_path)

    assert model in found
    (other,) = [entry for entry in found if entry != model]
    if isinstance(other, RefusedFile):
        error = other.error
        assert other.path == path
    else:  # named or sniffed as a pickle: listed, for the intake to refuse
        assert other == path
        with pytest.raises(IntakeError) as refused:
            load_model(path)
        error = refused.value
    assert error.kind == kind
    assert path.name in error.one_line() and "\n" not in error.one_line()
    assert not (tmp_path / PICKLE_MARKER).exists()


@pytest.mark.parametrize(
    ("builder", "load"),
    [
        (pickle_after_a_pickle, lambda path: [pickle.load(file) for file in [path.open("rb")] for _ in range(2)][1]),
        (pickle_mid_file, lambda path: pickle.loads(path.read_bytes()[1024:])),
        (gzipped_pickle, lambda path: pickle.loads(gzip.decompress(path.read_bytes()))),
        (object_array_npz, lambda path: np.load(path, allow_pickle=True)["extra"][0]),
        (torch_zip_named_zip, lambda path: __import__("torch").load(path, weights_only=False)["state"]),
    ],
    ids=["after_a_pickle", "mid_file", "gzip", "npz", "torch_zip"],
)
def test_the_hidden_pickles_would_have_run_code(tmp_path: Path, builder: Builder, load: Callable[[Path], Any]) -> None:
    """The neighbours are real threats: loading them as their makers would creates the marker file."""
    path = builder(tmp_path)
    assert not (tmp_path / PICKLE_MARKER).exists()
    load(path).close()
    assert (tmp_path / PICKLE_MARKER).exists()


def test_a_folder_with_the_valid_model_alone_lists_it_alone(tmp_path: Path) -> None:
    model = save(tiny_cnn(), tmp_path / "model.onnx")
    (tmp_path / "config.json").write_text('{"classes": 10}')
    (tmp_path / "params.yaml").write_text("lr: 0.01\n")
    (tmp_path / "notes.md").write_text("# trained on digits\n")
    (tmp_path / "labels.csv").write_text("id,name\n0,zero\n")
    from PIL import Image

    Image.new("RGB", (4, 4)).save(tmp_path / "sample.png")
    np.savez(tmp_path / "clean_sample.npz", x=np.zeros((2, 3, 8, 8), np.float32), y=np.zeros(2, np.int64))
    (tmp_path / ".lock").write_bytes(b"")
    (tmp_path / "LICENSE").write_text("Apache License\nVersion 2.0\n")
    (tmp_path / "COMPLETE").write_text("complete\n")  # the marker of a built zoo

    assert find_model_files(tmp_path) == [model]


def test_text_without_a_suffix_is_still_searched_for_pickles(tmp_path: Path) -> None:
    """A protocol 0 pickle is ASCII text: a file without a suffix is taken for text only once no pickle is in it."""
    save(tiny_cnn(), tmp_path / "model.onnx")
    path = pickle_written(tmp_path / "weights", protocol=0)
    assert path.read_bytes().isascii()

    (refused,) = [entry for entry in find_model_files(tmp_path) if isinstance(entry, RefusedFile)]
    assert refused.path == path and refused.error.kind == "pickle_refused"


@pytest.mark.parametrize(
    ("name", "content"),
    [("config.json", b"{not json"), ("params.yaml", b"a: [1"), ("notes.txt", b"\xff\xfe\x00"), ("cat.png", b"GIF89a")],
)
def test_a_file_that_is_not_what_its_name_says_is_refused(tmp_path: Path, name: str, content: bytes) -> None:
    save(tiny_cnn(), tmp_path / "model.onnx")
    (tmp_path / name).write_bytes(content)
    (refused,) = [entry for entry in find_model_files(tmp_path) if isinstance(entry, RefusedFile)]
    assert refused.path.name == name and refused.error.kind == "unrecognized_file"


def test_allow_files_admits_a_named_file_but_never_a_pickle(tmp_path: Path) -> None:
    model = save(tiny_cnn(), tmp_path / "model.onnx")
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "vocab.bin").write_bytes(bytes(range(256)))
    path = pickle_named_weights(tmp_path / "assets")

    found = find_model_files(tmp_path, allow_files=["assets/*"])

    assert [entry.path for entry in found if isinstance(entry, RefusedFile)] == [path]
    assert model in found


def test_external_data_with_a_second_hard_link_is_refused(tmp_path: Path) -> None:
    """A hard link is the same file under another name: its other name may be anywhere, outside the model's folder."""
    model = tiny_cnn()
    outside = tmp_path / "outside" / "secret.bin"
    move_weights_outside(model, "weights.bin", outside)
    path = save(model, tmp_path / "model" / "linked.onnx")
    os.link(outside, path.parent / "weights.bin")

    with pytest.raises(IntakeError, match="2 hard links") as refused:
        load_model(path)
    assert refused.value.kind == "external_data_outside"

    (outside).unlink()  # the only name left is the model's own: read as usual
    assert load_model(path).spec.num_classes == 10


def test_a_pickle_after_the_weights_in_a_models_external_data_is_refused_by_the_intake(tmp_path: Path) -> None:
    """A folder scan leaves a model's own external data to the intake, which searches it before reading it."""
    model = tiny_cnn()
    data = tmp_path / "weights.bin"
    move_weights_outside(model, "weights.bin", data)
    path = save(model, tmp_path / "model.onnx")
    with data.open("ab") as stream:
        stream.write(pickle.dumps(CreatesFileWhenUnpickled(tmp_path / PICKLE_MARKER), protocol=4))

    assert find_model_files(tmp_path) == [path]  # no refusal of its own: the data is the model's
    with pytest.raises(IntakeError) as refused:
        load_model(path)
    assert refused.value.kind == "pickle_refused" and "weights.bin" in str(refused.value)
