"""GitHub issues: labels added to the issue (existing ones stay) and optionally a comment quoting the
evidence; signed ``issues`` webhooks (opened, edited) in, deduplicated by ``X-GitHub-Delivery``."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Annotated

import httpx
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from labelwise.errors import InvalidInputError
from labelwise.integrations.base import Inbound, NoRouting, Payload, Step, check_hmac, header
from labelwise.integrations.slack import summary

ACTIONS = ("opened", "edited")
API_VERSION = "2022-11-28"


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$")] = Field(
        "https://api.github.com",
        description="REST API root; GitHub Enterprise Server: https://HOST/api/v3",
    )
    comment: bool = Field(False, description="Also comment on the issue with the labels and the evidence.")


class Secrets(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: Annotated[str, StringConstraints(min_length=1)] = Field(
        description="A token that may write the repository's issues (fine-grained: Issues read and write)."
    )
    webhook_secret: Annotated[str, StringConstraints(min_length=1)] | None = Field(
        None, description="The webhook's secret (X-Hub-Signature-256), needed for events coming in."
    )


class GitHubAdapter(NoRouting):
    kind = "github"
    settings_model = Settings
    secrets_model = Secrets
    inbound = True

    def build_steps(self, payload: Payload, config: Settings, secrets: Secrets) -> list[Step]:  # type: ignore[override]
        target = payload.target
        issue = f"{config.base_url.rstrip('/')}/repos/{target['owner']}/{target['repo']}/issues/{int(target['number'])}"
        headers = {
            "Authorization": f"Bearer {secrets.token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
        }
        steps = []
        chosen = payload.result.get("chosen", [])
        if chosen:  # POST adds to the issue's labels (PUT would replace them)
            request = httpx.Request("POST", f"{issue}/labels", json={"labels": chosen}, headers=headers)
            steps.append(Step("labels", request))
        if config.comment:
            body = {"body": summary(payload.result, payload.text, quote="> ")}
            steps.append(Step("comment", httpx.Request("POST", f"{issue}/comments", json=body, headers=headers)))
        return steps

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: Secrets, now_s: float, tolerance_s: int) -> None:  # type: ignore[override]
        """``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`` (GitHub sends no timestamp; a
        replay is caught by the ``X-GitHub-Delivery`` dedupe)."""
        if not secrets.webhook_secret:
            raise InvalidInputError("this GitHub integration has no webhook_secret")
        digest = hmac.new(secrets.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
        check_hmac(f"sha256={digest}".encode(), header(headers, "X-Hub-Signature-256"))

    def parse(self, body: bytes, config: Settings, headers: Mapping[str, str] | None = None) -> Inbound:  # type: ignore[override]
        """``issues`` events with action opened or edited: the title and body are classified. Our own label
        edits arrive as ``labeled`` and our comments as ``issue_comment``, so they never start a round."""
        event = _header(headers, "X-GitHub-Event")
        if event == "ping":
            return Inbound(answer={"ok": True, "pong": True})
        data = json.loads(body)
        if event != "issues" or data.get("action") not in ACTIONS:
            return Inbound(ignored=f"event {event!r} action {data.get('action')!r}")
        issue, repo = data["issue"], data["repository"]
        if data.get("action") == "edited" and not set(data.get("changes") or {}) & {"title", "body"}:
            return Inbound(ignored="edit left the title and body as they were")
        text = "\n\n".join(t for t in (str(issue.get("title") or ""), str(issue.get("body") or "")) if t.strip())
        if not text.strip():
            return Inbound(ignored="issue has no title or body")
        target = {"owner": str(repo["owner"]["login"]), "repo": str(repo["name"]), "number": int(issue["number"])}
        return Inbound(event_id=f"delivery:{_header(headers, 'X-GitHub-Delivery')}", text=text, target=target)


def _header(headers: Mapping[str, str] | None, name: str) -> str:
    value = (headers or {}).get(name) or (headers or {}).get(name.lower())
    if not value:
        raise InvalidInputError(f"missing {name} header")
    return value


ADAPTER = GitHubAdapter()
