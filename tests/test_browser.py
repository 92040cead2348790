"""The playground in a real headless Chromium (Debian's chromium + chromium-driver, driven by Selenium) against a
real uvicorn on 127.0.0.1: the official example typed in, a bad bonus, and a screenshot for the README.

Nothing downloads a browser: Selenium is given /usr/bin/chromedriver and the chromium binary, and runs offline.
Without them the test is skipped, except in CI (``CI=true``), where it fails: `.ci/run` installs them.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from lottogpt import kata
from lottogpt.inference import ReferenceEngine
from lottogpt.serving import Settings, create_app

from .servers import uvicorn_in_thread

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "results" / "playground.png"
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1200,1080", "--lang=ko-KR", "--hide-scrollbars")


def browser_or_skip() -> tuple[str, Path]:
    """The chromium binary and chromedriver, or a skip that says what is missing (a failure in CI)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    found = {"chromium": chromium, "chromium-driver": CHROMEDRIVER.exists()}
    missing = [name for name, there in found.items() if not there]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (the dev extra)")
    if missing:
        reason = f"no browser for the playground test: {', '.join(missing)} missing (apt-get install chromium " \
                 "chromium-driver fonts-noto-cjk; .ci/run does)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return chromium, CHROMEDRIVER


@pytest.fixture
def server() -> Iterator[str]:
    """A real uvicorn on 127.0.0.1 (a free port) serving the reference engine; stopped afterwards."""
    app = create_app(ReferenceEngine, Settings(engine="reference", max_tickets=20, background_load=False))
    with uvicorn_in_thread(app) as base:
        yield base


@pytest.fixture
def driver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    chromium, chromedriver = browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager, should anything call it, must not download
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    service = Service(executable_path=str(chromedriver), popen_kw={"start_new_session": True})
    browser = webdriver.Chrome(service=service, options=options)
    try:
        browser.set_page_load_timeout(30)
        yield browser
    finally:
        try:
            browser.quit()
        finally:
            process = service.process
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)  # chromedriver and the browsers it started


@pytest.mark.parametrize(("ci", "outcome"), [("", pytest.skip.Exception), ("true", pytest.fail.Exception)])
def test_a_missing_browser_skips_here_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match=r"no browser for the playground test: chromium(, [^,]+)* missing"):
        browser_or_skip()


@pytest.mark.slow
def test_playground_plays_the_official_example_and_shows_errors(server: str, driver: object, official: dict) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 30)
    find = driver.find_element
    driver.get(server + "/")
    wait.until(ec.text_to_be_present_in_element((By.ID, "model-info"), "reference"))
    # keyboard only: the manual switch, the fields, and Enter on the button
    find(By.CSS_SELECTOR, 'input[name="mode"][value="manual"]').send_keys(Keys.SPACE)
    wait.until(ec.visibility_of_element_located((By.ID, "tickets")))
    find(By.ID, "tickets").send_keys("\n".join(", ".join(map(str, t)) for t in kata.OFFICIAL_TICKETS))
    for field, typed in (("winning", "1,2,3,4,5,6"), ("bonus", "7")):
        find(By.ID, field).clear()
        find(By.ID, field).send_keys(typed)
    find(By.ID, "submit").send_keys(Keys.ENTER)
    wait.until(ec.visibility_of_element_located((By.ID, "answer")))
    lines = [item.text.split("\n") for item in driver.find_elements(By.CSS_SELECTOR, "#lines li")]
    assert [text for _, text in lines] == official["expected_output"]
    assert [mark for mark, _ in lines] == ["✓"] * 6 and lines[-1][1] == "총 수익률은 62.5%입니다."
    assert "8개를 구매했습니다." in find(By.ID, "transcript").text
    assert len(driver.find_elements(By.CSS_SELECTOR, "#work li")) == 8
    assert "기준 프로그램과 일치" in find(By.ID, "summary").text and " ms" in find(By.ID, "summary").text
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOT))

    find(By.ID, "bonus").clear()
    find(By.ID, "bonus").send_keys("6", Keys.ENTER)  # Enter in a field submits the form
    message = "[ERROR] 보너스 번호는 당첨 번호와 중복될 수 없습니다."
    wait.until(ec.text_to_be_present_in_element((By.ID, "bonus-error"), message))
    assert find(By.ID, "bonus-error").text == message
    assert find(By.ID, "bonus").get_attribute("aria-invalid") == "true"
    assert find(By.ID, "bonus").get_attribute("value") == "6"  # what was typed is kept
    assert find(By.ID, "tickets").get_attribute("value").count("\n") == 7
    assert driver.switch_to.active_element == find(By.ID, "bonus") and not find(By.ID, "answer").is_displayed()
