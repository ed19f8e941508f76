"""Kafka record values: schema v1 in, decision JSON out, dead-letter headers; garbage never crashes."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers import codec
from consumers.codec import Coordinates, decode_value
from guard.decision import Action, CategoryScore, Decision, Intent, Source, Timing
from guard.errors import InvalidInput

LIMIT = 1000


def reason_of(value: bytes, value_format: str = "json") -> str:
    with pytest.raises(InvalidInput) as info:
        decode_value(value, value_format, LIMIT)
    return info.value.reason


def test_a_full_v1_record_becomes_an_item_with_its_ids_and_attributes():
    value = json.dumps(
        {
            "schema_version": 1,
            "text": "héllo",
            "source": "llm",
            "id": "m-1",
            "tenant": "acme",
            "policy": "strict",
            "conversation_id": "c-9",
            "attributes": {"channel": "web", "n": 3},
        }
    ).encode()
    message = decode_value(value, "json", LIMIT)
    assert message.item.text == "héllo"
    assert message.item.source is Source.LLM
    assert (message.item.policy, message.item.tenant, message.item.request_id) == ("strict", "acme", "m-1")
    assert (message.id, message.conversation_id) == ("m-1", "c-9")
    assert message.attributes == {"channel": "web", "n": 3}


def test_only_text_is_required_and_source_defaults_to_user():
    message = decode_value(b'{"text": "hi"}', "json", LIMIT)
    assert message.item.source is Source.USER
    assert (message.id, message.item.policy, message.attributes) == ("", "", {})


@pytest.mark.parametrize(
    "value, reason",
    [
        (b"\xff\xfe\x00", "not_utf8"),
        (b"{not json", "not_json"),
        (b"", "not_json"),
        (b"[1, 2]", "invalid_schema"),
        (b'"just a string"', "invalid_schema"),
        (b'{"txt": "typo"}', "invalid_schema"),
        (b'{"text": "x", "polcy": "strict"}', "invalid_schema"),
        (b'{"id": "1"}', "missing_text"),
        (b'{"text": null}', "invalid_schema"),
        (b'{"text": 5}', "invalid_schema"),
        (b'{"text": "x", "id": 7}', "invalid_schema"),
        (b'{"text": "x", "attributes": [1]}', "invalid_schema"),
        (b'{"text": "x", "source": "system"}', "unknown_source"),
        (b'{"text": "x", "schema_version": 2}', "invalid_schema"),
        (b'{"text": "x", "schema_version": true}', "invalid_schema"),
        (b"[" * 5000 + b"]" * 5000, "not_json"),  # nesting deeper than the JSON parser goes
    ],
    ids=lambda v: v[:30].decode("latin-1") if isinstance(v, bytes) else v,
)
def test_bad_values_are_refused_with_a_reason_code(value, reason):
    assert reason_of(value) == reason


def test_a_tombstone_has_no_text():
    assert reason_of(None) == "missing_text"


def test_a_value_far_over_the_limit_is_refused_before_decoding():
    assert reason_of(b"a" * (LIMIT * 12 + 70000)) == "text_too_long"


def test_errors_name_the_field_and_never_echo_the_text():
    with pytest.raises(InvalidInput) as info:
        decode_value(b'{"text": "secret words", "source": "robot"}', "json", LIMIT)
    assert info.value.field == "source"
    assert "secret" not in info.value.message


def test_plain_text_values_are_the_whole_text():
    message = decode_value(b"a plain {message}", "text", LIMIT)
    assert message.item.text == "a plain {message}"
    assert reason_of(b"\xc3\x28", "text") == "not_utf8"


def test_decision_records_carry_the_grpc_decision_json_and_the_input_coordinates():
    decision = Decision(
        action=Action.BLOCK,
        categories=(CategoryScore("violence", 0.91, 0.5, True, Action.BLOCK, 0.8),),
        reasons=("violence 0.91 >= block threshold 0.80",),
        policy="default",
        policy_version="v3",
        rule="category:violence:block",
        model="m@1",
        intent=Intent("billing", 0.7),
        trace_id="ab" * 16,
        timing=Timing(1.0, 2.0, 3.0, 6.0, 4),
    )
    message = decode_value(
        b'{"text": "x", "id": "m-1", "conversation_id": "c", "attributes": {"a": 1}}', "json", LIMIT
    )
    body = json.loads(codec.decision_value(message, Coordinates("chat", 3, 41), decision))
    assert body["input"] == {"topic": "chat", "partition": 3, "offset": 41}
    assert (body["id"], body["conversation_id"], body["source"], body["attributes"]) == (
        "m-1",
        "c",
        "user",
        {"a": 1},
    )
    d = body["decision"]
    assert d["action"] == "ACTION_BLOCK"
    assert d["categories"][0]["category"] == "violence" and d["categories"][0]["triggered"] is True
    assert d["intent"] == {"route": "billing", "score": pytest.approx(0.7)}
    assert (d["policy"], d["policy_version"], d["rule"], d["model"]) == (
        "default",
        "v3",
        "category:violence:block",
        "m@1",
    )
    assert d["degraded"] is False  # fields with default values are written, not left out
    assert body["trace_id"] == d["trace_id"] == "ab" * 16
    assert body["timing"]["batch_size"] == 4


def test_dead_letter_headers_keep_the_originals_and_say_why_and_where():
    error = InvalidInput("text", "is required", reason="missing_text")
    headers = dict(codec.dead_letter_headers([("tenant", b"acme")], Coordinates("chat", 2, 7), error))
    assert headers["tenant"] == b"acme"
    assert headers[codec.ERROR_REASON] == b"missing_text"
    assert headers[codec.ERROR_FIELD] == b"text"
    assert headers[codec.ERROR_MESSAGE] == b"text: is required"
    assert (headers[codec.INPUT_TOPIC], headers[codec.INPUT_PARTITION], headers[codec.INPUT_OFFSET]) == (
        b"chat",
        b"2",
        b"7",
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=12,
)
record_objects = st.fixed_dictionaries(
    {},
    optional={
        "text": json_values | st.text(),
        "source": json_values | st.sampled_from(["user", "llm"]),
        "id": json_values,
        "attributes": json_values,
        "schema_version": json_values,
        "extra": json_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=300) | record_objects.map(lambda d: json.dumps(d).encode()),
    st.sampled_from(["json", "text"]),
)
def test_arbitrary_values_either_decode_or_raise_invalid_input(value, value_format):
    try:
        message = decode_value(value, value_format, LIMIT)
    except InvalidInput as exc:
        assert exc.reason and exc.field
    else:
        assert isinstance(message.item.text, str)
