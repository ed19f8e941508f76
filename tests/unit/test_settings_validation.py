"""Settings: defaults, GUARD_* variables, YAML file, precedence, errors that name the field."""

import pytest

from guard.errors import ConfigError
from guard.settings import load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    import os

    for key in list(os.environ):
        if key.startswith("GUARD_"):
            monkeypatch.delenv(key)


def write(tmp_path, text):
    path = tmp_path / "guard.yaml"
    path.write_text(text)
    return path


def test_defaults_are_valid():
    s = load_settings()
    assert (s.host, s.port, s.model, s.default_policy) == ("127.0.0.1", 50051, None, "default")
    assert "default" in s.policies


def test_environment_variable_sets_a_field(monkeypatch):
    monkeypatch.setenv("GUARD_PORT", "6000")
    monkeypatch.setenv("GUARD_MAX_WAIT_MS", "7.5")
    s = load_settings()
    assert s.port == 6000 and s.max_wait_ms == 7.5


def test_yaml_file_sets_fields_and_policies(tmp_path):
    path = write(
        tmp_path,
        """
port: 7000
default_policy: strict
tenant_policies: {acme: strict}
policies:
  strict:
    version: "2026-11-22"
    default: {flag: 0.3, block: 0.6}
    sources: {llm: {violence: {block: 0.5}}}
""",
    )
    s = load_settings(path)
    assert s.port == 7000
    assert s.policies["strict"].version == "2026-11-22"
    assert s.policies["strict"].thresholds_for("violence", "llm").block == 0.5


def test_precedence_flag_over_env_over_file(tmp_path, monkeypatch):
    path = write(tmp_path, "port: 7000\nhost: 0.0.0.0\nqueue_size: 5\n")
    monkeypatch.setenv("GUARD_PORT", "7001")
    monkeypatch.setenv("GUARD_HOST", "::1")
    s = load_settings(path, port=7002, host=None)
    assert s.port == 7002  # flag
    assert s.host == "::1"  # env (flag not given)
    assert s.queue_size == 5  # file


def test_config_file_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("GUARD_CONFIG", str(write(tmp_path, "queue_size: 9\n")))
    assert load_settings().queue_size == 9


def test_bad_env_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("GUARD_PORT", "not-a-port")
    with pytest.raises(ConfigError, match=r"port \(GUARD_PORT\)"):
        load_settings()


def test_bad_file_value_names_the_nested_field(tmp_path):
    path = write(tmp_path, "policies:\n  default:\n    default: {flag: 1.5}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert "policies.default.default.flag" in err.value.message
    assert str(path) in err.value.message


def test_unknown_key_in_file_is_an_error_not_ignored(tmp_path):
    with pytest.raises(ConfigError, match="prot"):
        load_settings(write(tmp_path, "prot: 5\n"))


def test_unknown_default_policy_is_rejected(monkeypatch):
    monkeypatch.setenv("GUARD_DEFAULT_POLICY", "missing")
    with pytest.raises(ConfigError, match="default_policy: unknown policy 'missing'"):
        load_settings()


def test_tenant_mapped_to_unknown_policy_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match="tenant_policies.acme"):
        load_settings(write(tmp_path, "tenant_policies: {acme: nope}\n"))


def test_missing_or_malformed_file_is_reported(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(write(tmp_path, "port: [1,\n"))
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_settings(write(tmp_path, "- 1\n- 2\n"))


def test_window_overlap_must_leave_room():
    with pytest.raises(ConfigError, match="window_overlap_tokens"):
        load_settings(max_window_tokens=64, window_overlap_tokens=40)
