"""Run a real Jupyter server in a subprocess for the browser tests.

The server runs with the pomerium_jupyter server extension, the lab extension
built in this checkout, token authentication and XSRF checks on, a non-root
base URL and a private token cache. This module is also imported by the
Jupyter subprocess (through PYTHONPATH) for `NamedTokenIdentityProvider`, so
it imports neither pytest nor Playwright at module level.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from jupyter_server.auth import IdentityProvider, User
from traitlets import Dict, Unicode

ROOT = Path(__file__).resolve().parent.parent
TESTS_DIR = Path(__file__).resolve().parent
EXTENSION_BUILD = ROOT / "pomerium_jupyter" / "labextension"
EXTENSION_NAME = "pomerium-jupyter-labextension"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Seconds. JupyterLab usually responds within a few seconds of starting.
SERVER_START_TIMEOUT = 60.0


class JupyterStartError(RuntimeError):
    """The Jupyter subprocess exited or did not respond while starting."""


class NamedTokenIdentityProvider(IdentityProvider):  # type: ignore[misc]
    """Map each configured API token (header, ?token= or login form) to a user."""

    users = Dict(
        value_trait=Unicode(),
        help="API token to Jupyter user name.",
    ).tag(config=True)

    async def get_user_token(self, handler: Any) -> User | None:
        name = self.users.get(self.get_token(handler) or "")
        return User(name) if name else None

    def process_login_form(self, handler: Any) -> User | None:
        name = self.users.get(handler.get_argument("password", default=""))
        return User(name) if name else None


@dataclass
class JupyterProcess:
    """A running Jupyter server: its address, tokens and files."""

    url: str
    tokens: dict[str, str]
    root_dir: Path
    cache_dir: Path
    log_file: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def token(self) -> str:
        """The API token of the first user."""
        return next(iter(self.tokens.values()))

    @property
    def origin(self) -> str:
        parts = httpx.URL(self.url)
        return f"{parts.scheme}://{parts.host}:{parts.port}"

    def headers(self, user: str | None = None) -> dict[str, str]:
        token = self.tokens[user] if user is not None else self.token
        return {"Authorization": f"token {token}"}

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace")

    def shutdown_kernels(self) -> None:
        """Shut down every running kernel, so tests do not pile them up."""
        with httpx.Client(headers=self.headers(), timeout=30.0) as http:
            kernels = http.get(f"{self.url}api/kernels").json()
            for kernel in kernels:
                http.delete(f"{self.url}api/kernels/{kernel['id']}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _write_json(path: Path, document: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))


def _wait_until_ready(server: JupyterProcess) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise JupyterStartError(
                f"Jupyter exited with code {server.process.returncode} while "
                f"starting; its log:\n{server.log_text()}"
            )
        try:
            response = httpx.get(f"{server.url}api/status", headers=server.headers())
        except httpx.TransportError:
            time.sleep(0.2)
            continue
        if response.status_code == 200:
            return
        time.sleep(0.2)
    raise JupyterStartError(
        f"Jupyter did not respond within {SERVER_START_TIMEOUT} s; its log:\n"
        f"{server.log_text()}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@contextmanager
def jupyter_server(
    directory: Path,
    *,
    base_url: str = "/e2e/",
    users: Sequence[str] = ("alice",),
    lab_settings: Mapping[str, Mapping[str, Any]] | None = None,
    extra_args: Sequence[str] = (),
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[JupyterProcess]:
    """Start JupyterLab (which also serves Notebook 7) and stop it on exit.

    `users` are Jupyter user names, each with its own random API token.
    `lab_settings` maps a JupyterLab plugin id, such as
    "@jupyter-widgets/jupyterlab-manager:plugin", to user settings.
    """
    if not (EXTENSION_BUILD / "package.json").is_file():
        raise JupyterStartError(
            f"The lab extension is not built ({EXTENSION_BUILD} is missing). "
            "Run `npm install && npm run build` in labextension/ first."
        )
    directory.mkdir(parents=True, exist_ok=True)
    # JupyterLab finds prebuilt extensions as <directory>/<npm name>/, so a
    # symlink makes it load this checkout's build, however the package was
    # installed.
    extensions = directory / "labextensions"
    extensions.mkdir()
    (extensions / EXTENSION_NAME).symlink_to(EXTENSION_BUILD, target_is_directory=True)

    tokens = {user: secrets.token_hex(24) for user in users}
    config_dir = directory / "config"
    _write_json(
        config_dir / "jupyter_server_config.json",
        {
            "ServerApp": {
                "jpserver_extensions": {"pomerium_jupyter": True},
                "identity_provider_class": (
                    "_jupyter_process.NamedTokenIdentityProvider"
                ),
            },
            "NamedTokenIdentityProvider": {
                "token": tokens[users[0]],
                "users": {token: user for user, token in tokens.items()},
            },
        },
    )
    settings: dict[str, Mapping[str, Any]] = {
        # Turn off the question about Jupyter news, so no toast covers the page.
        "@jupyterlab/apputils-extension:notification": {"fetchNews": "false"},
        **(lab_settings or {}),
    }
    for plugin_id, values in settings.items():
        package, plugin = plugin_id.split(":")
        _write_json(
            config_dir
            / "lab"
            / "user-settings"
            / package
            / f"{plugin}.jupyterlab-settings",
            values,
        )

    root_dir = directory / "root"
    root_dir.mkdir()
    cache_dir = directory / "token-cache"
    cache_dir.mkdir()
    port = free_port()
    env = dict(os.environ)
    for name in (
        "POMERIUM_JUPYTER_TOKEN",
        "POMERIUM_JUPYTER_TOKEN_FILE",
        "POMERIUM_JUPYTER_NONINTERACTIVE",
        "CI",
        "BROWSER",
    ):
        env.pop(name, None)
    python_path = [str(TESTS_DIR), env.get("PYTHONPATH", "")]
    env.update(
        {
            "POMERIUM_JUPYTER_CACHE_DIR": str(cache_dir),
            "JUPYTER_CONFIG_DIR": str(config_dir),
            "JUPYTER_DATA_DIR": str(directory / "data"),
            "JUPYTER_RUNTIME_DIR": str(directory / "runtime"),
            "IPYTHONDIR": str(directory / "ipython"),
            "PYTHONPATH": os.pathsep.join(p for p in python_path if p),
            **(extra_env or {}),
        }
    )
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        f"--ServerApp.base_url={base_url}",
        "--ServerApp.ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root_dir}",
        "--log-level=DEBUG",
        # The extension's handlers log requests through the extension's own
        # logger, which the option above leaves at INFO.
        "--PomeriumExtension.log_level=DEBUG",
        # JupyterLab and Notebook 7 both read this LabServerApp setting.
        f"--LabServerApp.extra_labextensions_path={extensions}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        *extra_args,
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # Test containers often run as root, which Jupyter rejects by default.
        command.append("--allow-root")
    log_file = directory / "jupyter.log"
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=directory
        )
        server = JupyterProcess(
            url=f"http://127.0.0.1:{port}{base_url}",
            tokens=tokens,
            root_dir=root_dir,
            cache_dir=cache_dir,
            log_file=log_file,
            process=process,
        )
        try:
            _wait_until_ready(server)
            yield server
        finally:
            _stop(process)


def launch_chromium(
    playwright: Any, *, extra_args: Sequence[str] = (), **options: Any
) -> Any:
    """Launch the system Chromium with the flags every browser test uses.

    `extra_args` come after those flags. The sync and async Playwright APIs
    both work, and with the async one the result is awaitable.
    """
    return playwright.chromium.launch(
        executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra_args], **options
    )
