"""The console in a real browser (headless Chromium, Selenium) against a real ``labelwise up`` on the
embedded defaults with the real model. The tests run in order and share one server, tenant and set.

Screenshots of each main page go to the test's output folder (``tmp_path_factory``'s ``console-shots``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.common.exceptions import NoAlertPresentException

from tests.console.server import Server, browser_missing, chromium, labelwise_up, page_text, sign_in, wait_for
from tests.stacks import REQUIRE

pytestmark = pytest.mark.slow
DATA = Path(__file__).parent.parent / "data"
XSS = "<img src=x onerror=alert(1)>"
LABELS = [
    ("billing", "Invoices, charges, refunds and payment methods.", ["I was charged twice this month"]),
    ("account-access", "Logging in, passwords and two-factor authentication.", ["I cannot log in"]),
    ("bug-report", "Something in the product is broken, crashes or shows an error.", ["The app crashes on start"]),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    reason = browser_missing()
    if reason:
        if REQUIRE:
            pytest.fail(reason + "; LABELWISE_TEST_REQUIRE_SERVICES=1 makes this a failure")
        pytest.skip(reason)
    with labelwise_up(tmp_path_factory.mktemp("console-up")) as s:
        yield s


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("console-shots")


@pytest.fixture(scope="module")
def tenant(server: Server) -> dict[str, str]:
    return {"name": "acme", "token": server.tenant("acme")}


@pytest.fixture(scope="module")
def driver(server: Server, tenant: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    d = chromium(tmp_path_factory.mktemp("chromium-profile"))
    try:
        sign_in(d, server.url, tenant["token"])
        yield d
    finally:
        d.quit()


def by(css: str) -> tuple[str, str]:
    return ("css selector", css)


def api(server: Server, tenant: dict[str, str], method: str, path: str, **kw: Any) -> httpx.Response:
    return httpx.request(
        method, server.url + path, headers={"Authorization": f"Bearer {tenant['token']}"}, timeout=30, **kw
    )


def check_page(driver: Any, shots: Path, name: str) -> None:
    """Every input is labelled, nothing broke the CSP, no script ran an alert; then a screenshot."""
    unlabelled = driver.execute_script(
        "return [...document.querySelectorAll('input,select,textarea')]"
        ".filter(e => e.type !== 'hidden' && !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))"
        ".map(e => e.name || e.id)"
    )
    assert unlabelled == [], (name, unlabelled)
    problems = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not [p for p in problems if "Content Security Policy" in p or "Refused" in p], problems
    driver.save_screenshot(str(shots / f"{name}.png"))


def fill_label(driver: Any, i: int, name: str, description: str, examples: list[str]) -> None:
    wait_for(driver, lambda d: d.find_elements(*by(f"#labels-{i}-name")))
    driver.find_element(*by(f"#labels-{i}-name")).clear()
    driver.find_element(*by(f"#labels-{i}-name")).send_keys(name)
    driver.find_element(*by(f"#labels-{i}-description")).send_keys(description)
    driver.find_element(*by(f"#labels-{i}-examples")).send_keys("\n".join(examples))


def add_label(driver: Any) -> None:
    """Keyboard: Enter on "Add label"; the new label's name field gets the focus."""
    n = len(driver.find_elements(*by(".label-card")))
    driver.find_element(*by("#add-label")).send_keys("\ue007")  # Enter
    wait_for(driver, lambda d: len(d.find_elements(*by(".label-card"))) == n + 1)
    wait_for(driver, lambda d: d.execute_script("return document.activeElement.id") == f"labels-{n}-name")


def preview(driver: Any, text: str, side: str = "Draft") -> str:
    """Type a message; the chosen label of one side once the scores for this very text are shown."""
    box = driver.find_element(*by("#preview-text"))
    box.clear()
    box.send_keys(text)
    shown = "const s = document.querySelector('#preview-sides'); return !!s && s.dataset.text === arguments[0];"
    wait_for(driver, lambda d: d.execute_script(shown, text))
    return str(
        driver.execute_script(
            "const v = document.querySelector(`#preview-result section[aria-label='${arguments[0]}'] .verdict`);"
            "const c = v && v.querySelector('.chosen'); return c ? c.textContent : '(abstains)';",
            side,
        )
    )


def test_create_a_set_with_three_labels_and_preview_the_draft(driver: Any, server: Server, shots: Path) -> None:
    driver.find_element(*by("#new-name")).send_keys("support")
    driver.find_element(*by("#new-name")).submit()
    wait_for(driver, lambda d: "/console/sets/support" in d.current_url)
    for i, (name, description, examples) in enumerate(LABELS):
        if i:
            add_label(driver)
        fill_label(driver, i, name, description, examples)
    assert preview(driver, "I was charged twice, please refund one of the charges") == "billing"
    assert "No saved version yet" in driver.find_element(*by("#preview-result")).text
    check_page(driver, shots, "editor-new-set")
    driver.find_element(*by("#save")).click()
    wait_for(driver, lambda d: "Saved version 1." in page_text(d, ".notice"))


def test_preview_a_draft_beside_the_current_version_then_save_version_2(
    driver: Any, server: Server, tenant: dict[str, str], shots: Path
) -> None:
    add_label(driver)
    fill_label(driver, 3, "shipping", "Parcels, deliveries, couriers and tracking numbers.", ["Where is my parcel?"])
    assert preview(driver, "My package has not arrived and the courier tracking has not moved") == "shipping"
    current = driver.find_element(*by("#preview-result section[aria-label='Current version']")).text
    assert "v1" in current and "shipping" not in current  # the current version has no such label
    driver.set_window_size(1280, 1700)  # the whole editor and its preview in one picture (README)
    driver.execute_script("window.scrollTo(0, 0)")
    check_page(driver, shots, "editor")
    driver.set_window_size(1280, 900)
    driver.find_element(*by("#save")).click()
    wait_for(driver, lambda d: "Saved version 2." in page_text(d, ".notice"))
    assert api(server, tenant, "GET", "/v1/label-sets/support").json()["version"] == 2
    driver.set_window_size(390, 844)
    try:
        driver.refresh()
        wide = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert wide <= 0, f"the editor scrolls sideways by {wide}px at 390 px"
        check_page(driver, shots, "editor-390px")
    finally:
        driver.set_window_size(1280, 900)


def test_versions_diff_and_rollback(driver: Any, server: Server, tenant: dict[str, str], shots: Path) -> None:
    driver.get(f"{server.url}/console/sets/support/versions")
    assert "label shipping added" in driver.find_element(*by("#changes")).text
    rows = driver.find_elements(*by("tbody tr"))
    assert "v2" in rows[0].text and "current" in rows[0].text and "console lw_" in rows[0].text
    check_page(driver, shots, "versions")
    driver.find_element(*by("button[aria-label='Roll back to version 1']")).click()
    wait_for(driver, lambda d: "current" in page_text(d, "tbody tr:nth-child(2)"))
    assert api(server, tenant, "GET", "/v1/label-sets/support").json()["version"] == 1


def test_evaluate_an_uploaded_csv(driver: Any, server: Server, tenant: dict[str, str], shots: Path) -> None:
    """The page shows the accuracy `labelwise eval` computes for the same file and document."""
    driver.get(f"{server.url}/console/sets/support/evaluate")
    driver.find_element(*by("#eval-file")).send_keys(str(DATA / "console_eval.csv"))
    driver.find_element(*by("#eval-file")).submit()
    wait_for(driver, lambda d: d.find_elements(*by("#current-accuracy")), timeout_s=120)
    shown = driver.find_element(*by("#current-accuracy")).text
    doc = server.home / "current.yaml"
    doc.write_text(httpx.get(f"{server.url}/console/sets/support/export.yaml", cookies=_cookies(driver)).text)
    cli = subprocess.run(
        [sys.executable, "-m", "labelwise", "eval", str(DATA / "console_eval.csv"), "--labels", str(doc), "--json"],
        env=server.env, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    assert shown == f"{100 * json.loads(cli.stdout)['accuracy']:.1f}%"
    assert driver.find_element(*by("figure img")).get_attribute("naturalWidth") != "0"
    check_page(driver, shots, "evaluation")


def _cookies(driver: Any) -> dict[str, str]:
    return {c["name"]: c["value"] for c in driver.get_cookies()}


def test_correct_a_recent_message_and_the_next_version_holds_it(
    driver: Any, server: Server, tenant: dict[str, str], shots: Path
) -> None:
    text = "Please send the receipts to our finance team from now on"
    job = api(server, tenant, "POST", "/v1/classify", json={"label_set": "support", "text": text}).json()
    assert job["status"] == "done", job
    driver.get(f"{server.url}/console/sets/support/messages")
    card = driver.find_element(*by(f"#job-{job['job_id']}"))
    card.find_element(*by("select[name=label]")).send_keys("billing")
    card.find_element(*by("form[action$='/feedback'] select + button")).click()
    wait_for(driver, lambda d: "corrected: billing" in page_text(d, f"#job-{job['job_id']}"))
    current = api(server, tenant, "GET", "/v1/label-sets/support").json()
    assert current["version"] == 3
    billing = next(x for x in current["document"]["labels"] if x["name"] == "billing")
    assert text in billing["examples"]
    check_page(driver, shots, "messages")


def test_another_tenants_set_is_404(driver: Any, server: Server) -> None:
    other = server.tenant("globex")
    body = {"labels": [{"name": "secret-label"}]}
    assert (
        httpx.put(
            f"{server.url}/v1/label-sets/globex-only", json=body, headers={"Authorization": f"Bearer {other}"}
        ).status_code
        == 201
    )
    for path in ("", "/versions", "/messages", "/evaluate", "/export.yaml", "/delete"):
        r = httpx.get(f"{server.url}/console/sets/globex-only{path}", cookies=_cookies(driver))
        assert r.status_code == 404 and "secret-label" not in r.text, (path, r.status_code)
    driver.get(f"{server.url}/console/sets/globex-only")
    assert driver.find_element(*by("h1")).text == "Not found"
    driver.get(f"{server.url}/console/sets")
    assert "globex-only" not in driver.find_element(*by("main")).text


def test_a_label_named_like_markup_renders_as_text(driver: Any, server: Server, shots: Path) -> None:
    driver.get(f"{server.url}/console/sets/support")
    add_label(driver)
    n = len(driver.find_elements(*by(".label-card"))) - 1
    fill_label(driver, n, XSS, f"{XSS} in a description", [XSS])
    assert preview(driver, "hello")  # the draft with that label previews
    driver.find_element(*by("#save")).click()
    wait_for(driver, lambda d: "Saved version 4." in page_text(d, ".notice"))
    for path in ("/console/sets/support", "/console/sets/support/versions?a=3&b=4", "/console/sets"):
        driver.get(server.url + path)
        assert driver.find_elements(*by("img[src='x']")) == []
        with pytest.raises(NoAlertPresentException):
            driver.switch_to.alert.text  # noqa: B018 - reading it is the check
    driver.get(f"{server.url}/console/sets/support")
    assert XSS in driver.find_element(*by(f"#labels-{n}-name")).get_attribute("value")
    assert XSS in driver.find_element(*by(f".label-card:nth-child({n + 1}) legend")).text
    driver.get(f"{server.url}/console/sets/support/versions?a=3&b=4")
    assert f"label {XSS} added" in driver.find_element(*by("#changes")).text
    check_page(driver, shots, "versions-xss")


def test_sets_and_integrations_pages_then_sign_out(driver: Any, server: Server, shots: Path) -> None:
    driver.get(f"{server.url}/console/sets")
    row = driver.find_element(*by("tbody tr")).text
    assert "support" in row and "v4" in row
    check_page(driver, shots, "sets")
    driver.get(f"{server.url}/console/integrations")
    check_page(driver, shots, "integrations")
    driver.find_element(*by(".signout button")).click()
    wait_for(driver, lambda d: d.current_url.endswith("/console/sign-in"))
    driver.get(f"{server.url}/console/sets")
    assert driver.current_url.endswith("/console/sign-in")
    driver.get(f"{server.url}/docs")
    wait_for(driver, lambda d: d.find_elements(*by(".swagger-ui .info .title")))
    check_page(driver, shots, "docs")
