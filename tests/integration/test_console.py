"""The web console at /ui in headless Chromium against a real stack: it generates chest X-rays
and shows them with their provenance, encodes and decodes an image side by side, grades a text,
follows a job over server-sent events, sends the API key it is given, and loads nothing from
outside the gateway. Set MEDSERVE_CONSOLE_SCREENSHOT=<png> to keep a screenshot (docs/images)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness import API_MODELS, ROOT
from tests.integration.test_gateway_auth import KEYS

MODELS = API_MODELS  # one stack for every route
XRAY = ROOT / "examples" / "medvae" / "data" / "phantom_xray.png"
LOADED = "(sel) => [...document.querySelectorAll(sel)].some(i => i.complete && i.naturalWidth > 0)"

pytestmark = pytest.mark.skipif(shutil.which("chromium") is None, reason="needs chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=shutil.which("chromium"),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield chromium
        chromium.close()


def open_console(browser: Any, url: str) -> tuple[Any, list[str], list[Any]]:
    """A page on /ui/, with the page errors and every request it makes recorded."""
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    errors: list[str] = []
    requests: list[Any] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", lambda request: requests.append(request))
    page.goto(url + "/ui/")
    return page, errors, requests


def test_the_console_generates_encodes_grades_and_follows_a_job(embedded_stack, redis_url,
                                                                browser) -> None:  # fmt: skip
    stack = embedded_stack(MODELS, redis_url=redis_url)
    page, errors, requests = open_console(browser, stack.url)
    ready = f"{len(MODELS)}/{len(MODELS)}"  # every model of the stack ready
    page.wait_for_function(f"document.querySelector('#status').textContent.includes('{ready}')")

    page.fill("#generate-form [name=n]", "2")
    page.fill("#generate-form [name=steps]", "2")
    page.fill("#generate-form [name=seed]", "7")
    page.select_option("#generate-form [name=size]", "64")
    page.click("#generate-form button[type=submit]")
    page.wait_for_function(LOADED, arg="img.generated", timeout=120_000)
    widths = page.eval_on_selector_all("img.generated", "all => all.map(i => i.naturalWidth)")
    assert widths == [64, 64]
    provenance = page.inner_text("#generate-provenance")
    assert "60 year old female. No acute cardiopulmonary process." in provenance
    assert "random-tiny" in provenance and "sha256:" in provenance
    assert page.inner_text("#generate-grid").count("SYNTHETIC") == 2
    if os.environ.get("MEDSERVE_CONSOLE_SCREENSHOT"):
        page.screenshot(path=os.environ["MEDSERVE_CONSOLE_SCREENSHOT"], full_page=True)

    page.click("nav [data-tab=medvae]")
    page.set_input_files("#medvae-form [name=file]", str(XRAY))
    page.click("#medvae-form button[type=submit]")
    page.wait_for_function(LOADED, arg="#medvae-recon", timeout=120_000)
    sizes = page.eval_on_selector_all("#medvae img", "all => all.map(i => i.naturalWidth)")
    assert sizes[0] == sizes[1] > 0 and "latent shape" in page.inner_text("#medvae-details")

    page.click("nav [data-tab=medval]")
    page.fill("#medval-form [name=max_tokens]", "200")
    page.click("#medval-form button[type=submit]")
    page.wait_for_selector("#medval-result .risk", timeout=120_000)
    assert page.inner_text("#medval-result .risk")[0] in "1234"
    assert "machine-generated" in page.inner_text("#medval-result")

    page.click("nav [data-tab=jobs]")
    page.select_option("#job-form [name=type]", "sleep")
    page.fill("#job-form [name=params]", '{"items": 3}')
    page.click("#job-form button[type=submit]")
    page.wait_for_function("document.querySelector('#job-state').textContent.startsWith('queued')")
    job_id = page.inner_text("#job-id")
    assert len(job_id) == 32 and job_id in page.inner_text("#jobs-table")
    page.click("#job-cancel")  # no runner on this stack: a queued job is cancelled at once
    page.wait_for_function("document.querySelector('#job-state').textContent.startsWith('cancel')")

    outside = [r.url for r in requests if not r.url.startswith((stack.url, "data:", "blob:"))]
    assert not errors and not outside, (errors, outside)


def test_the_console_sends_the_api_key_it_is_given(embedded_stack, browser) -> None:
    stack = embedded_stack(["echo"], api_keys=KEYS)
    page, errors, requests = open_console(browser, stack.url)
    page.wait_for_function("document.querySelector('#status').textContent.includes('401')")
    assert "API key" in page.inner_text("#status")
    page.fill("#api-key", "k-beta")
    page.dispatch_event("#api-key", "change")
    page.wait_for_function("document.querySelector('#status').textContent.includes('1/1')")
    sent = [r.headers.get("authorization") for r in requests if r.url.endswith("/v1/models")]
    assert sent[-1] == "Bearer k-beta"
    page.reload()  # the key stays for the tab's session
    page.wait_for_function("document.querySelector('#status').textContent.includes('1/1')")
    assert page.input_value("#api-key") == "k-beta" and not errors
