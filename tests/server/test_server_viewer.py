"""The web viewer in real headless Chromium (Debian's package, driven by Playwright): the
datasets list and search, a dataset's histograms (checked on screenshots: the bars are
drawn), sorting and filtering the episode table, and an episode's plots synchronised with
its frames (a click on a plot shows that step's frame); an error replaces the page it
follows; a dataset with many episode fields stays inside the window; the language
instruction, depth maps drawn as images, stored JPEG frames served as stored, real
last-step values plotted, legends clear of titles."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from dm_env import specs
from PIL import Image

from rlds_hub.format.encode import ExampleEncoder
from rlds_hub.format.features import episode_features
from rlds_hub.storage.writer import DatasetWriter
from rlds_hub.testing.service import serving
from rlds_hub.testing.service_data import dataset_root

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
BLUE, RED, GREEN = (31, 119, 180), (214, 39, 40), (44, 160, 44)  # plots.js PALETTE[0, 1, 2]


OXE = "oxe:oxe_like:1.0.0"
EPISODE_FIELDS, RICH_STEPS, DEPTH = 17, 6, (16, 20)


def pixels_of(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def colored_pixels(png: bytes, color: tuple[int, int, int], tolerance: int = 40) -> int:
    return int((np.abs(pixels_of(png) - np.array(color)).sum(axis=-1) < tolerance).sum())


def wait_until(page, expression: str, timeout: float = 30.0) -> None:
    """Polls a JavaScript expression until it is true. (Playwright's wait_for_function polls
    by evaluating strings inside the page, which the viewer's Content-Security-Policy
    forbids; evaluating from outside, as here, is not the page's doing.)"""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout:.0f} s: {expression}")
        time.sleep(0.05)


def color_mask(pixels: np.ndarray, color: tuple[int, int, int], tolerance: int = 40) -> np.ndarray:
    return np.abs(pixels - np.array(color)).sum(axis=-1) < tolerance


def write_rich(path: Path) -> Path:
    """A dataset in the rlds layout with what real datasets have and the other test datasets
    lack: 17 episode fields with long names and values (like fractal's), a float depth map
    and a uint16 one, a 12-value observation with a long name, a language instruction per
    step, and Minari-style ``infos`` that are real on the last step (its action, reward and
    discount are zero-filled)."""
    text = specs.StringArray((), string_type=str)
    episode_spec = {
        f"annotation_{k:02d}_with_a_long_name": text if k % 2 else specs.Array((), np.float64)
        for k in range(EPISODE_FIELDS)
    }
    features = episode_features(
        observation_spec={
            "depth": specs.Array(DEPTH, np.float32),
            "depth16": specs.Array((12, 12, 1), np.uint16),
            "joint_positions_of_the_arm": specs.Array((12,), np.float32),
        },
        action_spec=specs.Array((2,), np.float32),
        reward_spec=specs.Array((), np.float64),
        discount_spec=specs.Array((), np.float64),
        step_metadata_spec={
            "infos": {"distance_to_goal": specs.Array((), np.float64)},
            "language_instruction": text,
        },
        episode_metadata_spec=episode_spec,
    )
    encoder = ExampleEncoder(features)
    t = np.arange(RICH_STEPS)
    real = t < RICH_STEPS - 1
    with DatasetWriter(path, name="rich") as writer:
        writer.set_features(features, metadata={"layout": "rlds", "env_name": "tests/rich"})
        for episode in range(3):
            columns = np.arange(DEPTH[1], dtype=np.float32)
            values: dict[str, object] = {
                "steps/observation/depth": np.broadcast_to(columns, (RICH_STEPS, *DEPTH))
                + t[:, None, None].astype(np.float32),  # a left-to-right ramp, deeper each step
                "steps/observation/depth16": (
                    np.arange(144).reshape(1, 12, 12, 1) * 400 + t[:, None, None, None] * 1000
                ).astype(np.uint16),
                "steps/observation/joint_positions_of_the_arm": (
                    t[:, None] * np.arange(1, 13)
                ).astype(np.float32),
                "steps/action": np.where(real[:, None], 0.5, 0.0).repeat(2, 1).astype(np.float32),
                "steps/reward": np.where(real, 1.0 + t, 0.0),
                "steps/discount": np.where(real, 1.0, 0.0),
                "steps/infos/distance_to_goal": 10.0 - t,  # real on the last step too
                "steps/language_instruction": np.array(
                    [f"stack the red block on the blue one ({s})" for s in t], object
                ),
                "steps/is_first": t == 0,
                "steps/is_last": ~real,
                "steps/is_terminal": ~real,
            }
            metadata = {
                key: f"/data/raw/a/long/path/to/episode_{episode}/{key}.h5"
                if k % 2
                else np.float64(episode * 1000.5 + k)
                for k, key in enumerate(episode_spec)
            }
            values.update(metadata)
            row = {
                "num_steps": RICH_STEPS,
                "terminated": True,
                "return": float(np.sum(values["steps/reward"])),
                "metadata": {k: v if isinstance(v, str) else float(v) for k, v in metadata.items()},
            }
            writer.append(encoder.encode_pieces(values), row)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    index = tmp_path_factory.mktemp("viewer") / "index.sqlite3"
    rich = write_rich(tmp_path_factory.mktemp("rich_root") / "rich").parent
    with serving([dataset_root(), rich], f"sqlite:///{index}") as running:
        yield running


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(
            f"{CHROMIUM} is missing: run `bash scripts/system_deps.sh` (make test "
            "does) to install Debian's chromium package"
        )
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
    rows.nth(3).wait_for()
    assert rows.count() == 4
    assert (
        page.locator("#datasets tbody tr[data-dataset='point_mass'] td").nth(2).inner_text() == "12"
    )
    page.fill("#search", "robotics")
    wait_until(page, "document.querySelectorAll('#datasets tbody tr').length === 1")
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
    wait_until(page, f"{header}.endsWith('▲')")  # the table was drawn again
    page.click("th[data-sort='return']")
    wait_until(page, f"{header}.endsWith('▼')")
    assert "order_by=-return" in page.url
    shown = [float(rows.nth(i).locator("td").nth(3).inner_text()) for i in range(12)]
    assert shown == sorted(shown, reverse=True)

    page.fill("#episode-filters input[name=meta]", "operator=alice; success=false")
    page.select_option("#episode-filters select[name=split]", "train")
    page.click("#episode-filters button[type=submit]")
    wait_until(page, "document.querySelector('.page-info').textContent.endsWith(' of 3')")
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
    wait_until(
        page,
        "document.querySelector('#frame').dataset.step === '0' && "
        "document.querySelector('#frame').complete",
    )
    shot = reward.screenshot(path=str(tmp_path / "reward.png"))
    assert colored_pixels(shot, BLUE) > 150
    lines = position.screenshot(path=str(tmp_path / "position.png"))
    assert colored_pixels(lines, BLUE) > 150 and colored_pixels(lines, RED) > 150

    box = position.bounding_box()
    left, right = 58, box["width"] - 22  # plots.js margins
    x = left + (7 / 9) * (right - left)  # step 7 of steps 0..9
    position.click(position={"x": x, "y": box["height"] / 2})
    wait_until(
        page,
        "document.querySelector('#frame').dataset.step === '7' && "
        "document.querySelector('#frame').complete && "
        "document.querySelector('#frame').naturalWidth === 24",
    )
    assert page.locator("#scrubber").input_value() == "7"
    assert "step 7 / 9" in page.locator("#step-readout").inner_text()
    pixels = np.asarray(Image.open(io.BytesIO(frame.screenshot())).convert("RGB")).astype(int)
    middle = pixels[pixels.shape[0] * 3 // 4, pixels.shape[1] // 2]
    assert abs(middle[0] - 70) <= 3 and abs(middle[1] - 40) <= 3  # step 7 of episode 1
    after = position.screenshot()
    assert after != lines  # the cursor moved

    page.keyboard.press("ArrowRight")
    wait_until(page, "document.querySelector('#frame').dataset.step === '8'")
    page.locator("#scrubber").fill("3")
    wait_until(page, "document.querySelector('#frame').dataset.step === '3'")
    assert page.errors == []


def test_errors_from_the_api_are_shown(server, page):
    page.goto(server.url + "/#/d/no-such-dataset")
    page.locator("#error").wait_for(state="visible")
    assert "no dataset named 'no-such-dataset'" in page.locator("#error").inner_text()


# ---- issue 15, item 22 ------------------------------------------------------------------------


def wait_for_plot(page, field: str) -> None:
    page.locator(f"canvas.plot[data-field='{field}']").wait_for()


@pytest.mark.parametrize(
    "bad,message",
    [
        ("#/d/nope", "no dataset named 'nope'"),
        ("#/d/frames/e/train/99", "there is no episode 99"),
    ],
)
def test_an_error_replaces_the_page_it_follows(server, page, bad, message):
    page.goto(server.url + "/#/d/frames/e/train/1")
    wait_for_plot(page, "reward")
    page.evaluate(f"location.hash = {bad!r}")
    page.locator("#error").wait_for(state="visible")
    assert message in page.locator("#error").inner_text()
    assert page.locator("#view > *").count() == 0  # not the old episode below the banner
    page.evaluate("location.hash = '#/d/frames/e/train/2'")
    wait_for_plot(page, "reward")
    assert page.locator("#error").is_hidden()


def test_a_refused_filter_is_shown_under_the_form(server, page):
    page.goto(server.url + "/#/d/point_mass?meta=colour%3Dred")
    error = page.locator("#episodes-error")
    error.wait_for()
    assert "colour" in error.inner_text()
    assert page.locator("#error").is_hidden()
    assert page.locator("#episode-filters input[name=meta]").input_value() == "colour=red"
    assert page.locator("#returns-histogram").count() == 1  # the rest of the page is there


def test_many_episode_fields_scroll_inside_their_panel(server, browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        page.goto(server.url + "/#/d/rich")
        page.locator("#episodes tbody tr").nth(2).wait_for()
        assert page.locator("#episodes thead th").count() == 5 + EPISODE_FIELDS
        assert page.evaluate("document.documentElement.scrollWidth") <= 1400
        inner, outer = page.evaluate(
            "(() => { const box = document.querySelector("
            "'#episodes').parentElement; "
            "return [box.scrollWidth, box.clientWidth]; })()"
        )
        assert inner > outer  # the table scrolls inside its panel
        page.locator("#episodes tbody tr").first.click()
        wait_for_plot(page, "reward")
        assert page.evaluate("document.documentElement.scrollWidth") <= 1400
    finally:
        context.close()


def test_the_language_instruction_follows_the_step(server, page):
    page.goto(server.url + f"/#/d/{OXE}/e/train/3")
    instruction = page.locator("#step-text [data-field='language_instruction']")
    instruction.wait_for()
    wait_until(page, "document.querySelector('#step-readout').textContent.startsWith('step 0 ')")
    assert instruction.inner_text() == "pick up block 3 (étape 0)"
    page.keyboard.press("ArrowRight")
    wait_until(
        page,
        'document.querySelector("#step-text [data-field='
        "'language_instruction']\").textContent.endsWith('(étape 1)')",
    )
    assert page.errors == []


def depth_map_at(page, field: str, step: int) -> np.ndarray:
    wait_until(
        page,
        f'(() => {{ const map = document.querySelector("img.depth-map'
        f"[data-field='{field}']\"); return map && map.dataset.step === '{step}' && "
        "map.complete && map.naturalWidth > 0; })()",
    )
    return pixels_of(page.locator(f"img.depth-map[data-field='{field}']").screenshot())


def test_depth_maps_are_drawn_as_images(server, page):
    page.goto(server.url + "/#/d/rich/e/train/0")
    wait_for_plot(page, "reward")
    first = depth_map_at(page, "observation/depth", 0)
    depth_map_at(page, "observation/depth16", 0)
    assert page.locator("canvas.plot[data-field^='observation/depth']").count() == 0
    height, width = first.shape[:2]
    assert height >= 100 and width >= 100  # scaled up from 20 x 16
    assert (first.sum(axis=-1) < 3 * 250).mean() > 0.95  # a picture, not lines on white
    row = first[height // 2]
    assert row[-3].sum() > row[2].sum() + 150  # the ramp: deeper is brighter
    assert np.abs(first[5] - first[-5]).max() <= 30  # rows alike
    page.locator("#scrubber").fill("5")
    last = depth_map_at(page, "observation/depth", 5)
    assert last[height // 2, 2].sum() > first[height // 2, 2].sum() + 60  # step 5 is deeper
    assert page.errors == []


def test_depth_maps_come_from_the_frames_endpoint(server):
    url = f"{server.url}/api/v1/datasets/rich/episodes/0"
    ramps = []
    for step in (0, 5):
        response = httpx.get(f"{url}/frames/{step}", params={"field": "observation/depth"})
        assert response.headers["content-type"] == "image/png"
        picture = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))
        assert picture.shape == (*DEPTH, 3)
        assert (picture == picture[:1]).all()  # every row the same ramp
        ramps.append(picture[0].astype(int).sum(axis=-1))
    # coloured over the episode's range (0..24): step 0 starts at its darkest, step 5 ends
    # at its brightest, and step 5's values are step 0's shifted by 5
    assert tuple(
        Image.open(
            io.BytesIO(httpx.get(f"{url}/frames/0", params={"field": "observation/depth"}).content)
        )
        .convert("RGB")
        .getpixel((0, 0))
    ) == (68, 1, 84)
    assert (np.diff(ramps[0]) >= 0).all() and ramps[1][0] > ramps[0][0]
    animation = httpx.get(f"{url}/animation", params={"field": "observation/depth16"})
    assert animation.status_code == 200
    assert Image.open(io.BytesIO(animation.content)).n_frames == RICH_STEPS
    steps = httpx.get(f"{url}/steps").json()  # still numbers in the steps' JSON
    assert np.asarray(steps["fields"]["observation/depth"]).shape == (RICH_STEPS, *DEPTH)


def plot_box_pixels(page, field: str) -> tuple[np.ndarray, int, int]:
    pixels = pixels_of(page.locator(f"canvas.plot[data-field='{field}']").screenshot())
    return pixels, 58, pixels.shape[1] - 22  # plots.js margins


def test_real_last_step_values_are_plotted(server, page):
    page.goto(server.url + "/#/d/rich/e/train/1")
    wait_for_plot(page, "infos/distance_to_goal")
    wait_for_plot(page, "reward")
    infos, left, right = plot_box_pixels(page, "infos/distance_to_goal")
    reward, _, _ = plot_box_pixels(page, "reward")
    tail = slice(int(left + 0.9 * (right - left)), right - 2)  # between steps 4.5 and 5
    assert color_mask(infos[:, tail], BLUE).sum() > 5  # info_T is real: drawn to the end
    assert color_mask(reward[:, tail], BLUE).sum() == 0  # the zero-filled reward is not
    assert page.errors == []


def test_legends_stay_clear_of_titles(server, page):
    page.goto(server.url + "/#/d/rich/e/train/0")
    field = "observation/joint_positions_of_the_arm"
    wait_for_plot(page, field)
    pixels, _, _ = plot_box_pixels(page, field)
    frame = color_mask(pixels, (154, 163, 178), 30)  # the plot box's border
    top = int(np.argmax(frame.sum(axis=1) > pixels.shape[1] // 2))
    band = pixels[:top]
    title = color_mask(band, (29, 35, 48), 60)
    legend = np.zeros(title.shape, bool)
    for color in (
        "#1f77b4",
        "#d62728",
        "#2ca02c",
        "#ff7f0e",
        "#9467bd",
        "#8c564b",
        "#e377c2",
        "#17becf",
        "#bcbd22",
    ):  # (not the grey: the title's edges are)
        legend |= color_mask(band, tuple(int(color[i : i + 2], 16) for i in (1, 3, 5)), 40)
    assert title.sum() > 50 and legend.sum() > 50
    ty, tx = np.nonzero(title)
    ly, lx = np.nonzero(legend)
    overlap_x = tx.min() <= lx.max() and lx.min() <= tx.max()
    overlap_y = ty.min() <= ly.max() and ly.min() <= ty.max()
    assert not (overlap_x and overlap_y), "the legend is drawn over the title"


def test_stored_jpeg_frames_are_served_as_stored(server):
    import tensorflow as tf

    from rlds_hub.storage import open_dataset, read_record

    url = f"{server.url}/api/v1/datasets/{OXE}/episodes/0/frames"
    record = read_record(open_dataset(dataset_root() / "oxe" / "oxe_like" / "1.0.0"), "train", 0)
    stored = (
        tf.train.Example.FromString(bytes(record.data))
        .features.feature["steps/observation/image"]
        .bytes_list.value
    )
    for step in (0, 2, -1):
        response = httpx.get(f"{url}/{step}", params={"field": "observation/image"})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "image/jpeg"
        assert response.content == stored[step]
    png = httpx.get(f"{url}/1", params={"field": "observation/wrist_image"})
    assert png.headers["content-type"] == "image/png"
    missing = httpx.get(f"{url}/{len(stored)}", params={"field": "observation/image"})
    assert missing.status_code == 404
    assert f"there is no step {len(stored)}" in missing.json()["error"]["message"]


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
