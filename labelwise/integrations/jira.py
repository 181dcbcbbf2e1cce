"""Jira Cloud: add labels (never replacing existing ones) and optionally a comment; issue_created in."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Annotated, Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from labelwise.errors import InvalidInputError
from labelwise.integrations.base import Inbound, NoRouting, Payload, Step, check_hmac, header, json_request
from labelwise.integrations.slack import summary


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$")] = Field(
        description="Your site, e.g. https://acme.atlassian.net"
    )
    email: str = Field(description="Account the API token belongs to.")
    comment: bool = Field(False, description="Also add a comment with the chosen labels and scores.")


class Secrets(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_token: Annotated[str, StringConstraints(min_length=1)]
    webhook_secret: Annotated[str, StringConstraints(min_length=1)] | None = Field(
        None, description="Secret of the Jira webhook (X-Hub-Signature), needed for events coming in."
    )


def jira_label(name: str) -> str:
    """Jira labels cannot hold spaces."""
    return "-".join(name.split())


class JiraAdapter(NoRouting):
    kind = "jira"
    settings_model = Settings
    secrets_model = Secrets
    inbound = True

    def build_steps(self, payload: Payload, config: Settings, secrets: Secrets) -> list[Step]:  # type: ignore[override]
        key = str(payload.target["issue_key"])
        base = f"{config.base_url.rstrip('/')}/rest/api/3/issue/{key}"
        auth = httpx.BasicAuth(config.email, secrets.api_token)
        steps = []
        chosen = payload.result.get("chosen", [])
        if chosen:
            body = {"update": {"labels": [{"add": jira_label(name)} for name in chosen]}}
            steps.append(Step("labels", json_request("PUT", base, body, auth)))
        if config.comment:
            lines = summary(payload.result, payload.text, quote="").replace("*", "").split("\n")
            paragraphs = [{"type": "paragraph", "content": [{"type": "text", "text": line}]} for line in lines]
            doc = {"type": "doc", "version": 1, "content": paragraphs}
            steps.append(Step("comment", json_request("POST", f"{base}/comment", {"body": doc}, auth)))
        return steps

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: Secrets, now_s: float, tolerance_s: int) -> None:  # type: ignore[override]
        """``X-Hub-Signature: sha256=<hex HMAC-SHA256 of the body>`` (Jira sends no timestamp)."""
        if not secrets.webhook_secret:
            raise InvalidInputError("this Jira integration has no webhook_secret")
        digest = hmac.new(secrets.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
        check_hmac(f"sha256={digest}".encode(), header(headers, "X-Hub-Signature"))

    def parse(self, body: bytes, config: Settings, headers: Mapping[str, str] | None = None) -> Inbound:  # type: ignore[override]
        data = json.loads(body)
        if data.get("webhookEvent") != "jira:issue_created":
            return Inbound(ignored=f"event {data.get('webhookEvent')!r}")
        issue = data["issue"]
        fields = issue.get("fields") or {}
        text = "\n\n".join(t for t in (str(fields.get("summary") or ""), adf_text(fields.get("description"))) if t)
        if not text.strip():
            return Inbound(ignored="issue has no summary or description")
        return Inbound(event_id=f"issue_created:{issue['key']}", text=text, target={"issue_key": str(issue["key"])})


def adf_text(node: Any) -> str:
    """Plain text of a description given as a string or as Atlassian Document Format."""
    if node is None:
        return ""
    if isinstance(node, str):
        return node
    if isinstance(node, dict):
        own = str(node.get("text", "")) if node.get("type") == "text" else ""
        inner = " ".join(adf_text(child) for child in node.get("content") or [])
        return " ".join(t for t in (own, inner) if t)
    if isinstance(node, list):
        return " ".join(adf_text(child) for child in node)
    return ""


ADAPTER = JiraAdapter()
