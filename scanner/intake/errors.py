"""Why a model file was refused: one `IntakeError` subclass per reason, each with a stable `kind` and a remedy.

The kinds land in the JSON report and in MLflow tags, so they never change once released.
"""

from __future__ import annotations

from scanner.errors import IntakeError, shortened

SHOWN_CHARACTERS = 100


def shown(text: object) -> str:
    """A name taken from a model file, made safe for a one-line message: escaped, and cut if long.

    File names, tensor names, operator domains and data locations are chosen by whoever made the file; a newline in
    one must not forge a line in a log, a report or a CI annotation.
    """
    escaped = str(text).encode("unicode_escape").decode("ascii")
    return shortened(escaped, SHOWN_CHARACTERS)


class ModelNotFound(IntakeError):
    kind = "not_found"
    hint = "check the path: give an .onnx file or a directory that contains model files"


class Unreadable(IntakeError):
    kind = "unreadable"
    hint = "check that the scanner's user may read the model file and its directory"


class FileTooLarge(IntakeError):
    kind = "file_too_large"
    hint = "if the model is trusted to be this large, raise the limit: --max-model-size 1.5GiB (scan, serve, rescan)"


class EmptyFile(IntakeError):
    kind = "empty_file"
    hint = "the upload or export did not complete: export the model to ONNX again"


class NotOnnx(IntakeError):
    kind = "not_onnx"
    hint = "give an ONNX model file: export it with torch.onnx.export or your framework's ONNX exporter"


class TruncatedModel(IntakeError):
    kind = "truncated"
    hint = "the file was cut short, by an interrupted download or copy: fetch or export it again"


class InvalidModel(IntakeError):
    kind = "invalid_model"
    hint = "the graph fails onnx.checker: export the model again with a released exporter"


class PickleRefused(IntakeError):
    kind = "pickle_refused"
    hint = (
        "loading a pickle runs arbitrary code, so the scanner never loads one:"
        " export the model with torch.onnx.export and scan the .onnx file"
    )


class UnrecognizedFile(IntakeError):
    """A file in a scanned folder that is neither a model the scanner checks nor verifiably harmless."""

    kind = "unrecognized_file"
    hint = (
        "remove it from the folder, convert the model to ONNX, or list it in the policy's allow_files"
        " if it is known to be harmless"
    )


class ExternalDataOutside(IntakeError):
    kind = "external_data_outside"
    hint = "keep external tensor data files next to the .onnx file, referenced by a plain relative name"


class ExternalDataMissing(IntakeError):
    kind = "external_data_missing"
    hint = "copy the model's external data files, such as model.onnx.data, next to it, or export without them"


class SymlinkOutside(IntakeError):
    kind = "symlink_outside"
    hint = "give the model's real path, or copy the model into the directory being scanned"


class CustomOperatorDomain(IntakeError):
    kind = "custom_operator_domain"
    hint = "export with standard ONNX operators only, or allow the domain explicitly if you trust its implementation"


class UnsupportedOpset(IntakeError):
    kind = "unsupported_opset"
    hint = "export with an opset the installed ONNX Runtime supports, or upgrade onnxruntime"


class UnsupportedIrVersion(IntakeError):
    kind = "unsupported_ir_version"
    hint = "save the model with an older onnx package, which writes a lower IR version, or upgrade onnxruntime"


class InputTooLarge(IntakeError):
    kind = "input_too_large"
    hint = "export the model with its real input size; raise the intake input limits if it really is this large"


class OutputTooLarge(IntakeError):
    kind = "output_too_large"
    hint = "export the model with its real number of classes; raise the intake class limit if it really has this many"


class AmbiguousInputs(IntakeError):
    kind = "ambiguous_inputs"
    hint = "export an image classifier with exactly one input, the image batch"


class UnknownInputShape(IntakeError):
    kind = "unknown_input_shape"
    hint = "export the model with fixed channels, height and width; only the batch axis may be dynamic"


class AmbiguousLayout(IntakeError):
    kind = "ambiguous_layout"
    hint = "say which layout the model expects: NCHW or NHWC"


class LayoutMismatch(IntakeError):
    """The layout a user gave (--layout, the policy's inputs) contradicts the model's input, which fits the other."""

    kind = "layout_mismatch"
    hint = "leave the layout out (it is read from the graph), or give the one the model takes"


class UnsupportedInputType(IntakeError):
    kind = "unsupported_input_type"
    hint = "export the model with a float32 image input, and cast uint8 or float16 pixels before the model"


class AmbiguousOutputs(IntakeError):
    kind = "ambiguous_outputs"
    hint = "export an image classifier with exactly one class-score output, shaped (batch, classes)"


class UnknownOutputShape(IntakeError):
    kind = "unknown_output_shape"
    hint = "export the model with a fixed number of classes in its output shape"


class NotAnImageModel(IntakeError):
    """The model is fine but is no image classifier (tabular, text, segmentation): the detectors do not apply."""

    kind = "not_applicable"
    hint = "the backdoor detectors only apply to image classifiers with one image input and one class-score output"


# Every refusal, for rule tables (SARIF rules, policy docs): kinds are unique and stable.
REFUSALS: tuple[type[IntakeError], ...] = (
    ModelNotFound,
    Unreadable,
    FileTooLarge,
    EmptyFile,
    NotOnnx,
    TruncatedModel,
    InvalidModel,
    PickleRefused,
    UnrecognizedFile,
    ExternalDataOutside,
    ExternalDataMissing,
    SymlinkOutside,
    CustomOperatorDomain,
    UnsupportedOpset,
    UnsupportedIrVersion,
    InputTooLarge,
    OutputTooLarge,
    AmbiguousInputs,
    UnknownInputShape,
    AmbiguousLayout,
    LayoutMismatch,
    UnsupportedInputType,
    AmbiguousOutputs,
    UnknownOutputShape,
    NotAnImageModel,
)
