"""The status page in a real headless Chromium (Debian's chromium + chromium-driver)."""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import IN_CI
from daemon_proc import wait_for
from http_daemon import start_api_daemon

pytestmark = pytest.mark.slow
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
# Set to a path to refresh the screenshot committed under docs/.
SCREENSHOT_TO = os.environ.get("DBCRON_STATUS_SCREENSHOT")


@pytest.fixture
def browser() -> Iterator[Any]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        message = "chromium and chromedriver are not installed (apt-get install chromium " \
                  "chromium-driver)"
        if IN_CI:
            pytest.fail(f"{message}, and CI=true requires them")
        pytest.skip(message)
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="dbcron-chromium-")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 "--window-size=1100,640", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    # Both paths given: Selenium Manager has nothing to look up or download.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(20)
    # Each button posts a form: the next page's elements are looked for until it is in.
    driver.implicitly_wait(10)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_status_page_in_chromium(browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    api = start_api_daemon(tmp_path, DBCRON_HTTP_RATE_LIMIT="100000")
    try:
        failed = api.call("POST", "/api/v1/tasks/broken/run", api.write_token).json()
        run_id = failed["run_id"] or wait_for(lambda: api.call(
            "GET", "/api/v1/runs?task=broken", api.read_token).json(), 10, "the run")[0]["id"]
        api.wait_run(run_id)

        browser.get(api.url + "/")
        browser.find_element(By.ID, "token").send_keys(api.write_token)
        browser.find_element(By.ID, "show").click()
        table = browser.find_element(By.ID, "tasks")
        rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
        assert [r.get_attribute("data-task") for r in rows] == ["broken", "hello",
                                                                "nightly-cleanup"]
        cells = [c.text for c in rows[1].find_elements(By.TAG_NAME, "td")]
        assert cells[0] == "hello" and cells[3].endswith("09:00 +0000") and cells[-1] == "Run now"
        failure = browser.find_element(By.ID, "failures").text
        assert "broken" in failure and "the source database is down" in failure
        # The token is nowhere a browser would keep or leak it.
        assert api.write_token not in browser.current_url
        assert browser.get_cookies() == []

        rows[1].find_element(By.TAG_NAME, "button").click()
        message = browser.find_element(By.ID, "message").text
        assert message.startswith("Run of hello requested"), message
        hello = wait_for(lambda: [r for r in api.call(
            "GET", "/api/v1/runs?task=hello", api.read_token).json()
            if r["status"] != "running"], 20, "the run of hello")
        assert [(r["status"], r["trigger"]) for r in hello] == [("succeeded", "manual")]

        browser.find_element(By.ID, "refresh").click()

        def hello_status() -> str | None:
            # The click posts the form: until the new page is in, elements of the old
            # one go stale under the finder.
            from selenium.common.exceptions import (
                NoSuchElementException,
                StaleElementReferenceException,
            )

            try:
                row = browser.find_element(By.CSS_SELECTOR, "tr[data-task=hello]")
                return str(row.find_element(By.CSS_SELECTOR, "td.succeeded").text) or None
            except (NoSuchElementException, StaleElementReferenceException):
                return None

        assert wait_for(hello_status, 10, "the refreshed page") == "succeeded"

        shot = browser.get_screenshot_as_png()
        width, height = _png_size(shot)
        assert width >= 800 and height >= 400
        table_shot = browser.find_element(By.ID, "tasks").screenshot_as_png
        table_width, table_height = _png_size(table_shot)
        assert table_width > 600 and table_height > 3 * 20  # header and three rows drawn
        if SCREENSHOT_TO:
            Path(SCREENSHOT_TO).write_bytes(shot)
    finally:
        assert api.proc.stop() == 0, api.proc.log()
