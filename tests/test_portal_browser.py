"""The example portal's on-call page in a real headless browser, over the real deployment.

gunicorn serves the portal, a worker process delivers to the ilert simulator,
and Chromium (driven by chromedriver through selenium) does what an on-call
lead does: log in, find the dead letter, press Replay, look the ticket up. A
POST without the session's CSRF token, sent with the logged-in session's
cookie, is refused and replays nothing.

Needs Debian's chromium and chromium-driver (``scripts/ensure-chromium``,
which ``make test`` runs); skipped, with the reason, where they are missing.
"""

from __future__ import annotations

import shutil
import signal
from collections.abc import Callable, Iterator

import pytest
import requests

from tests.deployment import Deployment, wait_until

pytestmark = pytest.mark.realprocess

USER, PASSWORD = "oncall", "browser-test-password-0123"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip("Chromium or chromedriver not found (Debian: apt-get install chromium chromium-driver, "
                "or scripts/ensure-chromium)", allow_module_level=True)

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the test extra)")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1200,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def deployment(deploy: Callable[..., Deployment]) -> Deployment:
    return deploy(
        extra_env={"PORTAL_USER": USER, "PORTAL_PASSWORD": PASSWORD,
                   "PORTAL_SECRET_KEY": "browser-test-session-key-0123456789"},
        # Chromium opens spare connections ahead of need, and a sync worker waits on an idle
        # one: more workers than the browser's spares keep the test's own requests answered.
        web_workers=6,
    )


def text(driver: WebDriver, css: str) -> str:
    """The element's text once the page has it: after a click the next page may still be loading."""
    element = WebDriverWait(driver, 15).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css)))
    return str(element.text)


def reload_until(driver: WebDriver, css: str, wanted: str, what: str) -> None:
    """Reload the page until the element shows ``wanted`` (the worker runs in its own process)."""

    def shown() -> bool:
        driver.refresh()
        found = driver.find_elements(By.CSS_SELECTOR, css)
        return bool(found) and wanted in found[0].text

    wait_until(shown, 30, interval=0.3, what=what)


def test_on_call_lead_logs_in_replays_a_dead_letter_and_looks_up_the_ticket(
    deployment: Deployment, browser: WebDriver
) -> None:
    d = deployment
    d.start(workers=1)
    base = d.base_url

    # Not logged in: the page sends the browser to the login form, and back after it.
    browser.get(f"{base}/on-call")
    assert "/login" in browser.current_url
    browser.find_element(By.ID, "username").send_keys(USER)
    browser.find_element(By.ID, "password").send_keys("wrong password")
    browser.find_element(By.ID, "login").click()
    assert "Wrong user or password" in text(browser, "#login-error")
    browser.find_element(By.ID, "username").send_keys(USER)
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "login").click()
    # The redirect after a login may still be under way when click() returns on a busy machine.
    wait_until(lambda: browser.current_url == f"{base}/on-call", 15, interval=0.1,
               what=f"the on-call page after the login (at {browser.current_url})")
    reload_until(browser, "#workers", "alive", "the worker's heartbeat on the page")

    # ilert refuses the alert for good: the event becomes a dead letter.
    d.ilert.force({"status": 400, "body": {"message": "Invalid alert source"}})
    ticket = d.autotask.create_ticket("Mail server down", priority_label="High")[0]["id"]
    reload_until(browser, "#dead-letters", f"{ticket}", "the dead letter on the page")
    row = browser.find_element(By.CSS_SELECTOR, f'tr.dead-letter[data-ticket="{ticket}"]')
    assert "ilert create" in row.text and "400" in row.text
    digest = row.find_element(By.CSS_SELECTOR, 'input[name="dead"]').get_attribute("value")

    # The worker stops, so that the replayed event stays queued long enough to be seen.
    d.kill(d.workers[0], signal.SIGTERM)
    reload_until(browser, "#workers", "No worker", "the worker gone from the page")

    # A POST with the logged-in session but without the CSRF token is refused, and replays nothing.
    cookies = {c["name"]: c["value"] for c in browser.get_cookies()}
    forged = requests.post(f"{base}/on-call/replay", data={"dead": digest}, cookies=cookies,
                           allow_redirects=False, timeout=10)
    assert forged.status_code == 400
    browser.refresh()
    assert browser.find_elements(By.CSS_SELECTOR, f'tr.dead-letter[data-ticket="{ticket}"]')
    assert text(browser, "#queue-tickets") == "0"

    # Replay: the dead letter leaves the list and the event is queued again.
    browser.find_element(By.CSS_SELECTOR, f'tr.dead-letter[data-ticket="{ticket}"] button.replay').click()
    assert f"Replayed ticket {ticket} ilert create" in text(browser, ".flash")
    assert text(browser, "#dead-letters") == "No dead letters."
    assert text(browser, "#queue-tickets") == "1"
    assert text(browser, "#oldest-age").endswith(" old")

    # The ticket's state and its audit trail, in words.
    browser.find_element(By.ID, "ticket").send_keys(str(ticket))
    browser.find_element(By.ID, "lookup").click()
    report = text(browser, "#ticket-report")
    assert "PENDING" in text(browser, ".ticket-state")
    assert "ilert create, queued" in report
    trail = text(browser, "ul.audit")
    assert "callout NEW: create NONE>PENDING" in trail
    assert "ilert create dead-lettered" in trail and "ilert create replayed" in trail

    # A worker again: the replayed alert reaches ilert.
    d.start_worker()
    wait_until(lambda: any(a.key == f"autotask-{ticket}" for a in d.ilert.alerts()), 30,
               what="the replayed alert in ilert")
    reload_until(browser, "#queue-tickets", "0", "the queue drained")
