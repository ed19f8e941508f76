"""Which exporters, service name and sampler guard's tracing uses: guard's own settings when set,
else the OpenTelemetry SDK's standard OTEL_* variables, else guard's defaults."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.sampling import ParentBased

from guard.errors import ConfigError
from guard.settings import load_settings
from guard.tracing import _resource, _sampler, exporter_kinds


@pytest.mark.parametrize(
    "env, kinds",
    [
        ({}, ["none"]),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, ["otlp_grpc"]),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, ["otlp_http"]),
        (
            {
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
            },
            ["otlp_grpc"],
        ),  # the per-signal variable wins
        ({"OTEL_TRACES_EXPORTER": "console,otlp"}, ["console", "otlp_grpc"]),
        ({"OTEL_TRACES_EXPORTER": "none"}, ["none"]),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, ["none"]),
    ],
)
def test_standard_variables_choose_the_exporters(env, kinds):
    assert exporter_kinds(load_settings(None), env) == kinds


def test_guards_own_setting_wins_over_the_standard_variables():
    settings = load_settings(None, trace_exporter="console", service_name="mine", trace_sample_ratio=0.25)
    env = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SERVICE_NAME": "theirs", "OTEL_TRACES_SAMPLER": "always_off"}
    assert exporter_kinds(settings, env) == ["console"]
    assert _resource(settings, env).attributes["service.name"] == "mine"
    assert isinstance(_sampler(settings, env), ParentBased)


def test_service_name_from_the_standard_variables():
    settings = load_settings(None)
    assert _resource(settings, {}).attributes["service.name"] == "guard"
    assert _resource(settings, {"OTEL_SERVICE_NAME": "chat-guard"}).attributes["service.name"] == "chat-guard"
    env = {"OTEL_RESOURCE_ATTRIBUTES": "team=safety, service.name=from-attributes"}
    assert _resource(settings, env).attributes["service.name"] == "from-attributes"


def test_the_standard_sampler_variables_are_left_to_the_sdk():
    assert _sampler(load_settings(None), {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio"}) is None
    assert isinstance(_sampler(load_settings(None), {}), ParentBased)


def test_an_unsupported_exporter_is_a_clear_error():
    with pytest.raises(ConfigError, match="OTEL_TRACES_EXPORTER: 'zipkin'"):
        exporter_kinds(load_settings(None), {"OTEL_TRACES_EXPORTER": "zipkin"})
