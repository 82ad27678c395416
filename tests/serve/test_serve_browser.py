"""The web page in a real headless Chromium: predict a row, generate a grid, edit, see errors.

Needs Debian's ``chromium`` (/usr/bin/chromium) and the ``playwright`` Python package (its
driver only: no browser is downloaded). Skipped, saying which is missing, without them.
The server runs in this process under uvicorn on a free loopback port; a screenshot of
the page after each step is left in pytest's tmp dir as an artefact.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from polymodal.serve import create_app, load_models

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"]

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing; install Debian's chromium package "
                "(apt-get install -y chromium) to run the browser test", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="the playwright package is missing (pip install playwright)")


@pytest.fixture(scope="module")
def model_dirs(served_model_dirs) -> dict[str, Path]:
    return served_model_dirs  # the same small models as test_serve.py, trained once


@pytest.fixture(scope="module")
def server_url(model_dirs):
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(load_models([model_dirs["predictor"], model_dirs["generator"]],
                                  ["shop", "digits"]))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield url
    server.should_exit = True
    thread.join(30)


@pytest.fixture(scope="module")
def page(server_url, tmp_path_factory):
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1100, "height": 1000})
        try:
            tab = browser.new_page()
            tab.set_default_timeout(30_000)
            tab.goto(server_url + "/")
            tab.wait_for_selector("body[data-ready=true]")
            yield tab
        finally:
            browser.close()


ALL_IMAGES_LOADED = """(selector) => {
  const images = [...document.querySelectorAll(selector)];
  return images.length > 0 && images.every((img) => img.complete && img.naturalWidth > 0);
}"""


def test_predict_a_row_in_the_page(page, model_dirs, tmp_path_factory):
    table = model_dirs["table"]
    page.select_option("#model", "shop")
    page.fill("#predict-form [name=price]", "12.5")
    page.fill("#predict-form [name=color]", "green")
    page.fill("#predict-form [name=caption]", "a bright green tile")
    page.fill("#predict-form [name=tags]", "b")
    page.fill("#predict-form [name=date]", "2024-01-06")
    page.set_input_files('.drop[data-column="image"] input', str(table / "images/img_1.png"))
    page.set_input_files('.drop[data-column="audio"] input', str(table / "audio/clip_1.wav"))
    page.click("#predict-submit")
    page.wait_for_selector("#prediction")
    assert page.inner_text("#prediction") in ("no", "yes")
    assert page.locator("#predict-result .bar").count() == 2  # one bar per class
    assert page.is_hidden("#error")
    # The dropped image is previewed in its field.
    assert page.evaluate(ALL_IMAGES_LOADED, '.drop[data-column="image"] img')
    page.screenshot(path=str(tmp_path_factory.mktemp("screens") / "predict.png"), full_page=True)


def test_generate_a_grid_and_edit_in_the_page(page, model_dirs, tmp_path_factory):
    page.select_option("#model", "digits")
    page.select_option("#generate-form select[name=label]", label="7")
    page.fill("#gen-n", "16")
    page.click("#generate-submit")
    page.wait_for_function(ALL_IMAGES_LOADED, arg="#generate-result img")
    assert page.locator("#generate-result img").count() == 16
    sizes = page.evaluate("[...document.querySelectorAll('#generate-result img')]"
                          ".map((img) => [img.naturalWidth, img.naturalHeight])")
    assert sizes == [[8, 8]] * 16
    page.set_input_files("#edit-image", str(model_dirs["table"] / "images/img_3.png"))
    page.click("#edit-submit")
    page.wait_for_function(ALL_IMAGES_LOADED, arg="#edit-result img")
    assert page.is_hidden("#error")
    screens = tmp_path_factory.mktemp("screens")
    page.screenshot(path=str(screens / "generate.png"), full_page=True)
    assert (screens / "generate.png").stat().st_size > 1000


def test_the_page_shows_the_servers_error_message(page, server_url):
    page.select_option("#model", "digits")
    page.fill("#gen-n", "1000")
    page.click("#generate-submit")
    page.wait_for_selector("#error:not([hidden])")
    expected = httpx.post(server_url + "/models/digits/generate", json={"n": 1000}).json()
    assert page.inner_text("#error") == f"422: {expected['detail']}"
