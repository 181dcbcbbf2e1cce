"""Zendesk: add tags to the ticket and optionally an internal note; signed ticket webhooks in."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Annotated

import httpx
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from labelwise.errors import InvalidInputError
from labelwise.integrations.base import Inbound, NoRouting, Payload, Step, check_fresh, check_hmac, header, json_request
from labelwise.integrations.slack import summary


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$")] = Field(
        description="Your account, e.g. https://acme.zendesk.com"
    )
    email: str = Field(description="Agent the API token belongs to.")
    internal_note: bool = Field(False, description="Also add an internal (private) note with the result.")


class Secrets(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_token: Annotated[str, StringConstraints(min_length=1)]
    webhook_secret: Annotated[str, StringConstraints(min_length=1)] | None = Field(
        None, description="Signing secret of the Zendesk webhook, needed for events coming in."
    )


def zendesk_tag(name: str) -> str:
    """Zendesk tags are lower-case words; spaces become underscores."""
    return "_".join(name.lower().split())


class ZendeskAdapter(NoRouting):
    kind = "zendesk"
    settings_model = Settings
    secrets_model = Secrets
    inbound = True

    def build_steps(self, payload: Payload, config: Settings, secrets: Secrets) -> list[Step]:  # type: ignore[override]
        ticket = str(payload.target["ticket_id"])
        base = f"{config.base_url.rstrip('/')}/api/v2/tickets/{ticket}"
        auth = httpx.BasicAuth(f"{config.email}/token", secrets.api_token)
        steps = []
        tags = [zendesk_tag(name) for name in payload.result.get("chosen", [])]
        if tags:  # PUT .../tags adds to the ticket's tags (POST would replace them)
            steps.append(Step("tags", json_request("PUT", f"{base}/tags", {"tags": tags}, auth)))
        if config.internal_note:
            text = summary(payload.result, payload.text, quote="").replace("*", "")
            note = {"ticket": {"comment": {"body": text, "public": False}}}
            steps.append(Step("note", json_request("PUT", f"{base}", note, auth)))
        return steps

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: Secrets, now_s: float, tolerance_s: int) -> None:  # type: ignore[override]
        """Base64 HMAC-SHA256 of ``timestamp + body`` (X-Zendesk-Webhook-Signature[-Timestamp])."""
        if not secrets.webhook_secret:
            raise InvalidInputError("this Zendesk integration has no webhook_secret")
        timestamp = header(headers, "X-Zendesk-Webhook-Signature-Timestamp")
        try:
            when = dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
            if when.tzinfo is None:  # read as UTC; a naive 0001-01-01 would overflow the local-time conversion
                when = when.replace(tzinfo=dt.UTC)
            when_s = when.timestamp()
        except (ValueError, OverflowError) as e:
            raise InvalidInputError("bad X-Zendesk-Webhook-Signature-Timestamp") from e
        check_fresh(when_s, now_s, tolerance_s)
        digest = hmac.new(secrets.webhook_secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
        check_hmac(base64.b64encode(digest), header(headers, "X-Zendesk-Webhook-Signature"))

    def parse(self, body: bytes, config: Settings, headers: Mapping[str, str] | None = None) -> Inbound:  # type: ignore[override]
        """Expects the body the README's trigger sets up: ``{"ticket": {"id", "subject", "description"}}``."""
        ticket = json.loads(body)["ticket"]
        text = "\n\n".join(str(ticket.get(k) or "") for k in ("subject", "description") if ticket.get(k))
        if not text.strip():
            return Inbound(ignored="ticket has no subject or description")
        return Inbound(event_id=f"ticket:{ticket['id']}", text=text, target={"ticket_id": str(ticket["id"])})


ADAPTER = ZendeskAdapter()
