"""End-to-end tests of the notebook sign-in with real components.

A real JupyterLab server (which also serves Notebook 7) runs in a subprocess
with the Pomerium server extension, token authentication, XSRF checks, a
non-root base URL and a private token cache. Notebooks run in real ipykernel
kernels, Chromium drives the pages through Playwright, and the Pomerium test
server signs users in with its username/password form.

One JupyterLab server and one Pomerium server serve the whole module. Each
test clears the token cache, uses its own notebook file and its own browser
context, so no Pomerium or Jupyter cookie carries over between tests.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _jupyter_process import JupyterProcess, jupyter_server, launch_chromium
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Locator,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

from pomerium_jupyter import FileTokenStore
from pomerium_jupyter.testing import PomeriumTestServer

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "notebooks" / "quickstart.ipynb"
# Code cells of the quickstart notebook, by position among all its cells.
QUICKSTART_LOGIN_CELL = 2
QUICKSTART_WAIT_CELL = 4
QUICKSTART_GET_CELL = 5
# Milliseconds, for Playwright waits.
UI_TIMEOUT = 30_000
KERNEL_TIMEOUT = 60_000
CLOSED_SENTENCE = "The sign-in window was closed before the sign-in finished."
WIDGET_STATE_MIME = "application/vnd.jupyter.widget-state+json"

expect.set_options(timeout=UI_TIMEOUT)


# Fixtures


@pytest.fixture(autouse=True)
def jp_asyncio_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """Give pytest-jupyter's fixtures a loop other than Playwright's.

    The plugin's fixture takes the thread's current event loop and closes it
    after each test, and here that is the loop of the module-wide Playwright
    instance.
    """
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(autouse=True)
def jp_server_cleanup() -> None:
    """Replace pytest-jupyter's cleanup of the in-process server with nothing.

    The Jupyter server here is a subprocess. The plugin's cleanup would run an
    event loop while Playwright's loop is running in the same thread, which
    fails, and the plugin's event loop fixture would close Playwright's loop.
    """


@pytest.fixture(scope="module")
def pomerium() -> Iterator[PomeriumTestServer]:
    with PomeriumTestServer(routes=("app",)) as server:
        yield server


@pytest.fixture(scope="module")
def lab(
    tmp_path_factory: pytest.TempPathFactory, pomerium: PomeriumTestServer
) -> Iterator[JupyterProcess]:
    directory = tmp_path_factory.mktemp("jupyter")
    with jupyter_server(
        directory,
        users=("alice", "bob"),
        # Widget state goes into the saved notebook, so the secrets test can
        # check what a saved file keeps.
        lab_settings={
            "@jupyter-widgets/jupyterlab-manager:plugin": {"saveState": True}
        },
        extra_env={"POMERIUM_TEST_ROUTE": pomerium.route_url("app")},
    ) as server:
        yield server


@pytest.fixture(autouse=True)
def clean_state(request: pytest.FixtureRequest) -> Iterator[None]:
    """Start each test signed out and end it with no kernel running."""
    server: JupyterProcess | None = None
    if "lab" in request.fixturenames:
        server = request.getfixturevalue("lab")
        FileTokenStore(server.cache_dir).clear()
    yield
    if server is not None:
        server.shutdown_kernels()


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as instance:
        yield instance


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = launch_chromium(playwright)
    yield chromium
    chromium.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    fresh = browser.new_context()
    fresh.set_default_timeout(UI_TIMEOUT)
    yield fresh
    fresh.close()


# Notebooks


def code_cell(source: str) -> dict[str, Any]:
    return {
        "cell_type": "code",
        "execution_count": None,
        "metadata": {},
        "outputs": [],
        "source": source,
    }


def write_notebook(path: Path, sources: list[str]) -> str:
    notebook = {
        "cells": [
            {**code_cell(source), "id": f"cell-{index}"}
            for index, source in enumerate(sources)
        ],
        "metadata": {
            "kernelspec": {
                "display_name": "Python 3 (ipykernel)",
                "language": "python",
                "name": "python3",
            }
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(notebook))
    return path.name


def copy_quickstart(server: JupyterProcess, name: str) -> str:
    shutil.copyfile(QUICKSTART, server.root_dir / name)
    return name


# Page helpers


def open_in_lab(page: Page, server: JupyterProcess, name: str) -> None:
    # "reset" starts from an empty workspace, so notebooks that earlier pages
    # opened are not restored next to this one.
    page.goto(f"{server.url}lab/tree/{name}?reset&token={server.token}")
    wait_for_idle_kernel(page)


def wait_for_idle_kernel(page: Page) -> None:
    # A cell run before the kernel is connected is not executed. The status
    # bar reads "| Idle" only once it is, unlike the toolbar's execution
    # indicator, which reads idle from the start.
    status = page.locator("#jp-main-statusbar", has_text="| Idle")
    status.wait_for(state="visible", timeout=KERNEL_TIMEOUT)


def cell(page: Page, index: int) -> Locator:
    return page.locator(".jp-Notebook .jp-Cell").nth(index)


def run_cell(page: Page, index: int) -> None:
    target = cell(page, index)
    target.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    # The prompt reads [*] while the cell runs and [n] once it ran.
    expect(target.locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[(\*|\d+)\]"))


def output_of(page: Page, index: int) -> Locator:
    return cell(page, index).locator(".jp-OutputArea")


def run_all_cells(page: Page) -> None:
    """Click Run > Run All Cells in the menu bar."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Run$")).click()
    label = page.locator(".lm-Menu-itemLabel", has_text=re.compile("^Run All Cells$"))
    page.locator(".lm-Menu-item", has=label).click()


def sign_in_button(scope: Page | Locator) -> Locator:
    button = scope.locator('[data-pomerium="sign-in"]')
    # The button stays disabled until the widget has found the server
    # extension.
    expect(button).to_be_enabled()
    return button


def fill_sign_in_form(popup: Page, user: str = "alice") -> None:
    popup.locator("#username").fill(user)
    popup.locator("#password").fill(f"{user}-password")
    popup.locator("#sign-in").click()


def sign_in_with_popup(page: Page, scope: Page | Locator, user: str = "alice") -> Page:
    """Click the widget's button and sign in with the popup's form."""
    button = sign_in_button(scope)
    with page.expect_popup() as popup_info:
        button.click()
    popup = popup_info.value
    fill_sign_in_form(popup, user)
    return popup


def widget_status(scope: Page | Locator) -> Locator:
    return scope.locator('[data-pomerium="status"]')


def stored_token(server: JupyterProcess) -> str:
    entries = FileTokenStore(server.cache_dir).entries()
    assert len(entries) == 1, entries
    return entries[0].token.value


def kernel_of(server: JupyterProcess, notebook: str) -> str:
    """Return the id of the kernel that runs a notebook."""
    sessions = httpx.get(f"{server.url}api/sessions", headers=server.headers())
    for session in sessions.json():
        if session["path"] == notebook:
            kernel_id: str = session["kernel"]["id"]
            return kernel_id
    raise AssertionError(f"no session runs {notebook}: {sessions.text}")


def wait_for_kernel_connection(server: JupyterProcess, notebook: str) -> None:
    """Wait until the page's kernel is idle and has a connected client."""
    deadline = time.monotonic() + KERNEL_TIMEOUT / 1000
    while time.monotonic() < deadline:
        sessions = httpx.get(f"{server.url}api/sessions", headers=server.headers())
        for session in sessions.json():
            kernel = session["kernel"]
            if (
                session["path"] == notebook
                and kernel["execution_state"] == "idle"
                and kernel["connections"] > 0
            ):
                return
        time.sleep(0.2)
    raise AssertionError(f"no kernel connected for {notebook}")


def navigation_history(context: BrowserContext, page: Page) -> list[str]:
    """Return the URLs in a tab's session history, read over CDP."""
    session = context.new_cdp_session(page)
    history = session.send("Page.getNavigationHistory")
    session.detach()
    return [entry["url"] for entry in history["entries"]]


def evaluate_without_gesture(cdp: Any, expression: str) -> Any:
    result = cdp.send(
        "Runtime.evaluate",
        {"expression": expression, "userGesture": False, "returnByValue": True},
    )
    return result["result"].get("value")


def sign_in_with_quickstart(page: Page) -> Page:
    """Run the quickstart's login cell, sign in as alice and return the popup."""
    run_cell(page, 1)
    run_cell(page, QUICKSTART_LOGIN_CELL)
    login_output = output_of(page, QUICKSTART_LOGIN_CELL)
    popup = sign_in_with_popup(page, login_output)
    expect(widget_status(login_output)).to_have_text("Signed in as alice")
    return popup


# Tests


def test_quickstart_sign_in_and_second_kernel(
    lab: JupyterProcess, pomerium: PomeriumTestServer, context: BrowserContext
) -> None:
    name = copy_quickstart(lab, "quickstart-first.ipynb")
    page = context.new_page()
    open_in_lab(page, lab, name)

    sign_in_with_quickstart(page)

    run_cell(page, QUICKSTART_WAIT_CELL)
    expect(output_of(page, QUICKSTART_WAIT_CELL)).to_contain_text("Signed in as alice.")
    run_cell(page, QUICKSTART_GET_CELL)
    expect(output_of(page, QUICKSTART_GET_CELL)).to_contain_text(
        "200 alice", timeout=KERNEL_TIMEOUT
    )
    token = stored_token(lab)
    assert token not in page.content()
    first_kernel = kernel_of(lab, name)

    # A second notebook runs in a second kernel, which reads the token cache:
    # no sign-in button, no popup, no login API call.
    login_calls = pomerium.login_api_calls
    second = copy_quickstart(lab, "quickstart-second.ipynb")
    open_in_lab(page, lab, second)
    pages_before = len(context.pages)
    run_all_cells(page)
    expect(output_of(page, QUICKSTART_GET_CELL)).to_contain_text(
        "200 alice", timeout=KERNEL_TIMEOUT
    )
    expect(output_of(page, QUICKSTART_LOGIN_CELL)).to_contain_text(
        "Signed in to 127.0.0.1 as alice."
    )
    expect(output_of(page, 6)).to_contain_text("user: alice")
    expect(page.locator('[data-pomerium="sign-in"]')).to_have_count(0)
    assert len(context.pages) == pages_before
    assert pomerium.login_api_calls == login_calls
    second_kernel = kernel_of(lab, second)
    assert second_kernel != first_kernel


def login_notebook(server: JupyterProcess, name: str, route: str) -> str:
    """Write a notebook that signs in with the widget and then calls the route."""
    return write_notebook(
        server.root_dir / name,
        [
            "%load_ext pomerium_jupyter",
            f"client = %pomerium login {route}",
            'response = client.get("/items")\n'
            'print("status", response.status_code, response.json()["user"])',
        ],
    )


def start_login_notebook(page: Page, server: JupyterProcess, name: str) -> Locator:
    """Open a `login_notebook`, run its login cell and return that cell's output."""
    open_in_lab(page, server, name)
    run_cell(page, 0)
    run_cell(page, 1)
    return output_of(page, 1)


def open_sign_in_popup(page: Page, output: Locator) -> Page:
    """Click the widget's button and return the popup once its form is shown."""
    with page.expect_popup() as popup_info:
        sign_in_button(output).click()
    popup = popup_info.value
    popup.locator("#username").wait_for()
    return popup


def expect_signed_in_request(page: Page, output: Locator) -> None:
    """Check that alice is signed in, then that the request cell gets a 200."""
    expect(widget_status(output)).to_have_text("Signed in as alice")
    run_cell(page, 2)
    expect(output_of(page, 2)).to_contain_text("status 200 alice")


def test_blocked_popup_offers_link(
    lab: JupyterProcess, pomerium: PomeriumTestServer, playwright: Playwright
) -> None:
    # Playwright turns Chromium's popup blocker off unless told otherwise.
    blocking = launch_chromium(
        playwright, ignore_default_args=["--disable-popup-blocking"]
    )
    try:
        context = blocking.new_context()
        context.set_default_timeout(UI_TIMEOUT)
        name = login_notebook(lab, "blocked.ipynb", pomerium.route_url("app"))
        page = context.new_page()
        output = start_login_notebook(page, lab, name)

        # Playwright's clicks and evaluations carry a user gesture, so the
        # click goes over CDP without one, once the activation left by the
        # key presses above has expired (Chromium keeps it about 5 s).
        sign_in_button(output)
        cdp = context.new_cdp_session(page)
        while evaluate_without_gesture(cdp, "navigator.userActivation.isActive"):
            time.sleep(0.5)
        evaluate_without_gesture(
            cdp, "document.querySelector('[data-pomerium=\"sign-in\"]').click()"
        )
        cdp.detach()
        link = output.locator('[data-pomerium="link"]')
        expect(link).to_be_visible()
        expect(link).to_have_attribute("href", re.compile("/e2e/pomerium/start\\?"))
        assert len(context.pages) == 1

        with context.expect_page() as opened:
            link.click()
        fill_sign_in_form(opened.value)
        expect_signed_in_request(page, output)
    finally:
        blocking.close()


def test_sign_in_completes_under_coop(
    lab: JupyterProcess, context: BrowserContext
) -> None:
    with PomeriumTestServer(routes=("app",), sign_in_coop=True) as coop_pomerium:
        name = login_notebook(lab, "coop.ipynb", coop_pomerium.route_url("app"))
        page = context.new_page()
        output = start_login_notebook(page, lab, name)
        popup = open_sign_in_popup(page, output)
        # The sign-in page's Cross-Origin-Opener-Policy cuts the popup off
        # from the notebook page, so completion cannot use window.opener.
        assert popup.evaluate("window.opener === null")
        assert page.evaluate("Boolean(window.opener)") is False
        fill_sign_in_form(popup)

        expect_signed_in_request(page, output)
        expect(widget_status(output)).not_to_have_text(CLOSED_SENTENCE)


def test_flow_of_other_user_rejected(
    lab: JupyterProcess, pomerium: PomeriumTestServer, context: BrowserContext
) -> None:
    route = pomerium.route_url("app")
    # Bob starts a flow; his client stops at the redirect to Pomerium.
    start = httpx.get(
        f"{lab.url}pomerium/start",
        params={"route": route, "origin": lab.origin, "request": "bob-request"},
        headers=lab.headers("bob"),
    )
    assert start.status_code == 302, start.text
    sign_in_url = start.headers["Location"]
    bob_state = httpx.get(
        f"{lab.url}pomerium/api/requests/bob-request", headers=lab.headers("bob")
    )
    assert bob_state.json()["status"] == "pending"

    # Alice, signed in to Jupyter in her own browser, opens Bob's sign-in URL.
    page = context.new_page()
    page.goto(f"{lab.url}lab?reset&token={lab.tokens['alice']}")
    cookie_names = {cookie["name"] for cookie in context.cookies()}
    assert "_xsrf" in cookie_names
    page.goto(sign_in_url)
    fill_sign_in_form(page)
    status = page.locator('[data-pomerium="callback-status"]')
    expect(status).to_have_attribute("data-state", "error")
    expect(status).to_contain_text("started by another Jupyter user")

    assert FileTokenStore(lab.cache_dir).entries() == []
    bob_state = httpx.get(
        f"{lab.url}pomerium/api/requests/bob-request", headers=lab.headers("bob")
    )
    assert bob_state.json()["status"] == "pending"
    assert bob_state.json()["user"] is None
    # Alice cannot read the state of Bob's flow either.
    alice_view = httpx.get(
        f"{lab.url}pomerium/api/requests/bob-request", headers=lab.headers("alice")
    )
    assert alice_view.status_code == 404
    assert "Rejected a Pomerium sign-in completion for Jupyter user alice" in (
        lab.log_text()
    )


def test_expired_flow_stores_nothing(
    tmp_path: Path, pomerium: PomeriumTestServer, browser: Browser
) -> None:
    with jupyter_server(
        tmp_path / "short-flows", extra_args=["--PomeriumExtension.flow_timeout=2"]
    ) as server:
        context = browser.new_context()
        context.set_default_timeout(UI_TIMEOUT)
        name = login_notebook(server, "expired.ipynb", pomerium.route_url("app"))
        page = context.new_page()
        output = start_login_notebook(page, server, name)
        popup = open_sign_in_popup(page, output)

        # The widget polls the flow and reports its expiry by itself.
        expect(widget_status(output)).to_contain_text("The sign-in expired")
        expect(output.locator('[data-pomerium="retry"]')).to_be_visible()

        # Pomerium's sign-in URL is still valid, but the flow is not.
        fill_sign_in_form(popup)
        status = popup.locator('[data-pomerium="callback-status"]')
        expect(status).to_have_attribute("data-state", "error")
        expect(status).to_contain_text("This sign-in expired")
        assert FileTokenStore(server.cache_dir).entries() == []
        expect(widget_status(output)).to_contain_text("The sign-in expired")
        context.close()


def test_closed_popup_then_retry(
    lab: JupyterProcess, pomerium: PomeriumTestServer, context: BrowserContext
) -> None:
    name = login_notebook(lab, "closed.ipynb", pomerium.route_url("app"))
    page = context.new_page()
    output = start_login_notebook(page, lab, name)
    popup = open_sign_in_popup(page, output)
    popup.close()

    expect(widget_status(output)).to_have_text(CLOSED_SENTENCE)
    retry = output.locator('[data-pomerium="retry"]')
    expect(retry).to_be_visible()
    assert FileTokenStore(lab.cache_dir).entries() == []

    with page.expect_popup() as popup_info:
        retry.click()
    fill_sign_in_form(popup_info.value)
    expect(widget_status(output)).to_have_text("Signed in as alice")
    expect(retry).to_be_hidden()
    run_cell(page, 2)
    expect(output_of(page, 2)).to_contain_text("status 200 alice")


def test_run_all_with_waiting_cell(
    lab: JupyterProcess, pomerium: PomeriumTestServer, context: BrowserContext
) -> None:
    route = pomerium.route_url("app")
    name = write_notebook(
        lab.root_dir / "run-all.ipynb",
        [
            "%load_ext pomerium_jupyter",
            f"client = %pomerium login {route}",
            f"%pomerium wait {route}",
            'print("status", client.get("/items").status_code)',
            'print("last cell ran")',
        ],
    )
    page = context.new_page()
    open_in_lab(page, lab, name)
    run_all_cells(page)

    # The waiting cell keeps the kernel busy while the user signs in.
    expect(cell(page, 2).locator(".jp-InputPrompt")).to_have_text("[*]:")
    expect(cell(page, 4).locator(".jp-InputPrompt")).to_have_text("[*]:")
    output = output_of(page, 1)
    sign_in_with_popup(page, output)

    expect(output_of(page, 2)).to_contain_text("Signed in as alice.")
    expect(output_of(page, 3)).to_contain_text("status 200")
    expect(output_of(page, 4)).to_contain_text("last cell ran")
    expect(widget_status(output)).to_have_text("Signed in as alice")


def test_revoked_token_shows_widget_again(
    lab: JupyterProcess, pomerium: PomeriumTestServer, context: BrowserContext
) -> None:
    name = login_notebook(lab, "revoked.ipynb", pomerium.route_url("app"))
    page = context.new_page()
    output = start_login_notebook(page, lab, name)
    sign_in_with_popup(page, output)
    expect_signed_in_request(page, output)
    first_token = stored_token(lab)

    # Revoking every session also ends the browser's Pomerium session, so
    # the new sign-in shows the form again.
    pomerium.revoke_user("alice")
    run_cell(page, 2)
    request_output = output_of(page, 2)
    expect(widget_status(request_output)).to_contain_text("Pomerium needs a sign-in")
    sign_in_with_popup(page, request_output)
    expect(request_output).to_contain_text("status 200 alice")
    assert stored_token(lab) != first_token


def test_notebook7_sign_in(
    lab: JupyterProcess, pomerium: PomeriumTestServer, context: BrowserContext
) -> None:
    name = copy_quickstart(lab, "quickstart-nb7.ipynb")
    tree = context.new_page()
    tree.goto(f"{lab.url}tree?token={lab.token}")
    listed = tree.locator(".jp-DirListing-item", has_text=name)
    # Notebook 7 opens notebooks in a new browser tab.
    with context.expect_page() as opened:
        listed.dblclick()
    page = opened.value
    page.wait_for_url(re.compile(f"/e2e/notebooks/{re.escape(name)}"))
    wait_for_kernel_connection(lab, name)

    sign_in_with_quickstart(page)
    run_cell(page, QUICKSTART_WAIT_CELL)
    run_cell(page, QUICKSTART_GET_CELL)
    expect(output_of(page, QUICKSTART_GET_CELL)).to_contain_text("200 alice")


def test_token_absent_from_saved_notebook_and_logs(
    lab: JupyterProcess, pomerium: PomeriumTestServer, context: BrowserContext
) -> None:
    # The callback page closes its window after a sign-in; keeping it open
    # lets the test read the popup's history afterwards.
    context.add_init_script("window.close = function () {};")
    name = copy_quickstart(lab, "quickstart-secrets.ipynb")
    page = context.new_page()
    open_in_lab(page, lab, name)
    popup = sign_in_with_quickstart(page)
    run_cell(page, QUICKSTART_WAIT_CELL)
    run_cell(page, QUICKSTART_GET_CELL)
    expect(output_of(page, QUICKSTART_GET_CELL)).to_contain_text("200 alice")
    run_cell(page, 6)
    expect(output_of(page, 6)).to_contain_text("user: alice")
    token = stored_token(lab)

    page.keyboard.press("Escape")
    page.keyboard.press("Control+s")
    expect(page.locator(".jp-mod-dirty")).to_have_count(0)
    saved_text = (lab.root_dir / name).read_text()
    saved = json.loads(saved_text)
    assert token not in saved_text
    widget_state = saved["metadata"]["widgets"][WIDGET_STATE_MIME]["state"]
    login_states = [
        model["state"]
        for model in widget_state.values()
        if model["state"].get("status") == "signed-in"
    ]
    assert len(login_states) == 1
    assert login_states[0]["user"] == "alice"
    outputs = json.dumps([c.get("outputs", []) for c in saved["cells"]])
    assert "200 alice" in outputs
    assert token not in outputs

    assert token not in page.content()
    assert token not in page.url
    assert token not in page.evaluate("JSON.stringify(window.localStorage)")
    assert token not in page.evaluate("JSON.stringify(window.sessionStorage)")
    for tab in (page, popup):
        entries = navigation_history(context, tab)
        assert entries
        for url in entries:
            assert token not in url
            assert "pomerium_jwt" not in url
    assert popup.url.endswith("/e2e/pomerium/callback")

    log = lab.log_text()
    assert "Pomerium sign-in completed" in log
    # The access log keeps the callback request with the token scrubbed.
    assert re.search(r"GET /e2e/pomerium/callback\?\S*pomerium_jwt=\[secret\]", log)
    assert token not in log
