"""The explorer in a real Chromium (Playwright, Debian's /usr/bin/chromium) against a
real server: train a tiny model and watch its curve grow, prune it to 90 %,
draw a digit and read both models' answers, look inside, compare. A
screenshot of every step goes to test-output/screenshots/."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tests.test_web_api import LiveServer

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
SHOTS = REPO / "test-output" / "screenshots"

if not os.path.exists(CHROMIUM):  # `make test` installs it first (the `browser` target)
    pytest.skip(f"{CHROMIUM} is not installed; run `make browser`", allow_module_level=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(tmp_path_factory.mktemp("browser-store")) as srv:
        yield srv


@pytest.fixture(scope="module")
def page(server: LiveServer) -> Iterator[Any]:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=90_000)  # jobs train real networks on a shared, busy CPU
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        ctx = browser.new_context(viewport={"width": 1360, "height": 900}, base_url=server.url)
        pg = ctx.new_page()
        pg.set_default_timeout(90_000)
        pg.console_errors = []  # type: ignore[attr-defined]
        pg.on("console", lambda m: pg.console_errors.append(m.text) if m.type == "error" else None)
        pg.on("pageerror", lambda e: pg.console_errors.append(str(e)))
        # nothing may be fetched from anywhere but our server
        pg.route("**/*", lambda route: route.continue_() if route.request.url.startswith(server.url)
                 else (pg.console_errors.append(f"external request {route.request.url}"), route.abort()))
        yield pg
        browser.close()


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    assert page.console_errors == [], page.console_errors


def draw_seven(page: Any) -> None:
    box = page.locator("#pad").bounding_box()
    x, y = box["x"], box["y"]
    page.mouse.move(x + 80, y + 70)
    page.mouse.down()
    for i in range(1, 13):
        page.mouse.move(x + 80 + i * 10, y + 70)
    for i in range(1, 17):
        page.mouse.move(x + 200 - i * 5, y + 70 + i * 11)
    page.mouse.up()


def paper_digit(label: int) -> bytes:
    """PNG of the first MNIST test digit with `label`, 8x larger, dark ink on white paper."""
    import io

    import numpy as np
    from PIL import Image

    from prunelab.data.datasets import load_dataset

    ds = load_dataset("mnist")
    digit = ds.x_test[int(np.flatnonzero(ds.y_test == label)[0])]
    buf = io.BytesIO()
    Image.fromarray(255 - digit).resize((224, 224), Image.Resampling.BILINEAR).save(buf, format="PNG")
    return buf.getvalue()


def test_train_prune_test_compare_in_a_real_browser(page: Any, server: LiveServer) -> None:
    from playwright.sync_api import expect

    # 1. the models page loads with no console errors and an empty registry
    page.goto("/")
    expect(page.locator("#models-empty")).to_be_visible()
    shot(page, "01-models-empty")

    # 2. train a tiny model and watch the loss curve grow while the job runs
    page.goto("/train")
    page.select_option("#arch", "lenet-300-100")
    page.fill("input[name=epochs]", "1")
    page.fill("input[name=train_limit]", "2000")
    page.fill("input[name=batch_size]", "16")
    page.fill("input[name=name]", "tiny")
    # record every redraw of the loss chart (its point count) from inside the page
    page.evaluate("""() => { window.__points = []; const chart = document.querySelector('#loss-chart');
        new MutationObserver(() => window.__points.push(Number(chart.dataset.points || 0)))
          .observe(chart, {attributes: true, childList: true}); }""")
    page.click("#train-submit")
    page.wait_for_function("() => Number(document.querySelector('#loss-chart').dataset.points || 0) >= 1")
    shot(page, "02-train-running")
    expect(page.locator("#job-status")).to_have_text("done")
    seen = page.evaluate("window.__points")
    assert max(seen) >= 4, seen  # 2,000 images / batch 16 = 125 steps: a point every 20 + the epoch
    assert len({v for v in seen if v > 0}) >= 2, f"the curve never grew while training: {seen}"
    assert page.locator("#loss-chart path").count() >= 1
    expect(page.locator("#job-list .job").first).to_contain_text("test accuracy")
    shot(page, "03-train-done")

    # the job survives a reload: listed, and its curve redrawn from the stored events
    page.reload()
    expect(page.locator("#job-list .job")).to_have_count(1)
    expect(page.locator("#job-list .pill")).to_have_text("done")
    page.wait_for_function("() => Number(document.querySelector('#loss-chart').dataset.points || 0) >= 4")
    models = page.evaluate("fetch('/api/models').then(r => r.json())")["models"]
    assert [m["name"] for m in models] == ["tiny"]
    parent_id = models[0]["id"]

    # 3. prune it to 90 % with one fine-tune epoch
    page.goto(f"/prune?parent={parent_id}")
    expect(page.locator("#parent")).to_have_value(parent_id)
    page.locator("#sparsity").fill("90")
    expect(page.locator("#sparsity-value")).to_have_text("90%")
    page.fill("input[name=finetune_epochs]", "1")
    page.fill("input[name=name]", "tiny-90")
    page.click("#prune-submit")
    expect(page.locator("#job-status")).to_have_text("done")
    expect(page.locator("#prune-summary")).to_contain_text("90.0% sparsity")
    shot(page, "04-prune-done")
    models = page.evaluate("fetch('/api/models').then(r => r.json())")["models"]
    child = next(m for m in models if m["name"] == "tiny-90")
    assert child["parent"] == parent_id and abs(child["sparsity"] - 0.9) < 1e-3

    # 4. the child sits under its parent in the lineage tree
    page.goto("/")
    expect(page.locator(f".tree .node[data-id='{parent_id}'] + ul .node[data-id='{child['id']}']")).to_be_visible()
    expect(page.locator("#models-table tbody tr")).to_have_count(2)
    shot(page, "05-models-lineage")

    # 5. draw a digit with the mouse: both models answer, with ten probabilities each
    page.goto("/test")
    expect(page.locator("#model-list input:checked")).to_have_count(2)
    draw_seven(page)
    expect(page.locator("#preds .pred")).to_have_count(2)
    for card in page.locator("#preds .pred").all():
        assert card.locator(".digit").inner_text().strip() in [str(d) for d in range(10)]
        expect(card.locator(".bar-row")).to_have_count(10)
    # uploading a picture works too: a real MNIST "2", enlarged, dark ink on white paper
    before = page.locator("#preview").evaluate("c => c.toDataURL()")
    with page.expect_response("**/api/predict") as answer:
        page.set_input_files("#upload", files=[{"name": "two.png", "mimeType": "image/png",
                                                "buffer": paper_digit(2)}])
    assert answer.value.ok and len(answer.value.json()["predictions"]) == 2
    page.wait_for_function("before => document.querySelector('#preview').toDataURL() !== before", arg=before)
    expect(page.locator("#preds .pred")).to_have_count(2)
    expect(page.locator("#gallery figure").first).to_be_visible()
    assert page.locator("#gallery img").first.evaluate("img => img.complete && img.naturalWidth") > 0
    shot(page, "06-test-drawn-digit")

    # 6. look inside the pruned model
    page.goto(f"/inside?model={child['id']}")
    expect(page.locator("#hists svg")).to_have_count(3)
    expect(page.locator("#layers .bar-row")).to_have_count(3)
    expect(page.locator("#maps canvas").first).to_be_visible()
    page.click("#sens-run")
    expect(page.locator("#sens-chart svg path")).to_have_count(3)  # one curve per layer
    shot(page, "07-inside")

    # 7. compare: measure, then hide the rows where the two models agree
    page.goto("/compare")
    expect(page.locator("#cmp thead th")).to_have_count(3)
    page.click("#measure")
    expect(page.locator("#cmp tr[data-field=artifact_bytes]")).to_be_visible()
    expect(page.locator("#note")).to_contain_text("teaching benchmark")
    same = page.locator("#cmp tr.same")
    assert same.count() >= 1
    page.check("#diff-only")
    expect(page.locator("#cmp tr[data-field=params]")).to_be_hidden()
    expect(page.locator("#cmp tr[data-field=sparsity]")).to_be_visible()
    shot(page, "08-compare")
    assert sorted(p.name for p in SHOTS.glob("*.png"))[-1] == "08-compare.png"


def test_every_page_loads_without_console_errors(page: Any) -> None:
    for path in ("/", "/train", "/prune", "/test", "/inside", "/compare", "/data"):
        page.goto(path)
        page.wait_for_load_state("networkidle")
        assert page.console_errors == [], (path, page.console_errors)


def test_data_pruning_page_runs_a_selection(page: Any) -> None:
    from playwright.sync_api import expect

    page.goto("/data")
    page.fill("input[name=pool]", "1000")
    page.select_option("#strategy", "cluster")
    page.locator("#keep").fill("20")
    page.uncheck("input[name=train]")
    page.click("#select-submit")
    expect(page.locator("#job-status")).to_have_text("done")
    expect(page.locator("#report .bar-row")).to_have_count(10)  # kept per class, all ten digits
    expect(page.locator("#report")).to_contain_text("200")
    shot(page, "09-data-pruning")


def test_touch_drawing_predicts(page: Any, server: LiveServer) -> None:
    """A finger stroke (touch pointer events through the DevTools protocol) also draws and predicts."""
    page.goto("/test")
    box = page.locator("#pad").bounding_box()
    cdp = page.context.new_cdp_session(page)
    x, y = box["x"] + 140, box["y"] + 50
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
    for i in range(1, 19):
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y + i * 10}]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    from playwright.sync_api import expect

    expect(page.locator("#preds .pred")).to_have_count(2)
    shot(page, "10-test-touch")


def test_screenshots_are_written() -> None:
    names = sorted(p.name for p in Path(SHOTS).glob("*.png"))
    assert {"02-train-running.png", "04-prune-done.png", "06-test-drawn-digit.png", "08-compare.png"} <= set(names)
