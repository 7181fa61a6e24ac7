"""Content negotiation and the error, denial and redirect responses."""

from __future__ import annotations

import html
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from http import HTTPStatus

from ._http import Request, Response
from ._state import Behaviour

INTERCEPTED = "X-Pomerium-Intercepted-Response"
HTML_TYPE = "text/html; charset=UTF-8"

# Media types that authorize weighs in shouldRedirect (authorize/check_response.go).
REDIRECT_CANDIDATES = (
    "text/html",
    "application/json",
    "text/plain",
    "application/grpc-web-text",
    "application/grpc-web+proto",
    "application/grpc+proto",
)

_TOKEN = re.compile(r"\s+|[/;=,]|[^/;=,]+")
# Strings that Go's strconv.ParseFloat accepts, in the forms clients send.
_GO_FLOAT = re.compile(
    r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)", re.IGNORECASE
)


@dataclass
class _MediaRange:
    type: str
    subtype: str
    quality: float = 0.0
    params: dict[str, str] = field(default_factory=dict)

    @property
    def weight(self) -> float:
        quality = min(max(self.quality, 0.0), 1.0) or 1.0
        if self.type == "*":
            specificity = 0.0
        elif self.subtype == "*":
            specificity = 0.00001
        else:
            specificity = 0.00002
        return specificity + quality + 0.0001 * len(self.params)

    def supports(self, media_type: str) -> bool:
        if self.type == "*":
            return True
        if self.subtype == "*":
            return media_type.startswith(f"{self.type}/")
        return media_type == f"{self.type}/{self.subtype}" and not self.params


def _parse_accept(accept: str) -> list[_MediaRange] | None:
    """Parse Accept the way github.com/tniswong/go.rfcx/rfc7231 does, quirks kept.

    A word runs until the next '/', ';', '=' or ',', so "text/html ;q=1" yields
    the subtype "html " that matches nothing. An unset or zero q counts as 1.
    Returns None on a parse error.
    """
    tokens: list[str] = _TOKEN.findall(accept)
    position = 0

    def next_token() -> str | None:
        nonlocal position
        while position < len(tokens) and tokens[position].isspace():
            position += 1
        if position >= len(tokens):
            return None
        position += 1
        return tokens[position - 1]

    def is_word(token: str | None) -> bool:
        return token is not None and token not in ("/", ";", "=", ",")

    ranges: list[_MediaRange] = []
    while True:
        token = next_token()
        if token is None:
            break
        if token == ",":
            token = next_token()
        if not is_word(token) or next_token() != "/":
            return None
        subtype = next_token()
        if not is_word(subtype) or token is None or subtype is None:
            return None
        if token == "*" and subtype != "*":
            return None
        media = _MediaRange(token.lower(), subtype.lower())
        while True:
            separator = next_token()
            if separator is None:
                break
            if separator == ",":
                position -= 1
                break
            if separator != ";":
                return None
            key = next_token()
            if next_token() != "=":
                return None
            value = next_token()
            media.params[key or ""] = value or ""
        if "q" in media.params:
            quality = media.params.pop("q")
            if not _GO_FLOAT.fullmatch(quality):
                return None
            media.quality = float(quality)
        ranges.append(media)
    return ranges or [_MediaRange("*", "*")]


def most_acceptable(accept: str, offered: Sequence[str]) -> str | None:
    """Return the offered type picked by rfc7231 MostAcceptable, or None."""
    ranges = _parse_accept(accept)
    if ranges is None:
        return None
    for media in sorted(ranges, key=lambda item: item.weight, reverse=True):
        for candidate in offered:
            if media.supports(candidate):
                return candidate
    return None


def accept_header(request: Request) -> str:
    return ",".join(request.header_values("Accept"))


def prefers_html(request: Request) -> bool:
    """Decide shouldRedirect for a request without a usable session."""
    choice = most_acceptable(accept_header(request), REDIRECT_CANDIDATES)
    return choice is None or choice == "text/html"


def prefers_json(request: Request) -> bool:
    """Decide isJSONWebRequest: JSON ranks above HTML in Accept."""
    accept = accept_header(request)
    if accept == "":
        return False
    return most_acceptable(accept, ("text/html", "application/json")) == (
        "application/json"
    )


def new_request_id() -> str:
    return secrets.token_hex(10)


def status_text(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def html_page(title: str, body: str) -> bytes:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head>\n<body>\n{body}\n</body>\n"
        "</html>\n"
    ).encode()


def plain_error(status: int, text: str) -> Response:
    """Build what Go's http.Error writes."""
    return Response(
        status,
        f"{text}\n".encode(),
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("X-Content-Type-Options", "nosniff"),
        ],
    )


def http_error(
    status: int,
    request: Request,
    behaviour: Behaviour,
    message: str = "",
    request_id: str | None = None,
) -> Response:
    """Build an httputil.HTTPError page (internal/httputil/errors.go).

    JSON only when Accept is exactly application/json, else HTML.
    """
    request_id = request_id or new_request_id()
    text = status_text(status)
    if request.header("Accept") == "application/json":
        document: dict[str, object] = {"Status": status}
        if behaviour.error_field_in_json:
            document["Error"] = message or text
        document["RequestID"] = request_id
        return Response(
            status,
            (json.dumps(document, separators=(",", ":")) + "\n").encode(),
            [
                ("Content-Type", "application/json"),
                ("X-Content-Type-Options", "nosniff"),
                (INTERCEPTED, "true"),
            ],
        )
    body = f"<h1>{status} {html.escape(text)}</h1>\n"
    if message:
        body += f"<p>{html.escape(message)}</p>\n"
    body += f"<p>Request ID: {html.escape(request_id)}</p>"
    return Response(
        status,
        html_page(f"{status} {text}", body),
        [("Content-Type", HTML_TYPE), (INTERCEPTED, "true")],
    )


def denied(
    status: int,
    reason: str,
    request: Request,
    behaviour: Behaviour,
    location: str | None = None,
) -> Response:
    """Build authorize's deniedResponse for a 302, 401 or 403."""
    request_id = new_request_id()
    if not behaviour.json_denials:
        response = http_error(status, request, behaviour, reason, request_id)
    elif "kubernetes/" in (request.header("User-Agent") or ""):
        kinds = {401: "Unauthorized", 403: "Forbidden", 404: "NotFound"}
        document = {
            "apiVersion": "v1",
            "code": status,
            "kind": "Status",
            "message": reason,
            "reason": kinds.get(status, ""),
            "status": "Failure",
        }
        response = Response(
            status,
            json.dumps(document, separators=(",", ":")).encode(),
            [("Content-Type", "application/json")],
        )
    elif request.path == "/robots.txt":
        response = Response(
            200, b"User-agent: *\nDisallow: /", [("Content-Type", "text/plain")]
        )
    elif prefers_json(request):
        document_json = {"error": reason, "request_id": request_id}
        response = Response(
            status,
            json.dumps(document_json, separators=(",", ":")).encode(),
            [("Content-Type", "application/json")],
        )
    else:
        response = http_error(status, request, behaviour, reason, request_id)
    if location is not None:
        response.set_header("Location", location)
    return response


def redirect(location: str, status: int = 302) -> Response:
    """Build httputil.Redirect: Go's http.Redirect plus the intercepted header."""
    body = f'<a href="{html.escape(location)}">{status_text(status)}</a>.\n\n'
    return Response(
        status,
        body.encode(),
        [
            ("Location", location),
            ("Content-Type", "text/html; charset=utf-8"),
            (INTERCEPTED, "true"),
        ],
    )


def json_response(status: int, document: object) -> Response:
    return Response(
        status,
        json.dumps(document, separators=(",", ":")).encode(),
        [("Content-Type", "application/json")],
    )


def ok_text() -> Response:
    return Response(200, b"OK\n", [("Content-Type", "text/plain; charset=utf-8")])
