"""THE adapter between follow-up and the apheresis outcome model's per-patient learning.

Follow-up uses the model only through :func:`learn_and_predict` (one call per session), so a
change of the model's API needs an edit here only. The model is ``leukos.apheresis.patient``: a
patient's per-blood-volume fall rate k (``log k`` persistent per patient plus session noise),
updated on a grid from every recorded session, and the next session predicted from it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from leukos.apheresis import ObservedSession, patient_prior, predict_next_session, update_patient_params
from leukos.knowledge import KnowledgeBase

__all__ = ["Learned", "learn_and_predict"]


@dataclass(frozen=True)
class Learned:
    """What the patient's recorded sessions say, and the prediction of one session from it."""

    pct_fall: Mapping[str, float]            # predicted % fall, p05 / median / p95
    end_of_run: Mapping[str, float]          # predicted post-session count (10⁹/L)
    fall_rate: Mapping[str, float]           # k per blood volume processed, p05 / median / p95
    sessions_used: int
    based_on: str
    working: tuple[str, ...]


def _k_band(mean_log_k: float, sd: float) -> dict[str, float]:
    return {"p05": round(math.exp(mean_log_k - 1.645 * sd), 3), "median": round(math.exp(mean_log_k), 3),
            "p95": round(math.exp(mean_log_k + 1.645 * sd), 3)}


def learn_and_predict(kb: KnowledgeBase, *, diagnosis: str | None,
                      observed: Sequence[tuple[float, float, float]], pre_wbc_10e9_per_l: float,
                      blood_volumes: float) -> Learned:
    """Learn from ``observed`` sessions ((pre, post, blood volumes), oldest first; none = population)
    and predict a session starting at ``pre_wbc_10e9_per_l`` with ``blood_volumes`` processed."""
    prior = patient_prior(kb, diagnosis=diagnosis)
    if observed:
        params = update_patient_params(prior, [ObservedSession(pre, post, bv) for pre, post, bv in observed])
        k = _k_band(params.mean_log_k, params.sd_log_k)
    else:
        params = prior
        k = _k_band(prior.mean_log_k, prior.sd_persistent)
    pred = predict_next_session(params, pre_wbc_10e9_per_l=pre_wbc_10e9_per_l, blood_volumes=blood_volumes,
                                seed=int(kb.value("followup.update_seed")) % (2**32))
    return Learned(pct_fall=dict(pred.pct_fall), end_of_run=dict(pred.end_of_run), fall_rate=k,
                   sessions_used=len(observed), based_on=pred.based_on, working=tuple(pred.working))
