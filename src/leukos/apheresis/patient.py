"""Per-patient learning for the leukapheresis outcome model (pure computation; the registry's core API).

A patient's per-blood-volume log-fall is ``log k = a + η``: ``a`` is the patient's own persistent
value, drawn from the fitted population (:class:`PatientPrior`), ``η`` varies from session to
session. After recorded sessions (pre and post count, blood volumes processed), the posterior of
``a`` is computed on a grid (exact up to quadrature: Gauss-Hermite over ``η``; laboratory noise on
both counts), and the next session is predicted from it.

API (stable; used by the registry)::

    prior = patient_prior(kb, diagnosis="AML")
    post = update_patient_params(prior, [ObservedSession(pre_wbc_10e9_per_l=300, post_wbc_10e9_per_l=180,
                                                         blood_volumes=2.0)])
    pred = predict_next_session(post, pre_wbc_10e9_per_l=260, blood_volumes=2.0, kb=kb)
    pred.end_of_run["median"], pred.next_morning["median"], pred.working

``predict_next_session(prior, ...)`` gives the population prediction. Counts that rose after a
session are valid observations (a low ``k``), never an error; non-positive counts, volumes or
blood volumes are :class:`~leukos.errors.LeukosUserError`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from leukos.apheresis.outcome import POOLED
from leukos.errors import ErrorDetail, LeukosUserError
from leukos.knowledge import KnowledgeBase

__all__ = ["PatientPrior", "ObservedSession", "PatientPosterior", "SessionPrediction", "patient_prior",
           "disease_group", "update_patient_params", "predict_next_session", "simulation_study", "rebound"]

_GRID = 401
_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(24)
_GH_W = _GH_W / _GH_W.sum()
_KINETICS = {"chronic_myeloid": "cml", "lymphoid": "cll"}


@dataclass(frozen=True)
class PatientPrior:
    """The population prior of one patient's log k (per-TBV log-fall) and the noise around it."""

    group: str
    group_label: str
    mean_log_k: float
    sd_persistent: float
    sd_session: float
    lab_log_sd: float
    kinetics: Mapping[str, tuple[float, float]]
    source: str = "population (leave-one-source-out validated fit)"


@dataclass(frozen=True)
class ObservedSession:
    pre_wbc_10e9_per_l: float
    post_wbc_10e9_per_l: float
    blood_volumes: float


@dataclass(frozen=True)
class PatientPosterior:
    prior: PatientPrior
    grid: np.ndarray
    weights: np.ndarray
    sessions: tuple[ObservedSession, ...]
    working: tuple[str, ...] = ()

    @property
    def mean_log_k(self) -> float:
        return float(np.sum(self.grid * self.weights))

    @property
    def sd_log_k(self) -> float:
        return float(math.sqrt(max(np.sum((self.grid - self.mean_log_k) ** 2 * self.weights), 0.0)))


@dataclass(frozen=True)
class SessionPrediction:
    based_on: str
    blood_volumes: float
    pre_wbc_10e9_per_l: float
    pct_fall: Mapping[str, float]
    end_of_run: Mapping[str, float]
    next_morning: Mapping[str, float]
    working: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {"based_on": self.based_on, "blood_volumes": self.blood_volumes,
                "pre_wbc_10e9_per_l": self.pre_wbc_10e9_per_l, "pct_fall": dict(self.pct_fall),
                "end_of_run_wbc_10e9_per_l": dict(self.end_of_run),
                "next_morning_wbc_10e9_per_l": dict(self.next_morning), "working": list(self.working)}


def disease_group(kb: KnowledgeBase, diagnosis: str | None) -> str:
    """The outcome model's disease group of a diagnosis code ('mixed' when unknown)."""
    for name, rec in kb.table("apheresis_outcomes")["groups"].items():
        if diagnosis in rec["diagnoses"]:
            return name
    return "mixed"


def patient_prior(kb: KnowledgeBase, *, diagnosis: str | None, fit: Any = None) -> PatientPrior:
    """The prior for a new patient: from the stored fit (``rules/apheresis_outcome_fit.toml``), or from
    ``fit`` (an :class:`~leukos.apheresis.outcome.Fit`) when given."""
    g = disease_group(kb, diagnosis)
    if fit is None:
        stored = kb.table("apheresis_outcome_fit")
        groups = stored.get("wbc_groups", {})
        rec = groups.get(g) or groups.get("mixed") or {"effect": 0.0, "pev": kb.value("apheresis_outcome_fit.wbc_mu_var")}
        mu, tau, sigma = (kb.value(f"apheresis_outcome_fit.wbc_{k}") for k in ("mu", "tau", "sigma"))
        effect, pev = rec["effect"], rec["pev"]
    else:
        gg = g if fit.structure not in POOLED else "mixed"
        mu, tau, sigma = fit.mu, fit.tau, fit.sigma
        effect = fit.group_effect.get(gg, 0.0)
        pev = fit.group_pev.get(gg, fit.mu_var + fit.omega**2)
    rho = kb.value("apheresis_outcomes.session_noise_fraction")
    kin = kb.table("apheresis")["disease_kinetics"][_KINETICS.get(g, "acute")]
    return PatientPrior(
        group=g, group_label=kb.table("apheresis_outcomes")["groups"][g]["label"], mean_log_k=mu + effect,
        sd_persistent=math.sqrt(pev + tau**2 + (1.0 - rho) * sigma**2), sd_session=math.sqrt(rho) * sigma,
        lab_log_sd=kb.value("apheresis.wbc_measurement_log_sd"),
        kinetics={"pool_ratio": tuple(kin["pool_ratio_range"]), "refill_tau_h": tuple(kin["refill_tau_h_range"]),
                  "doubling_time_h": tuple(kin["doubling_time_h_range"]),
                  "next_morning_h": (kb.value("apheresis_outcomes.next_morning_hours_after_end"),) * 2})


def _check_session(i: int, s: ObservedSession) -> list[ErrorDetail]:
    out = []
    for name in ("pre_wbc_10e9_per_l", "post_wbc_10e9_per_l", "blood_volumes"):
        v = getattr(s, name)
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            out.append(ErrorDetail(f"sessions[{i}].{name}", v, "a positive number",
                                   "give the measured count (×10⁹/L) or the blood volumes processed"))
    if not out and s.blood_volumes > 5:
        out.append(ErrorDetail(f"sessions[{i}].blood_volumes", s.blood_volumes, "at most 5 TBV (device maximum)",
                               "give volume processed / TBV"))
    return out


def _loglik(grid: np.ndarray, l_obs: np.ndarray, x: np.ndarray, sd_s: float, lab: float) -> np.ndarray:
    """log p(L_obs | a) for grid a (G,) and sessions (..., S) -> (..., G); η integrated per session."""
    eta = sd_s * _GH_X                                              # (Q,)
    lt = np.exp(grid[:, None] + eta[None, :])                       # (G, Q)
    s2 = 2.0 * lab**2
    out = np.zeros(l_obs.shape[:-1] + grid.shape)
    for j in range(l_obs.shape[-1]):
        d = l_obs[..., j, None, None] - lt * x[..., j, None, None]  # (..., G, Q)
        per = np.exp(-0.5 * d**2 / s2) @ _GH_W                       # (..., G)
        out += np.log(np.maximum(per, 1e-300))
    return out


def update_patient_params(prior: PatientPrior, observed_sessions: Sequence[ObservedSession]) -> PatientPosterior:
    """Posterior of the patient's persistent log k after the recorded sessions (grid, exact up to quadrature)."""
    sessions = tuple(observed_sessions)
    problems = [p for i, s in enumerate(sessions) for p in _check_session(i, s)]
    if problems:
        raise LeukosUserError(problems, title="A recorded session cannot be used")
    grid = prior.mean_log_k + prior.sd_persistent * np.linspace(-6, 6, _GRID)
    logp = -0.5 * ((grid - prior.mean_log_k) / prior.sd_persistent) ** 2
    working = [f"Population ({prior.group_label}): {_describe(prior.mean_log_k, prior.sd_persistent)}; "
               f"session-to-session variation (log scale) {prior.sd_session:.2f}; laboratory variation {prior.lab_log_sd:.2f} per count."]
    if sessions:
        l_obs = np.array([math.log(s.pre_wbc_10e9_per_l / s.post_wbc_10e9_per_l) for s in sessions])
        x = np.array([s.blood_volumes for s in sessions])
        logp = logp + _loglik(grid, l_obs, x, prior.sd_session, prior.lab_log_sd)
        for s in sessions:
            f = 100 * (1 - s.post_wbc_10e9_per_l / s.pre_wbc_10e9_per_l)
            working.append(f"Session: {s.pre_wbc_10e9_per_l:g} → {s.post_wbc_10e9_per_l:g} ×10⁹/L "
                           f"({f:.0f} % fall) at {s.blood_volumes:.2f} TBV.")
    w = np.exp(logp - logp.max())
    w /= w.sum()
    post = PatientPosterior(prior=prior, grid=grid, weights=w, sessions=sessions)
    working.append(f"This patient after {len(sessions)} session(s): {_describe(post.mean_log_k, post.sd_log_k)}.")
    return PatientPosterior(prior=prior, grid=grid, weights=w, sessions=sessions, working=tuple(working))


def _describe(mean_log_k: float, sd: float) -> str:
    k = math.exp(mean_log_k)
    return (f"fall rate k = {k:.2f} per blood volume (typical range ×/÷ {math.exp(sd):.1f}), "
            f"i.e. a median fall of {100 * (1 - math.exp(-2 * k)):.0f} % at 2 blood volumes")


def _band(x: np.ndarray, digits: int = 1) -> dict[str, float]:
    q = np.percentile(x, [5, 50, 95])
    return {"p05": round(float(q[0]), digits), "median": round(float(q[1]), digits), "p95": round(float(q[2]), digits)}


def _loguniform(rng, lo, hi, n):
    return np.exp(rng.uniform(math.log(lo), math.log(hi), n)) if hi > lo else np.full(n, float(lo))


def rebound(pre: np.ndarray, end: np.ndarray, hours: float, pool_ratio: np.ndarray, refill_tau_h: np.ndarray,
            doubling_h: np.ndarray) -> np.ndarray:
    """Count ``hours`` after the run: the circulating pool refills from an exchangeable pool (ratio R at
    equilibrium, time constant τ) and both grow with the doubling time (closed form of the two-pool model).
    """
    g = math.log(2.0) / doubling_h
    total = end + pool_ratio * pre
    eq = total / (1.0 + pool_ratio)
    return np.exp(g * hours) * (eq + (end - eq) * np.exp(-hours / refill_tau_h))


def predict_next_session(params: PatientPrior | PatientPosterior, *, pre_wbc_10e9_per_l: float, blood_volumes: float,
                         draws: int = 4000, seed: int = 0) -> SessionPrediction:
    """Predict the next session: % fall, end-of-run count and next-morning count (median and 90 % band)."""
    problems = _check_session(0, ObservedSession(pre_wbc_10e9_per_l, pre_wbc_10e9_per_l, blood_volumes))
    if problems:
        raise LeukosUserError([ErrorDetail(p.field.replace("sessions[0].", ""), p.value, p.expected, p.fix)
                               for p in problems], title="The next session cannot be predicted")
    rng = np.random.default_rng(seed)
    if isinstance(params, PatientPosterior):
        prior = params.prior
        a = rng.choice(params.grid, size=draws, p=params.weights)
        a = a + (params.grid[1] - params.grid[0]) * (rng.random(draws) - 0.5)
        based = f"this patient ({len(params.sessions)} recorded session(s))"
        working = list(params.working)
    else:
        prior = params
        a = prior.mean_log_k + prior.sd_persistent * rng.standard_normal(draws)
        based = "population"
        working = [f"Population ({prior.group_label}): {_describe(prior.mean_log_k, prior.sd_persistent)}."]
    lk = a + prior.sd_session * rng.standard_normal(draws)
    frac_left = np.exp(-np.exp(lk) * blood_volumes)
    end = pre_wbc_10e9_per_l * frac_left
    kin = prior.kinetics
    hours = kin["next_morning_h"][0]
    morning = rebound(np.full(draws, pre_wbc_10e9_per_l), end, hours, _loguniform(rng, *kin["pool_ratio"], draws),
                      _loguniform(rng, *kin["refill_tau_h"], draws), _loguniform(rng, *kin["doubling_time_h"], draws))
    working += [f"End of run: post = pre × exp(−k × {blood_volumes:.2f} blood volumes processed).",
                f"Next morning ({hours:g} h after the end): refill from the exchangeable pool (ratio "
                f"{kin['pool_ratio'][0]:g}-{kin['pool_ratio'][1]:g}, time constant {kin['refill_tau_h'][0]:g}-"
                f"{kin['refill_tau_h'][1]:g} h) and regrowth (doubling {kin['doubling_time_h'][0]:g}-"
                f"{kin['doubling_time_h'][1]:g} h): unverified priors, not validated against data."]
    return SessionPrediction(based_on=based, blood_volumes=round(blood_volumes, 2), pre_wbc_10e9_per_l=pre_wbc_10e9_per_l,
                             pct_fall=_band(100 * (1 - frac_left)), end_of_run=_band(end), next_morning=_band(morning),
                             working=tuple(working))


def simulation_study(prior: PatientPrior, *, n_patients: int = 2000, seed: int = 0,
                     blood_volumes: tuple[float, float] = (1.5, 2.0)) -> dict[str, Any]:
    """Known-truth check of per-patient learning.

    Patients are drawn from the prior; each has two sessions (volume uniform over ``blood_volumes``),
    counts observed with laboratory noise. The second session's true % fall is predicted from the
    population and from the patient's posterior after the first; returns both MAEs and 90 % coverage.
    """
    rng = np.random.default_rng(seed)
    n = n_patients
    a = prior.mean_log_k + prior.sd_persistent * rng.standard_normal(n)
    x = rng.uniform(*blood_volumes, (n, 2))
    lk = a[:, None] + prior.sd_session * rng.standard_normal((n, 2))
    l_true = np.exp(lk) * x
    l_obs1 = l_true[:, 0] + math.sqrt(2.0) * prior.lab_log_sd * rng.standard_normal(n)
    f2 = 100 * (1 - np.exp(-l_true[:, 1]))
    grid = prior.mean_log_k + prior.sd_persistent * np.linspace(-6, 6, _GRID)
    logp = -0.5 * ((grid - prior.mean_log_k) / prior.sd_persistent) ** 2
    ll = np.concatenate([_loglik(grid, l_obs1[i:i + 250, None], x[i:i + 250, :1], prior.sd_session, prior.lab_log_sd)
                         for i in range(0, n, 250)])                                    # (n, G)
    lp = logp[None, :] + ll
    w = np.exp(lp - lp.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    m_draws = 400
    cdf = np.cumsum(w, axis=1)
    cdf[:, -1] = 1.0
    rows = np.arange(n)[:, None]
    u = rng.random((n, m_draws))
    idx = np.searchsorted((cdf + 2.0 * rows).ravel(), (u + 2.0 * rows).ravel()).reshape(n, m_draws) - rows * _GRID
    idx = np.clip(idx, 0, _GRID - 1)
    a_post = grid[idx] + prior.sd_session * rng.standard_normal((n, m_draws))
    a_pop = prior.mean_log_k + math.sqrt(prior.sd_persistent**2 + prior.sd_session**2) * rng.standard_normal(m_draws)
    f_post = 100 * (1 - np.exp(-np.exp(a_post) * x[:, 1:2]))
    f_pop = 100 * (1 - np.exp(-np.exp(a_pop)[None, :] * x[:, 1:2]))
    q_post = np.percentile(f_post, [5, 50, 95], axis=1)
    q_pop = np.percentile(f_pop, [5, 50, 95], axis=1)
    return {
        "patients": n, "blood_volumes": list(blood_volumes),
        "mae_population_pct_points": round(float(np.mean(np.abs(q_pop[1] - f2))), 2),
        "mae_after_update_pct_points": round(float(np.mean(np.abs(q_post[1] - f2))), 2),
        "coverage_90_population_pct": round(100 * float(np.mean((q_pop[0] <= f2) & (f2 <= q_pop[2]))), 1),
        "coverage_90_after_update_pct": round(100 * float(np.mean((q_post[0] <= f2) & (f2 <= q_post[2]))), 1),
        "band_width_population": round(float(np.mean(q_pop[2] - q_pop[0])), 1),
        "band_width_after_update": round(float(np.mean(q_post[2] - q_post[0])), 1),
        "truth": "patients drawn from the fitted population; session 2's true fall (no laboratory noise)",
    }
