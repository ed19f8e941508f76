"""The Helm chart with the real tools: `helm lint --strict`, `helm template` for every mode and
example values file, `kubernetes-validate --strict` on what it renders, and the rendered fields
that matter (probes, GPU limits, the sidecar, the config checksum, a valid guard config)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from guard.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "guard"
EXAMPLES = sorted((CHART / "examples").glob("*.yaml"))
CONSUMER = [
    "--set",
    "mode=consumer",
    "--set",
    "kafka.bootstrapServers=kafka:9092",
    "--set",
    "kafka.topics={chat}",
]
MODES = {"server": [], "consumer": CONSUMER, "sidecar": ["--set", "mode=sidecar"]}


@pytest.fixture(scope="session")
def helm() -> str:
    sys.path.insert(0, str(ROOT / "scripts"))
    from get_helm import fetch

    return str(fetch(ROOT / ".tools" / "bin" / "helm"))


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


def render(helm: str, *args: str) -> list[dict]:
    r = run(helm, "template", "rel", str(CHART), "--namespace", "ns", *args)
    assert r.returncode == 0, r.stderr
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def kind(docs: list[dict], name: str) -> list[dict]:
    return [d for d in docs if d["kind"] == name]


def guard_container(pod: dict) -> dict:
    return next(c for c in pod["spec"]["containers"] if c["name"] == "guard")


def guard_config(docs: list[dict]) -> dict:
    (cm,) = kind(docs, "ConfigMap")
    return yaml.safe_load(cm["data"]["guard.yaml"])


CASES = [pytest.param(args, id=f"mode-{m}") for m, args in MODES.items()] + [
    pytest.param(["-f", str(f)], id=f"example-{f.stem}") for f in EXAMPLES
]


@pytest.mark.parametrize("args", CASES)
def test_lint_and_render_validate_against_the_kubernetes_schemas(helm, args, tmp_path):
    lint = run(helm, "lint", "--strict", str(CHART), *args)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    out = tmp_path / "rendered.yaml"
    r = run(helm, "template", "rel", str(CHART), *args)
    assert r.returncode == 0, r.stderr
    out.write_text(r.stdout)
    validate = run(
        shutil.which("kubernetes-validate") or "kubernetes-validate", "--strict", "--quiet", str(out)
    )
    assert validate.returncode == 0, validate.stdout + validate.stderr


def test_kubernetes_validate_rejects_an_unknown_field(tmp_path):
    """The validation step above can fail: a typo in a Deployment is caught."""
    bad = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "x"},
        "spec": {"ports": [{"port": 1}], "selectr": {"a": "b"}},
    }
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    r = run(
        shutil.which("kubernetes-validate") or "kubernetes-validate",
        "--strict",
        "--quiet",
        str(tmp_path / "bad.yaml"),
    )
    assert r.returncode != 0


@pytest.mark.parametrize("mode", list(MODES))
def test_every_mode_renders_a_valid_guard_config(helm, mode):
    config = guard_config(render(helm, *MODES[mode]))
    settings = load_settings(None, **config)  # guard's own validation, extra fields forbidden
    assert settings.health_port == 50052 and settings.health_host == "0.0.0.0"
    assert settings.host == ("127.0.0.1" if mode == "sidecar" else "0.0.0.0")
    assert settings.metrics_port == 9090


def test_defaults_render_a_working_server_deployment(helm):
    docs = render(helm)
    assert {d["kind"] for d in docs} == {
        "Deployment",
        "Service",
        "ConfigMap",
        "ServiceAccount",
        "PodDisruptionBudget",
    }
    (deploy,) = kind(docs, "Deployment")
    pod = deploy["spec"]["template"]
    c = guard_container(pod)
    assert c["args"] == ["serve", "--config", "/etc/guard/config/guard.yaml"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["grpc"] == {"port": 50052}  # native gRPC probe against grpc.health.v1
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120  # time for the model to load
    assert (
        c["securityContext"]["readOnlyRootFilesystem"]
        and not c["securityContext"]["allowPrivilegeEscalation"]
    )
    assert (
        pod["spec"]["securityContext"]["runAsNonRoot"]
        and pod["spec"]["securityContext"]["runAsUser"] == 10001
    )
    assert {m["mountPath"] for m in c["volumeMounts"]} >= {"/etc/guard/config", "/tmp"}
    assert not any(
        m.get("subPath") for m in c["volumeMounts"] if m["name"] == "guard-config"
    )  # updates reach it
    (svc,) = kind(docs, "Service")
    assert {p["name"]: p["port"] for p in svc["spec"]["ports"]} == {"grpc": 50051, "metrics": 9090}
    assert svc["spec"]["selector"] == deploy["spec"]["selector"]["matchLabels"]
    assert "nvidia.com/gpu" not in c["resources"].get("limits", {})


def test_gpu_values_set_the_device_limit_scheduling_and_cuda(helm):
    docs = render(helm, "-f", str(CHART / "examples" / "server-gpu.yaml"))
    (deploy,) = kind(docs, "Deployment")
    spec = deploy["spec"]["template"]["spec"]
    c = guard_container(deploy["spec"]["template"])
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert c["resources"]["limits"]["memory"] == "8Gi"
    assert spec["runtimeClassName"] == "nvidia" and spec["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert guard_config(docs)["device"] == "cuda"
    assert c["image"].endswith(":0.1.0-cuda")
    (hpa,) = kind(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["maxReplicas"] == 8 and "replicas" not in deploy["spec"]


def test_consumer_mode_runs_guard_consume_with_kafka_settings_and_secret(helm):
    docs = render(helm, "-f", str(CHART / "examples" / "consumer.yaml"))
    assert not kind(docs, "Service") and not kind(docs, "HorizontalPodAutoscaler")
    (deploy,) = kind(docs, "Deployment")
    assert deploy["spec"]["replicas"] == 3
    c = guard_container(deploy["spec"]["template"])
    assert c["args"][0] == "consume" and "grpc" not in {p["name"] for p in c["ports"]}
    assert c["readinessProbe"]["grpc"] == {"port": 50052}
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"]}
    assert env["GUARD_KAFKA_SASL_PASSWORD"] == {"name": "kafka-credentials", "key": "password"}
    config = guard_config(docs)
    settings = load_settings(None, **config)
    assert settings.kafka_topics == ["chat.user-messages", "chat.llm-replies"]
    assert settings.kafka_group_id == "guard-chat" and settings.kafka_delivery == "exactly_once"
    assert (
        settings.kafka_security_protocol == "SASL_SSL"
        and settings.kafka_ssl_cafile == "/etc/guard/kafka/ca.crt"
    )
    volumes = {v["name"]: v for v in deploy["spec"]["template"]["spec"]["volumes"]}
    assert volumes["guard-kafka"]["secret"]["secretName"] == "kafka-credentials"


def test_sidecar_example_puts_the_guard_proxy_between_the_service_and_the_llm_on_localhost(helm):
    docs = render(helm, "-f", str(CHART / "examples" / "sidecar-vllm.yaml"))
    (deploy,) = kind(docs, "Deployment")
    containers = {c["name"]: c for c in deploy["spec"]["template"]["spec"]["containers"]}
    assert set(containers) == {"vllm", "guard"}
    vllm, guard = containers["vllm"], containers["guard"]
    assert (
        vllm["args"][vllm["args"].index("--host") + 1] == "127.0.0.1"
    )  # the LLM is not reachable from outside
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert guard["args"] == ["proxy", "--config", "/etc/guard/config/guard.yaml"]
    assert {p["name"]: p["containerPort"] for p in guard["ports"]} == {
        "http": 8080,
        "health": 50052,
        "metrics": 9090,
    }
    (svc,) = kind(docs, "Service")  # the Service reaches guard, and only guard
    assert {p["name"]: (p["port"], p["targetPort"]) for p in svc["spec"]["ports"]} == {
        "http": (8080, "http"),
        "metrics": (9090, "metrics"),
    }  # never the LLM's own port
    assert svc["spec"]["selector"] == deploy["spec"]["selector"]["matchLabels"]
    config = guard_config(docs)
    assert config["proxy_upstream"] == "http://127.0.0.1:8000/v1"  # guard reaches the LLM on localhost
    assert config["proxy_host"] == "0.0.0.0" and config["proxy_port"] == 8080
    assert config["host"] == "127.0.0.1" and config["policies"]["default"]["version"] == "sidecar-1"
    assert guard["startupProbe"]["grpc"] == {"port": 50052}  # probes reach the pod IP
    volumes = {v["name"] for v in deploy["spec"]["template"]["spec"]["volumes"]}
    assert volumes >= {"guard-config", "guard-tmp", "llm-weights"}


def test_the_config_checksum_changes_when_the_config_changes(helm):
    def checksum(*args):
        (deploy,) = kind(render(helm, *args), "Deployment")
        return deploy["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    base = checksum()
    assert checksum() == base
    assert checksum("--set", "settings.max_batch_tokens=4096") != base
    assert checksum("--set", "policies.default.version=v9") == base  # reloaded live: no restart
    assert checksum("--set", "configReload=false", "--set", "policies.default.version=v9") != checksum(
        "--set", "configReload=false"
    )
    assert checksum("--set", "replicaCount=5") == base  # not config: no needless restart


def test_tls_mounts_the_secret_and_points_guard_at_it(helm):
    docs = render(
        helm, "--set", "tls.enabled=true", "--set", "tls.secretName=guard-tls", "--set", "tls.mutual=true"
    )
    (deploy,) = kind(docs, "Deployment")
    volumes = {v["name"]: v for v in deploy["spec"]["template"]["spec"]["volumes"]}
    assert volumes["guard-tls"]["secret"]["secretName"] == "guard-tls"
    config = guard_config(docs)
    assert (
        config["tls_cert_file"] == "/etc/guard/tls/tls.crt"
        and config["tls_client_ca_file"] == "/etc/guard/tls/ca.crt"
    )
    c = guard_container(deploy["spec"]["template"])
    assert c["livenessProbe"]["grpc"]["port"] == 50052  # plaintext health port: kubelet probes cannot do TLS


def test_token_auth_mounts_the_token_secret_as_a_file_guard_rereads(helm):
    docs = render(helm, "--set", "auth.existingSecret=guard-tokens")
    (deploy,) = kind(docs, "Deployment")
    volumes = {v["name"]: v for v in deploy["spec"]["template"]["spec"]["volumes"]}
    assert volumes["guard-auth"]["secret"]["secretName"] == "guard-tokens"
    mounts = {m["name"]: m for m in guard_container(deploy["spec"]["template"])["volumeMounts"]}
    assert (
        mounts["guard-auth"]["mountPath"] == "/etc/guard/auth" and "subPath" not in mounts["guard-auth"]
    )  # updates reach it
    assert guard_config(docs)["auth_token_file"] == "/etc/guard/auth/tokens"
    assert "auth_token_file" not in guard_config(render(helm))


def test_model_volume_from_a_pvc_or_an_init_container(helm):
    docs = render(helm, "--set", "model.source=pvc", "--set", "model.pvc.claimName=guard-models")
    (deploy,) = kind(docs, "Deployment")
    volumes = {v["name"]: v for v in deploy["spec"]["template"]["spec"]["volumes"]}
    assert volumes["guard-model"]["persistentVolumeClaim"]["claimName"] == "guard-models"
    assert guard_config(docs)["model"] == "/models/guard"
    docs = render(
        helm,
        "--set",
        "model.source=initContainer",
        "--set",
        "model.initContainer.image=models:1",
        "--set",
        "model.initContainer.command={cp,-r,/src/.,/models/guard}",
    )
    (deploy,) = kind(docs, "Deployment")
    (init,) = deploy["spec"]["template"]["spec"]["initContainers"]
    assert init["image"] == "models:1" and init["volumeMounts"][0]["mountPath"] == "/models/guard"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set", "replicaCount=two"], "replicaCount"),
        (["--set", "mode=gateway"], "mode"),
        (["--set", "gpu.count=0"], "gpu/count"),
        (["--set", "mode=consumer"], "kafka/topics"),
        (["--set", "tls.enabled=true"], "tls/secretName"),
        (["--set", "model.source=s3"], "model/source"),
        (["--set", "unknownKey=1"], "unknownKey"),
    ],
)
def test_the_values_schema_rejects_wrong_values(helm, args, message):
    r = run(helm, "template", "rel", str(CHART), *args)
    assert r.returncode != 0 and message in r.stderr, r.stderr


def test_every_value_is_documented():
    """Every value in values.yaml has a `# --` comment right above it, or sits inside a block whose
    header has one (e.g. `podSecurityContext`, documented as a whole)."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    undocumented, documented_blocks = [], []  # stack of indents of documented block headers
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "- ")) or ":" not in stripped:
            continue
        indent = len(line) - len(line.lstrip())
        documented_blocks = [d for d in documented_blocks if d < indent]
        has_doc = i > 0 and lines[i - 1].strip().startswith("#")
        is_block = stripped.endswith(":")
        if has_doc and is_block:
            documented_blocks.append(indent)
        if not has_doc and not is_block and not documented_blocks:
            undocumented.append(stripped)
    assert not undocumented


def test_otel_values_become_the_standard_variables(helm):
    docs = render(
        helm,
        "--set",
        "otel.tracesExporter=otlp",
        "--set",
        "otel.endpoint=http://collector:4317",
        "--set",
        "otel.serviceName=chat-guard",
        "--set",
        "otel.samplerArg=0.1",
    )
    (deploy,) = kind(docs, "Deployment")
    env = {e["name"]: e["value"] for e in guard_container(deploy["spec"]["template"])["env"]}
    assert env == {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317",
        "OTEL_SERVICE_NAME": "chat-guard",
        "OTEL_TRACES_SAMPLER_ARG": "0.1",
    }
    (default,) = kind(render(helm), "Deployment")
    assert "env" not in guard_container(default["spec"]["template"])  # empty values set nothing
