"""Safe model intake: find model files, refuse hostile or broken ones, and read how to feed the rest.

Nothing outside a model's own directory is read, and nothing in a model file is executed: pickles are refused
unopened, ONNX files are only decoded and checked. `load_model` returns a self-contained `ModelArtifact`.
"""

from scanner.errors import IntakeError
from scanner.intake.errors import (
    REFUSALS,
    AmbiguousInputs,
    AmbiguousLayout,
    AmbiguousOutputs,
    CustomOperatorDomain,
    EmptyFile,
    ExternalDataMissing,
    ExternalDataOutside,
    FileTooLarge,
    InputTooLarge,
    InvalidModel,
    LayoutMismatch,
    ModelNotFound,
    NotAnImageModel,
    NotOnnx,
    OutputTooLarge,
    PickleRefused,
    SymlinkOutside,
    TruncatedModel,
    UnknownInputShape,
    UnknownOutputShape,
    Unreadable,
    UnrecognizedFile,
    UnsupportedInputType,
    UnsupportedIrVersion,
    UnsupportedOpset,
)
from scanner.intake.limits import IntakeLimits
from scanner.intake.loader import load_model
from scanner.intake.sources import RefusedFile, find_model_files

__all__ = [
    "REFUSALS",
    "AmbiguousInputs",
    "AmbiguousLayout",
    "AmbiguousOutputs",
    "CustomOperatorDomain",
    "EmptyFile",
    "ExternalDataMissing",
    "ExternalDataOutside",
    "FileTooLarge",
    "InputTooLarge",
    "IntakeError",
    "IntakeLimits",
    "InvalidModel",
    "LayoutMismatch",
    "ModelNotFound",
    "NotAnImageModel",
    "NotOnnx",
    "OutputTooLarge",
    "PickleRefused",
    "RefusedFile",
    "SymlinkOutside",
    "TruncatedModel",
    "UnknownInputShape",
    "UnknownOutputShape",
    "Unreadable",
    "UnrecognizedFile",
    "UnsupportedInputType",
    "UnsupportedIrVersion",
    "UnsupportedOpset",
    "find_model_files",
    "load_model",
]
