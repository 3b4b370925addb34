"""The follow-up core (leukos.followup): predicted vs observed per session, the per-patient update
carried session to session, and the monitoring flags. Plain values in; no database here."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

import pytest

from leukos.apheresis import estimate_tbv
from leukos.followup import LabPoint, PatientFacts, SessionRecord, follow_up
from leukos.knowledge import load_knowledge

T0 = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)
KB = load_knowledge()
FACTS = PatientFacts(weight_kg=70, height_cm=175, sex="male", age_years=54, diagnosis="AML")
VOL_L = 9.6  # 2 TBV of this patient (Nadler 4.8 L)


def h(x: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=x)


def _synthetic_patient(k_true: float, pre0: float = 250.0, n: int = 3, refill: float = 1.15) -> list[SessionRecord]:
    """Counts of a patient whose true fall rate is ``k_true`` per blood volume: post = pre × exp(−k × BV)
    (the outcome model's own law, so the truth is known), and the next morning's count ``refill`` × post."""
    tbv = estimate_tbv(weight_kg=70, height_cm=175, sex="male", age_years=54, kb=KB).tbv_l
    out, pre = [], pre0
    for k in range(n):
        post = pre * math.exp(-k_true * VOL_L / tbv)
        out.append(SessionRecord(started_at=h(24 * k), ended_at=h(24 * k + 3), volume_processed_l=VOL_L,
                                 device="spectra_optia_wbcd", pre_wbc_10e9_per_l=round(pre, 1), pre_at=h(24 * k),
                                 post_wbc_10e9_per_l=round(post, 1), post_at=h(24 * k + 3), ref=str(k + 1)))
        pre = post * refill
    return out


def _labs(sessions, extra=()):
    out = []
    for s in sessions:
        out.append(LabPoint("wbc", s.pre_wbc_10e9_per_l, "10*9/L", s.pre_at))
        if s.post_wbc_10e9_per_l is not None:
            out.append(LabPoint("wbc", s.post_wbc_10e9_per_l, "10*9/L", s.post_at))
        out.append(LabPoint("ionized_calcium", 1.05, "mmol/L", s.started_at + dt.timedelta(hours=1)))
    return out + list(extra)


@pytest.mark.parametrize("k_true", [0.15, 0.9])  # population median k ≈ 0.41 per blood volume (AML)
def test_update_learns_the_patient_and_predicts_the_next_sessions_better(k_true):
    sessions = _synthetic_patient(k_true)
    f = follow_up(FACTS, _labs(sessions), sessions, now=h(60), kb=KB)
    s1, s2, s3 = f.sessions
    err = [abs(s.predicted_fall_pct["median"] - s.observed_fall_pct) for s in f.sessions]
    assert err[1] < err[0] and err[2] < err[0]
    # the fall rate moves from the population value toward the patient's true value
    prior, post = s1.fall_rate_before["median"], s3.fall_rate_after["median"]
    assert abs(post - k_true) < abs(prior - k_true)
    # the observed fall lies inside the updated 90 % range for sessions 2 and 3
    for s in (s2, s3):
        assert s.predicted_fall_pct["p05"] <= s.observed_fall_pct <= s.predicted_fall_pct["p95"]
    assert f.next_session is not None and f.next_session.updated_on_sessions == 3
    text = "\n".join(f.working)
    assert "Session 1: predicted" in text and "fall rate updated" in text and "Session 4 predicted" in text


def test_session_without_post_count_is_predicted_but_not_used_and_is_flagged():
    sessions = _synthetic_patient(0.3, n=2)
    sessions[1] = dataclasses.replace(sessions[1], post_wbc_10e9_per_l=None, post_at=None)
    f = follow_up(FACTS, _labs(sessions), sessions, now=h(30), kb=KB)
    assert f.sessions[1].predicted_fall_pct is not None and f.sessions[1].observed_fall_pct is None
    assert f.next_session.updated_on_sessions == 1
    assert [(x.code, x.session) for x in f.flags] == [("post_count_missing", 2)]


def test_without_weight_the_model_is_not_assessed_but_flags_are_given():
    sessions = _synthetic_patient(0.3, n=1)
    f = follow_up(dataclasses.replace(FACTS, weight_kg=None), _labs(sessions), sessions, now=h(30), kb=KB)
    assert f.sessions == () and f.next_session is None
    assert f.not_assessed and "weight" in f.not_assessed[0].lower()
    assert "next_session_due" in {x.code for x in f.flags}


S = SessionRecord(started_at=h(0), ended_at=h(3), volume_processed_l=VOL_L, device="spectra_optia_wbcd",
                  pre_wbc_10e9_per_l=250, pre_at=h(-0.5), post_wbc_10e9_per_l=180, post_at=h(3.2), ref="1")
ICA = LabPoint("ionized_calcium", 1.1, "mmol/L", h(1))
FLAGS = [  # (case, labs besides the session's counts, now, target, expected flags) — thresholds from the knowledge base:
    ("all recorded, next day not yet due", [ICA], h(10), None, set()),
    ("next session due after the interval (apheresis.session_interval_h 24 h)", [ICA], h(25), None, {"next_session_due"}),
    ("no iCa during the run", [LabPoint("ionized_calcium", 1.1, "mmol/L", h(5))], h(10), None, {"ica_not_measured"}),
    ("iCa below 0.9 mmol/L (apheresis.ica_symptom_threshold_mmol_per_l)",
     [LabPoint("ionized_calcium", 0.85, "mmol/L", h(2))], h(10), None, {"ica_low"}),
    ("platelets below 20 after the session (management.platelet_threshold_non_apl_low)",
     [ICA, LabPoint("platelets", 18, "10*9/L", h(4))], h(10), None, {"platelets_low"}),
    ("platelets 20 is not below 20", [ICA, LabPoint("platelets", 20, "10*9/L", h(4))], h(10), None, set()),
    ("rebound above the pre-count", [ICA, LabPoint("wbc", 262, "10*9/L", h(12))], h(13), None, {"rebound"}),
    ("target reached stops the due flag", [ICA, LabPoint("wbc", 95, "10*9/L", h(20))], h(30), None, {"target_reached"}),
    ("patient-specific target", [ICA], h(10), 200.0, {"target_reached"}),
]


@pytest.mark.parametrize(("why", "labs", "now", "target", "expected"), FLAGS, ids=[f[0] for f in FLAGS])
def test_monitoring_flags(why, labs, now, target, expected):
    base = [LabPoint("wbc", 250, "10*9/L", h(-0.5)), LabPoint("wbc", 180, "10*9/L", h(3.2))]
    f = follow_up(dataclasses.replace(FACTS, target_wbc_10e9_per_l=target), base + labs, [S], now=now, kb=KB)
    assert {x.code for x in f.flags} == expected
    for x in f.flags:
        assert x.citations and all(c in KB.citations for c in x.citations)


def test_post_count_missing_only_after_the_run_and_only_without_any_later_count():
    s = dataclasses.replace(S, post_wbc_10e9_per_l=None, post_at=None)
    base = [LabPoint("wbc", 250, "10*9/L", h(-0.5)), ICA]
    assert "post_count_missing" not in {x.code for x in follow_up(FACTS, base, [s], now=h(2), kb=KB).flags}
    assert "post_count_missing" in {x.code for x in follow_up(FACTS, base, [s], now=h(4), kb=KB).flags}
    later = base + [LabPoint("wbc", 190, "10*9/L", h(3.5))]
    assert "post_count_missing" not in {x.code for x in follow_up(FACTS, later, [s], now=h(4), kb=KB).flags}


def test_flag_definitions_resolve_in_the_knowledge_base():
    flags = KB.table("followup")["flags"]
    for code, rec in flags.items():
        assert rec["label"] and rec["action"], code
        assert all(c in KB.citations for c in rec["citations"]), code
        for key in rec.get("uses", []):
            KB.param(key)  # raises if the parameter is not defined


def test_follow_up_is_repeatable():
    sessions = _synthetic_patient(0.3)
    a = follow_up(FACTS, _labs(sessions), sessions, now=h(60), kb=KB).to_dict()
    b = follow_up(FACTS, _labs(sessions), sessions, now=h(60), kb=KB).to_dict()
    assert a == b


def test_a_session_stored_in_year_9999_does_not_break_the_follow_up():
    """Before times were bounded at input, a session could be stored at 9999-12-31; its next-session
    due date (+ the session interval) overflowed, and the ward list, the follow-up and the CDS call
    answered 500. Such a record now has no due date; the rest of the follow-up is given."""
    import datetime as dt

    from leukos.followup.course import LabPoint, PatientFacts, SessionRecord, follow_up
    from leukos.knowledge import load_knowledge

    t = dt.datetime(9999, 12, 31, 18, tzinfo=dt.UTC)
    s = SessionRecord(started_at=t, ended_at=t + dt.timedelta(hours=3), volume_processed_l=9.0, device="optia",
                      pre_wbc_10e9_per_l=250.0, pre_at=t, post_wbc_10e9_per_l=150.0, post_at=t + dt.timedelta(hours=3))
    labs = [LabPoint("wbc", 250.0, "10*9/L", t), LabPoint("wbc", 150.0, "10*9/L", t + dt.timedelta(hours=3))]
    f = follow_up(PatientFacts(70, 175, "male", 50, "AML"), labs, [s], now=dt.datetime(2026, 12, 3, tzinfo=dt.UTC),
                  kb=load_knowledge())
    assert f.to_dict()["sessions"] and all(fl.code != "next_session_due" for fl in f.flags)
