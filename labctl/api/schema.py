"""Turn a pydantic JSON Schema into a Kubernetes *structural* schema.

The API server rejects ``$ref``, ``title`` and ``anyOf`` with ``null``; it wants every
type spelled out inline and ``nullable: true`` instead. Converting the models' schema,
rather than writing the CRD schema by hand, keeps one source of truth.
"""

from __future__ import annotations

from typing import Any

DROP = frozenset({"title", "$defs", "examples"})


def structural(schema: dict[str, Any]) -> dict[str, Any]:
    """The inlined, structural form of a pydantic model's ``model_json_schema()``."""
    converted: dict[str, Any] = _convert(schema, schema.get("$defs", {}))
    return converted


def _convert(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_convert(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        extra = {k: v for k, v in node.items() if k != "$ref"}
        return _convert({**target, **extra}, defs)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        nullable = len(options) != len(node["anyOf"])
        if len(options) == 1:
            rest = {k: v for k, v in node.items() if k != "anyOf"}
            merged = _convert({**options[0], **rest}, defs)
            if nullable:
                merged["nullable"] = True
            return merged
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in DROP:
            continue
        if key == "default" and value is None:
            continue
        if key == "additionalProperties" and value is False:
            continue  # not structural; the API server prunes unknown fields instead
        if key == "additionalProperties" and value is True:
            # Free-form (a check's params, a setup object): kept as written, not pruned.
            out["x-kubernetes-preserve-unknown-fields"] = True
            continue
        if key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            # JSON Schema 2020 (pydantic's gt/lt) -> OpenAPI 3.0 (a bound and a boolean).
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
            continue
        if key == "const":
            out["enum"] = [value]
            continue
        if key == "properties":
            out[key] = {name: _convert(prop, defs) for name, prop in value.items()}
        else:
            out[key] = _convert(value, defs)
    return out
