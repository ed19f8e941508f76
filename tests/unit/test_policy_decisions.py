"""Policy: thresholds, per-source rules, label mapping, allow/blocklists, versions, fallbacks."""

import pytest
from pydantic import ValidationError

from guard.decision import Action, Source
from guard.errors import UnknownPolicy
from guard.policy import PolicyConfig, PolicySet
from guard.policy.rules import NEVER, Policy


def policy(**config) -> Policy:
    return Policy("p", PolicyConfig(**config))


def test_nothing_over_threshold_allows_with_all_categories_reported():
    d = policy().decide({"violence": 0.1, "hate": 0.3}, Source.USER)
    assert d.action is Action.ALLOW
    assert d.rule == "default:allow"
    assert [c.category for c in d.categories] == ["hate", "violence"]  # highest score first
    assert d.reasons == ()


def test_flag_and_block_thresholds():
    p = policy(default={"flag": 0.5, "block": 0.8})
    assert p.decide({"hate": 0.6}, Source.USER).action is Action.FLAG
    blocked = p.decide({"hate": 0.85, "violence": 0.6}, Source.USER)
    assert blocked.action is Action.BLOCK
    assert blocked.rule == "category:hate:block"
    assert blocked.reasons == (
        "hate score 0.85 >= block threshold 0.80",
        "violence score 0.60 >= flag threshold 0.50",
    )
    assert [c.triggered for c in blocked.categories] == [True, True]


def test_category_threshold_overrides_default():
    p = policy(default={"flag": 0.5, "block": 0.8}, categories={"self_harm": {"block": 0.3}})
    assert p.decide({"self_harm": 0.35}, Source.USER).action is Action.BLOCK
    assert p.decide({"hate": 0.35}, Source.USER).action is Action.ALLOW


def test_per_source_thresholds_differ_for_user_and_llm():
    p = policy(
        default={"flag": 0.5, "block": 0.8},
        sources={"llm": {"*": {"block": 0.6}, "sexual": {"block": 0.4}}},
    )
    assert p.decide({"violence": 0.65}, Source.USER).action is Action.FLAG
    assert p.decide({"violence": 0.65}, Source.LLM).action is Action.BLOCK
    assert p.decide({"sexual": 0.45}, Source.USER).action is Action.ALLOW
    assert p.decide({"sexual": 0.45}, Source.LLM).action is Action.BLOCK


def test_null_threshold_disables_that_action():
    p = policy(categories={"prompt_injection": {"flag": None}})
    d = p.decide({"prompt_injection": 0.7}, Source.USER)
    assert d.action is Action.ALLOW
    assert d.categories[0].threshold == 0.8  # the block threshold is now the lowest that acts
    never = policy(categories={"hate": {"flag": None, "block": None}}).decide({"hate": 1.0}, Source.USER)
    assert never.action is Action.ALLOW and never.categories[0].block_threshold == NEVER


def test_flag_above_block_is_rejected():
    with pytest.raises(ValidationError, match="above block"):
        PolicyConfig(default={"flag": 0.9, "block": 0.5})


def test_unknown_source_in_overrides_is_rejected():
    with pytest.raises(ValidationError, match="unknown source"):
        PolicyConfig(sources={"robot": {"*": {"block": 0.5}}})


def test_labels_map_to_categories_and_null_ignores():
    p = policy(labels={"INJECTION": "prompt_injection", "SAFE": None})
    d = p.decide({"SAFE": 0.99, "INJECTION": 0.9}, Source.USER)
    assert [c.category for c in d.categories] == ["prompt_injection"]
    assert d.action is Action.BLOCK
    assert p.categories_for(["SAFE", "INJECTION", "other"]) == ["prompt_injection", "other"]


def test_two_labels_on_one_category_keep_the_max():
    p = policy(labels={"toxic": "hate", "identity_hate": "hate"})
    d = p.decide({"toxic": 0.2, "identity_hate": 0.9}, Source.USER)
    assert len(d.categories) == 1 and d.categories[0].score == pytest.approx(0.9)


def test_blocklist_wins_over_allowlist_and_is_unicode_normalised():
    p = policy(blocklist=[r"\bforbidden phrase\b"], allowlist=[r"^thanks"])
    match = p.match_lists("ＦＯＲＢＩＤＤＥＮ phrase, thanks")  # full-width letters
    assert match is not None and match.action is Action.BLOCK and match.rule == "blocklist[0]"
    allow = p.match_lists("Thanks a lot")
    assert allow.action is Action.ALLOW and allow.rule == "allowlist[0]"
    assert p.match_lists("hello") is None
    d = p.decide_by_list(match)
    assert d.action is Action.BLOCK and d.reasons == ("matched blocklist pattern [0]",)


def test_invalid_regex_is_rejected_with_its_index():
    with pytest.raises(ValidationError, match=r"pattern \[1\]"):
        PolicyConfig(blocklist=["ok", "("])


def test_decisions_carry_the_policy_name_and_version():
    d = Policy("strict", PolicyConfig(version="2026-11-01.3")).decide({"hate": 0.1}, Source.LLM)
    assert (d.policy, d.policy_version) == ("strict", "2026-11-01.3")


def test_fallback_is_degraded_and_follows_fail_mode_per_source():
    p = policy(fail_mode={"user": "closed", "llm": "open"})
    closed = p.fallback(Source.USER, "the model failed")
    assert closed.action is Action.BLOCK and closed.degraded and closed.rule == "fail_closed"
    opened = p.fallback(Source.LLM, "the model failed")
    assert opened.action is Action.ALLOW and opened.degraded and opened.rule == "fail_open"
    assert policy().fallback(Source.USER, "x").action is Action.BLOCK  # default: fail-closed


def test_policy_set_selects_explicit_then_tenant_then_default():
    configs = {"default": PolicyConfig(), "strict": PolicyConfig(version="s1"), "kids": PolicyConfig()}
    ps = PolicySet(configs, "default", {"acme": "strict"})
    assert ps.select().name == "default"
    assert ps.select(tenant="acme").name == "strict"
    assert ps.select(tenant="other").name == "default"
    assert ps.select("kids", tenant="acme").name == "kids"
    with pytest.raises(UnknownPolicy) as err:
        ps.select("nope")
    assert err.value.field == "policy"


def test_policy_set_rejects_unknown_names_at_construction():
    with pytest.raises(UnknownPolicy):
        PolicySet({"a": PolicyConfig()}, "b")
    with pytest.raises(UnknownPolicy, match="tenant_policies.acme"):
        PolicySet({"a": PolicyConfig()}, "a", {"acme": "missing"})
