"""The /.well-known/pomerium discovery document."""

from __future__ import annotations

from ._deployment import Deployment
from ._http import Response
from ._responses import json_response


def well_known(deployment: Deployment, origin: str) -> Response:
    """Build the document of internal/handlers/well_known_pomerium.go."""
    response = json_response(
        200,
        {
            "issuer": f"{origin}/",
            "authentication_callback_endpoint": (
                f"{deployment.authenticate_url}/oauth2/callback"
            ),
            "jwks_uri": f"{origin}/.well-known/pomerium/jwks.json",
            "frontchannel_logout_uri": f"{origin}/.pomerium/sign_out",
        },
    )
    response.set_header("Access-Control-Allow-Origin", "*")
    return response
