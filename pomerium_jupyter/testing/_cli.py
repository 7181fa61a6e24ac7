"""Command line: python -m pomerium_jupyter.testing."""

from __future__ import annotations

import argparse
import signal
import threading
from types import FrameType

DESCRIPTION = (
    "Run a local stand-in for a Pomerium deployment: an authenticate origin, one "
    "origin per route with an echo app behind it, and a fake identity provider."
)


def _user(text: str) -> tuple[str, str]:
    name, separator, password = text.partition(":")
    if not separator or not name:
        raise argparse.ArgumentTypeError(
            f"invalid user {text!r}: expected NAME:PASSWORD"
        )
    return name, password


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pomerium_jupyter.testing", description=DESCRIPTION
    )
    parser.add_argument(
        "--version",
        dest="pomerium_version",
        default="0.33",
        help="Pomerium release to emulate: 0.14, 0.16, 0.31, 0.32.0 or 0.33 "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--route",
        action="append",
        dest="routes",
        metavar="NAME",
        help="route name, repeatable; each route gets its own port "
        "(default: app and api)",
    )
    parser.add_argument(
        "--allow",
        action="append",
        dest="allow",
        metavar="HOST",
        help="programmatic redirect allow-list entry, repeatable (default: localhost)",
    )
    parser.add_argument(
        "--port-base",
        type=int,
        metavar="N",
        help="authenticate listens on port N and routes on N+1, N+2, ... "
        "(default: free ports)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--public-host", help="host name to put in URLs instead of --host"
    )
    parser.add_argument(
        "--user",
        action="append",
        type=_user,
        dest="users",
        metavar="NAME:PASSWORD",
        help="sign-in user, repeatable (default: alice and bob)",
    )
    parser.add_argument(
        "--tls", action="store_true", help="serve HTTPS with a new test CA"
    )
    parser.add_argument(
        "--sign-in-coop",
        action="store_true",
        help="send Cross-Origin-Opener-Policy: same-origin on sign-in pages",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the test server until Ctrl-C or SIGTERM; return the exit status."""
    from ._pomerium import PomeriumTestServer

    options = build_parser().parse_args(argv)
    server = PomeriumTestServer(
        version=options.pomerium_version,
        routes=tuple(options.routes or ("app", "api")),
        allow_list=tuple(options.allow) if options.allow else ("localhost",),
        users=dict(options.users) if options.users else None,
        host=options.host,
        public_host=options.public_host,
        tls=options.tls,
        sign_in_coop=options.sign_in_coop,
        port_base=options.port_base,
    )
    stopped = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    installed = threading.current_thread() is threading.main_thread()
    previous = {}
    if installed:
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, request_stop)
    try:
        with server:
            first_route = server.route_url()
            print(f"Pomerium {server.version} test server")
            print(f"authenticate: {server.authenticate_url}")
            for name, url in server.route_urls.items():
                print(f"route {name}: {url}")
            for name, password in server.users.items():
                print(f"user: {name} / {password}")
            if server.ca_file:
                print(f"CA certificate: {server.ca_file}")
            login = "http://127.0.0.1:8000/"
            print(
                "try: curl -s "
                f"'{first_route}/.pomerium/api/v1/login?pomerium_redirect_uri={login}'"
            )
            print("Press Ctrl-C to stop.", flush=True)
            while not stopped.wait(0.5):
                pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0
