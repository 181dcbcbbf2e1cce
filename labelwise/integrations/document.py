"""The integration document (YAML in the CLI, JSON in the API) and its validation per kind."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from labelwise.errors import InvalidDocumentError

Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Kind = Literal["webhook", "slack", "jira", "zendesk", "github", "confluence"]


class IntegrationDocument(BaseModel):
    """A tenant's connection to a platform. ``secrets`` are stored encrypted and never shown again."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    kind: Kind
    label_set: Name | None = Field(None, description="Label set that events coming in from the platform use.")
    settings: dict[str, Any] = Field(default_factory=dict, description="Kind-specific settings (see README).")
    secrets: dict[str, Any] | None = Field(
        None, description="Kind-specific secrets; merged into the stored ones (null removes a key); omit to keep."
    )


def parse_integration(data: Any) -> IntegrationDocument:
    return _validated(IntegrationDocument, data, prefix="")


def validated(model: type[BaseModel], data: Any, *, prefix: str) -> Any:
    """``model.model_validate(data)`` with errors reported per field under ``prefix``."""
    return _validated(model, data, prefix=prefix)


def _validated(model: type[Any], data: Any, *, prefix: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        errors = [
            {
                "field": ".".join([prefix, *(str(p) for p in err["loc"])]).strip(".") or "(document)",
                "message": err["msg"],
            }
            for err in e.errors()
        ]
        summary = "; ".join(f"{x['field']}: {x['message']}" for x in errors)
        raise InvalidDocumentError(f"invalid integration: {summary}", errors=errors) from e
