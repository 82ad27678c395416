"""`polymodal demo` end to end with a tiny budget, and its report in a real browser."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from polymodal.cli import main

SECTIONS = ("1. The data", "2. Predicting the label", "3. Generating images",
            "4. How good are the generated images?", "5. Scarce labels", "Reproduce")


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory, one_thread) -> Path:
    out = tmp_path_factory.mktemp("demo") / "out"
    # `polymodal demo` offers only a time budget (--time-limit), no epoch or step bound.
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--out", str(out), "--time-limit", "12", "--n-rows", "160"])
    assert exc.value.code == 0
    return out


def test_demo_writes_a_report_with_every_section(demo_dir):
    html = (demo_dir / "report.html").read_text()
    md = (demo_dir / "report.md").read_text()
    for title in SECTIONS:
        assert title in html and title in md, title
    # Self-contained: every image is embedded, nothing is fetched.
    assert not re.search(r"""(src|href)=["']https?://""", html)
    images = re.findall(r"<img [^>]*src=\"([^\"]+)\"", html)
    assert len(images) >= 4 and all(src.startswith("data:image/png;base64,") for src in images)
    summary = json.loads((demo_dir / "summary.json").read_text())
    assert set(summary["headline"]) >= {"predictor test accuracy", "generator FD / real floor",
                                        "augmentation lift", "unlabelled rows lift"}
    assert 0.0 <= summary["headline"]["predictor test accuracy"] <= 1.0
    for name in ("samples.png", "edit.png"):
        assert (demo_dir / name).stat().st_size > 0
    assert (demo_dir / "predictor" / "config.json").exists()
    # The predictor sees the shape in the picture only (caption and shape column ignored).
    schema = json.loads((demo_dir / "predictor" / "schema.json").read_text())
    modality = {c["name"]: c["modality"] for c in schema["columns"]}
    assert modality["shape"] == modality["caption"] == "ignored"
    assert modality["image"] == "image" and modality["material"] == "categorical"
    assert (demo_dir / "generator" / "config.json").exists()


def test_demo_report_renders_in_a_real_browser(demo_dir, tmp_path):
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is missing")
    errors: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(chromium), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
            page.goto((demo_dir / "report.html").resolve().as_uri())
            page.wait_for_load_state("load")
            broken = page.evaluate(
                "Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).length")
            count = page.evaluate("document.images.length")
            page.screenshot(path=str(tmp_path / "demo-report.png"), full_page=True)
        finally:
            browser.close()
    assert count >= 4
    assert broken == 0
    assert errors == []
    assert (tmp_path / "demo-report.png").stat().st_size > 10_000
