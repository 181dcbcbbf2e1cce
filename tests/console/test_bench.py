"""A short run of bench/preview_latency.py, so the benchmark cannot rot (figures are not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.console.server import browser_missing
from tests.stacks import REQUIRE

pytestmark = pytest.mark.slow
ROOT = Path(__file__).parent.parent.parent


def test_preview_latency_bench_runs() -> None:
    reason = browser_missing()
    if reason:
        pytest.fail(reason) if REQUIRE else pytest.skip(reason)
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "preview_latency.py"), "--n", "3", "--stacks", "embedded", "--json"],
        capture_output=True, text=True, timeout=280, check=True,
    )  # fmt: skip
    result = json.loads(out.stdout)["results"][0]
    assert result["stack"] == "embedded" and result["page"]["n"] == result["route"]["n"] == 3
    assert result["page"]["p50_ms"] >= result["debounce_ms"]  # the pause in typing is part of the page's figure
