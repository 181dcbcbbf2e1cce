"""Label-text embeddings stored in SQL: a new worker (or version) encodes only what it has not seen."""

from __future__ import annotations

import numpy as np

from labelwise.classify.stored import StoredEncoder


def test_stored_vectors_are_reused_across_encoders(sessions, encoder) -> None:  # type: ignore[no-untyped-def]
    texts = ["billing: invoices and charges", "bug report: something is broken", "billing: invoices and charges"]
    first = StoredEncoder(encoder, sessions)
    vectors = first.encode(texts)
    assert first.encoded == 2  # the repeated text once
    restarted = StoredEncoder(encoder, sessions)  # a new process: nothing in memory
    again = restarted.encode(texts)
    assert restarted.encoded == 0
    assert np.allclose(vectors, again) and np.allclose(vectors, encoder.encode(texts), atol=1e-5)
    restarted.encode([*texts, "refund: money back"])
    assert restarted.encoded == 1
