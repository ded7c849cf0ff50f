"""`make demo` in a real browser: Debian's chromium, driven through chromedriver (Selenium).

Two tiny runs (char_lm, ner) are trained into a runs directory; the command `make demo` runs
(`python -m common.demo --runs DIR`) serves the page in its own process; the browser tags a
sentence and generates text through the page as a person would, a screenshot is saved, and
every request the browser made must have gone to the demo's own host. `.ci/run` installs
chromium and chromium-driver when they are missing; without them this test is skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="needs Debian's chromium and chromium-driver (.ci/run installs them as root)",
)
SENTENCE = "Barack Obama visited Paris with Microsoft on Monday"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from recipes.char_lm.main import cli as char_lm
    from recipes.ner.main import cli as ner

    runs = tmp_path_factory.mktemp("runs")
    for name, cli in (("char_lm", char_lm), ("ner", ner)):
        out = runs / name
        args = ["train", "--preset", "tiny", "--epochs", "1", "--output-dir", str(out)]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
    return runs


@pytest.fixture(scope="module")
def page(runs):
    """The URL of `make demo`'s page, served by its own process; and that process."""
    from common import demo

    port = demo.free_port()
    makefile = subprocess.run(
        ["make", "-n", "demo", "PY=python"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    assert "python -m common.demo" in makefile  # the command below is what `make demo` runs
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    began = time.monotonic()
    server = subprocess.Popen(
        [sys.executable, "-m", "common.demo", "--runs", str(runs), "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        said = []
        while not (said and said[-1].startswith("Demo on ")):  # the one line it prints
            said.append(server.stdout.readline())
            assert said[-1] or server.poll() is None, "".join(said)
        assert said == [f"Demo on http://127.0.0.1:{port}/ (Ctrl-C stops it)\n"], said
        print(f"make demo: page served {time.monotonic() - began:.1f} s after the command")
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.terminate()
        server.wait(30)


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1000",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not look for drivers
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _open_tab(driver, title):
    from selenium.webdriver.common.by import By

    (tab,) = [
        b for b in driver.find_elements(By.CSS_SELECTOR, "button[role=tab]") if b.text == title
    ]
    tab.click()
    (panel,) = [
        p for p in driver.find_elements(By.CSS_SELECTOR, "[role=tabpanel]") if p.is_displayed()
    ]
    return panel


def _wait(what, condition, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"the page did not show {what} within {seconds} s")


def test_make_demo_tags_and_generates_in_a_real_browser_and_calls_no_other_host(
    page, browser, runs, tmp_path
):
    from selenium.webdriver.common.by import By

    from common import demo

    browser.get(page)
    _wait("the tabs", lambda: browser.find_elements(By.CSS_SELECTOR, "button[role=tab]"))

    # NER: type a sentence, press Tag, the entities appear.
    panel = _open_tab(browser, demo.recipe_module("ner").TITLE)
    box = panel.find_elements(By.TAG_NAME, "textarea")[0]
    box.clear()
    box.send_keys(SENTENCE)
    (tag,) = [b for b in panel.find_elements(By.TAG_NAME, "button") if b.text == "Tag"]
    began = time.monotonic()
    tag.click()
    _wait("the tagged sentence", lambda: "Obama" in panel.text and "Microsoft" in panel.text)
    print(f"ner: tagged in {time.monotonic() - began:.2f} s (first request, the model loads)")

    # char_lm: a prime, Generate, the text streams in after the prime.
    panel = _open_tab(browser, demo.recipe_module("char_lm").TITLE)
    prime = panel.find_elements(By.TAG_NAME, "textarea")[0]
    prime.clear()
    prime.send_keys("ROMEO:")
    (generate,) = [b for b in panel.find_elements(By.TAG_NAME, "button") if b.text == "Generate"]
    generate.click()

    def generated():
        boxes = panel.find_elements(By.TAG_NAME, "textarea")[1:]
        texts = [b.get_attribute("value") or "" for b in boxes]
        return next((t for t in texts if t.startswith("ROMEO:") and len(t) > 40), None)

    assert len(_wait("generated text", generated)) > 40

    shot = tmp_path / "demo.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000

    hosts = set()
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] in ("Network.requestWillBeSent", "Network.webSocketCreated"):
            url = message["params"].get("request", message["params"]).get("url", "")
            parts = urllib.parse.urlsplit(url)
            hosts.add(parts.scheme if parts.scheme in ("data", "blob") else parts.netloc)
    served = urllib.parse.urlsplit(page).netloc
    assert served in hosts and hosts <= {served, "data", "blob"}, hosts
