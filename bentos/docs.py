"""The API docs: the OpenAPI document and a Swagger UI that never leaves the machine.

BentoML's own ``/`` page loads Google Tag Manager and its OpenAPI description embeds
shields.io badges: requests that leave the user's network and fail on a Pi without
internet. Here ``/docs`` is a Swagger UI built from the swagger-ui assets BentoML
ships (served by BentoML at ``/static_content``), and ``/docs.json`` is an OpenAPI 3.1
document of BentoML's infra endpoints and this FastAPI app's routes, with this
project's title, version and description instead of BentoML's. It states every status
each route answers with and its body (``schemathesis run --checks all`` holds it to
that: see schemathesis.toml). ``CANDLECAST_API_DOCS=false`` switches both off.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse

from candlecast import __version__

JSON = "application/json"

DESCRIPTION = """\
Next-hour price forecasts from Feast online features and the champion models.

Every forecast names its model version and the walk-forward MAE ratio against
persistence ("next hour = now") recorded with it: below 1 beats persistence, and on
hourly prices an honest model rarely does by more than a few percent. Errors are JSON
`{"error": code, "message": text, ...}` with the status listed under each route.
The dashboard at `/` reads only these endpoints.
"""

SWAGGER_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>candlecast API</title>
<link rel="icon" href="static_content/favicon-light-32x32.png">
<link rel="stylesheet" href="static_content/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="static_content/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({url: "docs.json", dom_id: "#swagger-ui", deepLinking: true});
</script>
</body>
</html>
"""


def _text(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/plain": {"schema": {"type": "string"}}}}


ALIVE = _text("Alive: an empty line")
#: BentoML's infrastructure endpoints as they answer (plain text); its document has no body.
INFRA: dict[str, dict[str, Any]] = {
    "/livez": {"200": ALIVE},
    "/healthz": {"200": ALIVE},
    "/readyz": {
        "200": _text("Ready: an empty line"),
        "503": _text("A model service is not ready yet: a sentence saying so"),
    },
    "/metrics": {"200": _text("Prometheus metrics, text exposition format")},
}
#: BentoML's own answer to any request still unanswered after the service's timeout:
#: ``{"error": "Not able to process the request in 30.0 seconds"}``.
TIMEOUT_BODY = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}},
}
REF = "#/components/schemas/"
#: FastAPI documents a 422 for parameter errors; this service answers them 400 bad_request.
FASTAPI_422 = {"$ref": REF + "HTTPValidationError"}


def openapi(service: Any, app: FastAPI) -> dict[str, Any]:
    """The OpenAPI 3.1 document: BentoML's infrastructure endpoints and ``app``'s routes.

    ``app``'s part comes from FastAPI itself, not from BentoML's copy of it (BentoML's
    3.0 spec classes drop JSON Schema keywords they lack, such as ``const``); its JSON
    Schemas are 3.1's (``{"type": "null"}``), hence the version.
    """
    bento = service.openapi_spec.asdict()
    own = get_openapi(
        title="candlecast", version=__version__, description=DESCRIPTION, routes=app.routes
    )
    paths = {**bento["paths"], **own["paths"]}
    for path, responses in INFRA.items():
        if path in paths:
            paths[path]["get"]["responses"] = responses
    for operation in (op for item in own["paths"].values() for op in item.values()):
        responses = operation["responses"]
        if responses.get("422", {}).get("content", {}).get(JSON, {}).get("schema") == FASTAPI_422:
            del responses["422"]
    timeout = {
        "description": "Not answered within the service's traffic timeout (BentoML's answer)",
        "content": {JSON: {"schema": TIMEOUT_BODY}},
    }
    for operation in (op for item in paths.values() for op in item.values()):
        operation["responses"]["504"] = timeout
    schemas = {**bento["components"].get("schemas", {}), **own["components"]["schemas"]}
    return {
        "openapi": own["openapi"],
        "info": own["info"],
        "servers": bento["servers"],
        "tags": [t for t in bento["tags"] if _tagged(t["name"], paths)],
        "paths": paths,
        "components": {"schemas": {k: schemas[k] for k in sorted(_referenced(paths, schemas))}},
    }


def _tagged(tag: str, paths: dict[str, Any]) -> bool:
    return any(tag in op.get("tags", ()) for item in paths.values() for op in item.values())


def _referenced(paths: dict[str, Any], schemas: dict[str, Any]) -> set[str]:
    """Names of the component schemas ``paths`` refer to, directly or through others."""
    names: set[str] = set()
    todo: list[Any] = [paths]
    while todo:
        node = todo.pop()
        if isinstance(node, list):
            todo.extend(node)
        elif isinstance(node, dict):
            ref = node.get("$ref")
            name = ref[len(REF) :] if isinstance(ref, str) and ref.startswith(REF) else None
            if name is not None and name not in names:
                names.add(name)
                todo.append(schemas[name])
            todo.extend(node.values())
    return names


def switched_off() -> JSONResponse:
    body = {"error": "not_found", "message": "API docs are switched off (CANDLECAST_API_DOCS)"}
    return JSONResponse(body, status_code=404)
