"""The web viewer in real headless Chromium (Debian's package, driven by Playwright): the
datasets list and search, a dataset's histograms (checked on screenshots: the bars are
drawn), sorting and filtering the episode table, and an episode's plots synchronised with
its frames (a click on a plot shows that step's frame)."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from conftest_server import dataset_root, serving
from PIL import Image

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
BLUE, RED, GREEN = (31, 119, 180), (214, 39, 40), (44, 160, 44)  # plots.js PALETTE[0, 1, 2]


def colored_pixels(png: bytes, color: tuple[int, int, int], tolerance: int = 40) -> int:
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    return int((np.abs(pixels - np.array(color)).sum(axis=-1) < tolerance).sum())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    index = tmp_path_factory.mktemp("viewer") / "index.sqlite3"
    with serving([dataset_root()], f"sqlite:///{index}") as running:
        yield running


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run `bash scripts/system_deps.sh` (make test "
                    "does) to install Debian's chromium package")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    opened.errors = errors
    yield opened
    context.close()


def test_the_list_shows_every_dataset_and_searches(server, page):
    page.goto(server.url + "/")
    rows = page.locator("#datasets tbody tr")
    rows.nth(2).wait_for()
    assert rows.count() == 3
    assert page.locator("#datasets tbody tr[data-dataset='point_mass'] td").nth(2).inner_text() \
        == "12"
    page.fill("#search", "robotics")
    page.wait_for_function("document.querySelectorAll('#datasets tbody tr').length === 1")
    assert rows.first.get_attribute("data-dataset") == "point_mass"
    rows.first.click()
    page.locator("#episodes tbody tr").first.wait_for()
    assert page.url.endswith("#/d/point_mass")
    assert page.errors == []


def test_dataset_page_draws_histograms_and_sorts_and_filters_episodes(server, page, tmp_path):
    page.goto(server.url + "/#/d/point_mass")
    rows = page.locator("#episodes tbody tr")
    rows.nth(11).wait_for()
    returns = page.locator("#returns-histogram").screenshot(path=str(tmp_path / "returns.png"))
    lengths = page.locator("#lengths-histogram").screenshot(path=str(tmp_path / "lengths.png"))
    assert colored_pixels(returns, BLUE) > 300  # the bars of 10 train returns
    assert colored_pixels(lengths, GREEN) > 300
    assert colored_pixels(returns, GREEN) == 0
    assert page.locator("#statistics tbody tr").count() == 5

    header = "document.querySelector(\"th[data-sort='return']\").textContent"
    page.click("th[data-sort='return']")
    page.wait_for_function(f"{header}.endsWith('▲')")  # the table was drawn again
    page.click("th[data-sort='return']")
    page.wait_for_function(f"{header}.endsWith('▼')")
    assert "order_by=-return" in page.url
    shown = [float(rows.nth(i).locator("td").nth(3).inner_text()) for i in range(12)]
    assert shown == sorted(shown, reverse=True)

    page.fill("#episode-filters input[name=meta]", "operator=alice; success=false")
    page.select_option("#episode-filters select[name=split]", "train")
    page.click("#episode-filters button[type=submit]")
    page.wait_for_function("document.querySelector('.page-info').textContent.endsWith(' of 3')")
    assert "meta=" in page.url
    operators = {rows.nth(i).locator("td").nth(5).inner_text() for i in range(3)}
    assert operators == {"alice"}
    assert "1–3 of 3" in page.locator(".page-info").inner_text()
    assert page.errors == []


def test_episode_plots_follow_the_frames_and_a_click_picks_a_step(server, page, tmp_path):
    page.goto(server.url + "/#/d/frames/e/train/1")
    reward = page.locator("canvas[data-field='reward']")
    position = page.locator("canvas[data-field='observation/position']")
    position.wait_for()
    frame = page.locator("#frame")
    page.wait_for_function("document.querySelector('#frame').dataset.step === '0' && "
                           "document.querySelector('#frame').complete")
    shot = reward.screenshot(path=str(tmp_path / "reward.png"))
    assert colored_pixels(shot, BLUE) > 150
    lines = position.screenshot(path=str(tmp_path / "position.png"))
    assert colored_pixels(lines, BLUE) > 150 and colored_pixels(lines, RED) > 150

    box = position.bounding_box()
    left, right = 58, box["width"] - 22  # plots.js margins
    x = left + (7 / 9) * (right - left)  # step 7 of steps 0..9
    position.click(position={"x": x, "y": box["height"] / 2})
    page.wait_for_function("document.querySelector('#frame').dataset.step === '7' && "
                           "document.querySelector('#frame').complete && "
                           "document.querySelector('#frame').naturalWidth === 24")
    assert page.locator("#scrubber").input_value() == "7"
    assert "step 7 / 9" in page.locator("#step-readout").inner_text()
    pixels = np.asarray(Image.open(io.BytesIO(frame.screenshot())).convert("RGB")).astype(int)
    middle = pixels[pixels.shape[0] * 3 // 4, pixels.shape[1] // 2]
    assert abs(middle[0] - 70) <= 3 and abs(middle[1] - 40) <= 3  # step 7 of episode 1
    after = position.screenshot()
    assert after != lines  # the cursor moved

    page.keyboard.press("ArrowRight")
    page.wait_for_function("document.querySelector('#frame').dataset.step === '8'")
    page.locator("#scrubber").fill("3")
    page.wait_for_function("document.querySelector('#frame').dataset.step === '3'")
    assert page.errors == []


def test_errors_from_the_api_are_shown(server, page):
    page.goto(server.url + "/#/d/no-such-dataset")
    page.locator("#error").wait_for(state="visible")
    assert "no dataset named 'no-such-dataset'" in page.locator("#error").inner_text()


def test_the_last_step_note_only_where_a_field_leaves_it_out(server, page):
    """In the oxe layout every step is real: no "zero-filled last step ... excluded" note."""
    page.goto(server.url + "/#/d/oxe:oxe_like:1.0.0")
    page.locator("#statistics tbody tr").first.wait_for()
    assert "last step" not in page.locator("main").inner_text()
    assert "*" not in page.locator("#statistics").inner_text()
    page.goto(server.url + "/#/d/point_mass")
    page.locator("#statistics-note").wait_for()
    assert "zero-filled last step" in page.locator("#statistics-note").inner_text()
    assert page.errors == []
