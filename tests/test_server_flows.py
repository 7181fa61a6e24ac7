"""The in-memory flow registry of the server extension, with a hand-driven clock."""

from __future__ import annotations

import pytest

from pomerium_jupyter.server.flows import (
    MAX_FLOWS_PER_OWNER,
    FlowRegistry,
    FlowRejected,
)

ROUTE = "https://app.example.org"
SIGN_IN = "https://authenticate.example.org/.pomerium/sign_in?pomerium_signature=s"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def registry(clock: Clock) -> FlowRegistry:
    return FlowRegistry(timeout=360, clock=clock)


def started(registry: FlowRegistry, owner: str = "alice", request: str = "r") -> str:
    flow = registry.create(owner, ROUTE, request)
    flow.sign_in_url = SIGN_IN
    return flow.id


def rejection(registry: FlowRegistry, flow_id: str, owner: str) -> FlowRejected:
    with pytest.raises(FlowRejected) as info:
        registry.claim(flow_id, owner)
    return info.value


def test_flow_ids_unguessable(registry: FlowRegistry) -> None:
    ids = {started(registry, request=f"r{i}") for i in range(20)}
    assert len(ids) == 20
    assert all(len(flow_id) >= 43 for flow_id in ids)


def test_claim_then_finish(registry: FlowRegistry) -> None:
    flow_id = started(registry)
    flow = registry.claim(flow_id, "alice")
    registry.finish(flow, "alice@example.org", "deployment")

    assert registry.status_of(flow) == "done"
    assert flow.sign_in_url is None
    assert rejection(registry, flow_id, "alice").reason == "used"


def test_claim_rejections(registry: FlowRegistry, clock: Clock) -> None:
    flow_id = started(registry)
    assert rejection(registry, "unknown", "alice").status_code == 404
    other = rejection(registry, flow_id, "bob")
    assert other.status_code == 403
    assert other.flow is None

    clock.now += 361
    expired = rejection(registry, flow_id, "alice")
    assert expired.status_code == 410
    assert expired.reason == "expired"


def test_pending_login_api_not_claimable(registry: FlowRegistry) -> None:
    flow = registry.create("alice", ROUTE, "r")
    assert rejection(registry, flow.id, "alice").reason == "unknown"


def test_failed_flow_not_claimable(registry: FlowRegistry) -> None:
    flow_id = started(registry)
    flow = registry.claim(flow_id, "alice")
    registry.fail(flow, "The login API failed.")
    assert rejection(registry, flow_id, "alice").reason == "failed"
    assert registry.for_request("alice", "r") is flow


def test_request_id_reuse_replaces(registry: FlowRegistry) -> None:
    first = started(registry)
    second = started(registry)
    assert rejection(registry, first, "alice").reason == "unknown"
    flow = registry.for_request("alice", "r")
    assert flow is not None
    assert flow.id == second
    assert registry.for_request("bob", "r") is None


def test_old_flows_pruned(registry: FlowRegistry, clock: Clock) -> None:
    started(registry)
    clock.now += 2 * 360 - 1
    assert registry.for_request("alice", "r") is not None
    clock.now += 2
    assert registry.for_request("alice", "r") is None
    assert len(registry) == 0


def test_flows_per_owner_limited(registry: FlowRegistry) -> None:
    for i in range(MAX_FLOWS_PER_OWNER + 5):
        started(registry, request=f"r{i}")
    started(registry, owner="bob")
    assert len(registry) == MAX_FLOWS_PER_OWNER + 1
    assert registry.for_request("alice", "r0") is None
    assert registry.for_request("bob", "r") is not None


def test_repr_hides_sign_in_url(registry: FlowRegistry) -> None:
    flow = registry.claim(started(registry), "alice")
    assert "pomerium_signature" not in repr(flow)
    assert flow.id not in repr(flow)
