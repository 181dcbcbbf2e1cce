"""``python -m tests.fuzz.run NAME [-runs=N] [CORPUS_DIR ...]``: fuzz one target with atheris (libFuzzer
options pass through). Exits non-zero on the first uncaught exception, printing the input."""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["labelwise", "tests.fuzz"]):
    from tests.fuzz.targets import TARGETS


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: python -m tests.fuzz.run {{{','.join(TARGETS)}}} [libFuzzer options]")
    name = sys.argv.pop(1)
    sys.setrecursionlimit(5_000)
    atheris.Setup(sys.argv, TARGETS[name])
    atheris.Fuzz()


if __name__ == "__main__":
    main()
