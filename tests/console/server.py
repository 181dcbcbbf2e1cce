"""A real ``labelwise up`` (API + worker, the real model) on a free port with its own LABELWISE_HOME, and
a headless Chromium driven by Selenium, for the console's browser tests and bench/preview_latency.py.

Without Chromium and chromedriver the browser tests skip, and fail in CI
(``LABELWISE_TEST_REQUIRE_SERVICES=1``; ``.ci/run`` installs Debian's chromium and chromium-driver).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ONNX_DIR = Path(tempfile.gettempdir()) / "labelwise-test-onnx"  # shared with tests/stacks.py: one export
CHROMIUM = os.environ.get("LABELWISE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("LABELWISE_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (Path(path).exists() or shutil.which(path)):
            return f"{path} not found (apt-get install -y chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    home: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes]

    def cli(self, *args: str) -> Any:
        """``labelwise ARGS --json`` against this server's database and broker."""
        out = subprocess.run(
            [sys.executable, "-m", "labelwise", *args, "--json"],
            env=self.env, capture_output=True, text=True, timeout=120, cwd=self.home, check=True,
        )  # fmt: skip
        return json.loads(out.stdout)

    def tenant(self, name: str) -> str:
        """A new tenant's token."""
        return str(self.cli("tenant", "create", name)["token"])

    def log(self) -> str:
        return (self.home / "up.log").read_text(errors="replace")


@contextlib.contextmanager
def labelwise_up(home: Path, **extra_env: str) -> Iterator[Server]:
    """Start ``labelwise up`` and wait until the API answers and the worker has loaded the model."""
    port = free_port()
    env = {
        **os.environ,
        "LABELWISE_HOME": str(home),
        "LABELWISE_ONNX_DIR": str(ONNX_DIR),
        "LABELWISE_WORKER_PROCESSES": "1",
        "HF_HUB_OFFLINE": "1",
        **extra_env,
    }
    log = open(home / "up.log", "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(
        [sys.executable, "-m", "labelwise", "up", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=home, start_new_session=True,
    )  # fmt: skip
    log.close()
    server = Server(f"http://127.0.0.1:{port}", home, env, proc)
    try:
        _wait_ready(server)
        yield server
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _wait_ready(server: Server, timeout_s: float = 240) -> None:
    """The API is ready, then one preview has gone through the worker (the model is loaded)."""
    deadline = time.monotonic() + timeout_s
    token = None
    body = {"document": {"name": "warmup", "labels": [{"name": "a"}, {"name": "b"}]}, "texts": ["warm up"]}
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise AssertionError(f"labelwise up exited {server.proc.returncode}:\n{server.log()[-4000:]}")
        try:
            if httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200:
                token = token or server.tenant("warmup")
                r = httpx.post(
                    f"{server.url}/v1/preview", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30
                )
                if r.status_code == 200 and r.json()["status"] == "done":
                    return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"labelwise up not ready after {timeout_s}s:\n{server.log()[-4000:]}")


def chromium(profile: Path, *, width: int = 1280, height: int = 900) -> Any:
    """A headless Chromium (Selenium) with a fresh profile and nothing that reaches the network."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which(CHROMIUM) or CHROMIUM
    for arg in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--user-data-dir={profile}", f"--window-size={width},{height}",
    ):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(shutil.which(CHROMEDRIVER) or CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    return driver


def sign_in(driver: Any, url: str, token: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{url}/console/sign-in")
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(driver, lambda d: d.current_url.endswith("/console/sets"))


def page_text(driver: Any, selector: str) -> str:
    """The text of the first element matching ``selector``, read in the page in one step (an element
    htmx swaps out meanwhile cannot go stale between finding and reading it); "" when there is none."""
    return str(
        driver.execute_script("const e = document.querySelector(arguments[0]); return e ? e.innerText : '';", selector)
    )


def wait_for(driver: Any, condition: Any, timeout_s: float = 30) -> Any:
    """Poll ``condition`` until it holds. An element htmx swapped out between finding it and reading it
    (a stale reference) is looked up again on the next poll, not a failure."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(
        driver,
        timeout_s,
        poll_frequency=0.05,
        ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
    ).until(condition)
