"""Integration secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256) with key rotation (MultiFernet)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from labelwise.errors import ConfigurationError, LabelwiseError
from labelwise.settings import Settings


class SecretBox:
    """Encrypts a dict of secrets to one token and back."""

    def __init__(self, keys: list[bytes]) -> None:
        self._fernet = MultiFernet([Fernet(k) for k in keys])

    def seal(self, secrets: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(secrets, sort_keys=True).encode()).decode()

    def rotate(self, token: str) -> str:
        """The same secrets encrypted with the first key (raises LabelwiseError when no key opens it)."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken as e:
            raise LabelwiseError("integration secrets cannot be decrypted with LABELWISE_SECRET_KEY") from e

    def open(self, token: str) -> dict[str, Any]:
        try:
            data = json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken as e:
            raise LabelwiseError("integration secrets cannot be decrypted with LABELWISE_SECRET_KEY") from e
        if not isinstance(data, dict):
            raise LabelwiseError("integration secrets are not a JSON object")
        return data


MAKE_KEY = (
    "make one with `labelwise secret-key` (or: python -c "
    "'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
)


def require_secret_key(settings: Settings) -> None:
    """Raises ConfigurationError when a shared database or broker is set without LABELWISE_SECRET_KEY:
    each host would make its own key file, and secrets sealed on one could not be opened on another."""
    if settings.secret_key is None and settings.shares_services():
        raise ConfigurationError(
            "LABELWISE_SECRET_KEY is required with a PostgreSQL database or a Redis/RabbitMQ broker "
            f"(set the same one on every API and worker host); {MAKE_KEY}"
        )


def new_key() -> str:
    return Fernet.generate_key().decode()


def secret_box(settings: Settings) -> SecretBox:
    """The box for these settings: LABELWISE_SECRET_KEY, else a key file under HOME (made once, mode 0600)."""
    if settings.secret_key is not None:
        keys = [k.strip().encode() for k in settings.secret_key.get_secret_value().split(",") if k.strip()]
        try:
            return SecretBox(keys)
        except ValueError as e:  # not 32 url-safe base64-encoded bytes
            raise ConfigurationError(f"LABELWISE_SECRET_KEY holds a key that is not a Fernet key; {MAKE_KEY}") from e
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
