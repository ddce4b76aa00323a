"""Helm charts: linted and rendered by real Helm (helm-python-sdk), validated against Kubernetes schemas."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Hard imports, not importorskip: both are in the dev extra `make test` installs, so a missing
# one must fail the run (in CI too) rather than silently skip every chart check.
import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from tests.helpers.servers import repo_root

HELM = repo_root() / "helm"
AGENT, CONTROL_PLANE = HELM / "mallard-agent", HELM / "mallard-control-plane"
KUBERNETES_VERSIONS = ["1.25.0", "1.30.0", "1.34.0"]
VERSION = tomllib.loads((repo_root() / "pyproject.toml").read_text())["project"]["version"]
REQUIRED_AGENT = {"controlPlaneAddress": "gateway.mallard.example.com:8701", "joinToken": {"secretName": "agent-join"}}
POSTGRES = "postgresql+psycopg://mallard:pw@db.internal:5432/mallard"

AGENT_MATRIX: dict[str, dict[str, Any]] = {
    "minimal": REQUIRED_AGENT,
    "everything": {
        **REQUIRED_AGENT,
        "image": {"repository": "registry.example.com/mallard-agent", "tag": "0.1.0-rc1", "pullPolicy": "Always"},
        "imagePullSecrets": [{"name": "registry"}],
        "enrollAddress": "enroll.mallard.example.com:9702",
        "tlsServerName": "gateway.mallard.example.com",
        "tenantId": "ten_0123456789abcdef",
        "logLevel": "DEBUG",
        "controlPlaneCa": {"secretName": "agent-join"},
        "dataPlane": {"port": 9710, "url": "https://agent.internal.example.com"},
        "service": {
            "type": "LoadBalancer",
            "annotations": {"service.beta.kubernetes.io/aws-load-balancer-internal": "true"},
        },
        "objectStore": {"bucket": "acme-mallard", "prefix": "agents/vpc", "region": "eu-west-1"},
        "persistence": {"existingClaim": "agent-state"},
        "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/agent"}},
        "networkPolicy": {
            "gatewayCidrs": ["203.0.113.10/32", "2001:db8::/64"],
            "stores": [{"cidr": "10.0.0.0/16", "ports": [443, 5432, 6379]}, {"cidr": "10.1.0.0/24"}],
            "ingressFrom": [{"namespaceSelector": {"matchLabels": {"team": "ml"}}}],
        },
        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": 2, "memory": "2Gi"}},
        "probes": {"startup": {"failureThreshold": 120}},
        "extraEnv": [{"name": "MALLARD_AGENT_BACKOFF_MAX_SECONDS", "value": "10"}],
        "podAnnotations": {"example.com/owner": "ml-platform"},
        "podLabels": {"team": "ml"},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {}},
    },
    "ephemeral-no-policy": {
        **REQUIRED_AGENT,
        "controlPlaneAddress": "[fd00::10]:8701",
        "persistence": {"enabled": False},
        "networkPolicy": {"enabled": False},
        "serviceAccount": {"create": False, "name": "shared"},
        "fullnameOverride": "agent",
    },
}

CONTROL_PLANE_MATRIX: dict[str, dict[str, Any] | None] = {
    "defaults": None,
    "production": {
        "database": {"url": POSTGRES},
        "broker": {"url": "redis://redis.internal:6379/0"},
        "scheduler": {"enabled": True, "worker": {"replicas": 2}},
        "api": {"replicas": 2, "service": {"type": "ClusterIP"}},
        "gateway": {
            "replicas": 2,
            "tlsNames": ["gateway.mallard.example.com"],
            "service": {
                "type": "LoadBalancer",
                "annotations": {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"},
            },
        },
        "persistence": {"accessMode": "ReadWriteMany", "storageClass": "efs", "size": "5Gi"},
        "networkPolicy": {"apiFrom": [{"namespaceSelector": {"matchLabels": {"ingress": "true"}}}]},
        "extraEnv": [{"name": "MALLARD_HEARTBEAT_INTERVAL_MS", "value": "5000"}],
    },
    "existing-secrets-no-volume": {
        "database": {"existingSecret": "mallard-endpoints"},
        "broker": {"existingSecret": "mallard-endpoints"},
        "bootstrapToken": {"existingSecret": "mallard-endpoints"},
        "pki": {"existingSecret": "mallard-pki"},
        "persistence": {"enabled": False},
        "scheduler": {"enabled": True, "worker": {"livenessProbe": False}},
        "image": {"repository": "registry.example.com/mallard-control-plane", "tag": "0.1.0"},
    },
    "bare": {
        "networkPolicy": {"enabled": False},
        "serviceAccount": {"create": False},
        "fullnameOverride": "cp",
        "persistence": {"existingClaim": "cp-state"},
    },
}


def manifests(chart: Path, values: dict[str, Any] | None) -> list[dict[str, Any]]:
    loaded = helm.Chart.load(chart)
    rendered = loaded.render(values=values, name="acme", namespace="mallard")
    return [
        doc
        for path, text in sorted(rendered.items())
        if not path.endswith("NOTES.txt")
        for doc in yaml.safe_load_all(text)
        if doc
    ]


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in docs:
        if doc["kind"] == "Deployment":
            yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return list(spec.get("initContainers", [])) + list(spec["containers"])


def lint_problems(chart: Path, values: dict[str, Any] | None) -> list[dict[str, Any]]:
    report = helm.lint(str(chart), values)
    return [m for m in report["messages"] if m["severity"] >= 2] + [{"error": e} for e in report["errors"]]


def assert_valid_and_secure(docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)
    for name, spec in pod_specs(docs):
        assert spec["automountServiceAccountToken"] is False, name
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        for container in containers(spec):
            security = container["securityContext"]
            where = f"{name}/{container['name']}"
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"], where


@pytest.mark.parametrize("case", AGENT_MATRIX)
def test_agent_chart_lints_renders_and_validates(case: str) -> None:
    values = AGENT_MATRIX[case]
    assert lint_problems(AGENT, values) == []
    docs = manifests(AGENT, values)
    assert_valid_and_secure(docs)
    kinds = sorted(d["kind"] for d in docs)
    [(_, spec)] = list(pod_specs(docs))
    [agent] = spec["containers"]
    env = {e["name"]: e for e in agent["env"]}
    token_ref = env["MALLARD_AGENT_JOIN_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert token_ref == {"name": "agent-join", "key": "join-token"}
    assert env["MALLARD_AGENT_CONTROL_PLANE"]["value"] == values["controlPlaneAddress"]
    port = values.get("dataPlane", {}).get("port", 8710)
    assert agent["livenessProbe"]["httpGet"] == {"path": "/v1/health", "port": "data-plane"}
    assert agent["readinessProbe"]["httpGet"] == {"path": "/v1/ready", "port": "data-plane"}
    assert agent["ports"] == [{"name": "data-plane", "containerPort": port, "protocol": "TCP"}]
    state = next(v for v in spec["volumes"] if v["name"] == "state")
    mounts = {m["name"]: m["mountPath"] for m in agent["volumeMounts"]}
    assert mounts["state"] == "/var/lib/mallard/agent" == env["MALLARD_AGENT_HOME"]["value"]
    if values.get("persistence", {}).get("enabled", True):
        claim = values.get("persistence", {}).get("existingClaim") or "acme-mallard-agent-state"
        assert state["persistentVolumeClaim"]["claimName"] == claim
        assert ("PersistentVolumeClaim" in kinds) == ("existingClaim" not in values.get("persistence", {}))
    else:
        assert state == {"name": "state", "emptyDir": {}}
    if values.get("networkPolicy", {}).get("enabled", True):
        assert "NetworkPolicy" in kinds
    else:
        assert "NetworkPolicy" not in kinds
    if case == "minimal":
        assert agent["image"] == f"mallard-agent:{VERSION}"  # what `make images` builds
        assert "MALLARD_AGENT_STORE_URL" not in env  # the store defaults to a directory on the state volume
    if case == "everything":
        assert env["MALLARD_AGENT_STORE_URL"]["value"] == "s3://acme-mallard/agents/vpc"
        assert env["MALLARD_AGENT_S3_REGION"]["value"] == "eu-west-1"
        assert env["MALLARD_AGENT_CA_FILE"]["value"] == "/etc/mallard/control-plane-ca/ca.crt"


def test_agent_network_policy_allows_only_gateway_stores_and_dns() -> None:
    docs = manifests(AGENT, AGENT_MATRIX["everything"])
    [policy] = [d for d in docs if d["kind"] == "NetworkPolicy"]
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    gateway, store_a, store_b, dns = spec["egress"]
    # The link port from controlPlaneAddress and the explicit enrollment port, to the gateway only.
    assert [p["port"] for p in gateway["ports"]] == [8701, 9702]
    assert [peer["ipBlock"]["cidr"] for peer in gateway["to"]] == ["203.0.113.10/32", "2001:db8::/64"]
    assert store_a == {
        "to": [{"ipBlock": {"cidr": "10.0.0.0/16"}}],
        "ports": [
            {"port": 443, "protocol": "TCP"},
            {"port": 5432, "protocol": "TCP"},
            {"port": 6379, "protocol": "TCP"},
        ],
    }
    assert store_b == {"to": [{"ipBlock": {"cidr": "10.1.0.0/24"}}]}
    assert [p["port"] for p in dns["ports"]] == [53, 53]
    assert dns["to"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "kube-system"}
    [ingress] = spec["ingress"]
    assert ingress["ports"] == [{"port": "data-plane", "protocol": "TCP"}]

    # Without gatewayCidrs the agent may dial any address, but only on the gateway's two ports.
    default_policy = next(d for d in manifests(AGENT, REQUIRED_AGENT) if d["kind"] == "NetworkPolicy")
    gateway, dns = default_policy["spec"]["egress"]
    assert "to" not in gateway
    assert [p["port"] for p in gateway["ports"]] == [8701, 8702]


@pytest.mark.parametrize("case", CONTROL_PLANE_MATRIX)
def test_control_plane_chart_lints_renders_and_validates(case: str) -> None:
    values = CONTROL_PLANE_MATRIX[case]
    assert lint_problems(CONTROL_PLANE, values) == []
    docs = manifests(CONTROL_PLANE, values)
    assert_valid_and_secure(docs)
    deployments = {name: spec for name, spec in pod_specs(docs)}
    scheduler = bool((values or {}).get("scheduler", {}).get("enabled"))
    by_component = {
        d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in docs if d["kind"] == "Deployment"
    }
    assert set(by_component) == ({"api", "gateway", "worker", "beat"} if scheduler else {"api", "gateway"})
    commands = {c: d["spec"]["template"]["spec"]["containers"][0]["args"][0] for c, d in by_component.items()}
    assert all(component == command for component, command in commands.items())

    api = by_component["api"]["spec"]["template"]["spec"]["containers"][0]
    assert api["livenessProbe"]["httpGet"] == {"path": "/api/v1/health", "port": "http"}
    assert api["readinessProbe"]["httpGet"] == {"path": "/api/v1/health", "port": "http"}
    gateway = by_component["gateway"]["spec"]["template"]["spec"]["containers"][0]
    assert gateway["livenessProbe"]["tcpSocket"] == {"port": "link"}  # gRPC only: no HTTP health endpoint
    assert gateway["readinessProbe"]["tcpSocket"] == {"port": "link"}
    for component in ("api", "gateway"):
        init = [c["name"] for c in by_component[component]["spec"]["template"]["spec"]["initContainers"]]
        assert init[-1] == "prepare"
    if scheduler:
        assert by_component["beat"]["spec"]["replicas"] == 1
        assert by_component["beat"]["spec"]["strategy"] == {"type": "Recreate"}
    env = {e["name"] for e in api["env"]}
    assert "MALLARD_BOOTSTRAP_TOKEN" in env
    assert ("MALLARD_DATABASE_URL" in env) == (case != "defaults" and case != "bare")
    if case == "defaults":
        assert api["image"] == f"mallard-control-plane:{VERSION}"  # what `make images` builds
    assert len(deployments) == len(by_component)


BAD_VALUES: list[tuple[Path, dict[str, Any], str]] = [
    (AGENT, {"joinToken": {"secretName": "x"}}, "at '/controlPlaneAddress': '' does not match pattern"),
    (
        AGENT,
        {**REQUIRED_AGENT, "controlPlaneAddress": "gateway"},
        "at '/controlPlaneAddress': 'gateway' does not match",
    ),
    (AGENT, {**REQUIRED_AGENT, "replicaCount": 2}, "additional properties 'replicaCount' not allowed"),
    (AGENT, {**REQUIRED_AGENT, "securityContext": {"runAsNonRoot": False}}, "at '/securityContext/runAsNonRoot'"),
    (AGENT, {**REQUIRED_AGENT, "dataPlane": {"port": 70000}}, "at '/dataPlane/port': maximum"),
    (AGENT, {**REQUIRED_AGENT, "networkPolicy": {"gatewayCidrs": ["gateway"]}}, "at '/networkPolicy/gatewayCidrs/0'"),
    (
        AGENT,
        {**REQUIRED_AGENT, "persistence": {"enabled": "yes"}},
        "at '/persistence/enabled': got string, want boolean",
    ),
    (
        CONTROL_PLANE,
        {"database": {"url": "mysql://db/mallard"}},
        "at '/database/url': 'mysql://db/mallard' does not match",
    ),
    (CONTROL_PLANE, {"api": {"replicas": 0}}, "at '/api/replicas': minimum: got 0, want 1"),
    (CONTROL_PLANE, {"logLevel": "LOUD"}, "at '/logLevel'"),
    (CONTROL_PLANE, {"scheduler": {"enabled": True}}, "scheduler.enabled needs PostgreSQL"),
    (CONTROL_PLANE, {"database": {"url": POSTGRES}, "scheduler": {"enabled": True}}, "scheduler.enabled needs Redis"),
    (
        CONTROL_PLANE,
        {"database": {"url": POSTGRES}, "persistence": {"enabled": False}},
        "pki.existingSecret is required when persistence.enabled is false",
    ),
    (CONTROL_PLANE, {"api": {"replicas": 3}}, "more than one API or gateway replica needs PostgreSQL"),
]


@pytest.mark.parametrize(("chart", "values", "message"), BAD_VALUES, ids=[m for _, _, m in BAD_VALUES])
def test_invalid_values_are_refused_with_a_clear_message(chart: Path, values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmError) as refused:
        helm.Chart.load(chart).render(values=values, name="acme", namespace="mallard")
    assert message in str(refused.value)
    if refused.type is helm.HelmValuesError:  # `helm lint` reports schema violations too (not `fail`)
        assert any(message in str(problem) for problem in lint_problems(chart, values))
    else:
        assert refused.type is helm.HelmRenderError


def test_agent_chart_defaults_need_the_two_required_values() -> None:
    problems = " ".join(str(p) for p in lint_problems(AGENT, None))
    assert "/controlPlaneAddress" in problems and "/joinToken/secretName" in problems


def values_paths(values: dict[str, Any], prefix: str = "") -> Iterator[str]:
    opaque = {"resources", "podSecurityContext", "securityContext"}
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and key not in opaque:
            yield from values_paths(value, path + ".")
        else:
            yield path


@pytest.mark.parametrize("chart", [AGENT, CONTROL_PLANE], ids=lambda p: p.name)
def test_readme_documents_every_value(chart: Path) -> None:
    readme = (chart / "README.md").read_text()
    values = yaml.safe_load((chart / "values.yaml").read_text())
    missing = [path for path in values_paths(values) if f"| `{path}` |" not in readme]
    assert missing == [], f"{chart.name}/README.md has no row for {missing}"


def test_chart_images_are_the_ones_make_images_builds() -> None:
    makefile = (repo_root() / "Makefile").read_text()
    for chart in (AGENT, CONTROL_PLANE):
        loaded = helm.Chart.load(chart)
        assert loaded.metadata["appVersion"] == VERSION
        assert f"{loaded.values['image']['repository']}:$(IMAGE_TAG)" in makefile
