"""Which tenant a bearer token belongs to, remembered by the API process for ``token_cache_s`` seconds.

Every ``/v1`` request names its tenant by token. Looking the token up costs a database session (a pool
checkout with its ping, the query, the rollback): about half of the API's CPU for a request it refuses at
once (401, or 429 past a cap; ``bench/api_cost.py``), which a flooding tenant's clients send by the
dozen a second. Here a lookup's answer, found or not, is kept for ``token_cache_s`` (5 s by default): a
token revoked by ``labelwise token revoke`` (another process) or a deleted tenant's is refused within
that time on every API process, at once on the process that deleted the tenant. At most ``MAX_ENTRIES``
answers are kept, the least recently used dropped first, so made-up tokens cannot grow it; they are
kept by the token's SHA-256, never the token itself.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from labelwise.models.tenants import hash_token

MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class TokenOwner:
    tenant_id: int
    tenant: str


class TokenCache:
    def __init__(self, ttl_s: float, *, max_entries: int = MAX_ENTRIES) -> None:
        self.ttl_s, self.max_entries = ttl_s, max_entries
        self._answers: OrderedDict[str, tuple[float, TokenOwner | None]] = OrderedDict()
        self._lock = threading.Lock()

    def owner(self, token: str, look_up: Callable[[str], TokenOwner | None]) -> TokenOwner | None:
        """The token's owner (None: unknown or revoked): the answer of ``look_up(token)`` within the last
        ``ttl_s`` seconds, or a new one."""
        if self.ttl_s <= 0:
            return look_up(token)
        key, now = hash_token(token), time.monotonic()
        with self._lock:
            kept = self._answers.get(key)
            if kept is not None and kept[0] > now:
                self._answers.move_to_end(key)
                return kept[1]
        answer = look_up(token)
        with self._lock:
            self._answers[key] = (time.monotonic() + self.ttl_s, answer)
            self._answers.move_to_end(key)
            while len(self._answers) > self.max_entries:
                self._answers.popitem(last=False)
        return answer

    def clear(self) -> None:
        """Forget every answer (this process deleted a tenant)."""
        with self._lock:
            self._answers.clear()
