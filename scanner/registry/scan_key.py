"""When two scans of a model version are the same scan: the model's digest, the engine key (detector versions,
shipped-file digest, policy digest) and the input hints set on the version (only the scanner's token may set them).
`serve`'s workers scan a version once per key; re-scans record the key of the scan they made."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from scanner.registry.tags import INPUT_TAG_PREFIX


def input_hint_tags(version_tags: Mapping[str, str]) -> dict[str, str]:
    """The version's model_scanner.* input hints (writable only with the scanner's token: the gate guards them)."""
    return {k: v for k, v in sorted(version_tags.items()) if k.startswith(INPUT_TAG_PREFIX)}


def scan_key(model_digest: str, engine_key: str, version_tags: Mapping[str, str]) -> str:
    text = json.dumps([model_digest, engine_key, input_hint_tags(version_tags)], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]
