"""Threaded HTTP/1.1 server plumbing shared by the test servers."""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

logger = logging.getLogger("pomerium_jupyter.testing")

MAX_BODY_BYTES = 64 * 1024 * 1024


@dataclass
class Request:
    """One parsed HTTP request, as passed to the application."""

    method: str
    target: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    scheme: str
    local_host: str
    local_port: int

    def header(self, name: str) -> str | None:
        """Return the first value of header `name` (case-insensitive), if any."""
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None

    def header_values(self, name: str) -> list[str]:
        lowered = name.lower()
        return [value for key, value in self.headers if key.lower() == lowered]

    def query_pairs(self) -> list[tuple[str, str]]:
        return parse_qsl(self.query, keep_blank_values=True)

    def query_value(self, name: str) -> str | None:
        """Return the first value of query parameter `name`, like Go's FormValue."""
        for key, value in self.query_pairs():
            if key == name:
                return value
        return None

    @property
    def host(self) -> str:
        """The Host header, or the listening address when the client sent none."""
        return self.header("Host") or f"{self.local_host}:{self.local_port}"

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.host}"


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    def set_header(self, name: str, value: str) -> Response:
        lowered = name.lower()
        self.headers = [(k, v) for k, v in self.headers if k.lower() != lowered]
        self.headers.append((name, value))
        return self

    def add_header(self, name: str, value: str) -> Response:
        self.headers.append((name, value))
        return self

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None


App = Callable[[Request], Response]


class _BodyError(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in separate writes; without TCP_NODELAY every
    # keep-alive response would wait for the client's delayed ACK (~40 ms).
    disable_nagle_algorithm = True
    server_version = "envoy"
    sys_version = ""
    # Idle keep-alive connections are closed after this many seconds.
    timeout = 120
    server: _Server

    def setup(self) -> None:
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            # The listening socket defers the handshake so that a slow or broken
            # client only stalls its own thread, never the accept loop.
            self.connection.do_handshake()

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.server.label, format % args)

    def _read_body(self) -> bytes:
        encoding = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in encoding:
            return self._read_chunked()
        raw_length = self.headers.get("Content-Length")
        if raw_length is None:
            return b""
        try:
            length = int(raw_length)
        except ValueError:
            raise _BodyError("invalid Content-Length") from None
        if length < 0 or length > MAX_BODY_BYTES:
            raise _BodyError("Content-Length out of range")
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _BodyError("invalid chunk size") from None
            if size == 0:
                break
            total += size
            if total > MAX_BODY_BYTES:
                raise _BodyError("body too large")
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)
        while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
            pass
        return b"".join(chunks)

    def _dispatch(self) -> None:
        try:
            body = self._read_body()
        except _BodyError as exc:
            logger.debug("%s: rejected request body: %s", self.server.label, exc)
            self.close_connection = True
            self._write(Response(400, f"{exc}\n".encode()), head=False)
            return
        target = self.path
        if not target.startswith("/"):
            # Absolute-form targets ("http://host/path") carry the path after the
            # authority.
            parts = urlsplit(target)
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        path, _, query = target.partition("?")
        local_host, local_port = self.server.server_address[:2]
        request = Request(
            method=self.command,
            target=target,
            path=path,
            query=query,
            headers=list(self.headers.items()),
            body=body,
            scheme=self.server.scheme,
            local_host=str(local_host),
            local_port=int(local_port),
        )
        try:
            response = self.server.app(request)
        except Exception:
            logger.exception("%s: handler failed for %s", self.server.label, path)
            response = Response(500, b"Internal Server Error\n")
        self._write(response, head=self.command == "HEAD")

    def _write(self, response: Response, *, head: bool) -> None:
        self.send_response(response.status)
        names = {name.lower() for name, _ in response.headers}
        for name, value in response.headers:
            if name.lower() != "content-length":
                self.send_header(name, value)
        if "content-type" not in names and response.body:
            self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not head:
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _dispatch
    do_OPTIONS = do_TRACE = do_CONNECT = _dispatch


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # One client may open about a thousand connections at once.
    request_queue_size = 1024

    def __init__(
        self, address: tuple[str, int], app: App, scheme: str, label: str
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.app = app
        self.scheme = scheme
        self.label = label
        self.open_connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # Skip HTTPServer.server_bind, which resolves the host name (slow, useless).
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.open_connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.open_connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Broken clients (reset connections, failed TLS handshakes) are expected.
        logger.debug(
            "%s: connection error from %s", self.label, client_address, exc_info=True
        )


class HTTPServerThread:
    """A listening socket served by background threads until stop()."""

    def __init__(
        self,
        app: App,
        *,
        host: str,
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        label: str = "server",
    ) -> None:
        self._server = _Server(
            (host, port), app, "https" if ssl_context else "http", label
        )
        if ssl_context is not None:
            self._server.socket = ssl_context.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
        self.port: int = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"pomerium-test-{label}",
            daemon=True,
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
        with self._server.connections_lock:
            connections = list(self._server.open_connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=5)
