"""Pydantic wire models of CDS Hooks 2.0 (https://cds-hooks.hl7.org/2.0/).

Each model quotes the section of the specification it mirrors (HL7/cds-hooks tag v2.0.1,
``input/pagecontent/index.md``). Requests tolerate unknown fields (3.0 adds ``hookVersion``,
``extension``...); responses we build are checked strictly (summary < 140 characters, a
``selectionBehavior`` whenever there are suggestions, ``appContext`` only on smart links).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "Action", "Card", "CdsRequest", "CdsResponse", "Coding", "Discovery", "Feedback", "FeedbackItem",
    "FhirAuthorization", "Link", "OverrideReason", "Service", "Source", "Suggestion",
]


class _Tolerant(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Coding(_Strict):
    """FHIR Coding as used by CDS Hooks (``system``, ``code``, ``display``)."""

    system: str | None = None
    code: str
    display: str | None = None


class Service(_Strict):
    """Discovery §"Response": ``hook``, ``title``?, ``description``, ``id``, ``prefetch``?, ``usageRequirements``?"""

    hook: str
    title: str | None = None
    description: str
    id: str
    prefetch: dict[str, str] | None = None
    usageRequirements: str | None = None


class Discovery(_Strict):
    """``GET {baseUrl}/cds-services`` → ``{"services": [...]}`` (an empty array if none)."""

    services: list[Service]


class FhirAuthorization(_Tolerant):
    """§"Passing the Access Token to the CDS Service": a short-lived bearer token for ``fhirServer``.

    Never logged or stored; used only for the calls of the request that carried it.
    """

    access_token: str = Field(repr=False)
    token_type: Literal["Bearer"]
    expires_in: int
    scope: str
    subject: str
    patient: str | None = None


class CdsRequest(_Tolerant):
    """§"HTTP Request": ``hook``, ``hookInstance``, ``fhirServer``?, ``fhirAuthorization``?, ``context``, ``prefetch``?

    ``fhirServer`` is required when ``fhirAuthorization`` is given. ``prefetch`` values are a resource,
    a searchset Bundle, or ``null`` ("no data").
    """

    hook: str
    hookInstance: str
    fhirServer: str | None = None
    fhirAuthorization: FhirAuthorization | None = None
    context: dict[str, Any]
    prefetch: dict[str, dict[str, Any] | None] | None = None

    @model_validator(mode="after")
    def _server_with_token(self) -> CdsRequest:
        if self.fhirAuthorization is not None and not self.fhirServer:
            raise ValueError("fhirServer is required when fhirAuthorization is present")
        return self


class Source(_Strict):
    """§"Source": ``label`` (required), ``url``?, ``icon``?, ``topic``? (Coding)."""

    label: str
    url: str | None = None
    icon: str | None = None
    topic: Coding | None = None


class Action(_Strict):
    """§"Action": ``type`` create|update|delete, ``description``, ``resource``? or ``resourceId``?."""

    type: Literal["create", "update", "delete"]
    description: str
    resource: dict[str, Any] | None = None
    resourceId: str | None = None


class Suggestion(_Strict):
    """§"Suggestion": ``label``, ``uuid``?, ``isRecommended``?, ``actions``?."""

    label: str
    uuid: str | None = None
    isRecommended: bool | None = None
    actions: list[Action] = Field(default_factory=list)


class Link(_Strict):
    """§"Link": ``label``, ``url``, ``type`` absolute|smart, ``appContext``? (smart only), ``autolaunchable``?."""

    label: str
    url: str
    type: Literal["absolute", "smart"]
    appContext: str | None = None
    autolaunchable: bool | None = None

    @model_validator(mode="after")
    def _app_context_smart_only(self) -> Link:
        if self.appContext is not None and self.type != "smart":
            raise ValueError("appContext is allowed only on smart links")
        return self


class Card(_Strict):
    """§"Card Attributes". ``summary`` is "<140-character": at most 139 characters here."""

    uuid: str | None = None
    summary: str = Field(max_length=139)
    detail: str | None = None
    indicator: Literal["info", "warning", "critical"]
    source: Source
    suggestions: list[Suggestion] | None = None
    selectionBehavior: Literal["at-most-one", "any"] | None = None
    overrideReasons: list[Coding] | None = None
    links: list[Link] | None = None

    @model_validator(mode="after")
    def _selection_with_suggestions(self) -> Card:
        if self.suggestions and self.selectionBehavior is None:
            raise ValueError("selectionBehavior is required when suggestions are present")
        if self.overrideReasons and any(not c.display for c in self.overrideReasons):
            raise ValueError("each overrideReason needs a display")
        return self


class CdsResponse(_Strict):
    """§"CDS Service Response": ``cards`` (possibly empty) and ``systemActions``?."""

    cards: list[Card]
    systemActions: list[Action] | None = None

    def json_bytes(self) -> bytes:
        """The response as sent: ``model_dump_json(exclude_none=True).encode()``, the same bytes straight
        from pydantic's serializer (no detour through a Python str: half the cost for a call's cards)."""
        return self.__pydantic_serializer__.to_json(self, exclude_none=True)


class OverrideReason(_Tolerant):
    """§"Overridden guidance": ``reason``? (Coding), ``userComment``?."""

    reason: Coding | None = None
    userComment: str | None = None


class AcceptedSuggestion(_Tolerant):
    id: str


class FeedbackItem(_Tolerant):
    """§"Feedback": ``card`` (uuid), ``outcome`` accepted|overridden, ``acceptedSuggestions``?,
    ``overrideReason``?, ``outcomeTimestamp`` (UTC)."""

    card: str
    outcome: Literal["accepted", "overridden"]
    acceptedSuggestions: list[AcceptedSuggestion] | None = None
    overrideReason: OverrideReason | None = None
    outcomeTimestamp: str


class Feedback(_Tolerant):
    """``POST {baseUrl}/cds-services/{id}/feedback`` body."""

    feedback: list[FeedbackItem]
