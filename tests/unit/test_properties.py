"""Property-based tests: arbitrary input to request validation, the Kafka codec and the policy
configuration loader never raises anything but the documented errors."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from consumers.batch import Batch, Entry, Topics, build_outputs
from consumers.codec import Coordinates, decision_value, decode_value
from consumers.limits import fit_record, record_bytes
from guard.decision import Action, Source
from guard.engine import Engine
from guard.errors import ConfigError, InvalidInput
from guard.policy import PolicyConfig
from guard.policy.rules import Policy
from guard.server.decoding import Undecodable, _tolerant, decoded
from guard.settings import load_settings, read_config_file
from guard.text import check_text_chars, fold, fold_with_origin, origin_span
from guard.v1 import guard_pb2 as pb
from guard.wire import item_from_pb

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
any_text = st.text(alphabet=st.characters(codec=None), max_size=80)  # every code point, surrogates too
names = st.one_of(st.sampled_from(["", "default", "strict", "nope", "acme"]), any_text)


@pytest.fixture(scope="module")
def engine():
    policies = {"default": {}, "strict": {"default": {"block": 0.1}}}
    return Engine(
        load_settings(None, policies=policies, tenant_policies={"acme": "strict"}, max_text_chars=50)
    )


# --- request validation ------------------------------------------------------------------------
@FAST
@given(text=any_text, source=st.integers(-5, 10), policy=names, tenant=names, request_id=any_text)
def test_any_check_request_is_accepted_or_invalid_argument(engine, text, source, policy, tenant, request_id):
    try:
        request = pb.CheckRequest(
            text=text, source=source, policy=policy, tenant=tenant, request_id=request_id
        )
    except ValueError:
        return  # protobuf itself refuses strings that are not valid Unicode (lone surrogates)
    try:
        chosen = engine.validate(item_from_pb(request))
    except InvalidInput as exc:
        assert exc.field in {"text", "source", "policy", "tenant", "request_id"}
        assert exc.reason and exc.message.startswith(exc.field + ": ")
        return
    assert chosen.name in {"default", "strict"}
    assert text.strip() and len(text) <= 50
    check_text_chars(text, "text")  # accepted text has no refused character


@FAST
@given(data=st.binary(max_size=200))
def test_any_request_bytes_parse_or_are_invalid_argument(data):
    for message in (pb.CheckRequest, pb.CheckBatchRequest, pb.StreamRequest):
        parsed = _tolerant(message)(data)
        if isinstance(parsed, Undecodable):
            with pytest.raises(InvalidInput, match="not a valid"):
                decoded(parsed)
        else:
            assert decoded(parsed) is parsed


@FAST
@given(text=any_text)
def test_folding_never_fails_and_maps_every_span_back(text):
    folded, origin = fold_with_origin(text)
    assert folded == fold(text) and fold(folded) == folded  # idempotent
    if origin is None:
        assert len(folded) == len(text)
    else:
        assert len(origin) == len(folded) and origin == sorted(set(origin))
    for start in range(len(folded) + 1):
        a, b = origin_span((start, min(start + 2, len(folded))), origin, len(text))
        assert 0 <= a <= b <= len(text)


# --- the Kafka codec ---------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | any_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=8,
)
records = st.fixed_dictionaries(
    {},
    optional={
        "schema_version": st.one_of(st.just(1), json_values),
        "text": st.one_of(any_text, json_values),
        "source": st.one_of(st.sampled_from(["user", "llm"]), json_values),
        "id": st.one_of(any_text, json_values),
        "tenant": names,
        "policy": names,
        "conversation_id": any_text,
        "attributes": st.one_of(st.dictionaries(any_text, json_values), json_values),
        "polcy": any_text,
    },
)


def _decide_and_encode(message, engine) -> None:
    """An accepted record must also make a decision record and its outputs without error."""
    policy = engine.validate(message.item)
    decision = policy.decide({"hate": 0.9}, message.item.source)
    value = decision_value(message, Coordinates("in", 0, 1), decision)
    assert json.loads(value)["decision"]["action"] == "ACTION_BLOCK"


@FAST
@given(value=st.one_of(st.none(), st.binary(max_size=300)), value_format=st.sampled_from(["json", "text"]))
def test_any_record_bytes_decode_or_are_refused_with_a_reason(engine, value, value_format):
    try:
        message = decode_value(value, value_format, max_text_chars=50)
    except InvalidInput as exc:
        assert exc.reason
        return
    try:
        _decide_and_encode(message, engine)
    except InvalidInput:
        pass


@FAST
@given(body=records)
@example(body={"text": "hi", "id": "\ud800"})
@example(body={"text": "hi", "conversation_id": "x" * 300})
@example(body={"text": "hi", "attributes": {"k": "\udfff"}})
@example(body={"text": "hi", "attributes": {"k": "v" * 20000}})
def test_any_json_record_decodes_or_is_refused_with_a_reason(engine, body):
    raw = json.dumps(body, ensure_ascii=True).encode()  # \\ud800-style escapes reach the decoder
    try:
        message = decode_value(raw, "json", max_text_chars=50)
    except InvalidInput as exc:
        assert exc.reason in {
            "invalid_schema",
            "missing_text",
            "unknown_source",
            "field_too_long",
            "unpaired_surrogate",
            "text_too_long",
            "not_json",
        }
        return
    try:
        _decide_and_encode(message, engine)
    except InvalidInput as exc:
        assert exc.field in {"text", "policy", "tenant", "request_id", "source"}


class _Record:
    def __init__(self, key, value, headers):
        self.topic, self.partition, self.offset = "in", 0, 7
        self.key, self.value, self.headers = key, value, headers


@FAST
@given(
    key=st.one_of(st.none(), st.binary(max_size=5000)),
    value=st.one_of(st.none(), st.binary(max_size=20000)),
    headers=st.lists(st.tuples(st.text(max_size=20), st.binary(max_size=3000)), max_size=5),
    limit=st.integers(2048, 30000),
)
def test_dead_letters_always_fit_the_producer_limit(key, value, headers, limit):
    record = _Record(key, value, headers)
    entry = Entry(record, span=_NoSpan(), error=InvalidInput("value", "bad", reason="not_json"))
    (out,) = build_outputs(Batch([entry]), [], Topics("d", "x", max_record_bytes=limit))
    assert record_bytes(out.key, out.value, out.headers) <= limit
    assert ("guard.error.reason", b"not_json") in out.headers
    if value is not None and out.value != value:
        assert ("guard.input.truncated", str(len(value)).encode()) in out.headers
        assert value.startswith(out.value)


def test_an_oversized_decision_record_drops_the_input_headers_not_the_decision():
    own = [("big", b"x" * 5000)]
    _key, value, headers = fit_record(b"k", b"{}", own, [("guard.action", b"block")], 4096, cut_value=False)
    assert (
        value == b"{}"
        and ("guard.input.headers_dropped", b"1") in headers
        and ("big", b"x" * 5000) not in headers
    )


class _NoSpan:
    def get_span_context(self):
        from opentelemetry.trace import INVALID_SPAN_CONTEXT

        return INVALID_SPAN_CONTEXT


# --- the policy configuration loader -----------------------------------------------------------
thresholds = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "flag": st.one_of(st.floats(-1, 2), st.none(), json_values),
            "block": st.one_of(st.floats(-1, 2), st.none(), json_values),
        },
    ),
)
policy_bodies = st.fixed_dictionaries(
    {},
    optional={
        "version": st.one_of(any_text, json_values),
        "labels": st.dictionaries(any_text, st.one_of(any_text, st.none())),
        "default": thresholds,
        "categories": st.dictionaries(any_text, thresholds, max_size=3),
        "sources": st.dictionaries(
            st.sampled_from(["user", "llm", "bot"]),
            st.dictionaries(any_text, thresholds, max_size=2),
            max_size=2,
        ),
        "allowlist": st.lists(
            st.one_of(st.sampled_from(["^hi", "(", "[a-", "a{2,1}", "\\"]), any_text), max_size=3
        ),
        "blocklist": st.lists(any_text, max_size=3),
        "fail_mode": st.dictionaries(
            st.sampled_from(["user", "llm", "x"]), st.sampled_from(["open", "closed", "ajar"])
        ),
        "timeout_ms": st.one_of(st.floats(-5, 1000), json_values),
        "stream": st.one_of(
            json_values,
            st.fixed_dictionaries(
                {},
                optional={
                    "window_tokens": st.integers(-5, 10000),
                    "stride_tokens": st.integers(-5, 200),
                    "overlap_tokens": st.integers(-5, 200),
                    "release": st.dictionaries(st.sampled_from(["user", "llm", "x"]), any_text),
                },
            ),
        ),
        "colour": any_text,
    },
)


@FAST
@given(
    body=policy_bodies,
    scores=st.dictionaries(st.sampled_from(["hate", "violence", "x"]), st.floats(0, 1)),
    text=any_text,
)
def test_any_policy_config_loads_or_fails_validation_and_a_loaded_one_always_decides(body, scores, text):
    try:
        config = PolicyConfig(**body)
    except ValidationError:
        return
    policy = Policy("p", config)
    for source in Source:
        decision = policy.decide(scores, source)
        assert decision.action in Action and decision.policy_version == config.version
        assert policy.fallback(source, "test").degraded
    policy.match_lists(text)


@FAST
@given(
    policies=st.one_of(
        json_values, st.dictionaries(any_text, st.one_of(policy_bodies, json_values), max_size=2)
    ),
    default=names,
)
def test_any_settings_policies_load_or_raise_config_error_naming_the_field(policies, default):
    try:
        load_settings(None, policies=policies, default_policy=default)
    except ConfigError as exc:
        assert "policies" in exc.message or "default_policy" in exc.message


@FAST
@given(content=st.one_of(any_text, st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
def test_any_config_file_reads_or_raises_config_error(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("cfg") / "guard.yaml"
    try:
        path.write_text(content, encoding="utf-8", errors="surrogatepass")
    except UnicodeEncodeError:
        return
    try:
        values = read_config_file(path)
    except ConfigError as exc:
        assert "config file" in exc.message
        return
    assert isinstance(values, dict)
