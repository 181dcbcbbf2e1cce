"""Integration secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256) with key rotation (MultiFernet)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from labelwise.errors import LabelwiseError
from labelwise.settings import Settings


class SecretBox:
    """Encrypts a dict of secrets to one token and back."""

    def __init__(self, keys: list[bytes]) -> None:
        self._fernet = MultiFernet([Fernet(k) for k in keys])

    def seal(self, secrets: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(secrets, sort_keys=True).encode()).decode()

    def open(self, token: str) -> dict[str, Any]:
        try:
            data = json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken as e:
            raise LabelwiseError("integration secrets cannot be decrypted with LABELWISE_SECRET_KEY") from e
        if not isinstance(data, dict):
            raise LabelwiseError("integration secrets are not a JSON object")
        return data


def secret_box(settings: Settings) -> SecretBox:
    """The box for these settings: LABELWISE_SECRET_KEY, else a key file under HOME (made once, mode 0600)."""
    if settings.secret_key is not None:
        keys = [k.strip().encode() for k in settings.secret_key.get_secret_value().split(",") if k.strip()]
        return SecretBox(keys)
    return SecretBox([_home_key(settings.home / "secret.key")])


def _home_key(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    key = Fernet.generate_key()
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key
