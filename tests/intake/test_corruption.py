"""Damaged files never crash the intake: each one is either accepted or refused with an IntakeError."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from scanner.errors import IntakeError
from scanner.intake import load_model
from tests.intake.builders import tiny_cnn


def _outcome(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    try:
        load_model(path)
    except IntakeError as refused:
        assert "\n" not in refused.one_line()
        return refused.kind
    return "accepted"


def test_every_truncation_is_reported_as_truncated(tmp_path: Path) -> None:
    data = tiny_cnn().SerializeToString()
    outcomes = Counter(_outcome(tmp_path / "cut.onnx", data[:cut]) for cut in range(1, len(data), 7))
    assert set(outcomes) == {"truncated"}


def test_random_bytes_are_not_onnx(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    blobs = [rng.integers(0, 256, int(rng.integers(1, 4000)), dtype=np.uint8).tobytes() for _ in range(50)]
    outcomes = Counter(_outcome(tmp_path / "noise.onnx", blob) for blob in blobs if blob[0] != 0x08)
    assert set(outcomes) == {"not_onnx"}


def test_bit_flips_are_accepted_or_refused_never_crash(tmp_path: Path) -> None:
    data = tiny_cnn().SerializeToString()
    rng = np.random.default_rng(1)
    outcomes: Counter[str] = Counter()
    for _ in range(200):
        damaged = bytearray(data)
        for position in rng.integers(0, len(data), 3):
            damaged[position] ^= 1 << int(rng.integers(0, 8))
        outcomes[_outcome(tmp_path / "flipped.onnx", bytes(damaged))] += 1
    # Flips in weights leave a valid model; flips in structure must be caught, with several distinct kinds.
    assert outcomes["accepted"] > 0 and sum(outcomes.values()) - outcomes["accepted"] > 30
    assert {"not_onnx", "invalid_model"} <= set(outcomes)
