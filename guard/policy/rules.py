"""Evaluating a policy: scores in, `Decision` out."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from guard.decision import Action, CategoryScore, Decision, Source
from guard.errors import DeadlineExceeded, UnknownPolicy
from guard.policy.config import FailMode, PolicyConfig, Thresholds
from guard.text import fold

NEVER = 2.0  # reported as the threshold of a disabled action: no score reaches it


@dataclass(frozen=True)
class ListMatch:
    action: Action
    rule: str
    reason: str


def normalize_for_matching(text: str) -> str:
    """The folded text (`guard.text.fold`: invisible characters removed, compatibility forms and
    Latin lookalikes read as Latin), NFKC-normalized and casefolded, so a disguise cannot dodge a
    pattern."""
    return unicodedata.normalize("NFKC", fold(text)).casefold()


class Policy:
    def __init__(self, name: str, config: PolicyConfig) -> None:
        self.name = name
        self.config = config
        self.version = config.version
        self._allow = [re.compile(p, re.IGNORECASE) for p in config.allowlist]
        self._block = [re.compile(p, re.IGNORECASE) for p in config.blocklist]
        self._thresholds: dict[
            tuple[str, str], tuple[float, float]
        ] = {}  # (category, source) -> (flag, block)

    def categories_for(self, labels: Sequence[str]) -> list[str]:
        """The categories this policy reports for a model with these labels, in label order."""
        seen: dict[str, None] = {}
        for label in labels:
            category = self._category_of(label)
            if category is not None:
                seen.setdefault(category)
        return list(seen)

    def _category_of(self, label: str) -> str | None:
        return self.config.labels.get(label, label)  # None: the policy ignores this label

    def match_lists(self, text: str) -> ListMatch | None:
        """Blocklist first, then allowlist. A match decides without the model."""
        if not (self._block or self._allow):
            return None
        normalized = normalize_for_matching(text)
        for i, pattern in enumerate(self._block):
            if pattern.search(normalized):
                return ListMatch(Action.BLOCK, f"blocklist[{i}]", f"matched blocklist pattern [{i}]")
        for i, pattern in enumerate(self._allow):
            if pattern.search(normalized):
                return ListMatch(Action.ALLOW, f"allowlist[{i}]", f"matched allowlist pattern [{i}]")
        return None

    def decide_by_list(self, match: ListMatch) -> Decision:
        return self._decision(match.action, (), (match.reason,), match.rule)

    def decide(self, scores: Mapping[str, float], source: Source) -> Decision:
        """`scores` maps model labels to probabilities."""
        by_category: dict[str, float] = {}
        for label, score in scores.items():
            category = self._category_of(label)
            if category is not None:
                by_category[category] = max(score, by_category.get(category, 0.0))
        results = sorted(
            (self._score_category(c, s, source) for c, s in by_category.items()),
            key=lambda r: (-r.action.severity, -r.score, r.category),
        )
        if not results or results[0].action is Action.ALLOW:
            return self._decision(Action.ALLOW, tuple(results), (), "default:allow")
        top = results[0]
        reasons = tuple(_reason(r) for r in results if r.action is not Action.ALLOW)
        return self._decision(
            top.action, tuple(results), reasons, f"category:{top.category}:{top.action.value}"
        )

    def judge(
        self, source: Source, match: ListMatch | None, outcome: Mapping[str, float] | BaseException
    ) -> Decision:
        """THE decision step of every path (unary and batch checks, stream windows, Kafka, the HTTP
        proxy): a list match decides; else a text that could not be scored gets the fail-mode
        fallback, naming why; else the scores decide."""
        if match is not None:
            return self.decide_by_list(match)
        if isinstance(outcome, DeadlineExceeded):
            return self.fallback(source, "not scored before the deadline")
        if isinstance(outcome, BaseException):
            return self.fallback(source, "the model failed")
        return self.decide(outcome, source)

    def fallback(self, source: Source, cause: str) -> Decision:
        """The degraded decision used when the model could not score the text."""
        mode = self.config.fail_mode.get(source.value, FailMode.CLOSED)
        action = Action.BLOCK if mode is FailMode.CLOSED else Action.ALLOW
        reason = f"{cause}; fail-{mode.value} policy for {source.value} input"
        return Decision(
            action=action,
            categories=(),
            reasons=(reason,),
            policy=self.name,
            policy_version=self.version,
            rule=f"fail_{mode.value}",
            degraded=True,
        )

    def _score_category(self, category: str, score: float, source: Source) -> CategoryScore:
        flag, block = self.flag_block(category, source.value)
        action = Action.BLOCK if score >= block else Action.FLAG if score >= flag else Action.ALLOW
        lowest = min(flag, block)
        return CategoryScore(
            category=category,
            score=float(score),
            threshold=lowest,
            triggered=score >= lowest,
            action=action,
            block_threshold=block,
        )

    def flag_block(self, category: str, source: str) -> tuple[float, float]:
        """The FLAG and BLOCK thresholds (NEVER when off); the config is immutable, so cached."""
        key = (category, source)
        if key not in self._thresholds:
            t: Thresholds = self.config.thresholds_for(category, source)
            self._thresholds[key] = (
                NEVER if t.flag is None else t.flag,
                NEVER if t.block is None else t.block,
            )
        return self._thresholds[key]

    def _decision(self, action: Action, categories, reasons, rule: str) -> Decision:
        return Decision(
            action=action,
            categories=categories,
            reasons=reasons,
            policy=self.name,
            policy_version=self.version,
            rule=rule,
        )


def _reason(result: CategoryScore) -> str:
    threshold = result.block_threshold if result.action is Action.BLOCK else result.threshold
    return f"{result.category} score {result.score:.2f} >= {result.action.value} threshold {threshold:.2f}"


def check_references(policies: Mapping[str, object], default: str, tenants: Mapping[str, str]) -> None:
    """The default policy and every tenant's policy must be configured (raises `UnknownPolicy`)."""
    if default not in policies:
        raise UnknownPolicy(default, field="default_policy")
    for tenant, name in tenants.items():
        if name not in policies:
            raise UnknownPolicy(name, field=f"tenant_policies.{tenant}")


class PolicySet:
    """All configured policies, and how a request selects one."""

    def __init__(
        self, configs: Mapping[str, PolicyConfig], default: str, tenants: Mapping[str, str] | None = None
    ) -> None:
        check_references(configs, default, tenants or {})
        self.policies = {name: Policy(name, cfg) for name, cfg in configs.items()}
        self.default = default
        self.tenants = dict(tenants or {})

    def select(self, name: str = "", tenant: str = "") -> Policy:
        """An explicit policy name wins, then the tenant's policy, then the default."""
        if name:
            try:
                return self.policies[name]
            except KeyError:
                raise UnknownPolicy(name) from None
        return self.policies[self.tenants.get(tenant, self.default)]
