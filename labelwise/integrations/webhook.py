"""A customer's endpoint, signed per Standard Webhooks (webhook-id / -timestamp / -signature)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Annotated

import httpx
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from standardwebhooks import Webhook

from labelwise.integrations.base import Inbound, NoRouting, Payload, Step

Secret = Annotated[str, StringConstraints(pattern=r"^whsec_[A-Za-z0-9+/=]{16,}$")]


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$")] = Field(
        description="Where results are POSTed."
    )
    subscribe: list[str] = Field(
        default_factory=list, description="Label sets whose every result is delivered here, besides reply_to."
    )


class Secrets(BaseModel):
    model_config = ConfigDict(extra="forbid")

    signing_secrets: Annotated[list[Secret], Field(min_length=1)] = Field(
        description="whsec_ secrets; each signs every request, so a receiver can rotate without downtime."
    )


class WebhookAdapter(NoRouting):
    kind = "webhook"
    settings_model = Settings
    secrets_model = Secrets
    inbound = False

    def build_steps(self, payload: Payload, config: Settings, secrets: Secrets) -> list[Step]:  # type: ignore[override]
        body = json.dumps({"type": "labelwise.result", "data": payload.result}, separators=(",", ":"))
        now = dt.datetime.now(dt.UTC)
        signatures = " ".join(Webhook(s).sign(payload.delivery_id, now, body) for s in secrets.signing_secrets)
        headers = {
            "content-type": "application/json",
            "webhook-id": payload.delivery_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signatures,
        }
        return [Step("post", httpx.Request("POST", config.url, content=body.encode(), headers=headers))]

    def verify(
        self, headers: Mapping[str, str], body: bytes, secrets: BaseModel, now_s: float, tolerance_s: int
    ) -> None:
        raise NotImplementedError("webhook integrations are outbound only")

    def parse(self, body: bytes, config: BaseModel, headers: Mapping[str, str] | None = None) -> Inbound:
        raise NotImplementedError("webhook integrations are outbound only")


ADAPTER = WebhookAdapter()
