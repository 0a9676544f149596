"""Terraform provider schemas, offline, from the jsii assembly of a prebuilt CDK Terrain provider package.

The generated bindings describe each resource, data source and the provider itself as a class whose
`config` struct has one property per argument; a property whose type is another struct of the assembly
is a nested block. Each property's docs link to the registry page with the argument's own name as the
anchor (`...#site_config`), which is the name used in .tf files.

    python tests/infra/provider_schema.py WHEEL_DIR OUT_DIR

reads every `*.whl` in WHEEL_DIR and writes OUT_DIR/<provider>.json:
{"provider": "azurerm", "version": "4.59.0", "provider_config": SCHEMA,
 "resource": {"azurerm_x": SCHEMA}, "data": {...}} where SCHEMA is {"args": [...], "blocks": {name: SCHEMA}}.
"""

from __future__ import annotations

import io
import json
import re
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

LINK = re.compile(
    r"registry\.terraform\.io/providers/[\w-]+/(?P<provider>[\w-]+)/(?P<version>[\d.]+)/docs"
    r"(?:/(?P<kind>resources|data-sources)/(?P<name>\w+))?(?:#(?P<anchor>\w+))?"
)


def read_assembly(wheel: Path) -> dict[str, Any]:
    """The .jsii assembly inside the wheel's bundled npm tarball."""
    with zipfile.ZipFile(wheel) as archive:
        (member,) = [n for n in archive.namelist() if n.endswith(".jsii.tgz")]
        data = archive.read(member)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return json.load(tar.extractfile("package/.jsii"))


def _link(docs: dict[str, str]) -> re.Match | None:
    return LINK.search(docs.get("remarks", "") + " " + docs.get("summary", ""))


def _struct_in(type_ref: dict[str, Any], types: dict[str, Any]) -> str | None:
    """The struct a property holds, directly, in a list or in a union with IResolvable."""
    if "fqn" in type_ref:
        return type_ref["fqn"] if types.get(type_ref["fqn"], {}).get("datatype") else None
    if "collection" in type_ref:
        return _struct_in(type_ref["collection"]["elementtype"], types)
    for option in type_ref.get("union", {}).get("types", []):
        if found := _struct_in(option, types):
            return found
    return None


def struct_schema(fqn: str, types: dict[str, Any], depth: int = 0) -> dict[str, Any]:
    assert depth < 20, f"nesting too deep at {fqn}"
    args, blocks = [], {}
    for prop in types[fqn].get("properties", []):
        match = _link(prop.get("docs", {}))
        snake = re.sub(r"(?<!^)([A-Z])", r"_\1", prop["name"]).lower()
        name = match["anchor"] if match and match["anchor"] else snake
        nested = _struct_in(prop["type"], types)
        if nested:
            blocks[name] = struct_schema(nested, types, depth + 1)
        else:
            args.append(name)
    return {"args": sorted(args), "blocks": blocks}


def provider_schema(assembly: dict[str, Any]) -> dict[str, Any]:
    types = assembly["types"]
    found: dict[str, Any] = {"resource": {}, "data": {}}
    for cls in types.values():
        base = str(cls.get("base")).rpartition(".")[2]  # cdktf.X or cdktn.X
        kinds = ("TerraformResource", "TerraformDataSource", "TerraformProvider")
        if cls.get("kind") != "class" or base not in kinds:
            continue
        config = next(p for p in cls["initializer"]["parameters"] if p["name"] == "config")
        schema = struct_schema(config["type"]["fqn"], types)
        match = _link(cls["docs"])
        found["provider"], found["version"] = match["provider"], match["version"]
        if base == "TerraformProvider":
            found["provider_config"] = schema
        else:
            kind = "resource" if match["kind"] == "resources" else "data"
            found[kind][f"{match['provider']}_{match['name']}"] = schema
    return found


def main(wheels: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for wheel in sorted(wheels.glob("*.whl")):
        schema = provider_schema(read_assembly(wheel))
        target = out / f"{schema['provider']}.json"
        target.write_text(json.dumps(schema, sort_keys=True), encoding="utf-8")
        counts = f"{len(schema['resource'])} resources, {len(schema['data'])} data sources"
        print(f"{wheel.name}: {schema['provider']} {schema['version']}, {counts} -> {target}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
