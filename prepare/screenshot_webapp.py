"""Drive the web demo (app.py) in headless Chromium and save a screenshot after one generation: docs/webapp.png.

    python -m prepare.screenshot_webapp                  # embedded demo model (tiny untrained runs if it is absent)
    python -m prepare.screenshot_webapp --prompt "a person jumps" --out docs/webapp.png

Needs requirements-demo.txt and Debian's chromium + chromium-driver (apt-get install -y chromium chromium-driver).
Only loopback traffic: the app listens on 127.0.0.1 and Chromium runs with background networking off. The helpers
here (start_app, chromium, generate_in_page) are also used by tests/test_webapp.py's browser test.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from models.pipeline import MoMaskPipeline
from utils.checkpoint import atomic_write

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--autoplay-policy=no-user-gesture-required",
    "--mute-audio",
)

# Runs in the page: the BVH link, the playing video's state, and every host the page loaded something from.
PAGE_STATE_JS = """
const link = document.querySelector('#gen-bvh a[href]');
const video = document.querySelector('#gen-video video');
const hosts = performance.getEntriesByType('resource').map(e => new URL(e.name).hostname);
return {bvh_url: link ? link.href : null, status: (document.querySelector('#gen-status textarea') || {}).value,
        ready: video ? video.readyState : -1, time: video ? video.currentTime : -1,
        paused: video ? video.paused : null, hosts: [...new Set(hosts)]};
"""
FETCH_JS = """
const done = arguments[arguments.length - 1];
fetch(arguments[0]).then(r => r.text()).then(done, e => done('FETCH ERROR ' + e));
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def start_app(app_args: list[str], *, timeout: float = 120.0) -> Iterator[str]:
    """Run ``python app.py <app_args> --port <free>`` on loopback; yields its URL once it answers; stops it after."""
    port = free_port()
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "app.py"), *app_args, "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"app.py exited with {proc.returncode}:\n{log.read().decode(errors='replace')}")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"app.py did not answer on {url} within {timeout:.0f} s")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@contextmanager
def chromium(width: int = 1280, height: int = 1100) -> Iterator[object]:
    """Headless Debian Chromium through Debian's chromedriver (no Selenium Manager downloads), fresh profile."""
    os.environ.setdefault("SE_OFFLINE", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
        try:
            yield driver
        finally:
            driver.quit()


def set_checkbox(driver, elem_id: str, checked: bool) -> None:
    """Tick or untick the Gradio checkbox ``#elem_id`` (clicked only when it is not already so)."""
    from selenium.webdriver.common.by import By

    box = driver.find_element(By.CSS_SELECTOR, f"#{elem_id} input[type=checkbox]")
    if box.is_selected() != checked:
        box.click()


def upload_file(driver, elem_id: str, path: Path, timeout: float = 60.0) -> None:
    """Give ``path`` to the Gradio file input ``#elem_id`` and wait until the upload shows its link."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, timeout)
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, f"#{elem_id} input[type=file]")).send_keys(str(path))
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f"#{elem_id} a[href]"))


def generate_in_page(
    driver,
    url: str,
    prompt: str,
    frames: int,
    timeout: float = 120.0,
    *,
    cleanup: bool = True,
    rig: Path | None = None,
) -> dict:
    """Open the page, type ``prompt`` and ``frames`` (length estimation off), set the clean-up box, upload ``rig``
    (a rig BVH the download is retargeted onto) when given, press Generate, wait for the BVH link and a playable
    video.

    Returns the page state (see PAGE_STATE_JS) plus ``bvh_text`` fetched by the page from the BVH link and
    ``time_advanced`` (the video's currentTime moved while playing)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    wait = WebDriverWait(driver, timeout)
    box = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#prompt textarea"))
    box.send_keys(prompt)
    set_checkbox(driver, "estimate", False)
    length = driver.find_element(By.CSS_SELECTOR, "#frames input")
    length.send_keys(Keys.CONTROL, "a")
    length.send_keys(str(frames))
    set_checkbox(driver, "cleanup", cleanup)
    if rig is not None:
        upload_file(driver, "gen-rig", rig)
    driver.find_element(By.CSS_SELECTOR, "#generate-btn").click()
    state = wait.until(lambda d: (s := d.execute_script(PAGE_STATE_JS))["bvh_url"] and s["ready"] >= 2 and s)
    driver.execute_script("const v = document.querySelector('#gen-video video'); v.muted = true; v.play();")
    first = driver.execute_script(PAGE_STATE_JS)["time"]
    advanced = WebDriverWait(driver, 10).until(lambda d: d.execute_script(PAGE_STATE_JS)["time"] != first)
    driver.set_script_timeout(30)
    state = driver.execute_script(PAGE_STATE_JS)
    state["time_advanced"] = bool(advanced)
    state["bvh_text"] = driver.execute_async_script(FETCH_JS, state["bvh_url"])
    return state


def edit_in_page(driver, upload: Path, prompt: str, start_s: float, end_s: float, timeout: float = 120.0) -> str:
    """On the Edit tab: upload a motion file, type the span and prompt, regenerate; returns the status text."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, timeout)
    next(b for b in driver.find_elements(By.CSS_SELECTOR, "button[role=tab]") if b.text.strip() == "Edit").click()
    upload_file(driver, "edit-upload", upload)
    driver.find_element(By.CSS_SELECTOR, "#edit-prompt textarea").send_keys(prompt)
    for field, value in (("#edit-start input", start_s), ("#edit-end input", end_s)):
        box = driver.find_element(By.CSS_SELECTOR, field)
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(str(value))
    driver.find_element(By.CSS_SELECTOR, "#edit-btn").click()
    status = "return (document.querySelector('#edit-status textarea') || {}).value || ''"
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#edit-bvh a[href]") and d.execute_script(status))
    return driver.execute_script(status)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prompt", default="a person walks forward")
    p.add_argument("--frames", type=int, default=120)
    p.add_argument("--out", default=str(REPO / "docs" / "webapp.png"))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    with tempfile.TemporaryDirectory() as tmp:
        app_args = ["--device", "cpu", "--workdir", str(Path(tmp) / "work")]
        if not (MoMaskPipeline.DEMO_CHECKPOINTS / "t2m" / MoMaskPipeline.DEMO_NAMES[0] / "opt.txt").is_file():
            raise SystemExit(
                f"error: the embedded demo model is missing from {MoMaskPipeline.DEMO_CHECKPOINTS}: "
                "rebuild it with bash prepare/train_demo.sh (a screenshot of untrained runs shows noise)"
            )
        with start_app(app_args) as url, chromium() as driver:
            state = generate_in_page(driver, url, args.prompt, args.frames)
            height = int(driver.execute_script("return document.documentElement.scrollHeight"))
            driver.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride",  # the whole page, downloads included
                {"width": 1280, "height": min(height, 2400), "deviceScaleFactor": 1, "mobile": False},
            )
            time.sleep(1.5)  # let the video show a mid-motion frame
            with atomic_write(args.out) as tmp:
                driver.save_screenshot(str(tmp))
    logger.info("wrote %s (status: %s; page loaded from %s)", args.out, state["status"], state["hosts"])


if __name__ == "__main__":
    main()
