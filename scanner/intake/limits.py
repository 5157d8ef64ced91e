"""How much the intake is willing to read and feed: configurable bounds against hostile or absurd files."""

from __future__ import annotations

from dataclasses import dataclass, fields

from scanner.errors import UsageError

# Protocol buffers cannot hold a message of 2 GiB or more, and the intake hands models on as one message.
PROTOBUF_LIMIT_BYTES = 2**31 - 1


@dataclass(frozen=True)
class IntakeLimits:
    """Bounds applied before anything is parsed or run.

    `max_model_bytes` covers the model file plus all its external data, since both end up in one in-memory model.
    `max_input_side` and `max_input_elements` bound one image as the graph declares it (channels x height x width):
    a model declaring a 100000 x 100000 input would make every detector allocate gigabytes per forward pass.
    `max_fixed_batch_elements` bounds a batch size fixed in the graph (times the image's values), since every
    forward pass must then feed exactly that many images. `max_classes` bounds the class scores kept per image.
    """

    max_model_bytes: int = 1 * 2**30
    max_input_side: int = 4096
    max_input_elements: int = 3 * 1024 * 1024
    max_fixed_batch_elements: int = 2**24
    max_classes: int = 100_000

    def __post_init__(self) -> None:
        for field in fields(self):
            if getattr(self, field.name) <= 0:
                raise UsageError(f"intake limit {field.name} must be positive", hint="give a positive number")
