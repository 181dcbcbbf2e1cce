"""Dataset text vectors, embedded once with the packaged model and cached on disk.

CPU is scarce, so a benchmark never embeds a dataset twice: the vectors of one CSV file (its
``text`` column, in file order) are stored as ``<cache>/<model id>/<sha256 of the file>.npy``.
A changed file or another model gets its own entry; re-runs only load the array.

    python -m bench.vectors FILE.csv [FILE.csv ...]   # warm the cache (prints progress)
"""

from __future__ import annotations

import csv
import hashlib
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = ROOT / ".labelwise" / "bench-cache"
CHUNK = 512


def read_csv(path: Path) -> list[tuple[str, str]]:
    """``(text, label)`` rows of a ``text,label`` CSV file, in file order."""
    with path.open(newline="", encoding="utf-8") as f:
        return [(r["text"], r["label"]) for r in csv.DictReader(f)]


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def cached_vectors(path: Path, encoder: Any | None = None, *, cache_dir: Path = DEFAULT_CACHE) -> np.ndarray:
    """``(n_rows, dim)`` unit float32 vectors of the file's texts; embeds (and stores) them on a miss.

    ``encoder`` is built lazily (the packaged model) only when the file is not cached yet.
    """
    model_id = encoder.model_id if encoder is not None else _default_model_id()
    target = cache_dir / model_id / f"{file_hash(path)}.npy"
    if target.exists():
        return np.load(target)
    encoder = encoder or _default_encoder()
    texts = [t for t, _ in read_csv(path)]
    parts = []
    for start in range(0, len(texts), CHUNK):
        parts.append(np.asarray(encoder.encode(texts[start : start + CHUNK]), dtype=np.float32))
        print(f"  {path.name}: {start + len(parts[-1])}/{len(texts)} embedded", file=sys.stderr, flush=True)
    vectors = np.vstack(parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp.npy")
    np.save(tmp, vectors)
    os.replace(tmp, target)
    return vectors


def _default_model_id() -> str:
    from labelwise.classify.sentence import model_id_for
    from labelwise.settings import DEFAULT_MODEL

    return model_id_for(DEFAULT_MODEL)


def _default_encoder() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from labelwise.classify.sentence import SentenceTransformerEncoder

    return SentenceTransformerEncoder(threads=os.cpu_count() or 1)


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(name, cached_vectors(Path(name)).shape)
