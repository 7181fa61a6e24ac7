"""The upstream application behind every route: an echo service."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from ._http import Request, Response
from ._responses import json_response, plain_error
from ._tokens import Principal

_STATUS_PATH = re.compile(r"^/status/(\d{3})$")


def upstream_app(
    route: str,
    request: Request,
    headers: list[tuple[str, str]],
    principal: Principal,
) -> Response:
    """Serve /redirect, /status/<code>, and echo the request on any other path."""
    if request.path == "/redirect":
        values = dict(parse_qsl(request.query, keep_blank_values=True))
        target = values.get("to", "")
        status_raw = values.get("status", "302")
        if not target or not status_raw.isdigit() or not 300 <= int(status_raw) < 400:
            return plain_error(400, "redirect needs to=<url> and a 3xx status")
        return Response(int(status_raw), b"", [("Location", target)])
    status_match = _STATUS_PATH.match(request.path)
    if status_match is not None:
        status = int(status_match.group(1))
        if not 200 <= status <= 599:
            return plain_error(400, "status must be between 200 and 599")
        return Response(status, b"", [("Content-Type", "text/plain; charset=utf-8")])
    received: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        separator = "; " if key == "cookie" else ", "
        received[key] = (
            f"{received[key]}{separator}{value}" if key in received else value
        )
    return json_response(
        200,
        {
            "route": route,
            "method": request.method,
            "path": request.path,
            "query": request.query,
            "args": _args(request.query),
            "user": principal.user,
            "email": principal.email,
            "session_id": principal.session_id,
            "headers": received,
            "body": request.body.decode("utf-8", "replace"),
        },
    )


def _args(query: str) -> dict[str, list[str]]:
    args: dict[str, list[str]] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        args.setdefault(key, []).append(value)
    return args
