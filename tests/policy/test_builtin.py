"""The shipped policies: policies/ at the repository root is what users read; the package carries the same files."""

from importlib import resources

import pytest

from scanner.policy import BUILTIN_POLICIES, builtin_policy_text, load_builtin_policy, load_policy, validate_policy_file
from scanner.policy.loader import policy_schema


@pytest.mark.parametrize("name", BUILTIN_POLICIES)
def test_root_policies_equal_the_packaged_ones(repo_root, name):
    assert (repo_root / "policies" / f"{name}.yaml").read_text(encoding="utf-8") == builtin_policy_text(name)
    validation = validate_policy_file(repo_root / "policies" / f"{name}.yaml")
    assert validation.errors == () and validation.warnings == ()
    assert load_policy(repo_root / "policies" / f"{name}.yaml").digest == load_builtin_policy(name).digest


def test_root_schema_equals_the_packaged_one(repo_root):
    packaged = (resources.files("scanner.policy") / "builtin" / "policy.schema.json").read_text(encoding="utf-8")
    assert (repo_root / "policies" / "policy.schema.json").read_text(encoding="utf-8") == packaged
    assert policy_schema()["$id"] == "model-scanner/policy/v1"


def test_default_policy_documents_how_it_judges_a_plain_scan():
    text = builtin_policy_text("default")
    assert "plain scan" in text and "plain_scan: true" in text
