"""The error tree of labelwise.

    LabelwiseError                 base of everything we raise on purpose
    ├── NotFoundError              a tenant, label set, version or job does not exist (for this tenant)
    ├── ConflictError              the request contradicts what is stored (e.g. key reused)
    │   └── VersionConflictError   a compare-and-set found another current version (If-Match)
    ├── InvalidInputError          bad input from a caller; ``field`` names the culprit
    │   └── InvalidDocumentError   a label-set document fails validation (``errors`` lists each)
    ├── UnauthorizedError          an inbound webhook's signature or timestamp does not check out
    ├── ConfigurationError         settings that must not run (e.g. no LABELWISE_SECRET_KEY beside PostgreSQL)
    ├── DeliveryError              sending a result to an integration failed
    │   ├── RetryableDeliveryError     try again (5xx, 408, 409, 429, timeout); ``retry_after_s`` from the peer
    │   └── PermanentDeliveryError     do not (other 4xx, refused address, redirect, bad config)
    └── RetryableError             a passing outage (database, broker); try again later
        ├── DatabaseUnavailableError
        ├── BrokerUnavailableError
        └── UpstreamUnavailableError   a platform we read from (a Confluence page) did not answer

A task turns ``InvalidInputError``/``NotFoundError`` into a ``failed`` job and
``RetryableError`` into a Celery retry with back-off.
"""

from __future__ import annotations

from typing import Any


class LabelwiseError(Exception):
    """Base class; ``code`` is stable and machine-readable."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFoundError(LabelwiseError):
    code = "not_found"


class ConflictError(LabelwiseError):
    code = "conflict"


class VersionConflictError(ConflictError):
    code = "version_conflict"

    def __init__(self, message: str, *, current_version: int | None = None) -> None:
        super().__init__(message)
        self.current_version = current_version


class InvalidInputError(LabelwiseError):
    code = "invalid_input"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidDocumentError(InvalidInputError):
    code = "invalid_label_set"

    def __init__(self, message: str, *, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class RetryableError(LabelwiseError):
    code = "unavailable"

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class DatabaseUnavailableError(RetryableError):
    code = "database_unavailable"


class BrokerUnavailableError(RetryableError):
    code = "broker_unavailable"


class UpstreamUnavailableError(RetryableError):
    code = "upstream_unavailable"


class UnauthorizedError(LabelwiseError):
    code = "unauthorized"


class ConfigurationError(LabelwiseError):
    code = "configuration"


class DeliveryError(LabelwiseError):
    code = "delivery_failed"


class RetryableDeliveryError(DeliveryError):
    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PermanentDeliveryError(DeliveryError):
    pass
