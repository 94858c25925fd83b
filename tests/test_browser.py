"""The status page in a real browser (Debian's chromium, headless, driven by selenium through
chromedriver): the jobs, a quarantined file with its reason, Retry pressed, the file processed."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import ROOT, DaemonProcess, ServeProcess, corpus, write_config

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
# Where a person finds the screenshots after a run (build/ is not committed).
SHOTS = Path(os.environ.get("HOTFOLDER_SCREENSHOTS", ROOT / "build" / "screenshots"))

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER) and not os.environ.get("CI"),
    reason="needs Debian's chromium and chromium-driver (.ci/run installs them)",
)


@pytest.fixture
def browser() -> Iterator[object]:
    from selenium import webdriver  # noqa: PLC0415
    from selenium.webdriver.chrome.options import Options  # noqa: PLC0415
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415

    options = Options()
    options.binary_location = CHROMIUM or "/usr/bin/chromium"
    # No network beyond localhost here: chromium's own background connections are turned off.
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1200,1500",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER or "/usr/bin/chromedriver"), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_a_person_retries_a_quarantined_file_from_the_page(
    tmp_path: Path, daemons: list[DaemonProcess], servers: list[ServeProcess], browser: object
) -> None:
    from selenium.webdriver.common.by import By  # noqa: PLC0415
    from selenium.webdriver.support.wait import WebDriverWait  # noqa: PLC0415

    driver: object = browser
    write_config(tmp_path, (ROOT / "rules" / "default.toml").read_text(), extra="settle = 0.3\n")
    daemon = DaemonProcess(tmp_path)
    daemons.append(daemon)
    daemon.started()
    inbox = tmp_path / "inbox"
    good = ("canon_eos_7d.jpg", "dscn0010.jpg", "hopper.bmp", "apple_iphone_4.jpg")
    for name in good:
        shutil.copy(corpus(name), inbox / name)
    # A phone sync cut off half way: the upload arrives truncated and is quarantined with its reason.
    whole = (corpus("fujifilm_finepixs1pro_1.jpg")).read_bytes()
    cut = inbox / "IMG_0042.jpg"
    cut.write_bytes(whole[: len(whole) // 2])
    for name in good:
        daemon.wait_event("job.done", src=inbox / name)
    quarantined = daemon.wait_event("job.quarantined", src=cut)
    serve = ServeProcess(tmp_path)
    servers.append(serve)
    serve.ready()

    driver.get(serve.base + "/")  # type: ignore[attr-defined]
    rows = driver.find_elements(By.CSS_SELECTOR, "#jobs tr.job")  # type: ignore[attr-defined]
    assert len(rows) == len(good) + 1
    for name in good:
        assert any(str(inbox / name) in r.text and "done" in r.text for r in rows), name
    thumbs = driver.find_elements(By.CSS_SELECTOR, "#jobs img.thumb")  # type: ignore[attr-defined]
    deadline = time.monotonic() + 20
    while not all(
        driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", t)  # type: ignore[attr-defined]
        for t in thumbs
    ):
        assert time.monotonic() < deadline, "thumbnails did not load"
        time.sleep(0.05)
    assert len(thumbs) == len(good)
    (entry,) = driver.find_elements(By.CSS_SELECTOR, "#quarantine tr.quarantined")  # type: ignore[attr-defined]
    assert str(cut) in entry.text
    reason = entry.find_element(By.CSS_SELECTOR, ".reason").text
    assert reason and reason in str(quarantined["error"])
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / "status-page.png"))  # type: ignore[attr-defined]

    # The person fixes the file the way the note says (replace it), then presses Retry.
    (tmp_path / "quarantine" / "IMG_0042.jpg").write_bytes(whole)
    entry.find_element(By.CSS_SELECTOR, "button[name=retry]").click()
    WebDriverWait(driver, 20).until(lambda d: d.find_elements(By.ID, "notice"))  # the answer page loaded
    notice = driver.find_element(By.ID, "notice")  # type: ignore[attr-defined]
    assert "handed to the daemon" in notice.text, driver.page_source  # type: ignore[attr-defined]
    daemon.wait_event("job.done", src=cut)
    deadline = time.monotonic() + 30
    while True:
        driver.get(serve.base + "/")  # type: ignore[attr-defined]
        quarantine = driver.find_element(By.ID, "quarantine").text  # type: ignore[attr-defined]
        rows = driver.find_elements(By.CSS_SELECTOR, "#jobs tr.job")  # type: ignore[attr-defined]
        fixed = [r for r in rows if str(cut) in r.text]
        if "nothing in quarantine" in quarantine and fixed and "done" in fixed[0].text:
            break
        assert time.monotonic() < deadline, "the retried file never showed as done"
        time.sleep(0.2)
    driver.save_screenshot(str(SHOTS / "status-page-after-retry.png"))  # type: ignore[attr-defined]
    # The plot still counts the failure the retry mended: 5 done and 1 failed this hour.
    assert "5 done, 1 failed</title>" in driver.page_source  # type: ignore[attr-defined]
    assert (tmp_path / "outbox" / "web" / "IMG_0042.jpg").is_file()
