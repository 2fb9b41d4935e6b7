#!/usr/bin/env python3
"""Regenerates the vendored JSON schemas in this folder (run by hand, not by CI).

Kubernetes: from the `kubernetes-validate` wheel on PyPI (Apache-2.0), which bundles the
Kubernetes OpenAPI definitions converted to JSON Schema (draft 2020-12); its `-local-strict`
variant sets `additionalProperties: false` on every object, so an unknown field fails. The
wheel keeps the definitions in one shared `_definitions.json` (1.8 MB); this script copies only
the kinds the manifests use, each with the closure of definitions it refers to, into one
standalone file per Kubernetes version (refs rewritten to `#/$defs/...`).

ServiceMonitor: the prometheus-operator CRD is not in the core schemas; its JSON schema is
generated from the pydantic models of the `cloudcoil-models-prometheus-operator` wheel on PyPI
(Apache-2.0; models generated from the upstream CRDs), made strict here the same way.

Usage (from the repository root; the venv is throwaway):
    pip download --no-deps kubernetes-validate==1.37.0 -d /tmp/kv
    unzip -q /tmp/kv/kubernetes_validate-1.37.0-py3-none-any.whl -d /tmp/kv/whl
    python3 -m venv /tmp/cc && /tmp/cc/bin/pip install cloudcoil-models-prometheus-operator==0.80.1.0
    /tmp/cc/bin/python deploy/schemas/vendor.py /tmp/kv/whl/kubernetes_validate/kubernetes-json-schema
"""

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
VERSIONS = ["v1.30.0", "v1.37.0"]
# (file in the wheel, key under $defs): the kinds deploy/*.yaml use.
KINDS = {
    "v1/Namespace": "namespace-v1.json",
    "v1/ServiceAccount": "serviceaccount-v1.json",
    "v1/Service": "service-v1.json",
    "v1/Pod": "pod-v1.json",
    "apps/v1/DaemonSet": "daemonset-apps-v1.json",
    "scheduling.k8s.io/v1/PriorityClass": "priorityclass-scheduling-v1.json",
}
PREFIX = "/api/_definitions.json#/$defs/"


def rewrite(node, found):
    """Rewrites external refs to local ones, collecting the names referred to."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                # Kind files refer into _definitions.json; definitions refer to each other.
                local = PREFIX[PREFIX.index("#"):]
                if value.startswith(PREFIX):
                    name = value[len(PREFIX):]
                elif value.startswith(local):
                    name = value[len(local):]
                else:
                    sys.exit(f"unexpected $ref {value!r}")
                found.add(name)
                out[key] = "#/$defs/" + name
            else:
                out[key] = rewrite(value, found)
        return out
    if isinstance(node, list):
        return [rewrite(v, found) for v in node]
    return node


def kubernetes(root: Path, version: str):
    folder = root / f"{version}-local-strict"
    definitions = json.loads((folder / "_definitions.json").read_text())["$defs"]
    defs, pending = {}, set()
    for key, file in KINDS.items():
        kind = json.loads((folder / file).read_text())
        # Embedded under $defs, a kind must not be a resource of its own: its local refs must
        # resolve against the file's root.
        kind.pop("$id", None)
        kind.pop("$schema", None)
        defs[key] = rewrite(kind, pending)
    while pending:
        name = pending.pop()
        if name in defs:
            continue
        found = set()
        defs[name] = rewrite(definitions[name], found)
        pending |= found - defs.keys()
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": f"Kubernetes {version} strict schemas for {', '.join(KINDS)}; "
        "from kubernetes-validate (PyPI), trimmed by vendor.py",
        "$defs": undocumented(dict(sorted(defs.items()))),
    }
    out = HERE / f"kubernetes-{version}-strict.json"
    out.write_text(json.dumps(schema, indent=1) + "\n")
    print(f"{out}: {len(defs)} definitions, {out.stat().st_size} bytes")


def undocumented(node):
    """Drops the prose (`description`, `title`) to keep the files small; a property that is
    itself named `description` is a schema (a dict), not a string, and stays."""
    if isinstance(node, dict):
        return {
            k: undocumented(v)
            for k, v in node.items()
            if not (k in ("description", "title") and isinstance(v, str))
        }
    if isinstance(node, list):
        return [undocumented(v) for v in node]
    return node


def strict(node):
    """additionalProperties: false on every object schema that lists its properties."""
    if isinstance(node, dict):
        node = {k: strict(v) for k, v in node.items()}
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        return node
    if isinstance(node, list):
        return [strict(v) for v in node]
    return node


def operator_kind(name):
    """One prometheus-operator kind (ServiceMonitor, PrometheusRule), made strict."""
    from cloudcoil.models.prometheus_operator import v1
    from importlib.metadata import version

    model = getattr(v1, name)
    schema = undocumented(strict(model.model_json_schema(by_alias=True, mode="validation")))
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$comment"] = (
        f"monitoring.coreos.com/v1 {name} from cloudcoil-models-prometheus-operator "
        f"{version('cloudcoil-models-prometheus-operator')} (PyPI), made strict by vendor.py"
    )
    out = HERE / f"{name.lower()}-monitoring.coreos.com-v1-strict.json"
    out.write_text(json.dumps(schema, indent=1) + "\n")
    print(f"{out}: {out.stat().st_size} bytes")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    for v in VERSIONS:
        kubernetes(Path(sys.argv[1]), v)
    operator_kind("ServiceMonitor")
    operator_kind("PrometheusRule")
