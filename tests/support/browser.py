"""A headless Chromium through Selenium, to open a report as a reader would: the machine's
own chromium and chromedriver (Debian's packages), never a downloaded driver, no network.

Where either is missing the tests skip with :func:`missing`'s reason, unless
``$CHATFLOW_REQUIRE_BROWSER`` is 1 (CI sets it), where a missing browser fails instead.
``$CHATFLOW_SCREENSHOT=FILE.png`` keeps the page's screenshot there (:func:`keep_screenshot`).
"""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Set to 1 where a missing browser must fail the tests, not skip them.
REQUIRE_VARIABLE = "CHATFLOW_REQUIRE_BROWSER"
#: Set to a file's path to keep a test's screenshot there, for a person to look at.
SCREENSHOT_VARIABLE = "CHATFLOW_SCREENSHOT"
#: Debian's chromium and chromium-driver packages install these.
BROWSERS = ("chromium", "chromium-browser")
DRIVER = "chromedriver"
#: Headless, in a container (no sandbox, no /dev/shm limits), no GPU, no network traffic of its own.
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--no-first-run")
#: The window's width; a page's full height is measured, not guessed.
WINDOW = (1280, 900)
#: Page load and script timeouts (s): a local file on a loaded 2-core machine.
TIMEOUT = 30


def required() -> bool:
    return os.environ.get(REQUIRE_VARIABLE) == "1"


def executables() -> tuple[str | None, str | None]:
    """The browser's and the driver's paths on PATH, or None each."""
    return next(filter(None, map(shutil.which, BROWSERS)), None), shutil.which(DRIVER)


def missing() -> str | None:
    """Why no browser can be driven here (one line), or None when one can."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    browser, driver = executables()
    if browser is None:
        return f"no Chromium on PATH ({' or '.join(BROWSERS)}; apt-get install chromium)"
    if driver is None:
        return f"no {DRIVER} on PATH (apt-get install chromium-driver)"
    return None


@contextmanager
def headless_chromium() -> Iterator[Any]:
    """A Chrome WebDriver on the machine's Chromium, its browser log kept; quit on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = executables()
    if browser is None or driver is None:
        raise RuntimeError(missing())
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={WINDOW[0]},{WINDOW[1]}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chrome = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    try:
        chrome.set_page_load_timeout(TIMEOUT)
        chrome.set_script_timeout(TIMEOUT)
        yield chrome
    finally:
        chrome.quit()


def chromium_or_skip() -> Iterator[Any]:
    """The body of a test module's ``chromium`` fixture: a headless Chromium, or a skip where
    none is installed (a failure where ``$CHATFLOW_REQUIRE_BROWSER`` is 1, as in CI)."""
    import pytest

    reason = missing()
    if reason:
        assert not required(), reason
        pytest.skip(reason)
    with headless_chromium() as chrome:
        yield chrome


@dataclass(frozen=True)
class PageLoad:
    """What a page did when it opened: its images, the resources it fetched, its errors."""
    title: str
    images: list[dict[str, Any]]
    resources: list[str]
    errors: list[str]
    text: str


def open_page(chrome: Any, path: Path) -> PageLoad:
    """Open a local file and report what loaded (``naturalWidth`` 0 is an image that did not)."""
    chrome.get(Path(path).resolve().as_uri())
    images = chrome.execute_script(
        "return Array.from(document.images).map(i => ({src: i.currentSrc.slice(0, 40), complete: i.complete, "
        "width: i.naturalWidth, height: i.naturalHeight}));")
    resources = chrome.execute_script("return performance.getEntriesByType('resource').map(e => e.name);")
    errors = [entry["message"] for entry in chrome.get_log("browser") if entry.get("level") == "SEVERE"]
    return PageLoad(chrome.title, images, resources, errors, chrome.find_element("tag name", "body").text)


def full_page_png(chrome: Any) -> bytes:
    """The whole page, beyond the window, as PNG bytes (Chromium's DevTools screenshot)."""
    size = chrome.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = chrome.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
    return base64.b64decode(shot["data"])


def keep_screenshot(png: bytes) -> Path | None:
    """Also write ``png`` where ``$CHATFLOW_SCREENSHOT`` names a file, for a person to look at."""
    target = os.environ.get(SCREENSHOT_VARIABLE)
    if not target:
        return None
    path = Path(target)
    path.write_bytes(png)
    return path
