"""Hostile and broken model files, one builder each, and the intake error kind each must be refused with.

Each builder is a plain function `builder(directory) -> Path`: it writes its file (and whatever the file points at)
under `directory` and returns the path to hand to the scanner. The `scan` command's tests reuse HOSTILE to check
exit code 2 and a one-line message for every one of HOSTILE.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tests.intake.builders import OPSET, move_weights_outside, save, tabular_model, tiny_cnn

# Unpickling the pickle builders' files would create this file next to them.
PICKLE_MARKER = "unpickling-ran-code.txt"


class CreatesFileWhenUnpickled:
    """Unpickling calls open(marker, "w"): harmless proof that loading a pickle runs code chosen by its author."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def random_bytes(directory: Path) -> Path:
    path = directory / "random.onnx"
    # Seeded so the bytes never start like an ONNX file (0x08): they must read as "not ONNX", not "truncated".
    path.write_bytes(np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return path


def empty_file(directory: Path) -> Path:
    path = directory / "empty.onnx"
    path.write_bytes(b"")
    return path


def truncated_model(directory: Path) -> Path:
    data = tiny_cnn().SerializeToString()
    path = directory / "truncated.onnx"
    path.write_bytes(data[: len(data) // 2])
    return path


def _outside_weights(directory: Path) -> Path:
    return directory / "outside" / "weights.bin"


def external_data_dotdot(directory: Path) -> Path:
    model = tiny_cnn()
    move_weights_outside(model, "../outside/weights.bin", _outside_weights(directory))
    return save(model, directory / "model" / "dotdot.onnx")


def external_data_absolute(directory: Path) -> Path:
    model = tiny_cnn()
    target = _outside_weights(directory)
    move_weights_outside(model, str(target.resolve()), target)
    return save(model, directory / "model" / "absolute.onnx")


def external_data_symlink(directory: Path) -> Path:
    model = tiny_cnn()
    target = _outside_weights(directory)
    move_weights_outside(model, "weights.bin", target)
    path = save(model, directory / "model" / "symlink.onnx")
    os.symlink(target.resolve(), path.parent / "weights.bin")
    return path


def external_data_in_subgraph(directory: Path) -> Path:
    """The reference hides in a Constant inside an If's branch, two levels below the graph's initializers."""
    secret = _outside_weights(directory)
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_bytes(bytes(16))
    tensor = helper.make_tensor("hidden", TensorProto.FLOAT, [4], vals=[0.0] * 4)
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "../outside/weights.bin"), ("offset", "0"), ("length", "16")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    constant = helper.make_node("Constant", [], ["hidden_out"], value=tensor)
    branch = helper.make_graph(
        [constant], "branch", [], [helper.make_tensor_value_info("hidden_out", TensorProto.FLOAT, [4])]
    )
    model = tiny_cnn()
    model.graph.node.append(helper.make_node("If", ["flag"], ["unused"], then_branch=branch, else_branch=branch))
    return save(model, directory / "model" / "subgraph.onnx")


def external_data_missing(directory: Path) -> Path:
    model = tiny_cnn()
    move_weights_outside(model, "weights.bin", directory / "model" / "weights.bin")
    path = save(model, directory / "model" / "missing.onnx")
    (path.parent / "weights.bin").unlink()
    return path


def model_symlink_outside(directory: Path) -> Path:
    # Not named .onnx, so that a scan of `directory` finds only the symlink.
    real = save(tiny_cnn(), directory / "outside" / "real.model")
    path = directory / "scan" / "model.onnx"
    path.parent.mkdir(parents=True)
    os.symlink(real.resolve(), path)
    return path


def custom_operator_domain(directory: Path) -> Path:
    model = tiny_cnn()
    relu = next(node for node in model.graph.node if node.op_type == "Relu")
    relu.op_type, relu.domain = "EvilRelu", "com.example.evil"
    model.opset_import.append(helper.make_opsetid("com.example.evil", 1))
    return save(model, directory / "custom_domain.onnx")


def unsupported_opset(directory: Path) -> Path:
    return save(tiny_cnn(opset=99), directory / "opset99.onnx")


def unsupported_ir_version(directory: Path) -> Path:
    model = tiny_cnn()
    model.ir_version = 99
    return save(model, directory / "ir99.onnx")


def absurd_input(directory: Path) -> Path:
    return save(tiny_cnn(height=100_000, width=100_000), directory / "absurd_input.onnx")


def absurd_fixed_batch(directory: Path) -> Path:
    return save(tiny_cnn(batch=10**9), directory / "absurd_batch.onnx")


def absurd_classes(directory: Path) -> Path:
    model = tiny_cnn()
    model.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 10**9  # declared only: no weights that large
    return save(model, directory / "absurd_classes.onnx")


def two_inputs(directory: Path) -> Path:
    model = tiny_cnn()
    model.graph.input.append(helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["N", 1, 8, 8]))
    conv = next(node for node in model.graph.node if node.op_type == "Conv")
    mul = helper.make_node("Mul", ["image", "mask"], ["masked"])
    conv.input[0] = "masked"
    model.graph.node.insert(0, mul)
    return save(model, directory / "two_inputs.onnx")


def _image_through(model: onnx.ModelProto, node: onnx.NodeProto, value: onnx.ValueInfoProto) -> onnx.ModelProto:
    """`model` fed through `node`, which turns the new graph input `value` into the image batch."""
    model.graph.input.pop()
    model.graph.input.append(value)
    model.graph.node.insert(0, node)
    return model


def uint8_image_input(directory: Path) -> Path:
    """uint8 pixels cast to float32 inside the graph: an image classifier the scanner cannot feed."""
    raw = helper.make_tensor_value_info("pixels", TensorProto.UINT8, ["N", 3, 8, 8])
    cast = helper.make_node("Cast", ["pixels"], ["image"], to=TensorProto.FLOAT)
    return save(_image_through(tiny_cnn(), cast, raw), directory / "uint8_input.onnx")


def two_class_outputs(directory: Path) -> Path:
    """Logits and probabilities side by side: which one the scanner read would be a guess."""
    model = tiny_cnn()
    model.graph.node.append(helper.make_node("Softmax", ["scores"], ["probabilities"], axis=1))
    model.graph.output.insert(0, helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10]))
    return save(model, directory / "two_class_outputs.onnx")


def class_output_beside_an_open_output(directory: Path) -> Path:
    """A decoy (batch, classes) output first; the real scores' shape is hidden from declaration and inference."""
    model = tiny_cnn()
    model.graph.node[-1].output[0] = "logits"
    model.graph.node.extend(
        [
            helper.make_node("Shape", ["logits"], ["logits_shape"]),
            helper.make_node("Reshape", ["logits", "logits_shape"], ["scores"]),
            helper.make_node("Identity", ["logits"], ["decoy"]),
        ]
    )
    model.graph.output[0].type.tensor_type.shape.dim[1].dim_param = "classes"
    model.graph.output.insert(0, helper.make_tensor_value_info("decoy", TensorProto.FLOAT, ["N", 10]))
    return save(model, directory / "open_output.onnx")


def function_shadowing_a_runtime_kernel(directory: Path) -> Path:
    """com.microsoft::Gelu with a model-local function of that name whose body is a Relu.

    ONNX Runtime runs its own Gelu kernel, not the body: the checked function says nothing about what runs.
    """
    model = tiny_cnn()
    relu = next(node for node in model.graph.node if node.op_type == "Relu")
    relu.op_type, relu.domain = "Gelu", "com.microsoft"
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    body = [helper.make_node("Relu", ["x"], ["y"])]
    model.functions.append(
        helper.make_function("com.microsoft", "Gelu", ["x"], ["y"], body, [helper.make_opsetid("", OPSET)])
    )
    return save(model, directory / "shadowing_function.onnx")


def tabular(directory: Path) -> Path:
    return save(tabular_model(), directory / "tabular.onnx")


def raw_pickle(directory: Path) -> Path:
    path = directory / "model.pkl"
    path.write_bytes(pickle.dumps(CreatesFileWhenUnpickled(directory / PICKLE_MARKER), protocol=2))
    return path


def torch_zip_checkpoint(directory: Path) -> Path:
    import torch

    path = directory / "pytorch_model.bin"
    torch.save({"state": CreatesFileWhenUnpickled(directory / PICKLE_MARKER)}, path)
    return path


def pickle_named_onnx(directory: Path) -> Path:
    path = directory / "disguised.onnx"
    path.write_bytes(pickle.dumps(CreatesFileWhenUnpickled(directory / PICKLE_MARKER), protocol=4))
    return path


def flat_image_input(directory: Path) -> Path:
    """[N, 192] rows reshaped to images inside the graph: read as a tabular model, deliberately."""
    raw = helper.make_tensor_value_info("rows", TensorProto.FLOAT, ["N", 192])
    model = tiny_cnn()
    model.graph.initializer.append(numpy_helper.from_array(np.array([-1, 3, 8, 8], np.int64), "image_shape"))
    reshape = helper.make_node("Reshape", ["rows", "image_shape"], ["image"])
    return save(_image_through(model, reshape, raw), directory / "flat_input.onnx")


def five_d_input(directory: Path) -> Path:
    """[N, 1, 3, 8, 8]: a batch of clips or volumes as far as the input can tell, deliberately not applicable."""
    raw = helper.make_tensor_value_info("clips", TensorProto.FLOAT, ["N", 1, 3, 8, 8])
    model = tiny_cnn()
    model.graph.initializer.append(numpy_helper.from_array(np.array([-1, 3, 8, 8], np.int64), "image_shape"))
    reshape = helper.make_node("Reshape", ["clips", "image_shape"], ["image"])
    return save(_image_through(model, reshape, raw), directory / "five_d_input.onnx")


def sequence_input(directory: Path) -> Path:
    raw = helper.make_tensor_sequence_value_info("images", TensorProto.FLOAT, ["N", 3, 8, 8])
    concat = helper.make_node("ConcatFromSequence", ["images"], ["image"], axis=0)
    return save(_image_through(tiny_cnn(), concat, raw), directory / "sequence_input.onnx")


def pickle_written(path: Path, protocol: int) -> Path:
    path.write_bytes(pickle.dumps(CreatesFileWhenUnpickled(path.parent / PICKLE_MARKER), protocol=protocol))
    return path


def pickle_protocol_0_bin(directory: Path) -> Path:
    """Protocols 0 and 1 have no header: only their opcodes show what they are."""
    return pickle_written(directory / "pytorch_model.bin", protocol=0)


def pickle_protocol_1_bin(directory: Path) -> Path:
    return pickle_written(directory / "weights.bin", protocol=1)


def pickle_named_safetensors(directory: Path) -> Path:
    return pickle_written(directory / "model.safetensors", protocol=0)


def pickle_named_h5(directory: Path) -> Path:
    return pickle_written(directory / "model.h5", protocol=4)


def numpy_object_array(directory: Path) -> Path:
    """np.load(..., allow_pickle=True) unpickles an object array, so this runs code too."""
    path = directory / "weights.npy"
    marker = CreatesFileWhenUnpickled(directory / PICKLE_MARKER)
    np.save(path, np.array([marker, None], dtype=object), allow_pickle=True)
    return path


def pickle_padded_past_any_prefix(directory: Path) -> Path:
    """A protocol-0 pickle whose first opcode pushes 8 MiB of bytes, so its code sits far beyond any sniffed head."""
    padding = b"B" + (8 << 20).to_bytes(4, "little") + bytes(8 << 20) + b"0"
    path = directory / "padded.bin"
    path.write_bytes(padding + pickle.dumps(CreatesFileWhenUnpickled(directory / PICKLE_MARKER), protocol=0))
    return path


Builder = Callable[[Path], Path]

# (builder, the `kind` of the IntakeError it must raise)
HOSTILE: list[tuple[Builder, str]] = [
    (random_bytes, "not_onnx"),
    (empty_file, "empty_file"),
    (truncated_model, "truncated"),
    (external_data_dotdot, "external_data_outside"),
    (external_data_absolute, "external_data_outside"),
    (external_data_symlink, "external_data_outside"),
    (external_data_in_subgraph, "external_data_outside"),
    (external_data_missing, "external_data_missing"),
    (model_symlink_outside, "symlink_outside"),
    (custom_operator_domain, "custom_operator_domain"),
    (unsupported_opset, "unsupported_opset"),
    (unsupported_ir_version, "unsupported_ir_version"),
    (absurd_input, "input_too_large"),
    (absurd_fixed_batch, "input_too_large"),
    (absurd_classes, "output_too_large"),
    (two_inputs, "ambiguous_inputs"),
    (raw_pickle, "pickle_refused"),
    (torch_zip_checkpoint, "pickle_refused"),
    (pickle_named_onnx, "pickle_refused"),
    (uint8_image_input, "unsupported_input_type"),
    (two_class_outputs, "ambiguous_outputs"),
    (class_output_beside_an_open_output, "unknown_output_shape"),
    (function_shadowing_a_runtime_kernel, "custom_operator_domain"),
    (pickle_protocol_0_bin, "pickle_refused"),
    (pickle_protocol_1_bin, "pickle_refused"),
    (pickle_named_safetensors, "pickle_refused"),
    (pickle_named_h5, "pickle_refused"),
    (numpy_object_array, "pickle_refused"),
    (pickle_padded_past_any_prefix, "pickle_refused"),
]

# Models that are fine but are no image classifiers: NotAnImageModel, which a scan reports as `not_applicable`.
NOT_IMAGE_MODELS: list[tuple[Builder, str]] = [
    (tabular, "not_applicable"),
    (flat_image_input, "not_applicable"),
    (five_d_input, "not_applicable"),
    (sequence_input, "not_applicable"),
]


# Hostile neighbours: files beside a valid model in a folder that is scanned. A folder scan must refuse each by name.


def _threat(directory: Path, protocol: int = 4) -> bytes:
    return pickle.dumps(CreatesFileWhenUnpickled(directory / PICKLE_MARKER), protocol=protocol)


def pickle_named_weights(directory: Path) -> Path:
    path = directory / "weights"
    path.write_bytes(_threat(directory))
    return path


def pickle_named_dill(directory: Path) -> Path:
    path = directory / "model.dill"
    path.write_bytes(_threat(directory, protocol=2))
    return path


def pickle_named_sav(directory: Path) -> Path:
    """joblib and scikit-learn's classic extension; a protocol-0 pickle is plain ASCII text."""
    path = directory / "classifier.sav"
    path.write_bytes(_threat(directory, protocol=0))
    return path


def pickle_named_json(directory: Path) -> Path:
    path = directory / "config.json"
    path.write_bytes(_threat(directory))
    return path


def pickle_named_external_data(directory: Path) -> Path:
    path = directory / "model.onnx.data"
    path.write_bytes(_threat(directory, protocol=3))
    return path


def torch_zip_named_zip(directory: Path) -> Path:
    import torch

    path = directory / "model.zip"
    torch.save({"state": CreatesFileWhenUnpickled(directory / PICKLE_MARKER)}, path)
    return path


def gzipped_pickle(directory: Path) -> Path:
    path = directory / "model.pkl.gz"
    path.write_bytes(gzip.compress(_threat(directory)))
    return path


def bz2_pickle(directory: Path) -> Path:
    path = directory / "weights.bz2"
    path.write_bytes(bz2.compress(_threat(directory, protocol=1)))
    return path


def xz_pickle(directory: Path) -> Path:
    path = directory / "weights.xz"
    path.write_bytes(lzma.compress(_threat(directory, protocol=5)))
    return path


def object_array_npz(directory: Path) -> Path:
    path = directory / "arrays.npz"
    marker = CreatesFileWhenUnpickled(directory / PICKLE_MARKER)
    np.savez(path, x=np.zeros(3, np.float32), extra=np.array([marker, None], dtype=object))
    return path


def keras_lambda_h5(directory: Path) -> Path:
    """An HDF5 file as Keras writes one, its model config in an attribute: a Lambda layer runs its code when loaded.
    (Written byte by byte, without h5py: the signature, then the config JSON the attribute holds.)"""
    config = b'{"class_name": "Sequential", "config": {"layers": [{"class_name": "Lambda", "config": {"function": '
    config += b'["4wEAAAAAAAAAAAAAAAEAAAACAAAAQwAAAHMEAAAAfABTACkBTqkAKQHaAXhyAQAAAHIBAAAA", null, null]}}]}}'
    path = directory / "classifier.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(504) + config + bytes(512))
    return path


def pickle_after_a_pickle(directory: Path) -> Path:
    """A harmless pickle first (what a first look sees), the threat right after it: a second pickle.load reads it."""
    path = directory / "tokens.bin"
    path.write_bytes(pickle.dumps([1, 2, 3], protocol=4) + _threat(directory))
    return path


def pickle_mid_file(directory: Path) -> Path:
    """A protocol-0 pickle after a kilobyte of other bytes: no PROTO opcode, no header, only its opcodes show it."""
    path = directory / "blob.dat"
    noise = np.random.default_rng(3).integers(0, 256, 1024, dtype=np.uint8).tobytes()
    path.write_bytes(noise + _threat(directory, protocol=0) + noise)
    return path


def pickle_in_an_innocent_zip_member(directory: Path) -> Path:
    path = directory / "bundle.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("README.txt", _threat(directory))
    return path


def code_beside_the_model(directory: Path) -> Path:
    path = directory / "modeling.py"
    path.write_text("import os\nos.system('echo hi')\n")
    return path


HOSTILE_NEIGHBOURS: list[tuple[Builder, str]] = [
    (pickle_named_weights, "pickle_refused"),
    (pickle_named_dill, "pickle_refused"),
    (pickle_named_sav, "pickle_refused"),
    (pickle_named_json, "pickle_refused"),
    (pickle_named_external_data, "pickle_refused"),
    (torch_zip_named_zip, "pickle_refused"),
    (gzipped_pickle, "pickle_refused"),
    (bz2_pickle, "pickle_refused"),
    (xz_pickle, "pickle_refused"),
    (object_array_npz, "pickle_refused"),
    (keras_lambda_h5, "unrecognized_file"),
    (pickle_after_a_pickle, "pickle_refused"),
    (pickle_mid_file, "pickle_refused"),
    (pickle_in_an_innocent_zip_member, "pickle_refused"),
    (code_beside_the_model, "unrecognized_file"),
]
