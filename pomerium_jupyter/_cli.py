"""The `jupyter pomerium` command line."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence

from ._auth import PomeriumAuth, environment_forbids_prompt
from ._errors import PomeriumError
from ._login import LoginMethod, LoopbackLogin, PasteBackLogin
from ._protocol import origin_of
from ._store import FileTokenStore, TokenStore


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jupyter pomerium",
        description="Sign in to Pomerium-protected services and manage the tokens.",
    )
    parser.add_argument(
        "--cache-dir",
        help="Token cache directory (default: POMERIUM_JUPYTER_CACHE_DIR or the "
        "per-user cache directory).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    for name, summary in (
        ("login", "Sign in to a route in the browser and store the token."),
        ("token", "Print the token for a route (signing in first if needed)."),
    ):
        command = commands.add_parser(name, help=summary, description=summary)
        command.add_argument("url", help="URL of a route behind Pomerium.")
        command.add_argument(
            "--method",
            choices=("loopback", "paste"),
            default="loopback",
            help="loopback: the browser returns to a listener on 127.0.0.1 "
            "(default). paste: paste the final address by hand, for machines "
            "the browser cannot reach.",
        )
        command.add_argument(
            "--browser",
            help="Command that opens the sign-in URL; {url} is replaced by the "
            "URL. Default: the BROWSER variable or the system browser.",
        )
        command.add_argument(
            "--no-browser",
            action="store_true",
            help="Only print the sign-in URL; open it yourself.",
        )
        command.add_argument(
            "--ca-file", help="CA bundle that signs the route's certificate."
        )
        command.add_argument(
            "--insecure",
            action="store_true",
            help="Skip TLS certificate checks (testing only).",
        )
        command.add_argument(
            "--timeout",
            type=float,
            default=340.0,
            help="Seconds to wait for the browser sign-in (default 340).",
        )
        if name == "login":
            command.add_argument(
                "--force",
                action="store_true",
                help="Sign in again even if a token is stored.",
            )

    commands.add_parser("status", help="List signed-in Pomerium deployments.")
    logout = commands.add_parser("logout", help="Remove stored tokens.")
    logout.add_argument("url", nargs="?", help="A route URL; all tokens when omitted.")
    server = commands.add_parser(
        "test-server",
        help="Start the Pomerium test server on loopback and print its URLs.",
        add_help=False,
    )
    server.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def _login_method(args: argparse.Namespace) -> LoginMethod:
    if args.method == "paste":
        return PasteBackLogin()
    return LoopbackLogin(
        browser=args.browser, open_browser=not args.no_browser, timeout=args.timeout
    )


def _auth(args: argparse.Namespace, store: TokenStore) -> PomeriumAuth:
    verify: bool | str = args.ca_file or not args.insecure
    # `login` is an explicit request to sign in, so only the environment
    # variables that is_interactive() reads can stop it. `token` also runs in
    # scripts and CI jobs, so it decides like the library does and raises
    # LoginRequired instead of waiting for a browser.
    interactive: bool | None = None
    if args.command == "login":
        interactive = not environment_forbids_prompt()
    return PomeriumAuth(
        args.url,
        store=store,
        login=_login_method(args),
        interactive=interactive,
        verify=verify,
    )


def _ago(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def _status(store: TokenStore) -> int:
    entries = store.entries()
    if not entries:
        print("Not signed in to any Pomerium deployment.")
        return 0
    now = time.time()
    for entry in entries:
        token = entry.token
        print(entry.deployment)
        print(f"  user:       {token.user or 'unknown'}")
        print(f"  signed in:  {_ago(now - token.obtained_at)}")
        if token.expires_at is not None:
            state = "passed" if token.expires_at < now else "in the future"
            print(
                f"  exp claim:  {time.ctime(token.expires_at)} ({state}; a hint only)"
            )
        for route in entry.routes:
            print(f"  route:      {route}")
    return 0


def _logout(store: TokenStore, url: str | None) -> int:
    if url is None:
        count = len(store.entries())
        store.clear()
        print(f"Removed {count} stored token(s).")
        return 0
    deployment = store.deployment_for(origin_of(url))
    if deployment is None or not store.delete(deployment):
        print(f"No stored token for {origin_of(url)}.")
        return 0
    print(f"Signed out of {deployment}.")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["test-server"]:
        from .testing import main as test_server_main

        return test_server_main(arguments[1:])
    args = _build_parser().parse_args(arguments)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    store = FileTokenStore(args.cache_dir)
    try:
        if args.command == "status":
            return _status(store)
        if args.command == "logout":
            return _logout(store, args.url)
        auth = _auth(args, store)
        try:
            if args.command == "login":
                if args.force:
                    auth.forget()
                token = auth.current_token()
                print(
                    f"Signed in to {auth.origin} as {token.user or 'an unnamed user'}.",
                    file=sys.stderr,
                )
            else:
                print(auth.current_token().value)
        finally:
            auth.close()
    except PomeriumError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("Cancelled.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
