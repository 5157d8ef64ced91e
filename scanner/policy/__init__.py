"""YAML policies: which models may be promoted where. Load with `load_policy`, judge with `evaluate`.

The MLflow gate and the `scan` command share these three calls:
`load_policy(path) -> Policy`, `evaluate(policy, result, PromotionTarget(name, stage=..., alias=...)) -> Decision`,
and `Policy.input_defaults_for(model_name)`. `Policy.label` (name@digest) names the policy in reports and tags.
"""

from scanner.policy.evaluate import evaluate
from scanner.policy.loader import (
    BUILTIN_POLICIES,
    DEFAULT_POLICY,
    Validation,
    builtin_policy_text,
    load_builtin_policy,
    load_policy,
    validate_policy_file,
    validate_policy_text,
)
from scanner.policy.model import InputDefaults, Policy, PromotionTarget, Waiver

__all__ = [
    "BUILTIN_POLICIES",
    "DEFAULT_POLICY",
    "InputDefaults",
    "Policy",
    "PromotionTarget",
    "Validation",
    "Waiver",
    "builtin_policy_text",
    "evaluate",
    "load_builtin_policy",
    "load_policy",
    "validate_policy_file",
    "validate_policy_text",
]
