"""The one error -> gRPC status table."""

import logging

import grpc
import pytest

from guard.errors import DeadlineExceeded, InvalidInput, ModelFailure, NotReady, Overloaded, UnknownPolicy
from guard.server.status import GENERIC_INTERNAL, status_for


@pytest.mark.parametrize(
    "error, code",
    [
        (InvalidInput("text", "must not be empty"), grpc.StatusCode.INVALID_ARGUMENT),
        (UnknownPolicy("nope"), grpc.StatusCode.INVALID_ARGUMENT),
        (Overloaded("queue full"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (NotReady("loading"), grpc.StatusCode.UNAVAILABLE),
        (DeadlineExceeded("late"), grpc.StatusCode.DEADLINE_EXCEEDED),
        (ModelFailure("boom"), grpc.StatusCode.INTERNAL),
    ],
)
def test_guard_errors_map_to_their_status_with_their_message(error, code):
    assert status_for(error) == (code, error.message)


def test_field_is_named_in_invalid_input_messages():
    assert (
        status_for(InvalidInput("requests[2].text", "must not be empty"))[1]
        == "requests[2].text: must not be empty"
    )
    assert status_for(UnknownPolicy("x"))[1] == "policy: unknown policy 'x'"


def test_unknown_errors_are_internal_with_a_generic_message_and_logged(caplog):
    secret = RuntimeError("detail with user text: my password is hunter2")
    with caplog.at_level(logging.ERROR):
        code, message = status_for(secret)
    assert code is grpc.StatusCode.INTERNAL
    assert message == GENERIC_INTERNAL and "hunter2" not in message
    assert any(r.exc_info and r.exc_info[1] is secret for r in caplog.records)
