"""The web page in a real headless Chromium: predict a row, predict from an uploaded clip,
generate a grid, generate from a chosen clip, edit, see errors, reach and open the drop zones by keyboard, choose a
category from the model's own.

Needs Debian's ``chromium`` (/usr/bin/chromium) and the ``playwright`` Python package (its
driver only: no browser is downloaded). Skipped, saying which is missing, without them.
The server runs in this process under uvicorn on a free loopback port (``live_server``);
a screenshot of the page after each step is left in pytest's tmp dir as an artefact.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from polymodal import Generator
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
def server_url(model_dirs, clip_gen_dir, live_server):
    app = create_app(load_models([model_dirs["predictor"], model_dirs["generator"],
                                  model_dirs["tones"], clip_gen_dir],
                                 ["shop", "digits", "tones", "clip-gen"]))
    with live_server(app) as url:
        yield url


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
    page.select_option("#predict-form select[name=color]", "green")
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


def test_predict_from_an_uploaded_clip_in_the_page(page, make_clip, tone_hz, video_bytes,
                                                   tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    (folder / "high.flac").write_bytes(make_clip(tone_hz["high"] * 1.02, seed=5,
                                                 file_format="FLAC"))
    (folder / "phone.mp4").write_bytes(video_bytes)
    page.select_option("#model", "tones")  # one feature: the audio column "clip"
    assert page.locator('.drop[data-column="clip"] input[type=file]').count() == 1
    page.set_input_files('.drop[data-column="clip"] input', str(folder / "high.flac"))
    # The chosen clip can be heard before it is sent: a player that has read its length.
    page.wait_for_function("""() => {
      const player = document.querySelector('.drop[data-column="clip"] audio');
      return player !== null && player.readyState >= 1 && Math.abs(player.duration - 0.5) < 0.05;
    }""")
    page.click("#predict-submit")
    page.wait_for_selector("#prediction")
    assert page.inner_text("#prediction") == "high"
    assert page.locator("#predict-result .bar").count() == 2 and page.is_hidden("#error")
    page.screenshot(path=str(tmp_path_factory.mktemp("screens") / "clip.png"), full_page=True)
    # A video chosen by mistake: the server's 422 naming the field is shown, not a crash.
    page.set_input_files('.drop[data-column="clip"] input', str(folder / "phone.mp4"))
    page.click("#predict-submit")
    page.wait_for_selector("#error:not([hidden])")
    assert page.inner_text("#error").startswith("422: clip: ")
    assert "video file" in page.inner_text("#error")


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


def test_generate_from_a_chosen_clip_in_the_page(page, clip_gen_dir, make_clip,
                                                tmp_path_factory):
    clip = make_clip(440, seconds=1.0, rate_hz=8000, file_format="FLAC")
    path = tmp_path_factory.mktemp("condition") / "spoken.flac"
    path.write_bytes(clip)
    page.select_option("#model", "clip-gen")
    # The grid another model drew is gone once this model is chosen.
    assert page.locator("#generate-result img").count() == 0
    # The audio condition is a drop zone for a file, not a text field.
    assert page.locator('#generate-form .drop[data-condition="audio"] input[type=file]').count() == 1
    assert page.locator('#generate-form input[type=text], #generate-form textarea').count() == 0
    page.set_input_files('#generate-form .drop[data-condition="audio"] input', str(path))
    page.fill("#gen-n", "3")
    page.fill("#gen-steps", "2")
    page.fill("#gen-seed", "5")
    with page.expect_request("**/models/clip-gen/generate") as sent:
        page.click("#generate-submit")
    page.wait_for_function(ALL_IMAGES_LOADED, arg="#generate-result img")
    assert page.is_hidden("#error") and page.locator("#generate-result img").count() == 3
    body = json.loads(sent.value.post_data)
    header, payload = body["conditions"]["audio"].split(",", 1)
    assert header.startswith("data:") and base64.b64decode(payload) == clip
    got = np.stack([np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))))
                    for src in page.eval_on_selector_all("#generate-result img",
                                                         "(imgs) => imgs.map((i) => i.src)")])
    expected = Generator.load(clip_gen_dir).sample(3, conditions={"audio": clip}, num_steps=2,
                                                   seed=5)
    np.testing.assert_array_equal(got, expected)


def test_the_page_shows_the_servers_error_message(page, server_url):
    page.select_option("#model", "digits")
    page.fill("#gen-n", "1000")
    with page.expect_request("**/models/digits/generate") as sent:
        page.click("#generate-submit")
    page.wait_for_selector("#error:not([hidden])")
    expected = httpx.post(server_url + "/models/digits/generate", content=sent.value.post_data,
                          headers={"content-type": "application/json"}).json()
    assert expected["field"] == "n" and "max_images" in expected["detail"]
    assert page.inner_text("#error") == f"422: {expected['detail']}"


FOCUSED = """() => {
  const el = document.activeElement;
  const zone = el && el.closest(".drop");
  return { tag: el ? el.tagName : null, type: el ? el.type : null,
           zone: zone ? (zone.dataset.column || zone.id) : null };
}"""


def tab_to(page, zone: str, max_presses: int = 30) -> int:
    """Press Tab until the focus is on the file input of drop zone ``zone``; the presses."""
    for presses in range(1, max_presses + 1):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED)
        if focused["zone"] == zone:
            assert focused == {"tag": "INPUT", "type": "file", "zone": zone}, focused
            return presses
    raise AssertionError(f"{max_presses} Tab presses never reached the {zone!r} drop zone")


def ignore(_chooser) -> None:
    pass


def test_drop_zones_are_reached_and_opened_by_keyboard(page, model_dirs):
    table = model_dirs["table"]
    # A listener for the whole test keeps Playwright's file-chooser interception on: turned
    # off and on between choosers, a key press can reach the browser before it is back on.
    page.on("filechooser", ignore)
    try:
        open_drop_zones_by_keyboard(page, table)
    finally:
        page.remove_listener("filechooser", ignore)


def open_drop_zones_by_keyboard(page, table) -> None:
    page.select_option("#model", "shop")
    page.focus("#model")
    tab_to(page, "image")
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Enter")
    chooser.value.set_files(str(table / "images/img_2.png"))
    page.wait_for_function(ALL_IMAGES_LOADED, arg='.drop[data-column="image"] img')
    tab_to(page, "audio")  # the next drop zone is reached from there
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Space")
    chooser.value.set_files(str(table / "audio/clip_2.wav"))
    assert "clip_2.wav" in page.inner_text('.drop[data-column="audio"]')

    page.select_option("#model", "digits")
    page.focus("#model")
    tab_to(page, "edit-image-drop")
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Enter")
    chooser.value.set_files(str(table / "images/img_3.png"))
    page.wait_for_function(ALL_IMAGES_LOADED, arg="#edit-image-drop img")
    tab_to(page, "edit-mask-drop")


def test_categorical_fields_offer_the_models_categories(page, server_url):
    page.select_option("#model", "shop")
    known = {c["name"]: c for c in httpx.get(server_url + "/models/shop").json()["columns"]}
    assert sorted(known["color"]["categories"]) == ["blue", "green", "red"]
    options = page.eval_on_selector_all("#predict-form select[name=color] option",
                                        "(options) => options.map((o) => o.value)")
    assert options == ["", *known["color"]["categories"]]  # "" is the unknown value
    page.select_option("#predict-form select[name=color]", "blue")
    page.fill("#predict-form [name=price]", "3.5")
    page.fill("#predict-form [name=tags]", "a")
    page.fill("#predict-form [name=date]", "2024-02-01")
    page.click("#predict-submit")
    page.wait_for_selector("#prediction")
    assert page.is_hidden("#error")
