"""The ONNX Runtime backend: the same weights as the sentence-transformers backend, run without torch.

The transformer is exported once (``labelwise.classify.onnx_export``: a child process, so a worker that
encodes with ONNX Runtime never imports torch) to ``<cache_dir>/<model-id>-<digest>[-int8].onnx``.

At run time (here): ``tokenizers`` on the model's ``tokenizer.json`` (truncation at ``max_seq_length``,
padding to the longest text of each batch), the ONNX transformer, then mean pooling over the attention
mask and L2 normalisation exactly as sentence-transformers' Pooling and Normalize modules do.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labelwise.classify.onnx_export import ensure_exported
from labelwise.classify.sentence import model_id_for, resolve_model_path
from labelwise.errors import LabelwiseError
from labelwise.priority import BULK_NICE, TURNS, background_thread
from labelwise.settings import DEFAULT_MODEL

log = logging.getLogger(__name__)


class OnnxEncoder:
    """The Encoder protocol on ONNX Runtime; exports (or reuses) the ONNX file and loads it on first use.

    Args:
        model: the packaged default name or a sentence-transformers model directory.
        cache_dir: where exported ``.onnx`` files live (created if missing), e.g. ``HOME/onnx``.
        threads: ONNX Runtime intra-op threads; 0 lets ONNX Runtime pick (one per physical core).
        batch_size: most texts per inference call; texts are sorted by length first to limit padding.
        max_batch_tokens: most padded tokens per call (rows x longest), so a batch of long texts is
            split instead of growing the arena by hundreds of MB (64 x 256 tokens: RSS ~700 MB).
        quantize: run the dynamic int8 variant (about 2-3x faster; cosine to fp32 on Banking77 mean
            0.994, min 0.980, so not fp32's 0.999 parity); its ``model_id`` gets an ``-int8`` suffix so
            label vectors are never mixed with fp32 ones.
        export_in_subprocess: export in a child process so torch never enters this one.
        urgent_session: load a second session for urgent calls (``labelwise.priority``: a light tenant's
            express batch), with threads of its own at the normal CPU priority, while the first one's
            threads run at ``BULK_NICE``: the cores go to a light tenant's call first, and a flood's
            calls take what is left (about 90 MB more memory).
        spin: whether the threads of the session at the normal priority spin between calls (sooner
            answers, a core held while they wait: see ``_session``); the niced session never spins.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        cache_dir: Path,
        threads: int = 0,
        batch_size: int = 32,
        max_batch_tokens: int = 4096,
        quantize: bool = False,
        export_in_subprocess: bool = True,
        urgent_session: bool = False,
        spin: bool = True,
    ) -> None:
        self._model_name = model
        self._cache_dir = Path(cache_dir)
        self._threads = threads
        self._batch_size = batch_size
        self._max_batch_tokens = max_batch_tokens
        self._quantize = quantize
        self._export_in_subprocess = export_in_subprocess
        self._urgent_session = urgent_session
        self._spin = spin
        self._runtime: _Runtime | None = None
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        base = model_id_for(self._model_name)
        return f"{base}-int8" if self._quantize else base

    def load(self) -> None:
        """Export if needed, then load tokenizer and session (idempotent, thread-safe)."""
        with self._lock:
            if self._runtime is None:
                model_dir = Path(resolve_model_path(self._model_name))
                check_mean_pooling(model_dir)
                path = ensure_exported(
                    self._model_name, self._cache_dir, quantize=self._quantize, in_subprocess=self._export_in_subprocess
                )
                self._runtime = _Runtime(
                    model_dir, path, threads=self._threads, urgent=self._urgent_session, spin=self._spin
                )

    @property
    def onnx_path(self) -> Path:
        """The ONNX file in use (loads first)."""
        self.load()
        assert self._runtime is not None
        return self._runtime.onnx_path

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.load()
        assert self._runtime is not None
        return self._runtime.encode(list(texts), batch_size=self._batch_size, max_batch_tokens=self._max_batch_tokens)


class _Runtime:
    """A loaded tokenizer and ONNX Runtime session (two with ``urgent``); ``InferenceSession.run`` is
    thread-safe."""

    def __init__(
        self, model_dir: Path, onnx_path: Path, *, threads: int, urgent: bool = False, spin: bool = True
    ) -> None:
        self.onnx_path = onnx_path
        self.tokenizer = load_tokenizer(model_dir)
        self.session = make_session(onnx_path, threads=threads, nice=BULK_NICE if urgent else 0, spin=spin)
        self.urgent = make_session(onnx_path, threads=threads, spin=spin) if urgent else None
        self.input_names = {i.name for i in self.session.get_inputs()}
        self.dim = int(self.session.get_outputs()[0].shape[-1])

    def encode(self, texts: list[str], *, batch_size: int, max_batch_tokens: int) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        encodings = self.tokenizer.encode_batch(texts) if texts else []
        lengths = [len(e.ids) for e in encodings]
        for rows in plan_batches(lengths, batch_size=batch_size, max_batch_tokens=max_batch_tokens):
            out[rows] = self._run([encodings[i] for i in rows])
        return out

    def _run(self, encodings: list[Any]) -> np.ndarray:
        feeds = pad_batch(encodings)
        TURNS.checkpoint()  # a light tenant's batch goes first (labelwise.priority)
        session = self.urgent if self.urgent is not None and TURNS.is_urgent() else self.session
        hidden = session.run(None, {k: v for k, v in feeds.items() if k in self.input_names})[0]
        return normalize(mean_pool(hidden, feeds["attention_mask"]))


# The fixed cost of one inference call, in padded tokens (rows x longest): on one thread a call of
# all-MiniLM-L6-v2 costs about 1.27 ms plus 0.28 ms per padded token (fitted on Banking77 texts).
CALL_TOKENS = 4.6


def plan_batches(
    lengths: Sequence[int], *, batch_size: int, max_batch_tokens: int, call_tokens: float = CALL_TOKENS
) -> list[list[int]]:
    """Indices grouped, longest first, so that the padded work plus a fixed cost per call is least.

    Each group has at most ``batch_size`` rows and ``rows x longest <= max_batch_tokens`` (but always at
    least one row). Padding a short text to a long one's length costs real work (a batch of 8
    Banking77 texts padded to the longest costs 28% more per text than one at a time), while equal
    lengths share a call's fixed cost (8 texts of one length: 19% less than one at a time); a dynamic
    programme over the sorted lengths picks the cheapest contiguous split.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    longest = [lengths[i] for i in order]
    n = len(order)
    cost = [0.0] + [float("inf")] * n  # cost[j]: cheapest plan for the j longest texts
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        for i in range(j - 1, max(j - batch_size, 0) - 1, -1):  # group order[i:j], padded to longest[i]
            rows = j - i
            if rows > 1 and rows * longest[i] > max_batch_tokens:
                break
            candidate = cost[i] + call_tokens + rows * longest[i]
            if candidate < cost[j]:
                cost[j], cut[j] = candidate, i
    batches: list[list[int]] = []
    j = n
    while j > 0:
        batches.append(order[cut[j] : j])
        j = cut[j]
    return batches[::-1]


def load_tokenizer(model_dir: Path) -> Any:
    """The model's fast tokenizer, truncating at ``max_seq_length`` and not padding (we pad per batch)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_padding()  # the shipped file pads every text to 128
    tokenizer.enable_truncation(max_length=max_seq_length(model_dir))  # and truncates at 128, not 256
    return tokenizer


def check_mean_pooling(model_dir: Path) -> None:
    """Raise LabelwiseError unless the model pools by mean only (the one mode implemented here)."""
    modules_file = model_dir / "modules.json"
    modules = json.loads(modules_file.read_text()) if modules_file.exists() else []
    for module in modules:
        if module.get("type", "").endswith(".Pooling"):
            config = json.loads((model_dir / module["path"] / "config.json").read_text())
            modes = {k for k, v in config.items() if k.startswith("pooling_mode_") and v is True}
            if modes != {"pooling_mode_mean_tokens"}:
                raise LabelwiseError(f"ONNX backend supports mean pooling only; {model_dir} uses {sorted(modes)}")


def max_seq_length(model_dir: Path) -> int:
    """``max_seq_length`` of sentence_bert_config.json, capped by the model's position embeddings."""
    cap = int(json.loads((model_dir / "config.json").read_text()).get("max_position_embeddings", 512))
    sbert = model_dir / "sentence_bert_config.json"
    if sbert.exists():
        value = json.loads(sbert.read_text()).get("max_seq_length")
        if value:
            return min(int(value), cap)
    return cap


def pad_batch(encodings: list[Any]) -> dict[str, np.ndarray]:
    """int64 ``input_ids``, ``attention_mask``, ``token_type_ids``, right-padded with 0 to the longest."""
    length = max(len(e.ids) for e in encodings)
    feeds = {name: np.zeros((len(encodings), length), dtype=np.int64) for name in _FEEDS}
    for row, enc in enumerate(encodings):
        n = len(enc.ids)
        for name, attr in _FEEDS.items():
            feeds[name][row, :n] = getattr(enc, attr)
    return feeds


_FEEDS = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}


def mean_pool(hidden: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """Mean of the token vectors the mask keeps; sentence-transformers' ``mean`` pooling."""
    mask = attention_mask.astype(hidden.dtype)
    summed = np.einsum("btd,bt->bd", hidden, mask)
    counts = np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
    return summed / counts


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Unit rows, as ``torch.nn.functional.normalize`` (eps 1e-12) in sentence-transformers' Normalize."""
    norms = np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return (vectors / norms).astype(np.float32)


def make_session(onnx_path: Path, *, threads: int, nice: int = 0, spin: bool = True) -> Any:
    """A CPU InferenceSession tuned for one request at a time per process. With ``nice``, its intra-op
    threads run at that lower CPU priority: they are started from a thread that lowered its own first
    (a Linux thread inherits its creator's nice value), and the calling thread is not changed; and they
    do not spin between calls (ONNX Runtime's threads otherwise spin for the next call, holding a core
    that the API, the database or a light tenant's batch was waiting for). Without ``nice``, its threads
    spin unless ``spin`` is False."""
    if nice:
        made: list[Any] = []
        errors: list[BaseException] = []

        def build() -> None:
            background_thread(nice)
            try:
                made.append(_session(onnx_path, threads=threads, spin=False))
            except BaseException as e:
                errors.append(e)

        builder = threading.Thread(target=build, name="labelwise-onnx-bulk-session")
        builder.start()
        builder.join()
        if errors:
            raise errors[0]
        return made[0]
    return _session(onnx_path, threads=threads, spin=spin)


def _session(onnx_path: Path, *, threads: int, spin: bool) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1  # a sequential graph never uses the inter-op pool
    opts.log_severity_level = 3  # errors only: warnings go to stderr, not to logging
    # A spinning thread answers the next call sooner (a one-text call: 3.0 ms spinning, 4.8 ms not) but
    # burns a core while it waits (that call every 5 ms: 10.9 ms of CPU each spinning, 5.0 not). The
    # flood's session does not spin, leaving those cores to light tenants (bench/noisy_neighbour.py, README).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return ort.InferenceSession(str(onnx_path), sess_options=opts, providers=["CPUExecutionProvider"])
