"""When two scans of a model version are the same scan: the model's digest, the engine key (detector versions,
shipped-file digest, policy digest) and the input hints a producer set on the version. `serve`'s workers scan a
version once per key; re-scans record the key of the scan they made."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

from scanner.registry.tags import INPUT_TAG_PREFIX


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def scan_key(model_digest: str, engine_key: str, version_tags: Mapping[str, str]) -> str:
    hints = {k: v for k, v in sorted(version_tags.items()) if k.startswith(INPUT_TAG_PREFIX)}
    text = json.dumps([model_digest, engine_key, hints], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]
