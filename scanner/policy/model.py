"""A loaded policy as typed, frozen values: what `evaluate` reads. Built only by `scanner.policy.loader`."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from scanner.findings import Action, Layout, Normalization, Status, Verdict

FORMAT_VERSION = 1

# Pseudo rule ids for the checks the policy makes beside its rules; waivers may name them.
FAIL_CLOSED_RULE = "fail-closed"
REQUIRED_DETECTORS_RULE = "required-detectors"
# A status for "no result at all": a model the gate finds without scan tags, a detector that never ran.
UNSCANNED = "unscanned"


def matches_any(name: str, globs: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, glob) for glob in globs)


def report_key(detector: str) -> str:
    """A detector's CLI name ("one-pixel") -> its key in results and reports ("one_pixel")."""
    return detector.replace("-", "_")


@dataclass(frozen=True)
class PromotionTarget:
    """Where a model is going. Neither stage nor alias: a plain scan outside any registry (CLI, GitHub Action)."""

    model_name: str
    stage: str | None = None
    alias: str | None = None

    @property
    def is_plain_scan(self) -> bool:
        return self.stage is None and self.alias is None

    def describe(self) -> str:
        if self.stage is not None:
            return f"promotion of {self.model_name} to stage {self.stage}"
        if self.alias is not None:
            return f"alias {self.alias} on {self.model_name}"
        return f"scan of {self.model_name}"


@dataclass(frozen=True)
class Match:
    models: tuple[str, ...] = ("*",)
    stages: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    plain_scan: bool = False
    detector: str | None = None  # CLI name; None: the fused result

    def covers(self, target: PromotionTarget) -> bool:
        if not matches_any(target.model_name, self.models):
            return False
        if not (self.stages or self.aliases or self.plain_scan):
            return True
        if target.is_plain_scan:
            return self.plain_scan
        stage_hit = target.stage is not None and target.stage.lower() in {s.lower() for s in self.stages}
        alias_hit = target.alias is not None and matches_any(target.alias, self.aliases)
        return stage_hit or alias_hit


@dataclass(frozen=True)
class Condition:
    """All given fields must hold; statuses are Status values or UNSCANNED."""

    statuses: tuple[str, ...] = ()
    verdicts: tuple[Verdict, ...] = ()
    score_at_least: float | None = None
    score_below: float | None = None


@dataclass(frozen=True)
class Rule:
    id: str
    action: Action
    match: Match = Match()
    when: Condition | None = None
    description: str | None = None


@dataclass(frozen=True)
class InputDefaults:
    """How to feed models whose name matches: absent fields are left to the caller or the ONNX graph."""

    models: tuple[str, ...]
    value_range: tuple[float, float] | None = None
    layout: Layout | None = None
    clean_data: Path | None = None  # already resolved against the policy file's folder
    normalization: Normalization | None = None  # per-channel mean and std, applied after value_range


@dataclass(frozen=True)
class Waiver:
    """A waiver names the bytes it waives (sha256 of the model file) and, optionally, the names they may carry: a
    waiver by name alone would follow a rename or a copy of other bytes onto that name."""

    sha256: str
    reason: str
    approved_by: str
    expires: date  # last day on which it applies
    models: tuple[str, ...] = ("*",)
    rules: tuple[str, ...] = ()  # empty: every rule

    def covers(self, model_name: str, sha256: str | None, rule_id: str) -> bool:
        if sha256 is None or sha256 != self.sha256:
            return False
        if not matches_any(model_name, self.models):
            return False
        return not self.rules or rule_id in self.rules

    def expired(self, today: date) -> bool:
        return today > self.expires

    def describe(self) -> str:
        names = "" if self.models == ("*",) else f" as {', '.join(self.models)}"
        scope = f"sha256 {self.sha256[:12]}{names}"
        return f"waiver for {scope} (approved by {self.approved_by}, expires {self.expires.isoformat()}: {self.reason})"


@dataclass(frozen=True)
class Policy:
    name: str
    digest: str  # sha256 of the policy's canonical JSON: changes with its meaning, not with its comments
    source: str  # a file path, or "builtin:<name>"
    rules: tuple[Rule, ...] = ()
    fail_closed: bool = True
    required_detectors: tuple[str, ...] = ()
    inputs: tuple[InputDefaults, ...] = ()
    waivers: tuple[Waiver, ...] = ()
    allow_files: tuple[str, ...] = ()  # globs on paths relative to a scanned folder
    description: str | None = None
    version: int = FORMAT_VERSION

    @property
    def label(self) -> str:
        """How reports and MLflow tags name this policy: its name and the start of its digest."""
        return f"{self.name}@{self.digest[:12]}"

    def input_defaults_for(self, model_name: str) -> InputDefaults | None:
        return next((entry for entry in self.inputs if matches_any(model_name, entry.models)), None)

    def expired_waivers(self, today: date) -> tuple[Waiver, ...]:
        return tuple(waiver for waiver in self.waivers if waiver.expired(today))


ALL_STATUSES = (*(status.value for status in Status), UNSCANNED)
