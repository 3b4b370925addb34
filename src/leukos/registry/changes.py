"""Who changed the registry: the actor of a write, and the change history in plain words.

Every write of :class:`~leukos.registry.store.Registry` records one ``registry_changes`` row in its own
transaction (one definition, in the store). The surfaces only say who is writing: the REST API and the
web pages the authenticated caller (the JWT issuer, "api-token" or "anonymous-dev", as the audit log
names it), the command line the operating-system user. A row holds names only: the actor, the action,
the patient's row id, the changed row's id and the names of the fields an update changed; never values,
free text, MRNs or tokens.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import getpass
from typing import Any

__all__ = ["Actor", "SURFACES", "ACTIONS", "cli_actor", "describe_change", "MissingActorError"]

SURFACES = {"api": "REST API", "web": "web page", "cli": "command line"}

# action -> what it did, in words (with the record it names)
ACTIONS = {
    "patient.add": "registered patient",
    "patient.update": "updated patient",
    "labs.add": "added lab results",
    "labs.import": "imported lab results (FHIR)",
    "procedure.record": "recorded procedure",
    "procedure.update": "corrected procedure",
    "treatment.add": "recorded treatment",
    "assessment.issue": "stored issued assessment",
    "plan.issue": "stored issued plan",
    "feedback.add": "stored CDS card feedback",
}

ACTOR_MAX = 128
UNKNOWN = "unknown"


class MissingActorError(RuntimeError):
    """A registry write without an actor: a programming error (every surface must say who writes, so
    that no change goes unattributed), never a user's."""


def _clean_name(name: str | None) -> str:
    """The actor as stored: printable, one line, at most ``ACTOR_MAX`` characters; "unknown" when empty."""
    text = "".join(ch for ch in str(name or "") if ch.isprintable()).strip()
    return text[:ACTOR_MAX] or UNKNOWN


@dataclasses.dataclass(frozen=True)
class Actor:
    """Who writes, and through which surface ('api', 'web' or 'cli')."""

    name: str
    surface: str

    def __post_init__(self) -> None:
        if self.surface not in SURFACES:
            raise ValueError(f"surface must be one of {', '.join(SURFACES)}")  # a bug in a surface, not user input
        object.__setattr__(self, "name", _clean_name(self.name))


def cli_actor() -> Actor:
    """The command line's actor: the operating-system user (``getpass.getuser``), or "unknown" when the
    system cannot say (no login name, no password-file entry: e.g. a container's arbitrary uid)."""
    try:
        name = getpass.getuser()
    except Exception:  # noqa: BLE001 - OSError on 3.13+, KeyError/ImportError before: all mean "cannot say"
        name = UNKNOWN
    return Actor(name, "cli")


def _when(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%d %b %Y %H:%M:%S UTC")


def _what(change: dict[str, Any]) -> str:
    """The action and its record in words: a patient by pseudonym, another row by its number and patient."""
    action, patient = change["action"], change["patient"]
    what = ACTIONS.get(action, action)
    if action.startswith("patient."):
        return f"{what} {patient or '(no longer registered)'}"
    if change["record_id"] is not None:
        what += f" {change['record_id']}"
    if patient is not None:
        return f"{what} of {patient}"
    return what + (" (no registered patient)" if action == "feedback.add" else " (patient no longer registered)")


def describe_change(change: dict[str, Any]) -> str:
    """One change as a line for people: time, who, surface, what, which record, which fields (names)."""
    surface = SURFACES.get(change["surface"], change["surface"])
    line = f"{_when(change['at'])}, {change['actor']} ({surface}): {_what(change)}"
    if change["fields"]:
        return line + "; fields changed: " + ", ".join(change["fields"])
    if change["action"].endswith(".update"):
        return line + "; no field changed"
    return line
