"""Monitoring flags of a patient's course after leukapheresis.

Each flag names its thresholds by knowledge-base key (``followup.toml`` ``[flags.*]``), so the
number shown, its unit, status and citations come from one definition.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from leukos.knowledge import KnowledgeBase

if TYPE_CHECKING:
    from leukos.followup.course import LabPoint, SessionRecord

__all__ = ["Flag", "monitoring_flags", "next_session_due_at", "FLAG_CODES"]

FLAG_CODES = ("target_reached", "next_session_due", "post_count_missing", "ica_not_measured", "ica_low",
              "platelets_low", "rebound")


@dataclass(frozen=True)
class Flag:
    code: str
    label: str
    detail: str
    action: str
    session: int | None
    citations: tuple[str, ...]
    unverified: tuple[str, ...]    # knowledge keys behind this flag that are not verified (status U)

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "label": self.label, "detail": self.detail, "action": self.action,
                "session": self.session, "citations": list(self.citations), "unverified": list(self.unverified)}


def _when(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%d %b %H:%M UTC")


def _flag(kb: KnowledgeBase, code: str, detail: str, session: int | None = None) -> Flag:
    rec = kb.table("followup")["flags"][code]
    uses = rec.get("uses", [])
    return Flag(code=code, label=rec["label"], detail=detail, action=rec["action"], session=session,
                citations=tuple(dict.fromkeys([*rec["citations"], *(c for u in uses for c in kb.param(u).citations)])),
                unverified=tuple(u for u in uses if kb.param(u).unverified))


def next_session_due_at(sessions: Sequence[SessionRecord], kb: KnowledgeBase) -> dt.datetime | None:
    """When the next daily session falls due (the last session's start + the session interval)."""
    if not sessions:
        return None
    last = max(sessions, key=lambda s: s.started_at)
    try:
        return last.started_at + dt.timedelta(hours=float(kb.value("apheresis.session_interval_h")))
    except OverflowError:  # a session stored in year 9999 (before times were bounded at input): no due date
        return None


def monitoring_flags(labs: Sequence[LabPoint], sessions: Sequence[SessionRecord], *, now: dt.datetime,
                     target_wbc_10e9_per_l: float, kb: KnowledgeBase) -> tuple[Flag, ...]:
    """The flags of the course at ``now`` (most actionable first)."""
    sessions = sorted(sessions, key=lambda s: s.started_at)
    by = {a: sorted((x for x in labs if x.analyte == a), key=lambda x: x.taken_at)
          for a in ("wbc", "platelets", "ionized_calcium")}
    ica_thr = float(kb.value("apheresis.ica_symptom_threshold_mmol_per_l"))
    plt_thr = float(kb.value("management.platelet_threshold_non_apl_low"))
    rebound = float(kb.value("followup.rebound_factor_of_pre_count"))
    out: list[Flag] = []
    wbc = by["wbc"]
    if sessions and wbc and wbc[-1].value <= target_wbc_10e9_per_l:
        out.append(_flag(kb, "target_reached", f"Latest white cell count {wbc[-1].value:g} ×10⁹/L "
                                               f"({_when(wbc[-1].taken_at)}) ≤ target {target_wbc_10e9_per_l:g} ×10⁹/L."))
    elif sessions:
        due = next_session_due_at(sessions, kb)
        if due is not None and now >= due:
            latest = f"latest count {wbc[-1].value:g} ×10⁹/L" if wbc else "no count recorded"
            out.append(_flag(kb, "next_session_due", f"Due since {_when(due)} (daily sessions); {latest}, "
                                                     f"target {target_wbc_10e9_per_l:g} ×10⁹/L."))
    for k, s in enumerate(sessions, start=1):
        if s.ended_at > now:
            continue
        nxt = sessions[k].started_at if k < len(sessions) else now
        after = [x for x in wbc if s.ended_at <= x.taken_at <= nxt]
        if s.post_wbc_10e9_per_l is None and not after:
            out.append(_flag(kb, "post_count_missing", f"Session {k} ({_when(s.started_at)}): no white cell count "
                                                       "recorded after the session.", k))
        during = [x for x in by["ionized_calcium"] if s.started_at <= x.taken_at <= s.ended_at]
        if not during:
            out.append(_flag(kb, "ica_not_measured", f"Session {k} ({_when(s.started_at)} – {_when(s.ended_at)}): "
                                                     "no ionised calcium result during the run.", k))
        low = [x for x in by["ionized_calcium"] if s.started_at <= x.taken_at <= nxt and x.value < ica_thr]
        if low:
            m = min(low, key=lambda x: x.value)
            out.append(_flag(kb, "ica_low", f"Session {k}: ionised calcium {m.value:g} mmol/L at {_when(m.taken_at)} "
                                            f"< {ica_thr:g} mmol/L.", k))
        plt = [x for x in by["platelets"] if s.ended_at <= x.taken_at <= nxt and x.value < plt_thr]
        if plt:
            m = min(plt, key=lambda x: x.value)
            out.append(_flag(kb, "platelets_low", f"Session {k}: platelets {m.value:g} ×10⁹/L at {_when(m.taken_at)} "
                                                  f"< {plt_thr:g} ×10⁹/L.", k))
        if s.pre_wbc_10e9_per_l is not None:
            since = s.post_at or s.ended_at
            up = [x for x in wbc if since < x.taken_at <= nxt and x.value > rebound * s.pre_wbc_10e9_per_l]
            if up:
                m = max(up, key=lambda x: x.value)
                out.append(_flag(kb, "rebound", f"After session {k}: {m.value:g} ×10⁹/L at {_when(m.taken_at)}, above "
                                                f"the pre-session count {s.pre_wbc_10e9_per_l:g} ×10⁹/L.", k))
    return tuple(out)
