"""The one error hierarchy of guard.

Every layer raises these; each transport maps them to its own answer in ONE place
(`guard.server.status` for gRPC, the dead-letter router for Kafka). Messages are safe to show a
client: they never contain the text being checked.
"""

from __future__ import annotations


class GuardError(Exception):
    """Base class of every error guard reports to a caller. `kind` is a short stable name for
    metrics labels (`guard_rejected_total{reason=...}`)."""

    kind = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(GuardError):
    """The request itself is wrong; retrying it unchanged will fail again. `reason` is a short
    stable code (`text_too_long`, `unknown_policy`, `not_json`, ...) for machines: the Kafka
    dead-letter header carries it."""

    kind = "invalid_argument"

    def __init__(self, field: str, problem: str, reason: str = "invalid_field") -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem
        self.reason = reason


class UnknownPolicy(InvalidInput):
    """The request names a policy that is not configured."""

    def __init__(self, name: str, field: str = "policy") -> None:
        super().__init__(field, f"unknown policy {name!r}", reason="unknown_policy")
        self.name = name


class Overloaded(GuardError):
    """The batcher's queue is full; the caller should back off and retry."""

    kind = "overloaded"


class NotReady(GuardError):
    """The model is not loaded yet, or the service is shutting down."""

    kind = "not_ready"


class DeadlineExceeded(GuardError):
    """The caller's deadline passed before the text was scored."""

    kind = "deadline_exceeded"


class ModelFailure(GuardError):
    """The model raised while scoring; the detail is logged, not sent."""

    kind = "model_failure"


class ConfigError(GuardError):
    """Invalid configuration; raised at start-up, naming the field."""

    kind = "config"
