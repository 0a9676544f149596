"""Renders a kustomization the way `kubectl kustomize` does, for the few fields deploy/kubernetes uses
(kubectl is not on the test machines): resources (files and directories), namespace, labels and
commonLabels, images, and patches as strategic merges (lists of named items merged by name,
`$patch: delete` removing an object). Any other field is refused rather than ignored, so a manifest
the tests cannot render faithfully fails instead of passing unchecked.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

Object = dict[str, Any]
KNOWN = frozenset({"apiVersion", "kind", "resources", "namespace", "labels", "commonLabels", "images",
                   "patches"})
CLUSTER_SCOPED = frozenset({"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                            "PersistentVolume", "StorageClass", "PriorityClass"})
WORKLOADS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"})


def load_yaml(path: Path) -> list[Object]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def render(directory: Path) -> list[Object]:
    spec = load_yaml(directory / "kustomization.yaml")[0]
    unknown = set(spec) - KNOWN
    if unknown:
        raise ValueError(f"{directory}: kustomization fields this renderer does not model: {sorted(unknown)}")
    objects: list[Object] = []
    for entry in spec.get("resources", []):
        path = directory / entry
        objects.extend(render(path) if path.is_dir() else load_yaml(path))
    for patch in spec.get("patches", []):
        if set(patch) != {"path"}:
            raise ValueError(f"{directory}: only `patches: - path:` is modelled, got {sorted(patch)}")
        for doc in load_yaml(directory / patch["path"]):
            objects = _patch(objects, doc)
    if "namespace" in spec:
        _namespace(objects, spec["namespace"])
    for labels in spec.get("labels", []):
        _label(objects, labels["pairs"], selectors=labels.get("includeSelectors", False),
               templates=labels.get("includeTemplates", False) or labels.get("includeSelectors", False))
    if "commonLabels" in spec:
        _label(objects, spec["commonLabels"], selectors=True, templates=True)
    for image in spec.get("images", []):
        _image(objects, image)
    return objects


def key(obj: Object) -> tuple[str, str, str]:
    return obj["kind"], obj["metadata"]["name"], obj["metadata"].get("namespace", "")


def _patch(objects: list[Object], patch: Object) -> list[Object]:
    patch = copy.deepcopy(patch)
    delete = patch.pop("$patch", None) == "delete"
    matches = [o for o in objects if key(o) == key(patch)]
    if len(matches) != 1:
        raise ValueError(f"patch {key(patch)} matches {len(matches)} objects")
    if delete:
        return [o for o in objects if o is not matches[0]]
    merge(matches[0], patch)
    return objects


def merge(target: Object, patch: Object) -> None:
    """Strategic merge: maps merge, lists of named maps merge by name, other lists are replaced."""
    for name, value in patch.items():
        current = target.get(name)
        if isinstance(value, dict) and isinstance(current, dict):
            merge(current, value)
        elif _named_list(value) and _named_list(current):
            by_name = {item["name"]: item for item in current}
            for item in value:
                if item["name"] in by_name:
                    merge(by_name[item["name"]], item)
                else:
                    current.append(item)
        else:
            target[name] = copy.deepcopy(value)


def _named_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(i, dict) and "name" in i for i in value)


def _namespace(objects: list[Object], namespace: str) -> None:
    for obj in objects:
        if obj["kind"] == "Namespace":
            obj["metadata"]["name"] = namespace
        elif obj["kind"] not in CLUSTER_SCOPED:
            obj["metadata"]["namespace"] = namespace
        for subject in obj.get("subjects", []) if obj["kind"].endswith("RoleBinding") else []:
            if subject.get("kind") == "ServiceAccount":
                subject["namespace"] = namespace


def _label(objects: list[Object], pairs: dict[str, str], *, selectors: bool, templates: bool) -> None:
    for obj in objects:
        obj["metadata"].setdefault("labels", {}).update(pairs)
        spec = obj.get("spec", {})
        if templates and obj["kind"] in WORKLOADS:
            spec["template"]["metadata"].setdefault("labels", {}).update(pairs)
        if selectors and obj["kind"] in WORKLOADS:
            spec["selector"].setdefault("matchLabels", {}).update(pairs)
        if selectors and obj["kind"] == "Service":
            spec.setdefault("selector", {}).update(pairs)


def _image(objects: list[Object], image: dict[str, str]) -> None:
    for obj in objects:
        if obj["kind"] not in WORKLOADS:
            continue
        pod = obj["spec"]["template"]["spec"]
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            if _image_name(container["image"]) == image["name"]:
                name = image.get("newName", image["name"])
                container["image"] = (f"{name}@{image['digest']}" if "digest" in image
                                      else f"{name}:{image.get('newTag', 'latest')}")


def _image_name(reference: str) -> str:
    name = reference.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return name[: len(name) - len(last)] + last.split(":", 1)[0]
