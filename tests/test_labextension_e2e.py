"""End-to-end test of the JupyterLab extension.

A real JupyterLab server runs in a subprocess with the Pomerium server
extension and the built lab extension, Chromium drives it through Playwright,
and the Pomerium test server provides the sign-in.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _jupyter_process import JupyterProcess, jupyter_server, launch_chromium
from playwright.sync_api import Page, expect, sync_playwright

from pomerium_jupyter import FileTokenStore
from pomerium_jupyter.testing import PomeriumTestServer

pytestmark = pytest.mark.browser

BASE_URL = "/lab-e2e/"
STATUS_ITEM = '[data-pomerium="status-item"]'
NOTEBOOK = "signed-in.ipynb"
# Milliseconds, for Playwright waits.
UI_TIMEOUT = 30_000


def _write_notebook(path: Path, route: str) -> None:
    source = (
        "%load_ext pomerium_jupyter\n"
        f"c = %pomerium login {route}\n"
        'print("upstream user:", c.get("/").json()["user"])'
    )
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "id": "sign-in-check",
                "metadata": {},
                "outputs": [],
                "source": source,
            }
        ],
        "metadata": {
            "kernelspec": {
                "display_name": "Python 3",
                "language": "python",
                "name": "python3",
            }
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(notebook))


@pytest.fixture
def pomerium() -> Iterator[PomeriumTestServer]:
    with PomeriumTestServer(routes=("app",)) as server:
        yield server


@pytest.fixture
def lab_server(
    tmp_path: Path, pomerium: PomeriumTestServer
) -> Iterator[JupyterProcess]:
    with jupyter_server(tmp_path, base_url=BASE_URL) as server:
        _write_notebook(server.root_dir / NOTEBOOK, pomerium.route_url("app"))
        yield server


def _run_palette_command(page: Page, label: str) -> None:
    page.keyboard.press("Control+Shift+C")
    palette_input = page.locator(".lm-CommandPalette-input")
    palette_input.wait_for(state="visible", timeout=UI_TIMEOUT)
    palette_input.fill(label)
    item = page.locator(".lm-CommandPalette-item", has_text=label).first
    item.wait_for(state="visible", timeout=UI_TIMEOUT)
    item.click()


def _sign_in_through_popup(page: Page, route: str) -> None:
    """Sign alice in to `route` through the palette and Pomerium's popup form."""
    # The palette command prompts for the route, and the OK click opens the
    # popup with Pomerium's sign-in form.
    _run_palette_command(page, "Sign in to a Pomerium route…")
    route_input = page.locator(".jp-Dialog input")
    route_input.wait_for(state="visible")
    route_input.fill(route)
    with page.expect_popup() as popup_info:
        page.locator(".jp-Dialog .jp-mod-accept").click()
    popup = popup_info.value
    popup.locator("#username").fill("alice")
    popup.locator("#password").fill("alice-password")
    with popup.expect_event("close", timeout=UI_TIMEOUT):
        popup.locator("#sign-in").click()


def test_sign_in_status_and_sign_out(
    lab_server: JupyterProcess, pomerium: PomeriumTestServer
) -> None:
    route = pomerium.route_url("app")
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            context = browser.new_context()
            page = context.new_page()
            page.set_default_timeout(UI_TIMEOUT)
            page.goto(f"{lab_server.url}lab?token={lab_server.token}")
            page.locator("#jp-main-statusbar").wait_for(state="visible")
            status_item = page.locator(STATUS_ITEM)
            expect(status_item).to_be_hidden()

            _sign_in_through_popup(page, route)

            expect(status_item).to_be_visible()
            expect(status_item).to_contain_text("Pomerium: alice")
            expect(page.get_by_text("as alice", exact=False).first).to_be_visible()

            # A click on the item lists the sign-ins with a sign-out button.
            status_item.click()
            listed = page.locator(".jp-Dialog .jp-PomeriumSignIns-item")
            expect(listed).to_have_count(1)
            expect(listed).to_contain_text("alice")
            expect(listed.locator("button", has_text="Sign out")).to_be_visible()
            page.locator(".jp-Dialog button", has_text="Close").click()
            expect(page.locator(".jp-Dialog")).to_have_count(0)

            entries = FileTokenStore(lab_server.cache_dir).entries()
            assert len(entries) == 1
            assert entries[0].token.user == "alice"
            token_value = entries[0].token.value
            assert token_value not in page.url
            assert token_value not in page.content()
            local_storage = page.evaluate("JSON.stringify(window.localStorage)")
            assert token_value not in local_storage

            # The kernel reads the token from the shared cache: no new sign-in.
            login_calls = pomerium.login_api_calls
            pages_before = len(context.pages)
            page.goto(f"{lab_server.url}lab/tree/{NOTEBOOK}?token={lab_server.token}")
            # The kernel status item reads "Idle" only once the kernel is
            # connected; a cell run before that is not executed.
            kernel_status = page.locator("#jp-main-statusbar", has_text="| Idle")
            kernel_status.wait_for(state="visible", timeout=60_000)
            page.locator(".jp-Cell .jp-InputArea-editor").first.click()
            page.keyboard.press("Shift+Enter")
            output = page.locator(".jp-OutputArea-output", has_text="upstream user:")
            expect(output).to_contain_text("upstream user: alice", timeout=60_000)
            all_output = page.locator(".jp-OutputArea").first.inner_text()
            assert token_value not in all_output
            assert pomerium.login_api_calls == login_calls
            assert len(context.pages) == pages_before

            # The status bar item of the notebook page shows the same sign-in.
            expect(status_item).to_contain_text("Pomerium: alice")

            # Sign out from the palette; the dialog preselects the only
            # deployment.
            _run_palette_command(page, "Sign out of a Pomerium deployment…")
            page.locator(".jp-Dialog select").wait_for(state="visible")
            page.locator(".jp-Dialog .jp-mod-accept").click()
            expect(status_item).to_be_hidden()
            expect(page.get_by_text("Signed out of", exact=False).first).to_be_visible()
            assert FileTokenStore(lab_server.cache_dir).entries() == []
        finally:
            browser.close()

    log = lab_server.log_text()
    assert "Pomerium sign-in completed" in log
    assert token_value not in log


def test_notebook7_menu_and_sign_out_all(
    lab_server: JupyterProcess, pomerium: PomeriumTestServer
) -> None:
    store = FileTokenStore(lab_server.cache_dir)
    route = pomerium.route_url("app")
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_context().new_page()
            page.set_default_timeout(UI_TIMEOUT)
            page.goto(f"{lab_server.url}tree?token={lab_server.token}")

            # Notebook 7 builds the same "Pomerium" menu from the settings schema.
            page.locator(".lm-MenuBar-itemLabel", has_text="Pomerium").click()
            menu = page.locator(".lm-Menu")
            expect(menu).to_contain_text("Sign in to a Pomerium route…")
            expect(menu).to_contain_text("Sign out of all Pomerium deployments")
            page.keyboard.press("Escape")

            # Sign in through the popup, then sign out of everything.
            _sign_in_through_popup(page, route)
            expect(page.get_by_text("as alice", exact=False).first).to_be_visible()
            assert len(store.entries()) == 1

            _run_palette_command(page, "Sign out of all Pomerium deployments")
            page.locator(".jp-Dialog .jp-mod-accept", has_text="Sign out").click()
            expect(
                page.get_by_text("Signed out of all Pomerium deployments").first
            ).to_be_visible()
            assert store.entries() == []
        finally:
            browser.close()

    status = httpx.get(
        f"{lab_server.url}pomerium/api/status", headers=lab_server.headers()
    )
    assert status.json()["deployments"] == []
