"""OpenAPI 3.1 document generated from the verb table: it cannot drift from the routes."""

from __future__ import annotations

from typing import Any

from prodng import __version__, verbs
from prodng.params import Param

PATH = "/prodng/openapi.json"
ERROR = {"$ref": "#/components/schemas/Error"}
STATUSES = {
    "400": "bad input",
    "404": "unknown container, template or verb",
    "409": "conflicting operation",
    "413": "body too large",
    "503": "the host could not do it",
}


def _param_schema(param: Param) -> dict[str, Any]:
    schema: dict[str, Any] = dict(param.kind.schema)
    if param.pattern:
        schema["pattern"] = param.pattern
    if param.default is not None and not param.kind.many:
        schema["default"] = param.default
    return schema


def _operation(verb: verbs.Verb) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": verb.name.replace(" ", "_"),
        "summary": verb.help,
        "responses": {
            "200": {
                "description": "the same data as the CLI's --json output",
                "content": {
                    "application/json": {"schema": {}},
                    "application/x-ndjson": {"schema": {"type": "string"}},
                    "text/event-stream": {"schema": {"type": "string"}},
                },
            },
            **{
                code: {"description": why, "content": {"application/json": {"schema": ERROR}}}
                for code, why in STATUSES.items()
            },
        },
    }
    if verb.method == "GET":
        operation["parameters"] = [
            {
                "name": p.name,
                "in": "query",
                "required": p.required,
                "description": p.help,
                "schema": _param_schema(p),
                **({"explode": True} if p.kind.many else {}),
            }
            for p in verb.params
        ]
    elif verb.params:
        operation["requestBody"] = {
            "required": any(p.required for p in verb.params),
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": [p.name for p in verb.params if p.required],
                        "properties": {p.name: {**_param_schema(p), "description": p.help} for p in verb.params},
                    }
                }
            },
        }
    return operation


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "prodng",
            "version": __version__,
            "description": "Every prodng verb as one endpoint; GET reads, POST changes.",
        },
        "paths": {v.route: {v.method.lower(): _operation(v)} for v in verbs.VERBS},
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "status"],
                    "properties": {
                        "error": {"type": "string"},
                        "status": {"type": "integer"},
                        "hint": {"type": "string"},
                    },
                }
            }
        },
    }
