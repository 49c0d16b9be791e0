"""The API docs: the OpenAPI document and a Swagger UI that never leaves the machine.

BentoML's own ``/`` page loads Google Tag Manager and its OpenAPI description embeds
shields.io badges: requests that leave the user's network and fail on a Pi without
internet. Here ``/docs`` is a Swagger UI built from the swagger-ui assets BentoML
ships (served by BentoML at ``/static_content``), and ``/docs.json`` is BentoML's
document (the infra endpoints plus this FastAPI app's routes) with this project's
title, version and description instead of BentoML's. ``CANDLECAST_API_DOCS=false``
switches both off.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from candlecast import __version__

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


def openapi(service: Any) -> dict[str, Any]:
    """BentoML's OpenAPI document of ``service`` with candlecast's info block."""
    spec = service.openapi_spec.asdict()
    spec["info"] = {"title": "candlecast", "version": __version__, "description": DESCRIPTION}
    return spec


def switched_off() -> JSONResponse:
    body = {"error": "not_found", "message": "API docs are switched off (CANDLECAST_API_DOCS)"}
    return JSONResponse(body, status_code=404)
