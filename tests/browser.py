"""Headless Chromium for DOM tests (selenium 4.51 + Debian's chromium and chromedriver).

The driver and browser paths are given explicitly, so Selenium Manager never runs (it
would try to download a driver); ``make system-deps`` installs both packages.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1280,900",
         # no request leaves the machine (the map's OpenStreetMap basemap, fonts, ...)
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
#: STAC Browser's error alert (ErrorAlert.vue) and its English messages
ERROR_SELECTOR = ".alert-danger"
ERROR_TEXTS = ("could not be loaded", "CORS", "does not exist", "not allowed")


@contextlib.contextmanager
def chromium() -> Iterator[webdriver.Chrome]:
    """A fresh headless Chromium with its own profile directory; quit on exit."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.is_file():
            raise RuntimeError(f"{path} is missing: run `make system-deps` (apt-get install "
                               "chromium chromium-driver)")
    with tempfile.TemporaryDirectory(prefix="rspy-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(str(CHROMEDRIVER), log_output=str(Path(profile) / "chromedriver.log"))
        driver = webdriver.Chrome(service=service, options=options)
        try:
            yield driver
        finally:
            driver.quit()


def body_text(driver: webdriver.Chrome) -> str:
    try:
        return driver.find_element(By.TAG_NAME, "body").text
    except WebDriverException:
        return ""


def console_log(driver: webdriver.Chrome) -> str:
    """The browser console so far (for failure messages)."""
    try:
        entries = driver.get_log("browser")
    except WebDriverException as exc:
        return f"(no console log: {exc.msg})"
    return "\n".join(f"{e.get('level')}: {e.get('message')}" for e in entries)


def page_has_error(driver: webdriver.Chrome) -> str | None:
    """The text of STAC Browser's error alert, if the page shows one."""
    for alert in driver.find_elements(By.CSS_SELECTOR, ERROR_SELECTOR):
        with contextlib.suppress(WebDriverException):
            text = alert.text
            if alert.is_displayed() and any(t.lower() in text.lower() for t in ERROR_TEXTS):
                return text
    return None


def wait_text(driver: webdriver.Chrome, text: str, timeout: float = 30.0) -> None:
    """Wait until the page shows ``text``; fail early on an error page, with the console."""
    deadline = time.monotonic() + timeout
    while True:
        if text in body_text(driver):
            return
        error = page_has_error(driver)
        if error or time.monotonic() > deadline:
            raise AssertionError(
                f"{text!r} not shown on {driver.current_url}"
                + (f"; error page: {error}" if error else f" within {timeout:.0f} s")
                + f"\n--- page ---\n{body_text(driver)[:2000]}"
                + f"\n--- console ---\n{console_log(driver)[-3000:]}")
        time.sleep(0.2)


def wait_error(driver: webdriver.Chrome, timeout: float = 30.0) -> str:
    """Wait until the page shows STAC Browser's error alert; returns its text."""
    deadline = time.monotonic() + timeout
    while (error := page_has_error(driver)) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"no error page on {driver.current_url} within {timeout:.0f} s"
                                 f"\n--- page ---\n{body_text(driver)[:2000]}")
        time.sleep(0.2)
    return error


def image_loaded(driver: webdriver.Chrome, css_or_src_substring: str) -> bool:
    """Whether an image (CSS selector, or a substring of its src) has loaded pixels."""
    script = """
        const key = arguments[0];
        let imgs = [];
        try { imgs = Array.from(document.querySelectorAll(key)); } catch (e) {}
        if (!imgs.length) {
            imgs = Array.from(document.images).filter(i => (i.currentSrc || i.src).includes(key));
        }
        return imgs.some(i => i.complete && i.naturalWidth > 0);
    """
    return bool(driver.execute_script(script, css_or_src_substring))


def wait_image(driver: webdriver.Chrome, css_or_src_substring: str,
               timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not image_loaded(driver, css_or_src_substring):
        if time.monotonic() > deadline:
            srcs = driver.execute_script(
                "return Array.from(document.images).map(i => i.src + ' ' + i.naturalWidth)")
            raise AssertionError(f"image {css_or_src_substring!r} not loaded on "
                                 f"{driver.current_url}; images: {srcs}"
                                 f"\n--- console ---\n{console_log(driver)[-3000:]}")
        time.sleep(0.2)
