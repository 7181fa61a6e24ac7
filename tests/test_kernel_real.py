"""%pomerium in a real ipykernel, and notebooks run by nbclient and papermill.

The test process plays the server extension's part: it writes tokens into the
shared FileTokenStore that the kernel reads, which is how a finished popup
sign-in reaches the kernel.
"""

from __future__ import annotations

import json
import os
import queue
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import nbformat
import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from pomerium_jupyter import FileTokenStore, Token
from pomerium_jupyter._protocol import deployment_key, origin_of
from pomerium_jupyter.testing import PomeriumTestServer, ScriptedBrowser

QUICKSTART = Path(__file__).parent.parent / "notebooks" / "quickstart.ipynb"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
CLEARED_ENV = (
    "POMERIUM_JUPYTER_TOKEN",
    "POMERIUM_JUPYTER_TOKEN_FILE",
    "POMERIUM_JUPYTER_NONINTERACTIVE",
    "CI",
    "VSCODE_PID",
    "VSCODE_CWD",
)

Message = dict[str, Any]


class KernelSession:
    """A running ipykernel and every IOPub message it has sent."""

    def __init__(self, client: BlockingKernelClient) -> None:
        self.client = client
        self.transcript: list[Message] = []

    def execute(
        self,
        code: str,
        *,
        timeout: float = 30.0,
        on_message: Callable[[Message], None] | None = None,
    ) -> tuple[Message, list[Message]]:
        """Run `code`; return the execute reply and the cell's IOPub messages."""
        msg_id = self.client.execute(code)
        messages = self.collect(msg_id, timeout=timeout, on_message=on_message)
        return self.reply(msg_id, timeout=timeout), messages

    def collect(
        self,
        msg_id: str,
        *,
        timeout: float,
        on_message: Callable[[Message], None] | None = None,
    ) -> list[Message]:
        deadline = time.monotonic() + timeout
        messages: list[Message] = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"cell did not finish within {timeout} s")
            try:
                message = self.client.get_iopub_msg(timeout=remaining)
            except queue.Empty:
                continue
            self.transcript.append(message)
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            messages.append(message)
            if on_message is not None:
                on_message(message)
            content = message["content"]
            if message["msg_type"] == "status" and content["execution_state"] == "idle":
                return messages

    def reply(self, msg_id: str, *, timeout: float) -> Message:
        while True:
            reply = self.client.get_shell_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply

    def run(self, code: str, **kwargs: Any) -> str:
        """Run `code`, require success, and return its stdout."""
        reply, messages = self.execute(code, **kwargs)
        assert reply["content"]["status"] == "ok", reply["content"]
        return stdout_of(messages)


def stdout_of(messages: list[Message]) -> str:
    return "".join(
        m["content"]["text"]
        for m in messages
        if m["msg_type"] == "stream" and m["content"]["name"] == "stdout"
    )


def widget_displays(messages: list[Message]) -> list[Message]:
    return [
        m
        for m in messages
        if m["msg_type"] == "display_data" and WIDGET_VIEW in m["content"]["data"]
    ]


def kernel_env(cache: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CLEARED_ENV}
    env["POMERIUM_JUPYTER_CACHE_DIR"] = str(cache)
    env.update(extra)
    return env


def start_kernel(env: dict[str, str]) -> Iterator[KernelSession]:
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(env=env)
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        session = KernelSession(client)
        session.run("%load_ext pomerium_jupyter")
        yield session
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


@pytest.fixture
def kernel(isolated_environment: Path) -> Iterator[KernelSession]:
    yield from start_kernel(kernel_env(isolated_environment))


@pytest.fixture
def vscode_kernel(isolated_environment: Path) -> Iterator[KernelSession]:
    yield from start_kernel(kernel_env(isolated_environment, VSCODE_PID="1"))


def put_token(route: str, value: str) -> Token:
    """Store a token as the server extension does after a popup sign-in."""
    sign_in_url = httpx.get(
        f"{route}/.pomerium/api/v1/login",
        params={"pomerium_redirect_uri": "http://127.0.0.1/"},
    ).text
    deployment = deployment_key(route, sign_in_url)
    token = Token(value)
    store = FileTokenStore()
    store.put(deployment, token)
    store.remember_route(origin_of(route), deployment)
    return token


def assert_secret_absent(secret: str, messages: list[Message]) -> None:
    text = json.dumps(messages, default=str)
    assert secret not in text


def test_stored_token_reaches_kernel_client(
    kernel: KernelSession, pomerium_server: PomeriumTestServer
) -> None:
    route = pomerium_server.route_url("app")
    token = put_token(route, pomerium_server.mint_token("alice"))
    out = kernel.run(
        f"client = %pomerium login {route}\n"
        'response = client.get("/hello")\n'
        'print(response.status_code, response.json()["user"])'
    )
    assert out.splitlines() == ["Signed in to 127.0.0.1 as alice.", "200 alice"]
    assert_secret_absent(token.value, kernel.transcript)


def test_login_shows_widget_and_returns(
    kernel: KernelSession, pomerium_server: PomeriumTestServer
) -> None:
    route = pomerium_server.route_url("app")
    started = time.monotonic()
    reply, messages = kernel.execute(
        f"client = %pomerium login {route}\nprint(type(client).__name__)"
    )
    assert time.monotonic() - started < 10
    assert reply["content"]["status"] == "ok"
    assert stdout_of(messages) == "Client\n"
    assert len(widget_displays(messages)) == 1
    opened = [m for m in messages if m["msg_type"] == "comm_open"]
    states = [m["content"]["data"]["state"] for m in opened]
    login_states = [s for s in states if s.get("_model_name") == "AnyModel"]
    assert len(login_states) == 1
    state = login_states[0]
    assert state["route"] == route
    assert state["host"] == "127.0.0.1"
    assert state["status"] == "signed-out"
    assert state["method"] == "auto"
    assert "sign_in" not in json.dumps(state)


def test_wait_returns_when_token_arrives(
    kernel: KernelSession, pomerium_server: PomeriumTestServer
) -> None:
    route = pomerium_server.route_url("app")
    kernel.run(f"client = %pomerium login {route}")
    msg_id = kernel.client.execute(f"%pomerium wait {route} --timeout 30")
    # The cell stays busy while no token is stored.
    with pytest.raises(queue.Empty):
        kernel.client.get_shell_msg(timeout=1.5)
    token = put_token(route, pomerium_server.mint_token("alice"))
    messages = kernel.collect(msg_id, timeout=30)
    reply = kernel.reply(msg_id, timeout=10)
    assert reply["content"]["status"] == "ok"
    assert stdout_of(messages) == "Signed in as alice.\n"
    out = kernel.run('print(client.get("/").json()["user"])')
    assert out == "alice\n"
    assert_secret_absent(token.value, kernel.transcript)


def test_revoked_token_shows_new_widget(
    kernel: KernelSession, pomerium_server: PomeriumTestServer
) -> None:
    route = pomerium_server.route_url("app")
    first = put_token(route, pomerium_server.mint_token("alice"))
    kernel.run(f"client = %pomerium login {route}\nclient.get('/').raise_for_status()")
    assert first.session_id is not None
    pomerium_server.revoke(first.session_id)

    fresh: list[Token] = []

    def sign_in_when_widget_shows(message: Message) -> None:
        if widget_displays([message]) and not fresh:
            # What the server extension does once the user finishes the popup.
            fresh.append(put_token(route, pomerium_server.mint_token("alice")))

    reply, messages = kernel.execute(
        'response = client.get("/after-revoke")\n'
        'print(response.status_code, response.json()["user"])',
        on_message=sign_in_when_widget_shows,
    )
    assert reply["content"]["status"] == "ok", reply["content"]
    assert len(widget_displays(messages)) == 1
    assert stdout_of(messages) == "200 alice\n"
    updates = [
        m["content"]["data"]["state"]
        for m in messages
        if m["msg_type"] == "comm_msg"
        and m["content"]["data"].get("method") == "update"
    ]
    assert any(u.get("status") == "signed-in" for u in updates)
    assert fresh
    assert_secret_absent(first.value, kernel.transcript)
    assert_secret_absent(fresh[0].value, kernel.transcript)


def test_widget_state_in_kernel_has_no_token(
    kernel: KernelSession, pomerium_server: PomeriumTestServer
) -> None:
    route = pomerium_server.route_url("app")
    token = put_token(route, pomerium_server.mint_token("alice"))
    out = kernel.run(
        "import json\n"
        "from pomerium_jupyter import FileTokenStore\n"
        "from pomerium_jupyter.kernel import LoginWidget\n"
        f"widget = LoginWidget({route!r}, store=FileTokenStore())\n"
        "display(widget)\n"
        "widget.refresh()\n"
        "print(json.dumps(widget.get_state(), default=str))"
    )
    state = json.loads(out)
    assert state["status"] == "signed-in"
    assert state["user"] == "alice"
    assert token.value not in out
    assert_secret_absent(token.value, kernel.transcript)


def test_vscode_kernel_signs_in_through_link(
    vscode_kernel: KernelSession, pomerium_server: PomeriumTestServer
) -> None:
    route = pomerium_server.route_url("app")
    reply, messages = vscode_kernel.execute(f"client = %pomerium login {route}")
    assert reply["content"]["status"] == "ok"
    assert "listener in the kernel on 127.0.0.1" in stdout_of(messages)
    assert widget_displays(messages) == []
    shown = [m for m in messages if m["msg_type"] == "display_data"]
    assert len(shown) == 1
    display_id = shown[0]["content"]["transient"]["display_id"]

    link: list[str] = []
    deadline = time.monotonic() + 20
    while not link and time.monotonic() < deadline:
        message = vscode_kernel.client.get_iopub_msg(timeout=20)
        vscode_kernel.transcript.append(message)
        if message["msg_type"] == "update_display_data":
            html = message["content"]["data"]["text/html"]
            found = re.search(r'href="([^"]+)"', html)
            if found is not None:
                link.append(found.group(1).replace("&amp;", "&"))
    assert link, "no sign-in link was shown"
    assert 'data-pomerium="link"' in html

    browser = ScriptedBrowser("alice")
    browser(link[0])
    browser.close()
    assert browser.delivery_status == 200, browser.error

    out = vscode_kernel.run(f"%pomerium wait {route} --timeout 20")
    assert out == "Signed in as alice.\n"
    out = vscode_kernel.run('print(client.get("/").json()["user"])')
    assert out == "alice\n"
    updates = [
        m
        for m in vscode_kernel.transcript
        if m["msg_type"] == "update_display_data"
        and m["content"]["transient"]["display_id"] == display_id
    ]
    # The last update replaces the link, so the saved output keeps no URL.
    final = updates[-1]["content"]["data"]
    assert final["text/plain"] == f"Signed in to {route} as alice."
    assert "href" not in final["text/html"]


def run_notebook(nb: Any, cwd: Path) -> Any:
    """Execute `nb` with nbclient, which sends every request with allow_stdin off.

    The kernel inherits this process's environment, where the autouse fixture
    points POMERIUM_JUPYTER_CACHE_DIR at the test's own cache.
    """
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=60,
        resources={"metadata": {"path": str(cwd)}},
    )
    return client.execute()


def notebook(*sources: str) -> Any:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    return nb


@pytest.fixture
def notebook_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CLEARED_ENV:
        monkeypatch.delenv(name, raising=False)


def test_nbclient_without_token_raises_login_required(
    pomerium_server: PomeriumTestServer, notebook_env: None, tmp_path: Path
) -> None:
    route = pomerium_server.route_url("app")
    nb = notebook(
        "%load_ext pomerium_jupyter",
        f"client = %pomerium login {route}",
        'client.get("/")',
    )
    with pytest.raises(CellExecutionError) as caught:
        run_notebook(nb, tmp_path)
    error = caught.value
    assert error.ename == "LoginRequired"
    assert f"Sign-in to {route} is required" in error.evalue
    assert "non-interactive" in error.evalue
    login_output = "".join(o.get("text", "") for o in nb.cells[1].outputs)
    assert "will raise LoginRequired" in login_output
    assert not any(widget_displays_in(cell) for cell in nb.cells)


def widget_displays_in(cell: Any) -> bool:
    return any(WIDGET_VIEW in o.get("data", {}) for o in cell.get("outputs", []))


def test_quickstart_with_service_account(
    pomerium_server: PomeriumTestServer,
    notebook_env: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    route = pomerium_server.route_url("app")
    secret = pomerium_server.mint_service_account("alice")
    monkeypatch.setenv("POMERIUM_TEST_ROUTE", route)
    monkeypatch.setenv("POMERIUM_JUPYTER_TOKEN", secret)
    nb = nbformat.read(QUICKSTART, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    run_notebook(nb, tmp_path)
    outputs = json.dumps([c.get("outputs", []) for c in nb.cells])
    assert "200 alice" in outputs
    assert "user: alice" in outputs
    assert secret not in outputs


def test_quickstart_without_token_stops_at_wait(
    pomerium_server: PomeriumTestServer,
    notebook_env: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("POMERIUM_TEST_ROUTE", pomerium_server.route_url("app"))
    nb = nbformat.read(QUICKSTART, as_version=4)
    with pytest.raises(CellExecutionError) as caught:
        run_notebook(nb, tmp_path)
    assert caught.value.ename == "LoginRequired"
    assert "POMERIUM_JUPYTER_TOKEN" in caught.value.evalue
    # The magic shows the sentence alone, without a traceback.
    wait_cell = next(
        c for c in nb.cells if c.cell_type == "code" and "%pomerium wait" in c.source
    )
    errors = [o for o in wait_cell.outputs if o.output_type == "error"]
    assert len(errors) == 1
    assert len(errors[0].traceback) == 1
    assert errors[0].traceback[0].startswith("LoginRequired: Sign-in to")


def test_papermill_with_service_account(
    pomerium_server: PomeriumTestServer,
    notebook_env: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    import papermill

    secret = pomerium_server.mint_service_account("alice")
    monkeypatch.setenv("POMERIUM_TEST_ROUTE", pomerium_server.route_url("app"))
    monkeypatch.setenv("POMERIUM_JUPYTER_TOKEN", secret)
    output = tmp_path / "out.ipynb"
    papermill.execute_notebook(
        str(QUICKSTART), str(output), kernel_name="python3", progress_bar=False
    )
    text = output.read_text(encoding="utf-8")
    assert "200 alice" in text
    assert secret not in text
