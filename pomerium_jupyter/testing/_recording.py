"""RecordingServer: a loopback HTTP server that records requests and answers "ok"."""

from __future__ import annotations

import threading
from types import TracebackType

from ._http import HTTPServerThread, Request, Response
from ._pomerium import RecordedRequest


class RecordingServer:
    """Plays a foreign host in redirect tests: every request gets 200 "ok"."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._port = port
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._server: HTTPServerThread | None = None
        self.url = ""

    def start(self) -> RecordingServer:
        if self._server is not None:
            raise RuntimeError("the recording server is already running")
        self._server = HTTPServerThread(
            self._handle, host=self.host, port=self._port, label="recording"
        )
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{host}:{self._server.port}"
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> RecordingServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _handle(self, request: Request) -> Response:
        headers: dict[str, str] = {}
        for name, value in request.headers:
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        with self._lock:
            self.requests.append(
                RecordedRequest(
                    host_port=f"{request.local_host}:{request.local_port}",
                    method=request.method,
                    path=request.target,
                    headers=headers,
                )
            )
        return Response(200, b"ok", [("Content-Type", "text/plain; charset=utf-8")])
