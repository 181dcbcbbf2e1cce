"""Long documents through a real broker and a real worker process: the whole text is read."""

from __future__ import annotations

import pytest

from tests.classify.test_documents import NEEDLE, long_document
from tests.stacks import Stack
from tests.worker.test_classify_e2e import new_tenant

pytestmark = pytest.mark.slow


def test_a_10000_character_document_gets_the_label_of_its_last_sentence_with_evidence(stack: Stack) -> None:
    tenant = new_tenant(stack)
    text = long_document(10_000)
    short = stack.wait_job(stack.send({"tenant": tenant, "label_set": "tiny", "text": "I was charged twice"}))
    job = stack.wait_job(stack.send({"tenant": tenant, "label_set": "tiny", "text": text}))
    assert job["status"] == "done", job
    assert job["chosen"] == ["billing"] and job["abstained"] is False
    assert job["windows"] > 5 and job["truncated"] is False
    [evidence] = job["evidence"]
    assert evidence["label"] == "billing" and NEEDLE in text[evidence["start"] : evidence["end"]]
    assert short["chosen"] == ["billing"] and short["windows"] == 1 and short["truncated"] is False
    assert short["evidence"][0]["start"] == 0 and short["evidence"][0]["end"] == len("I was charged twice")
