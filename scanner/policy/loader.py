"""Reading a policy file: YAML -> version check -> JSON Schema -> semantic checks -> typed `Policy`.

Every problem names the path of the bad key (`rules[1].when.score_at_least: ...`), so a user can find it in the file.
A hostile file costs little: the read, the nesting, the values behind YAML aliases and the problems listed are bounded,
and values are shown escaped and cut short.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import math
import reprlib
import unicodedata
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from itertools import islice
from pathlib import Path
from typing import Any

import yaml

from scanner.errors import PolicyError, shortened
from scanner.findings import Action, Layout, Normalization, Verdict
from scanner.policy.model import (
    FAIL_CLOSED_RULE,
    FORMAT_VERSION,
    REQUIRED_DETECTORS_RULE,
    Condition,
    InputDefaults,
    Match,
    Policy,
    Rule,
    Waiver,
)

BUILTIN_POLICIES = ("default", "strict", "audit")
DEFAULT_POLICY = "default"

MAX_POLICY_BYTES = 2**20  # policies are a few kilobytes
MAX_NESTING = 20  # a policy needs 6 levels: rules[0].match.models[0]
MAX_VALUES = 100_000  # counting what each YAML alias repeats: a "billion laughs" stops here, before it costs anything
MAX_ERRORS_LISTED = 20  # the rest are counted


@dataclass(frozen=True)
class Validation:
    """What `policy validate` reports: errors make the policy unusable, warnings do not."""

    source: str
    policy: Policy | None
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default=())
    more_errors: int = 0  # problems found beyond the errors listed


def load_policy(path: str | Path) -> Policy:
    """Load and validate a policy file; raises PolicyError naming the first bad key's path."""
    path = Path(path)
    return _require_valid(validate_policy_text(_read(path), source=str(path), base_dir=path.parent))


def load_builtin_policy(name: str = DEFAULT_POLICY) -> Policy:
    """One of the policies shipped inside the package (the same files as policies/ at the repository root)."""
    return _require_valid(validate_policy_text(builtin_policy_text(name), source=f"builtin:{name}", base_dir=None))


def builtin_policy_text(name: str) -> str:
    if name not in BUILTIN_POLICIES:
        raise PolicyError(f"no built-in policy named {name!r}", hint=f"choose one of: {', '.join(BUILTIN_POLICIES)}")
    return (resources.files("scanner.policy") / "builtin" / f"{name}.yaml").read_text(encoding="utf-8")


def validate_policy_file(path: str | Path, *, today: dt.date | None = None) -> Validation:
    path = Path(path)
    return validate_policy_text(_read(path), source=str(path), base_dir=path.parent, today=today)


def validate_policy_text(text: str, *, source: str, base_dir: Path | None, today: dt.date | None = None) -> Validation:
    try:
        document = yaml.load(text, Loader=_PolicyLoader)
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        problem = getattr(error, "problem", None) or "not valid YAML"
        return Validation(source, None, errors=(f"{problem}{line}",))
    problems = _problems(document)
    errors = tuple(islice(problems, MAX_ERRORS_LISTED))
    if errors:
        return Validation(source, None, errors=errors, more_errors=sum(1 for _ in problems))
    policy = _build(document, source=source, base_dir=base_dir)
    return Validation(source, policy, warnings=tuple(_warnings(policy, today or dt.date.today())))


def _read(path: Path) -> str:
    try:
        with path.open("rb") as file:
            data = file.read(MAX_POLICY_BYTES + 1)  # no more: the file could be huge, or /dev/zero
        if len(data) > MAX_POLICY_BYTES:
            raise PolicyError(
                f"policy file {path} is larger than {MAX_POLICY_BYTES // 2**20} MiB",
                hint="a policy is a short YAML file: check the path",
            )
        return data.decode("utf-8")
    except FileNotFoundError:
        raise PolicyError(f"policy file {path} does not exist", hint="check the path") from None
    except (OSError, UnicodeDecodeError) as error:
        raise PolicyError(f"cannot read policy file {path}: {error}", hint="it must be a UTF-8 YAML file") from None


def _require_valid(validation: Validation) -> Policy:
    if validation.policy is None:
        first, rest = validation.errors[0], len(validation.errors) - 1 + validation.more_errors
        more = f" (and {rest} more problem{'s' if rest > 1 else ''})" if rest else ""
        raise PolicyError(
            f"invalid policy {validation.source}: {first}{more}",
            hint="run 'model-scanner policy validate FILE' to see every problem",
        )
    return validation.policy


class _PolicyLoader(yaml.SafeLoader):
    """Safe YAML that refuses duplicate keys (the last would silently win) and keeps dates as the text written
    (so `expires: 2030-02-30` is a problem with a path, not a crash, and JSON editors see what the schema sees).

    Every refusal is a YAMLError with the line: keys that are lists or mappings, nesting deeper than MAX_NESTING,
    more than MAX_VALUES values once aliases are expanded, an alias inside what it names, numbers that are not finite
    (`.nan` would make every score comparison false) and values a tag asks for but the text is not (`!!int abc`)."""

    yaml_implicit_resolvers = {  # noqa: RUF012 - replaces the base class table, read-only
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._values: dict[int, int] = {}  # id(node) -> how many values it stands for, aliases expanded

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]  # untyped in types-PyYAML
        if self.check_event(yaml.AliasEvent):
            node = super().compose_node(parent, index)
            if id(node) not in self._values:  # still being composed: the alias would make the value endless
                raise yaml.composer.ComposerError(
                    None, None, f"alias *{event.anchor} is used inside what it names", event.start_mark
                )
            return node
        self._depth += 1
        if self._depth > MAX_NESTING:
            raise yaml.composer.ComposerError(
                None, None, f"nested more than {MAX_NESTING} levels deep", event.start_mark
            )
        node = super().compose_node(parent, index)
        self._depth -= 1
        assert node is not None
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        values = 1 + sum(self._values[id(child)] for child in children)
        if values > MAX_VALUES:
            problem = f"more than {MAX_VALUES} values, counting what each YAML alias repeats (a policy needs far fewer)"
            raise yaml.composer.ComposerError(None, None, problem, node.start_mark)
        self._values[id(node)] = values
        return node

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            value = super().construct_object(node, deep=deep)
        except yaml.YAMLError:
            raise
        except Exception:  # a tag's constructor choking on the text: !!int abc, !!bool maybe, 5000 digits
            text = _shown(node.value) if isinstance(node, yaml.ScalarNode) else "a list or mapping"
            problem = f"cannot read {text} as {node.tag.rsplit(':', 1)[-1]}"
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark) from None
        if isinstance(value, int | float) and not isinstance(value, bool) and not _finite(value):
            problem = f"{_shown(node.value)} is not a finite number (write a plain number, such as 0.5)"
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark)
        return value

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, yaml.MappingNode):  # `!!map [a]`: the base class says so, with the line
            return super().construct_mapping(node, deep=deep)
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key_node, yaml.ScalarNode) or not isinstance(key, Hashable):  # `? [a, b]`, `!!seq a`
                problem = "a mapping key must be a plain value, not a list or a mapping"
                raise yaml.constructor.ConstructorError(None, None, problem, key_node.start_mark)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {_shown(key)}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _finite(number: float) -> bool:
    try:
        return math.isfinite(number)
    except OverflowError:  # an int beyond any float
        return False


_SHOWN = reprlib.Repr()
_SHOWN.maxstring = _SHOWN.maxother = _SHOWN.maxlong = 60
_SHOWN.maxlist = _SHOWN.maxdict = 4
_SHOWN.maxlevel = 2


def _shown(value: Any) -> str:
    """A value from the policy file, for one line of a message: escaped, and cut short however long or deep it is."""
    text = _SHOWN.repr(value)
    return shortened(text, 80)


def _path(parts: Sequence[Any]) -> str:
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif isinstance(part, str) and part.isprintable() and 0 < len(part) <= 60:
            text += f".{part}" if text else part
        else:  # an unknown key that would not read well, or not safely, as it is
            text += f"[{_shown(part)}]"
    return text or "(top level)"


def _problems(document: Any) -> Iterator[str]:
    """The version's problems; if none, the schema's; if none, those of meaning (each stage relies on the last)."""
    for stage in (_version_problems, _schema_problems, _semantic_problems):
        found = False
        for problem in stage(document):
            found = True
            yield problem
        if found:
            return


def _version_problems(document: Any) -> Iterator[str]:
    if not isinstance(document, dict):
        yield "(top level): a policy must be a YAML mapping with 'version: 1' first"
    elif "version" not in document:
        yield f"version: missing (this scanner reads policy version {FORMAT_VERSION}; add 'version: {FORMAT_VERSION}')"
    elif document["version"] != FORMAT_VERSION or isinstance(document["version"], bool):
        found = document["version"]
        yield f"version: unsupported policy version {_shown(found)} (this scanner reads version {FORMAT_VERSION})"


@cache
def policy_schema() -> dict[str, Any]:
    """The policy's JSON Schema (also policies/policy.schema.json, for editors)."""
    text = (resources.files("scanner.policy") / "builtin" / "policy.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def known_detectors() -> tuple[str, ...]:
    return tuple(policy_schema()["$defs"]["detector"]["enum"])


# Why a required key is required, where that is not obvious: (top-level section, key) -> an explanation.
WHY_REQUIRED = {
    ("waivers", "sha256"): (
        ": a waiver names the exact model file it waives, by the sha256 a scan reports (scan.sha256); a waiver by "
        "name alone would let a renamed or copied model through"
    ),
}


def _schema_problems(document: Mapping[str, Any]) -> Iterator[str]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(policy_schema())
    errors = sorted(validator.iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path])
    for error in errors:
        yield from _explain(error)


def _explain(error: Any) -> Iterator[str]:
    """One jsonschema error -> messages that name the bad key's path and say what is allowed."""
    parts = list(error.absolute_path)
    where = _path(parts)
    kind, instance, expected = error.validator, error.instance, error.validator_value
    if kind == "additionalProperties" and isinstance(instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        for key in sorted(set(instance) - set(allowed), key=str):
            yield f"{_path([*parts, key])}: unknown key (allowed here: {', '.join(allowed)})"
    elif kind == "required":
        missing = [key for key in expected if key not in instance]
        for key in missing:
            why = WHY_REQUIRED.get((str(parts[0]) if parts else "", key), "")
            yield f"{_path([*parts, key])}: missing (required{why})"
    elif kind == "type":
        yield f"{where}: expected {_type_name(expected)}, got {_type_name(type(instance).__name__)} {_shown(instance)}"
    elif kind == "enum" and parts and (parts[-1] == "detector" or "required_detectors" in parts):
        yield f"{where}: unknown detector {_shown(instance)} (known detectors: {', '.join(expected)})"
    elif kind in ("enum", "const"):
        choices = expected if isinstance(expected, list) else [expected]
        yield f"{where}: {_shown(instance)} is not allowed (expected one of: {', '.join(map(str, choices))})"
    elif kind == "pattern" and parts and parts[-1] == "expires":
        yield f"{where}: expected a date written YYYY-MM-DD, got {_shown(instance)}"
    elif kind == "pattern":
        yield f"{where}: {_shown(instance)} does not have the expected form ({expected})"
    elif kind in ("minItems", "minLength", "minProperties"):
        yield f"{where}: must not be empty"
    elif kind == "uniqueItems":
        yield f"{where}: has duplicates"
    elif kind in ("minimum", "maximum"):
        yield f"{where}: must be {'at least' if kind == 'minimum' else 'at most'} {expected}, got {_shown(instance)}"
    elif kind == "maxItems":
        yield f"{where}: expected at most {expected} items, got {len(instance)}"
    else:  # jsonschema's own message shows the whole value: cut it short
        yield f"{where}: {shortened(error.message, 200)}"


def _type_name(name: Any) -> str:
    names = {
        "str": "a string",
        "string": "a string",
        "int": "an integer",
        "integer": "an integer",
        "float": "a number",
        "number": "a number",
        "bool": "true or false",
        "boolean": "true or false",
        "list": "a list",
        "array": "a list",
        "dict": "a mapping",
        "object": "a mapping",
        "NoneType": "nothing",
        "null": "nothing",
    }
    if isinstance(name, list):
        return " or ".join(names.get(str(n), str(n)) for n in name)
    return names.get(name, str(name))


def glob_problem(glob: str) -> str | None:
    """Why a glob is malformed, or None. fnmatch would silently read an unclosed '[' as a literal."""
    if glob != glob.strip():
        return f"glob {_shown(glob)} has leading or trailing spaces"
    index = 0
    while index < len(glob):
        if glob[index] == "[":
            start = index + 1
            if start < len(glob) and glob[start] == "!":
                start += 1
            close = glob.find("]", start + 1)  # a ']' right after '[' or '[!' belongs to the set
            if close == -1:
                return f"glob {_shown(glob)} has an unclosed '['"
            index = close
        index += 1
    return None


def _semantic_problems(document: Mapping[str, Any]) -> Iterator[str]:
    yield from _control_character_problems(document, [])
    rules = document.get("rules", [])
    rule_ids = [rule["id"] for rule in rules]
    first_index: dict[str, int] = {}
    for index, rule in enumerate(rules):
        where = f"rules[{index}]"
        if first_index.setdefault(rule["id"], index) != index:
            yield f"{where}.id: duplicate rule id {_shown(rule['id'])}"
        if rule["id"] in (FAIL_CLOSED_RULE, REQUIRED_DETECTORS_RULE):
            yield f"{where}.id: {_shown(rule['id'])} is reserved for the policy's built-in check"
        match, when = rule.get("match", {}), rule.get("when", {})
        yield from _glob_problems(f"{where}.match.models", match.get("models", []))
        yield from _glob_problems(f"{where}.match.aliases", match.get("aliases", []))
        for position, stage in enumerate(match.get("stages", [])):
            yield from _stage_problems(f"{where}.match.stages[{position}]", stage)
        if "detector" in match and "verdict" in when:
            yield f"{where}.when.verdict: a verdict belongs to the fused result; drop match.detector or use a score"
        low, high = when.get("score_at_least"), when.get("score_below")
        if low is not None and high is not None and low >= high:
            yield f"{where}.when: score_at_least {low} >= score_below {high} can never hold"
    for index, entry in enumerate(document.get("inputs", [])):
        yield from _glob_problems(f"inputs[{index}].models", entry["models"])
        value_range = entry.get("value_range")
        if value_range is not None and not value_range[0] < value_range[1]:
            yield f"inputs[{index}].value_range: low {value_range[0]} must be below high {value_range[1]}"
        if "mean" in entry and "std" in entry and len(entry["mean"]) != len(entry["std"]):
            mean, std = len(entry["mean"]), len(entry["std"])
            yield f"inputs[{index}].std: {std} values, but mean has {mean} (one of each per channel)"
    yield from _glob_problems("allow_files", document.get("allow_files", []))
    waivable = (*rule_ids, FAIL_CLOSED_RULE, REQUIRED_DETECTORS_RULE)
    waivable_ids = set(waivable)
    known = ", ".join(waivable) if len(waivable) <= 10 else f"{', '.join(waivable[:10])}, ..."
    for index, waiver in enumerate(document.get("waivers", [])):
        yield from _glob_problems(f"waivers[{index}].models", waiver.get("models", ["*"]))
        for position, rule_id in enumerate(waiver.get("rules", [])):
            if rule_id not in waivable_ids:
                yield f"waivers[{index}].rules[{position}]: unknown rule id {_shown(rule_id)} (known: {known})"
        try:
            dt.date.fromisoformat(waiver["expires"])
        except ValueError:
            yield f"waivers[{index}].expires: {_shown(waiver['expires'])} is not a real date"


_FREE_TEXT = ("description", "reason")  # keys whose text may run over lines


def _control_character_problems(value: Any, parts: list[Any]) -> Iterator[str]:
    """Control characters would be printed as they are, in terminals, logs and reports: a name could clear the screen
    or forge a line, and an id ending in a line break (which the schema's `$` lets through) would match nothing."""
    if isinstance(value, str):
        allowed = "\n\t" if parts and parts[-1] in _FREE_TEXT else ""
        bad = next((c for c in value if unicodedata.category(c) == "Cc" and c not in allowed), None)
        if bad is not None:
            fine = " (line breaks and tabs are fine here)" if allowed else ""
            yield f"{_path(parts)}: {_shown(value)} contains the control character {bad!r}{fine}"
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _control_character_problems(item, [*parts, key])
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _control_character_problems(item, [*parts, index])


# MLflow's model version stages: a closed set (mlflow.entities.model_registry.model_version_stages). A rule for any
# other stage would match no promotion, silently.
MLFLOW_STAGES = ("None", "Staging", "Production", "Archived")


def _stage_problems(where: str, stage: str) -> Iterator[str]:
    if stage.lower() in {known.lower() for known in MLFLOW_STAGES}:
        return
    import difflib

    closest = difflib.get_close_matches(stage.lower(), [known.lower() for known in MLFLOW_STAGES], n=1, cutoff=0.5)
    guess = next((known for known in MLFLOW_STAGES if closest and known.lower() == closest[0]), None)
    did_you_mean = f"; did you mean {guess}?" if guess else ""
    yield f"{where}: unknown stage {_shown(stage)} (MLflow's stages: {', '.join(MLFLOW_STAGES)}){did_you_mean}"


def _glob_problems(where: str, globs: Sequence[str]) -> Iterator[str]:
    for index, glob in enumerate(globs):
        problem = glob_problem(glob)
        if problem:
            yield f"{where}[{index}]: {problem}"


def _warnings(policy: Policy, today: dt.date) -> Iterator[str]:
    for index, waiver in enumerate(policy.waivers):
        if waiver.expired(today):
            yield f"waivers[{index}]: expired on {waiver.expires.isoformat()}, no longer applies: {waiver.describe()}"
    for index, entry in enumerate(policy.inputs):
        if entry.clean_data is not None and not entry.clean_data.is_file():
            yield (
                f"inputs[{index}].clean_data: {entry.clean_data} does not exist here "
                "(scans of the models it names are errors until it does)"
            )


def _build(document: Mapping[str, Any], *, source: str, base_dir: Path | None) -> Policy:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return Policy(
        name=document.get("name", Path(source).stem if not source.startswith("builtin:") else source[8:]),
        digest=hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
        source=source,
        description=document.get("description"),
        fail_closed=document.get("fail_closed", True),
        required_detectors=tuple(document.get("required_detectors", ())),
        rules=tuple(_rule(rule) for rule in document.get("rules", ())),
        inputs=tuple(_input(entry, base_dir) for entry in document.get("inputs", ())),
        waivers=tuple(_waiver(waiver) for waiver in document.get("waivers", ())),
        allow_files=tuple(document.get("allow_files", ())),
    )


def _rule(rule: Mapping[str, Any]) -> Rule:
    match, when = rule.get("match", {}), rule.get("when")
    return Rule(
        id=rule["id"],
        action=Action(rule["action"]),
        description=rule.get("description"),
        match=Match(
            models=tuple(match.get("models", ("*",))),
            stages=tuple(match.get("stages", ())),
            aliases=tuple(match.get("aliases", ())),
            plain_scan=match.get("plain_scan", False),
            detector=match.get("detector"),
        ),
        when=None
        if when is None
        else Condition(
            statuses=tuple(when.get("status", ())),
            verdicts=tuple(Verdict(v) for v in when.get("verdict", ())),
            score_at_least=when.get("score_at_least"),
            score_below=when.get("score_below"),
        ),
    )


def _input(entry: Mapping[str, Any], base_dir: Path | None) -> InputDefaults:
    value_range = entry.get("value_range")
    clean_data = entry.get("clean_data")
    clean_path = None
    if clean_data is not None:
        clean_path = Path(clean_data)
        with contextlib.suppress(RuntimeError):  # `~name/` with no such user here: kept as written, warned about
            clean_path = clean_path.expanduser()
        if not clean_path.is_absolute() and base_dir is not None:
            clean_path = base_dir / clean_path
    return InputDefaults(
        models=tuple(entry["models"]),
        value_range=None if value_range is None else (float(value_range[0]), float(value_range[1])),
        layout=None if "layout" not in entry else Layout(entry["layout"]),
        clean_data=clean_path,
        normalization=None
        if "mean" not in entry
        else Normalization(tuple(float(v) for v in entry["mean"]), tuple(float(v) for v in entry["std"])),
    )


def _waiver(waiver: Mapping[str, Any]) -> Waiver:
    return Waiver(
        sha256=waiver["sha256"],
        reason=waiver["reason"],
        approved_by=waiver["approved_by"],
        expires=dt.date.fromisoformat(waiver["expires"]),
        models=tuple(waiver.get("models", ("*",))),
        rules=tuple(waiver.get("rules", ())),
    )
