"""End to end in a real browser: headless Chromium draws on the `serve` page.

A tiny run is trained for a few steps, served by uvicorn on 127.0.0.1 (a free port, in a
background thread), and Chromium, driven by Selenium through chromedriver, draws one
stroke with real pointer events. The page must show the model's endings, and moving
the temperature slider must change what the next request sends (seen in the server's
request log, independent of the page's own code).

Skipped only when chromium, chromedriver or selenium are missing (Debian:
`apt-get install -y chromium chromium-driver`). With SKETCH_RNN_SCREENSHOT=path.png set,
a screenshot of the page is saved there.
"""
from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = str(ROOT / "data" / "aaron_sheep.npz")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs chromium and chromedriver (apt-get install -y chromium chromium-driver)")]

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,900"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(url, app) of a tiny conditional run trained 3 steps, served by uvicorn."""
    uvicorn = pytest.importorskip("uvicorn")
    from sketch_rnn.training.runs import load_run
    from sketch_rnn.serving.server import create_app
    from sketch_rnn.training.trainer import Trainer, plan_run

    run_dir = os.environ.get("SKETCH_RNN_SERVE_RUN")  # a real run, e.g. for the README's picture
    if not run_dir:
        run_dir = tmp_path_factory.mktemp("web") / "run"
        plan = plan_run(run_dir, [DATA], "tiny", "max_seq_len=64,save_every=3,batch_size=8", 3,
                        None)
        assert Trainer(plan, progress=False).fit() == 0
    app = create_app(load_run(run_dir), str(run_dir), log_requests=True)
    app.state.engine.complete({"strokes": [[5.0, 0.0, 1.0]], "n": 8, "seed": 0})  # compile
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/", app
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def _wait(what, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what.__doc__}"
        time.sleep(0.1)


INK = """return Array.from(document.querySelectorAll('#endings canvas')).map(c => {
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let inked = 0;
  for (let i = 3; i < d.length; i += 4) inked += d[i] > 0;
  return [inked, +c.dataset.points];
});"""


def test_drawing_a_stroke_shows_endings_and_the_slider_changes_requests(served, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    url, app = served
    browser.get(url)
    _wait(lambda: browser.execute_script("return document.body.dataset.ready === '1'"))
    info = browser.find_element(By.ID, "run-info").text
    engine = app.state.engine  # the page names the run and the step it serves
    assert f"step {engine.run.step}" in info and os.path.basename(str(engine.run_dir)) in info, info

    board = browser.find_element(By.ID, "board")
    (ActionChains(browser).move_to_element_with_offset(board, -120, -60).click_and_hold()
     .move_by_offset(40, 10).move_by_offset(40, 30).move_by_offset(30, 50)
     .move_by_offset(-20, 40).release().perform())

    def completions():
        """requests to /api/complete in the server's log"""
        return [e["body"] for e in app.state.log if e["path"] == "/api/complete"]

    first = _wait(completions)[-1]
    assert len(first["strokes"]) >= 4 and first["temperature"] == 0.5 and first["n"] == 8

    def inked():
        """8 inked ending canvases"""
        ink = browser.execute_script(INK)
        return ink if len(ink) == 8 and all(i > 0 for i, _ in ink) else None

    ink = _wait(inked)
    assert sum(points for _, points in ink) > 0  # the model drew something beyond the prefix

    slider = browser.find_element(By.ID, "temperature")
    ActionChains(browser).click_and_hold(slider).move_by_offset(-25, 0).release().perform()
    value = float(slider.get_attribute("value"))
    assert value != 0.5
    latest = _wait(lambda: len(completions()) > 1 and completions()[-1])
    assert latest["temperature"] == pytest.approx(value)
    assert latest["strokes"] == first["strokes"] and latest["seed"] == first["seed"]
    _wait(lambda: "endings in" in browser.find_element(By.ID, "status").text)
    assert "error" not in browser.find_element(By.ID, "status").get_attribute("class")

    shot = os.environ.get("SKETCH_RNN_SCREENSHOT")
    if shot:
        assert browser.save_screenshot(shot), shot
