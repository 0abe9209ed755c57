"""The API reference: the service's OpenAPI schema (:mod:`infra.docs.openapi`) as Markdown tables.

Swagger UI needs a running service; this page reads on the site and on GitHub, and each route, parameter,
response and schema gets a table row, with links from a type to its schema's table.
"""

from __future__ import annotations

import json
import re
from typing import Any

from infra.docs.markdown import code, table

# An operation of the schema: its path, its method (upper case) and the operation object.
Operation = tuple[str, str, dict[str, Any]]


def schema_anchor(name: str) -> str:
    """A component schema's anchor: every type that names the schema links to its table."""
    return "schema-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def json_type(schema: dict[str, Any]) -> str:
    """A JSON schema's type in words; a component is a link to its table."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[`{name}`](#{schema_anchor(name)})"
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " or ".join(json_type(option) for option in schema[key])
    if "enum" in schema:
        return " or ".join(code(json.dumps(item)) for item in schema["enum"])
    if "const" in schema:
        return code(json.dumps(schema["const"]))
    kind = schema.get("type")
    if kind == "array":
        return f"array of {json_type(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"object of {json_type(schema['additionalProperties'])}"
    if isinstance(kind, list):
        return " or ".join(code(item) for item in kind)
    text = code(kind or "any")
    return f"{text} ({schema['format']})" if "format" in schema else text


def json_constraints(schema: dict[str, Any]) -> str:
    """A JSON schema's bounds, lengths and pattern in words, those of each option of a union included."""
    words = {
        "minimum": "≥",
        "exclusiveMinimum": ">",
        "maximum": "≤",
        "exclusiveMaximum": "<",
        "minLength": "length ≥",
        "maxLength": "length ≤",
        "minItems": "items ≥",
        "maxItems": "items ≤",
    }
    found = []
    for option in [schema, *schema.get("anyOf", []), *schema.get("oneOf", [])]:
        for key, word in words.items():
            if key in option:
                found.append(f"{word} {option[key]}")
        if "pattern" in option:
            found.append(f"matches {code(option['pattern'])}")
    return ", ".join(found)


def body_schema(content: dict[str, Any]) -> str:
    """A request's or response's body type: the JSON one, else the first media type's; none without content."""
    media: dict[str, Any] = content.get("application/json") or next(iter(content.values()), {})
    return json_type(media.get("schema", {})) if media else ""


def op_anchor(method: str, path: str) -> str:
    """An operation's anchor (``post-v1-forecast``): the endpoints table links to each operation's section."""
    return re.sub(r"[^a-z0-9]+", "-", f"{method} {path}".lower()).strip("-")


def api_page(schema: dict[str, Any]) -> str:
    """``reference/api.md``: an introduction, the endpoints, a section per operation, then the schemas."""
    operations = [
        (path, method.upper(), operation)
        for path, methods in schema.get("paths", {}).items()
        for method, operation in methods.items()
    ]
    out = introduction(schema)
    out += ["## Endpoints", "", endpoints_table(operations)]
    for path, method, operation in operations:
        out += operation_section(path, method, operation)
    out += ["", "## Schemas"]
    for name, component in schema.get("components", {}).get("schemas", {}).items():
        out += schema_section(name, component)
    return "\n".join(out) + "\n"


def introduction(schema: dict[str, Any]) -> list[str]:
    """The page's title and what the schema is: where it comes from, where a running service serves it."""
    info = schema.get("info", {})
    return [
        "# API reference",
        "",
        f"The forecasting service's OpenAPI {schema.get('openapi', '')} schema, generated when the site is built "
        "from the app `model_serving.app.create_app` makes with the default settings (the limits below are "
        "the defaults': `MLOPS_MAX_BATCH_ENTITIES`, `MLOPS_MAX_REQUEST_BYTES`). A running service serves its own at "
        "`GET /openapi.json` (and Swagger UI at `/docs`); this one is [openapi.json](openapi.json). "
        "[The service](../serving.md) explains the answers, "
        "[the forecast table](../forecast-table.md) what `GET /v1/forecasts` reads.",
        "",
        f"**{info.get('title', '')}**, version {info.get('version', '')}: {info.get('description', '')}",
        "",
    ]


def endpoints_table(operations: list[Operation]) -> str:
    """Every operation in one table, each linked to its section: the page's table of contents."""
    rows = [
        [method, f"[`{path}`](#{op_anchor(method, path)})", operation.get("summary", "")]
        for path, method, operation in operations
    ]
    return table(["method", "path", "what"], rows)


def operation_section(path: str, method: str, operation: dict[str, Any]) -> list[str]:
    """An operation's section: its description and tags, then its parameters, request body and responses."""
    out = ["", f"### `{method} {path}` {{#{op_anchor(method, path)}}}", ""]
    if operation.get("description"):
        out += [" ".join(operation["description"].split()), ""]
    if operation.get("tags"):
        out += [f"Tags: {', '.join(operation['tags'])}.", ""]
    out += parameters_lines(operation)
    body = operation.get("requestBody")
    if body:
        needed = "required" if body.get("required") else "optional"
        out += [f"Request body ({needed}): {body_schema(body.get('content', {}))}", ""]
    out += responses_lines(operation)
    return out


def parameters_lines(operation: dict[str, Any]) -> list[str]:
    """An operation's path and query parameters as a table; nothing where it takes none."""
    parameters = operation.get("parameters", [])
    if not parameters:
        return []
    rows = [
        [
            code(p["name"]),
            p.get("in", ""),
            json_type(p.get("schema", {})),
            "yes" if p.get("required") else "no",
            json_constraints(p.get("schema", {})),
            p.get("description", p.get("schema", {}).get("description", "")),
        ]
        for p in parameters
    ]
    return ["Parameters:", "", table(["name", "in", "type", "required", "constraints", "description"], rows), ""]


def responses_lines(operation: dict[str, Any]) -> list[str]:
    """An operation's responses by status: when each comes and what its body is."""
    rows = [
        [code(status), response.get("description", ""), body_schema(response.get("content", {}))]
        for status, response in sorted(operation.get("responses", {}).items())
    ]
    return ["Responses:", "", table(["status", "when", "body"], rows)]


def schema_section(name: str, component: dict[str, Any]) -> list[str]:
    """A component schema's section: a row per field, or its type where it has no fields (an enum)."""
    out = ["", f"### `{name}` {{#{schema_anchor(name)}}}", ""]
    if component.get("description"):
        out += [" ".join(component["description"].split()), ""]
    required = set(component.get("required", []))
    rows = [
        [
            code(prop),
            json_type(spec),
            "yes" if prop in required else "no",
            json_constraints(spec),
            code(json.dumps(spec["default"])) if "default" in spec else "",
            spec.get("description", ""),
        ]
        for prop, spec in component.get("properties", {}).items()
    ]
    if rows:
        out.append(table(["field", "type", "required", "constraints", "default", "description"], rows))
    else:
        out.append(f"Type: {json_type(component)}.")
    return out
