"""Test-only fault points (LABELWISE_FAULT_INJECTION), for bench/chaos.py: nothing here runs unless set.

``api-exit-before-publish=P``: with probability P per new job, the API process exits at once (as a
SIGKILL would end it) after the job is committed and before its message is published."""

from __future__ import annotations

import os
import random
from collections.abc import Callable

from labelwise.settings import Settings

EXIT_BEFORE_PUBLISH = "api-exit-before-publish"


def before_publish(settings: Settings) -> Callable[[], None] | None:
    spec = settings.fault_injection or ""
    if not spec.startswith(EXIT_BEFORE_PUBLISH + "="):
        return None
    chance = float(spec.split("=", 1)[1])

    def maybe_exit() -> None:
        if random.random() < chance:
            os._exit(137)

    return maybe_exit
