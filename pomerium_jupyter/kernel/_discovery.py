"""Finding the Pomerium deployment behind a route, for looking up its token."""

from __future__ import annotations

import httpx

from .._errors import RedirectNotAllowed
from .._protocol import deployment_key, origin_of, request_sign_in_url
from .._store import TokenStore

# Pomerium's default allow list accepts any loopback callback, and nothing
# ever visits this one: the sign-in URL is only read for its authenticate host.
DISCOVERY_CALLBACK = "http://127.0.0.1/"


def probe_sign_in_url(client: httpx.Client, route_url: str) -> str:
    """Ask the route's login API for a sign-in URL, or return "" if it rejects.

    An empty sign-in URL makes `deployment_key` fall back to the route's own
    origin, which is also where a token from a rejected callback would be kept.
    """
    try:
        return request_sign_in_url(client, route_url, DISCOVERY_CALLBACK)
    except RedirectNotAllowed:
        return ""


def find_deployment(store: TokenStore, route_url: str, client: httpx.Client) -> str:
    """Return the deployment key of a route, with one login API call if unknown."""
    origin = origin_of(route_url)
    known = store.deployment_for(origin)
    if known is not None:
        return known
    deployment = deployment_key(route_url, probe_sign_in_url(client, route_url))
    store.remember_route(origin, deployment)
    return deployment
