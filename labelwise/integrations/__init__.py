"""Integrations: one module per platform, each a pure request builder plus inbound verify/parse.

``ADAPTERS`` maps an integration's ``kind`` to its module; ``base`` states the contract.
"""

from __future__ import annotations

from labelwise.integrations import confluence, github, jira, slack, webhook, zendesk
from labelwise.integrations.base import Adapter

ADAPTERS: dict[str, Adapter] = {
    "webhook": webhook.ADAPTER,
    "slack": slack.ADAPTER,
    "jira": jira.ADAPTER,
    "zendesk": zendesk.ADAPTER,
    "github": github.ADAPTER,
    "confluence": confluence.ADAPTER,
}
