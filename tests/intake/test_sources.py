"""find_model_files: one file, or every model file (and every pickle, to be refused) under a directory."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from scanner.intake import ModelNotFound, RefusedFile, SymlinkOutside, find_model_files, load_model
from tests.intake.builders import save, tiny_cnn
from tests.intake.hostile import model_symlink_outside


def test_a_file_is_its_own_list(tmp_path: Path) -> None:
    path = save(tiny_cnn(), tmp_path / "anything.model")
    assert find_model_files(path) == [path]


def test_directory_is_searched_recursively(tmp_path: Path) -> None:
    expected = [
        save(tiny_cnn(), tmp_path / "a.onnx"),
        save(tiny_cnn(), tmp_path / "nested" / "deeper" / "b.onnx"),
        save(tiny_cnn(), tmp_path / "nested" / "c.ONNX"),
    ]
    for name in ("nested/legacy.pt", "nested/weights.pth", "notebook.pkl"):
        (tmp_path / name).write_bytes(pickle.dumps({"w": 1}, protocol=2))
    expected += [tmp_path / "nested/legacy.pt", tmp_path / "nested/weights.pth", tmp_path / "notebook.pkl"]
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "pytorch_model.bin").write_bytes(pickle.dumps({"w": 1}, protocol=4))
    expected.append(tmp_path / "hf" / "pytorch_model.bin")
    # Not models, and not referenced by one either: refused by name, never loaded. Notes are fine.
    (tmp_path / "nested" / "raw_tensor.bin").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "README.md").write_text("models")
    (tmp_path / "a.onnx.data").write_bytes(b"\0" * 64)

    found = find_model_files(tmp_path)
    models = [entry for entry in found if isinstance(entry, Path)]
    assert models == sorted(expected)
    refused = {entry.path: entry.error.kind for entry in found if isinstance(entry, RefusedFile)}
    assert refused == {
        tmp_path / "nested" / "raw_tensor.bin": "unrecognized_file",
        tmp_path / "a.onnx.data": "unrecognized_file",
    }
    assert [load_model(p).spec.num_classes for p in models if p.suffix.lower() == ".onnx"] == [
        10,
        10,
        10,
    ]


def test_symlinked_directories_are_not_followed(tmp_path: Path) -> None:
    inside = save(tiny_cnn(), tmp_path / "scan" / "m.onnx")
    save(tiny_cnn(), tmp_path / "elsewhere" / "other.onnx")
    os.symlink(tmp_path / "elsewhere", tmp_path / "scan" / "link")
    assert find_model_files(tmp_path / "scan") == [inside]


def test_missing_target(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound) as refused:
        find_model_files(tmp_path / "nope")
    assert refused.value.kind == "not_found"


def test_symlink_out_of_the_tree_is_listed_so_it_gets_refused(tmp_path: Path) -> None:
    link = model_symlink_outside(tmp_path)
    assert find_model_files(link.parent) == [link]
    with pytest.raises(SymlinkOutside):
        load_model(link)


def test_symlink_within_the_directory_is_followed(tmp_path: Path) -> None:
    real = save(tiny_cnn(), tmp_path / "runs" / "7" / "model.onnx")
    (tmp_path / "latest.onnx").symlink_to(real)
    assert load_model(tmp_path / "latest.onnx").spec.num_classes == 10


def test_bin_symlink_out_of_its_directory_is_not_read(tmp_path: Path) -> None:
    outside = tmp_path / "outside.bin"
    outside.write_bytes(pickle.dumps({"w": 1}, protocol=2))  # would be listed (as a pickle) if it were read
    (tmp_path / "scan").mkdir()
    (tmp_path / "scan" / "weights.bin").symlink_to(outside)
    (refused,) = find_model_files(tmp_path / "scan")
    assert isinstance(refused, RefusedFile) and refused.error.kind == "symlink_outside"
    with pytest.raises(SymlinkOutside):
        load_model(tmp_path / "scan" / "weights.bin")


def test_data_files_that_hold_no_pickle_are_not_taken_for_pickles(tmp_path: Path) -> None:
    """Looking for pickles anywhere in .bin, .npy, .h5 and .safetensors files must not find one in ordinary tensor
    data: numeric arrays pass, and the rest, which no model references, are refused as unrecognised, not as pickles."""
    rng = np.random.default_rng(0)
    for index in range(200):
        weights = rng.normal(0, 0.1, 1024).astype(np.float32)
        (tmp_path / f"external_{index}.bin").write_bytes(weights.tobytes())
        (tmp_path / f"noise_{index}.bin").write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
        np.save(tmp_path / f"array_{index}.npy", weights.reshape(32, 32))
    header = b'{"w":{"dtype":"F32","shape":[1024],"data_offsets":[0,4096]}}'
    (tmp_path / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + bytes(4096))
    (tmp_path / "model.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(4096))

    found = find_model_files(tmp_path)
    assert all(isinstance(entry, RefusedFile) and entry.error.kind == "unrecognized_file" for entry in found)
    assert {entry.path.suffix for entry in found} == {".bin", ".safetensors", ".h5"}  # type: ignore[union-attr]
    assert len(found) == 402
