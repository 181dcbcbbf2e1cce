"""Confluence Cloud pages: a signed page_created / page_updated webhook in, the page body fetched from
the REST API (storage format turned into plain text) and classified as a long document, labels added
to the page. Our own label edits never start another round: a label does not change the page's
version (events are deduplicated by page and version) and events by our own account are ignored."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from html.parser import HTMLParser
from typing import Annotated, Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from labelwise.errors import InvalidInputError, UpstreamUnavailableError
from labelwise.integrations.base import Inbound, NoRouting, Payload, Step, check_hmac, header, send_capped

EVENTS = ("page_created", "page_updated")
MAX_PAGE_BYTES = 2_000_000


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$")] = Field(
        description="Your site, e.g. https://acme.atlassian.net (the REST API is under /wiki/rest/api)."
    )
    email: str = Field(description="Account the API token belongs to.")
    account_id: str | None = Field(
        None, description="That account's Atlassian account id; events it caused are ignored."
    )


class Secrets(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_token: Annotated[str, StringConstraints(min_length=1)]
    webhook_secret: Annotated[str, StringConstraints(min_length=1)] | None = Field(
        None, description="Secret of the Confluence webhook (X-Hub-Signature), needed for events coming in."
    )


def confluence_label(name: str) -> str:
    """Confluence labels are lower-case and hold no spaces."""
    return "-".join(name.lower().split())


class ConfluenceAdapter(NoRouting):
    kind = "confluence"
    settings_model = Settings
    secrets_model = Secrets
    inbound = True

    def build_steps(self, payload: Payload, config: Settings, secrets: Secrets) -> list[Step]:  # type: ignore[override]
        labels = [{"prefix": "global", "name": confluence_label(n)} for n in payload.result.get("chosen", [])]
        if not labels:
            return []
        url = f"{content_url(config, str(payload.target['page_id']))}/label"
        auth = httpx.BasicAuth(config.email, secrets.api_token)
        return [Step("labels", _json_list_request(url, labels, auth))]

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: Secrets, now_s: float, tolerance_s: int) -> None:  # type: ignore[override]
        """``X-Hub-Signature: sha256=<hex HMAC-SHA256 of the body>``."""
        if not secrets.webhook_secret:
            raise InvalidInputError("this Confluence integration has no webhook_secret")
        digest = hmac.new(secrets.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
        check_hmac(f"sha256={digest}".encode(), header(headers, "X-Hub-Signature"))

    def parse(self, body: bytes, config: Settings, headers: Mapping[str, str] | None = None) -> Inbound:  # type: ignore[override]
        """``{"event": "page_created"|"page_updated", "userAccountId", "page": {"id", "version"}}``; the
        text is fetched afterwards (:meth:`fetch_text`)."""
        data = json.loads(body)
        event = data.get("event") or data.get("webhookEvent") or _event_header(headers)
        if event is None and isinstance(data.get("page"), dict):
            event = "page_updated"  # a page notice without its name: deduplication by version keeps it safe
        if event not in EVENTS:
            return Inbound(ignored=f"event {event!r}")
        if config.account_id and config.account_id in (data.get("userAccountId"), data.get("accountId")):
            return Inbound(ignored="an edit by our own account")
        page = data["page"]
        version = page.get("version")
        version = version.get("number") if isinstance(version, dict) else version
        page_id = str(int(page["id"]))
        return Inbound(event_id=f"page:{page_id}:v{int(version or 0)}", target={"page_id": page_id}, needs_text=True)

    def fetch_text(self, target: dict[str, Any], config: Settings, secrets: Secrets, client: httpx.Client) -> str:
        """The page's title and body (storage format as plain text).

        Raises UpstreamUnavailableError (Confluence did not answer, or 5xx/429: the webhook is answered
        503 so Confluence retries it), InvalidInputError (the page cannot be read with these credentials)."""
        url = f"{content_url(config, str(target['page_id']))}?expand=body.storage"
        auth = httpx.BasicAuth(config.email, secrets.api_token)
        request = next(auth.auth_flow(httpx.Request("GET", url, headers={"Accept": "application/json"})))
        try:
            response = send_capped(client, request, max_bytes=MAX_PAGE_BYTES)
        except httpx.HTTPError as e:
            raise UpstreamUnavailableError(f"Confluence: {type(e).__name__}") from e
        if response.status_code == 429 or response.status_code >= 500:
            raise UpstreamUnavailableError(f"Confluence answered HTTP {response.status_code}")
        if response.status_code != 200:
            raise InvalidInputError(f"Confluence answered HTTP {response.status_code} for page {target['page_id']}")
        page = response.json()
        body = ((page.get("body") or {}).get("storage") or {}).get("value") or ""
        return "\n\n".join(t for t in (str(page.get("title") or ""), storage_to_text(body)) if t.strip())


def _event_header(headers: Mapping[str, str] | None) -> str | None:
    for name, value in (headers or {}).items():
        if name.lower() in ("x-event-key", "x-atlassian-webhook-event"):
            return value
    return None


def content_url(config: Settings, page_id: str) -> str:
    return f"{config.base_url.rstrip('/')}/wiki/rest/api/content/{page_id}"


def _json_list_request(url: str, body: list[dict[str, str]], auth: httpx.Auth) -> httpx.Request:
    request = httpx.Request("POST", url, json=body, headers={"Accept": "application/json"})
    return next(auth.auth_flow(request))


BLOCKS = {"p", "div", "br", "li", "tr", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table"}
SKIPPED = {"ac:parameter", "script", "style"}


class _Text(HTMLParser):
    """Text of Confluence storage format (XHTML with ``ac:``/``ri:`` elements); blocks become lines."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in SKIPPED:
            self.skipping += 1
        elif tag in BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in SKIPPED:
            self.skipping = max(self.skipping - 1, 0)
        elif tag in BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)

    def unknown_decl(self, data: str) -> None:  # <![CDATA[...]]> of code and plain-text macros
        if data.startswith("CDATA[") and not self.skipping:
            self.parts.append(data[len("CDATA[") :])


def storage_to_text(storage: str) -> str:
    """Plain text of a page body in storage format: one line per block, runs of spaces collapsed."""
    parser = _Text()
    parser.feed(storage)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).split("\n"))
    return "\n".join(line for line in lines if line)


ADAPTER = ConfluenceAdapter()
