"""GraphiQL in a real browser, on a network that reaches nothing but the service: the page loads, a token
goes into the Headers tab, a query runs and its result shows. Headless Chromium from the system's packages
(`apt-get install chromium`; .ci/run installs it and sets REQUIRE_BROWSER=1, so CI cannot skip this)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, Route, async_playwright

from tests.served import Served, serve

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
# As root in a container Chromium's sandbox cannot start; and nothing may call out to Google's services.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
USER = "graphiql.check@example.com"

if CHROMIUM is None:
    if os.environ.get("REQUIRE_BROWSER") == "1":
        raise RuntimeError("REQUIRE_BROWSER=1 but no Chromium is installed (apt-get install chromium)")
    pytest.skip("headless Chromium is not installed here (apt-get install chromium); CI installs it", allow_module_level=True)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Served]:
    with serve(tmp_path) as served:
        yield served


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


async def offline_page(browser: Browser, server: Served) -> tuple[Page, list[str], list[str]]:
    """A page that may load only from the service; what it tried elsewhere and what its console said."""
    page = await browser.new_page(viewport={"width": 1280, "height": 720})
    elsewhere: list[str] = []
    console: list[str] = []

    async def only_the_service(route: Route) -> None:
        if route.request.url.startswith(server.url + "/"):
            await route.continue_()
        else:
            elsewhere.append(route.request.url)
            await route.abort("internetdisconnected")

    await page.route("**/*", only_the_service)
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    return page, elsewhere, console


async def replace_editor_text(page: Page, editor: str, text: str) -> None:
    """Select all of one of GraphiQL's editors and type `text` over it, as a person pasting would."""
    await page.click(f"{editor} .CodeMirror-lines")
    await page.keyboard.press("Control+A")
    await page.keyboard.insert_text(text)


async def test_graphiql_runs_a_query_with_a_token_while_offline(server: Served, browser: Browser) -> None:
    assert server.token is not None
    headers = {"Authorization": f"Bearer {server.token}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers) as client:
        tenant = (await client.post("/graphql", json={"query": "{ viewer { accountIdentifier } }"})).json()
        account = tenant["data"]["viewer"]["accountIdentifier"]
        created = await client.post(f"/gateway/ng/api/scim/account/{account}/Users", json={"userName": USER, "active": True})
        assert created.status_code == 201

    page, elsewhere, console = await offline_page(browser, server)
    await page.goto(server.url + "/graphql")
    await page.wait_for_selector(".graphiql-execute-button")
    # The Headers tab is open with the placeholder to replace.
    headers_editor = ".graphiql-editor-tool .graphiql-editor:not(.hidden)"
    assert '"Authorization": "Bearer <token>"' in await page.inner_text(headers_editor)

    await replace_editor_text(page, headers_editor, json.dumps({"Authorization": f"Bearer {server.token}"}, indent=2))
    query = "{ users(first: 5) { nodes { userName } } }"
    await replace_editor_text(page, ".graphiql-query-editor", query)
    # GraphiQL takes in an edited query (and its operation's name) after a short pause in typing, and
    # then keeps it in local storage; running it earlier would send the old operation's name.
    await page.wait_for_function("query => localStorage.getItem('graphiql:query') === query", arg=query)
    await page.click(".graphiql-execute-button")
    result = page.locator(".result-window")
    await result.filter(has_text=USER).wait_for()
    assert '"errors"' not in await result.inner_text()

    # A dialog, whose styles GraphiQL adds as it opens: the page policy lets them through.
    await page.click('[aria-label="Open settings dialog"]')
    await page.wait_for_selector('[role="dialog"]')
    await page.keyboard.press("Escape")

    assert elsewhere == []
    assert [line for line in console if "Content Security Policy" in line] == []
    if target := os.environ.get("GRAPHIQL_SCREENSHOT"):
        await page.screenshot(path=target)


async def test_graphiql_shows_the_servers_refusal_of_the_placeholder_token(server: Served, browser: Browser) -> None:
    page, elsewhere, _ = await offline_page(browser, server)
    await page.goto(server.url + "/graphql")
    await page.click(".graphiql-execute-button")
    await page.locator(".result-window").filter(has_text="UNAUTHENTICATED").wait_for()
    assert elsewhere == []
