"""Follow-up after leukapheresis (core: plain values in, no I/O, no clock, no database).

``follow_up(patient, labs, sessions, now=..., kb=...) -> FollowUp``: count trend, predicted vs
observed fall per session, the per-patient model update carried to the next session, and
monitoring flags.
"""

from leukos.followup.course import (
    CourseModel,
    FollowUp,
    LabPoint,
    NextSession,
    PatientFacts,
    SessionOutcome,
    SessionRecord,
    course_model,
    follow_up,
)
from leukos.followup.flags import FLAG_CODES, Flag, monitoring_flags, next_session_due_at
from leukos.followup.model_update import Learned, learn_and_predict

__all__ = ["FLAG_CODES", "CourseModel", "Flag", "FollowUp", "LabPoint", "Learned", "NextSession", "PatientFacts",
           "SessionOutcome", "SessionRecord", "course_model", "follow_up", "monitoring_flags", "next_session_due_at",
           "learn_and_predict"]
