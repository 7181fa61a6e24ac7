"""Sign-in flows held in the Jupyter server's memory.

A flow is one click on a sign-in button: it belongs to the Jupyter user who
started it, carries the route and the sign-in URL Pomerium issued for it, and
can be completed once, by that user, before it expires. The flow id travels in
the callback URL, so it is treated as a lookup key only and never as proof of
who completes the flow.

The registry is not thread-safe: tornado runs every handler on one event loop
thread, and no method here awaits.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

FlowStatus = Literal["pending", "done", "error", "expired"]

# Client request ids come from the widget (a random string). The limit keeps
# hostile ids out of log lines and memory.
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}")
# Finished and expired flows are kept this many flow lifetimes, so a widget
# polling a little late still reads the final state instead of a 404.
RETENTION_FACTOR = 2
# The maximum number of flows kept per Jupyter user. The oldest go first.
MAX_FLOWS_PER_OWNER = 64


@dataclass
class Flow:
    """One sign-in attempt and its outcome."""

    id: str
    owner: str
    route: str
    request: str
    created: float
    sign_in_url: str | None = None
    status: Literal["pending", "done", "error"] = "pending"
    message: str | None = None
    user: str | None = None
    deployment: str | None = None

    def __repr__(self) -> str:
        # The sign-in URL is a bearer capability for a few minutes, so it stays
        # out of reprs and log lines.
        return (
            f"Flow(owner={self.owner!r}, route={self.route!r}, "
            f"request={self.request!r}, status={self.status!r})"
        )


class FlowRejected(Exception):
    """A completion attempt that the registry rejected.

    `status_code` is the HTTP status for the response, `reason` a short
    machine-readable word, and the message a sentence for the user.
    """

    def __init__(
        self, status_code: int, reason: str, message: str, flow: Flow | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.reason = reason
        self.message = message
        self.flow = flow


class FlowRegistry:
    """The pending and recently finished flows of one Jupyter server."""

    def __init__(
        self, timeout: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.timeout = timeout
        self.clock = clock
        self._flows: dict[str, Flow] = {}
        self._by_request: dict[tuple[str, str], str] = {}

    def __len__(self) -> int:
        return len(self._flows)

    def create(self, owner: str, route: str, request: str) -> Flow:
        """Record a new pending flow with a fresh unguessable id.

        A request id that the same user already used is taken over by the new
        flow, and the earlier flow is dropped.
        """
        self.prune()
        previous = self._by_request.pop((owner, request), None)
        if previous is not None:
            self._flows.pop(previous, None)
        flow = Flow(
            id=secrets.token_urlsafe(32),
            owner=owner,
            route=route,
            request=request,
            created=self.clock(),
        )
        self._flows[flow.id] = flow
        self._by_request[(owner, request)] = flow.id
        self._limit_owner(owner)
        return flow

    def fail(self, flow: Flow, message: str) -> None:
        """Mark a flow as failed with a sentence the widget shows."""
        flow.status = "error"
        flow.message = message
        flow.sign_in_url = None

    def expires_in(self, flow: Flow) -> float:
        """Return the seconds left before the flow expires, never below 0."""
        return max(0.0, flow.created + self.timeout - self.clock())

    def status_of(self, flow: Flow) -> FlowStatus:
        """Return the flow's status, with "expired" for a pending flow past its life."""
        if flow.status == "pending" and self.expires_in(flow) <= 0:
            return "expired"
        return flow.status

    def for_request(self, owner: str, request: str) -> Flow | None:
        """Return the latest flow that `owner` started with a client request id."""
        self.prune()
        flow_id = self._by_request.get((owner, request))
        return self._flows.get(flow_id) if flow_id is not None else None

    def claim(self, flow_id: str, owner: str) -> Flow:
        """Return the flow that `owner` may complete now, or raise FlowRejected.

        The flow is left unchanged; the caller stores the token and then calls
        `finish`. Nothing awaits in between, so no second completion can slip
        in on the event loop.
        """
        self.prune()
        flow = self._flows.get(flow_id)
        # A pending flow without a sign-in URL is still waiting for the login
        # API, so no browser can have a legitimate token for it yet.
        if flow is None or (flow.status == "pending" and flow.sign_in_url is None):
            raise FlowRejected(
                404,
                "unknown",
                "This sign-in is unknown to the Jupyter server, for example "
                "because the server restarted. Start the sign-in again from "
                "the notebook.",
            )
        if not secrets.compare_digest(flow.owner, owner):
            raise FlowRejected(
                403,
                "other-user",
                "This sign-in was started by another Jupyter user, so it "
                "cannot be completed in this browser session. Start the "
                "sign-in again from your own notebook.",
            )
        status = self.status_of(flow)
        if status == "done":
            raise FlowRejected(
                410,
                "used",
                "This sign-in was already completed; each sign-in link works "
                "once. Start the sign-in again if you need a new token.",
                flow,
            )
        if status == "expired":
            raise FlowRejected(
                410,
                "expired",
                f"This sign-in expired: it must finish within "
                f"{self.timeout:.0f} s of clicking the button. Start the "
                "sign-in again from the notebook.",
                flow,
            )
        if status == "error":
            raise FlowRejected(
                410,
                "failed",
                "This sign-in had already failed, so it cannot be completed. "
                "Start the sign-in again from the notebook.",
                flow,
            )
        return flow

    def finish(self, flow: Flow, user: str | None, deployment: str) -> None:
        """Mark a claimed flow as done; its sign-in URL is no longer needed."""
        flow.status = "done"
        flow.user = user
        flow.deployment = deployment
        flow.message = None
        flow.sign_in_url = None

    def prune(self) -> None:
        """Drop flows older than the retention period."""
        horizon = self.clock() - self.timeout * RETENTION_FACTOR
        for flow in [f for f in self._flows.values() if f.created < horizon]:
            self._drop(flow)

    def _limit_owner(self, owner: str) -> None:
        owned = [f for f in self._flows.values() if f.owner == owner]
        owned.sort(key=lambda f: f.created)
        for flow in owned[: max(0, len(owned) - MAX_FLOWS_PER_OWNER)]:
            self._drop(flow)

    def _drop(self, flow: Flow) -> None:
        self._flows.pop(flow.id, None)
        key = (flow.owner, flow.request)
        if self._by_request.get(key) == flow.id:
            del self._by_request[key]
