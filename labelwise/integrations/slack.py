"""Slack: a threaded reply and/or reactions and routing per label (Web API); signed Events API in."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Annotated, Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from labelwise.errors import InvalidInputError, PermanentDeliveryError, RetryableDeliveryError
from labelwise.integrations.base import Inbound, Payload, Step, check_fresh, check_hmac, check_status, header
from labelwise.integrations.evidence import evidence_quotes

RETRYABLE_ERRORS = {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
FINE_ERRORS = {"already_reacted"}
IGNORED_SUBTYPES_NOTE = "edits, deletions, joins, bot and other subtyped messages are ignored"


SlackId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str = Field("https://slack.com/api", description="Slack Web API base URL.")
    reply_in_thread: bool = Field(True, description="Reply in the message's thread with the chosen labels.")
    reactions: dict[str, str] = Field(default_factory=dict, description="Label -> emoji name added to the message.")
    channels: dict[str, str] = Field(default_factory=dict, description="Label -> channel id the message is routed to.")
    bot_user_id: str | None = Field(None, description="Our bot's user id; its messages are never classified.")
    api_app_id: SlackId | None = Field(
        None,
        description="The Slack app's id (A...). With team_id it routes events posted to /hooks/slack/events "
        "without ?integration= to this integration; one (app, workspace) pair belongs to one integration.",
    )
    team_id: SlackId | None = Field(None, description="The workspace's id (T...); see api_app_id.")

    @model_validator(mode="after")
    def _both_or_neither(self) -> Settings:
        if (self.api_app_id is None) != (self.team_id is None):
            raise ValueError("set both api_app_id and team_id (or neither)")
        return self


class Secrets(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bot_token: Annotated[str, StringConstraints(min_length=1)] = Field(description="xoxb- bot token.")
    signing_secret: Annotated[str, StringConstraints(min_length=1)] | None = Field(
        None, description="App signing secret, needed for events coming in."
    )


def summary(result: dict[str, Any], text: str = "", *, quote: str = "> ") -> str:
    """The reply: chosen labels with scores, then (for a long text) each label's evidence on a line
    starting with ``quote``."""
    if result.get("abstained") and not result.get("chosen"):
        return "labelwise: no label fits"
    scores = {x["name"]: x["score"] for x in result.get("labels", [])}
    chosen = ", ".join(f"*{name}* ({scores[name]:.2f})" if name in scores else f"*{name}*" for name in result["chosen"])
    head = f"labelwise: {chosen}" + (" (fallback)" if result.get("abstained") else "")
    return "\n".join([head, *(f"{quote}{q}" for q in evidence_quotes(result, text))])


class SlackAdapter:
    kind = "slack"
    settings_model = Settings
    secrets_model = Secrets
    inbound = True

    def build_steps(self, payload: Payload, config: Settings, secrets: Secrets) -> list[Step]:  # type: ignore[override]
        auth = {"Authorization": f"Bearer {secrets.bot_token}", "Content-Type": "application/json; charset=utf-8"}
        target, result = payload.target, payload.result
        channel, thread_ts, ts = (
            target.get("channel"),
            target.get("thread_ts"),
            target.get("ts") or target.get("thread_ts"),
        )

        def call(name: str, method: str, body: dict[str, Any]) -> Step:
            request = httpx.Request("POST", f"{config.base_url.rstrip('/')}/{method}", json=body, headers=auth)
            return Step(name, request, check_slack)

        steps = []
        if config.reply_in_thread and channel and thread_ts:
            steps.append(
                call(
                    "reply",
                    "chat.postMessage",
                    {
                        "channel": channel,
                        "thread_ts": thread_ts,
                        "text": summary(result, payload.text),
                        "unfurl_links": False,
                    },
                )
            )
        for label in result.get("chosen", []):
            if label in config.reactions and channel and ts:
                steps.append(
                    call(
                        f"reaction:{label}",
                        "reactions.add",
                        {"channel": channel, "timestamp": ts, "name": config.reactions[label]},
                    )
                )
            if label in config.channels:
                text = summary(result) + (f"\n>{payload.text[:2900]}" if payload.text else "")
                steps.append(
                    call(f"route:{label}", "chat.postMessage", {"channel": config.channels[label], "text": text})
                )
        return steps

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: Secrets, now_s: float, tolerance_s: int) -> None:  # type: ignore[override]
        """Slack's v0 scheme: HMAC-SHA256 of ``v0:{timestamp}:{body}`` with the signing secret."""
        if not secrets.signing_secret:
            raise InvalidInputError("this Slack integration has no signing_secret for inbound events")
        timestamp = header(headers, "X-Slack-Request-Timestamp")
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):  # "\xb2".isdigit()
            raise InvalidInputError("bad X-Slack-Request-Timestamp")
        check_fresh(int(timestamp), now_s, tolerance_s)
        base = b"v0:" + timestamp.encode() + b":" + body
        digest = hmac.new(secrets.signing_secret.encode(), base, hashlib.sha256).hexdigest()
        check_hmac(f"v0={digest}".encode(), header(headers, "X-Slack-Signature"))

    def inbound_key(self, config: Settings) -> str | None:  # type: ignore[override]
        return route_key_of(config.api_app_id, config.team_id)

    def route_key(self, body: bytes) -> str | None:
        """``slack:{api_app_id}:{team_id}`` from an (unverified) Events API envelope; None without them."""
        try:
            data = json.loads(body)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        app_id, team_id = data.get("api_app_id"), data.get("team_id")
        if not (isinstance(app_id, str) and isinstance(team_id, str)):
            return None
        return route_key_of(app_id, team_id)

    def parse(self, body: bytes, config: Settings, headers: Mapping[str, str] | None = None) -> Inbound:  # type: ignore[override]
        data = json.loads(body)
        if data.get("type") == "url_verification":
            return Inbound(answer={"challenge": str(data.get("challenge", ""))})
        if data.get("type") != "event_callback":
            return Inbound(ignored=f"event type {data.get('type')!r}")
        event = data.get("event") or {}
        if event.get("type") not in ("message", "app_mention"):
            return Inbound(ignored=f"event {event.get('type')!r}")
        if event.get("subtype") or event.get("bot_id") or event.get("user") in (None, config.bot_user_id):
            return Inbound(ignored=IGNORED_SUBTYPES_NOTE)
        text = str(event.get("text") or "").strip()
        if not text:
            return Inbound(ignored="empty message")
        ts = str(event["ts"])
        target = {"channel": str(event["channel"]), "thread_ts": str(event.get("thread_ts") or ts), "ts": ts}
        return Inbound(event_id=str(data["event_id"]), text=text, target=target)


def route_key_of(app_id: str | None, team_id: str | None) -> str | None:
    return f"slack:{app_id}:{team_id}" if app_id and team_id else None


def check_slack(response: httpx.Response) -> None:
    """Slack answers HTTP 200 with ``{"ok": false, "error": ...}`` for most failures."""
    check_status(response)
    try:
        data = response.json()
    except ValueError as e:
        raise RetryableDeliveryError(f"Slack answered HTTP {response.status_code} with a body that is not JSON") from e
    if not isinstance(data, dict):
        raise RetryableDeliveryError(f"Slack answered HTTP {response.status_code} with JSON that is not an object")
    if data.get("ok") or data.get("error") in FINE_ERRORS:
        return
    error = str(data.get("error"))
    if error in RETRYABLE_ERRORS:
        raise RetryableDeliveryError(f"Slack error {error}")
    raise PermanentDeliveryError(f"Slack error {error}")


ADAPTER = SlackAdapter()
