"""Simulation of a planned procedure: time course, uncertainty, sessions to target.

All Monte Carlo draws are integrated together as numpy arrays (``model.integrate``); no
Python loop over draws or solver calls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from leukos.apheresis import model as m
from leukos.apheresis.model import ModelParams, PatientState, Session
from leukos.apheresis.plan import ProcedurePlan, ProcedureSettings
from leukos.errors import ErrorDetail, LeukosUserError
from leukos.knowledge import KnowledgeBase

__all__ = ["Trajectory", "simulate", "sample_params", "median_params", "kinetics_group",
           "sessions_to_target", "summarise", "band"]

PCTS = (5, 50, 95)


def kinetics_group(kb: KnowledgeBase, diagnosis: str | None) -> str:
    """Which disease-kinetics prior applies (acute when the diagnosis is unknown)."""
    table = kb.table("apheresis")["disease_kinetics"]
    for name, rec in table.items():
        if diagnosis in rec["diagnoses"]:
            return name
    return "acute"


def _loguniform(rng, lo, hi, n):
    return np.exp(rng.uniform(math.log(lo), math.log(hi), n))


def _geo(lo, hi):
    return math.sqrt(lo * hi)


def _removal_prior(kb: KnowledgeBase, diagnosis: str | None) -> tuple[float, float]:
    """Mean and SD of log E0 for a new patient: the validated outcome model's log k (per-TBV log-fall).

    Leave-one-source-out validation rejected a count-dependent efficiency, so E is constant
    within a run (C½ = ∞); k also absorbs dilution and refill during the run, which the
    simulator adds on top (a few percentage points of extra fall at 2 TBV).
    """
    from leukos.apheresis.patient import patient_prior

    pr = patient_prior(kb, diagnosis=diagnosis)
    return pr.mean_log_k, math.sqrt(pr.sd_persistent**2 + pr.sd_session**2)


E0_MAX = 1.0  # a per-pass efficiency cannot exceed 1


def _platelet_prior(kb: KnowledgeBase) -> tuple[float, float]:
    """Mean and SD of the log platelet efficiency: the validated platelet-fall model (per-TBV log-fall)."""
    v = {k: kb.value(f"apheresis_outcome_fit.plt_{k}") for k in ("mu", "mu_var", "tau", "sigma")}
    return v["mu"], math.sqrt(v["mu_var"] + v["tau"] ** 2 + v["sigma"] ** 2)


def _fixed(kb: KnowledgeBase, weight_kg: float, liver_dysfunction: bool) -> dict[str, float]:
    return {
        "c_half_10e9_per_l": math.inf,
        "citrate_vd_l": kb.value("apheresis.citrate_vd_l_per_kg") * weight_kg,
        "ica_slope": kb.value("apheresis_calibration.ica_citrate_slope"),
        "fluid_retained": kb.value("apheresis.fluid_retained_fraction"),
        "fluid_tau_min": kb.value("apheresis.fluid_equilibration_tau_h") * 60.0,
        "product_hct": kb.value("apheresis.product_hct_pct") / 100.0,
        "cl_factor": kb.value("apheresis.liver_dysfunction_citrate_factor") if liver_dysfunction else 1.0,
    }


def median_params(kb: KnowledgeBase, *, diagnosis: str | None, weight_kg: float,
                  liver_dysfunction: bool = False) -> ModelParams:
    """The central (median) parameter set: one draw."""
    kin = kb.table("apheresis")["disease_kinetics"][kinetics_group(kb, diagnosis)]
    plt = kb.table("apheresis")["platelet_kinetics"]
    f = _fixed(kb, weight_kg, liver_dysfunction)
    cl = 0.5 * (kb.value("apheresis.citrate_clearance_low_l_per_min") + kb.value("apheresis.citrate_clearance_high_l_per_min"))
    return ModelParams(
        e0=np.array([min(math.exp(_removal_prior(kb, diagnosis)[0]), E0_MAX)]),
        c_half_10e9_per_l=np.array([f["c_half_10e9_per_l"]]),
        pool_ratio=np.array([_geo(*kin["pool_ratio_range"])]),
        refill_tau_min=np.array([_geo(*kin["refill_tau_h_range"]) * 60.0]),
        growth_per_min=np.array([math.log(2) / (_geo(*kin["doubling_time_h_range"]) * 60.0)]),
        e_platelet=np.array([min(math.exp(kb.value("apheresis_outcome_fit.plt_mu")), E0_MAX)]),
        platelet_tau_min=np.array([_geo(*plt["recovery_tau_h_range"]) * 60.0]),
        citrate_cl_l_per_min=np.array([cl * f["cl_factor"]]),
        citrate_vd_l=np.array([f["citrate_vd_l"]]),
        ica_slope=np.array([f["ica_slope"]]),
        fluid_retained=np.array([f["fluid_retained"]]),
        fluid_tau_min=np.array([f["fluid_tau_min"]]),
        product_hct=np.array([f["product_hct"]]),
    )


def sample_params(kb: KnowledgeBase, *, diagnosis: str | None, weight_kg: float, n: int,
                  seed: int | None = None, liver_dysfunction: bool = False,
                  procedure: tuple[ProcedureSettings, PatientState] | None = None) -> ModelParams:
    """Draw ``n`` parameter sets from the population priors (calibrated E, sourced ranges).

    E0 is log-normal from the validated outcome model (``rules/apheresis_outcome_fit.toml``, capped at 1);
    the platelet efficiency log-normal from the validated platelet-fall model; pool size, refill time, doubling time and platelet recovery are log-uniform
    over the ranges of ``disease_kinetics``/``platelet_kinetics``; citrate clearance is uniform
    over 0.35-0.7 L/min (halved with liver dysfunction).

    With ``procedure`` (settings, patient), each draw's E0 and platelet efficiency are adjusted so
    that the simulated end-of-run falls equal the outcome model's ``1 − exp(−k·x)`` for that draw:
    the published falls already include refill and dilution during the run, which the simulator
    adds explicitly (:func:`match_to_outcome`).
    """
    if n < 1:
        raise LeukosUserError(ErrorDetail("draws", n, "a positive number of draws", "use --draws 100 or more"))
    rng = np.random.default_rng(kb.value("apheresis.random_seed") if seed is None else seed)
    kin = kb.table("apheresis")["disease_kinetics"][kinetics_group(kb, diagnosis)]
    plt = kb.table("apheresis")["platelet_kinetics"]
    f = _fixed(kb, weight_kg, liver_dysfunction)
    m_lk, s_lk = _removal_prior(kb, diagnosis)
    k_wbc = np.exp(m_lk + s_lk * rng.standard_normal(n))
    k_plt = np.exp(_platelet_prior(kb)[0] + _platelet_prior(kb)[1] * rng.standard_normal(n))
    e0, ep = np.minimum(k_wbc, E0_MAX), np.minimum(k_plt, E0_MAX)
    lo, hi = kb.value("apheresis.citrate_clearance_low_l_per_min"), kb.value("apheresis.citrate_clearance_high_l_per_min")
    full = np.ones(n)
    params = ModelParams(
        e0=e0,
        c_half_10e9_per_l=full * f["c_half_10e9_per_l"],
        pool_ratio=_loguniform(rng, *kin["pool_ratio_range"], n),
        refill_tau_min=_loguniform(rng, *kin["refill_tau_h_range"], n) * 60.0,
        growth_per_min=math.log(2) / (_loguniform(rng, *kin["doubling_time_h_range"], n) * 60.0),
        e_platelet=ep,
        platelet_tau_min=_loguniform(rng, *plt["recovery_tau_h_range"], n) * 60.0,
        citrate_cl_l_per_min=rng.uniform(lo, hi, n) * f["cl_factor"],
        citrate_vd_l=full * f["citrate_vd_l"],
        ica_slope=full * f["ica_slope"],
        fluid_retained=full * f["fluid_retained"],
        fluid_tau_min=full * f["fluid_tau_min"],
        product_hct=full * f["product_hct"],
    )
    if procedure is not None:
        params = match_to_outcome(params, *procedure, k_wbc=k_wbc, k_plt=k_plt)
    return params


def match_to_outcome(params: ModelParams, settings: ProcedureSettings, pat: PatientState, *, k_wbc: np.ndarray,
                     k_plt: np.ndarray, iterations: int = 3) -> ModelParams:
    """Rescale E0 and E_platelet per draw so the simulated end-of-run log-falls equal k·x (fixed point)."""
    x = settings.blood_volumes
    target_w, target_p = k_wbc * x, k_plt * x
    p = params
    pat1 = PatientState(**{**pat.__dict__, "platelets_10e9_per_l": pat.platelets_10e9_per_l or 100.0})
    for _ in range(iterations):
        tr = simulate((settings, pat1), p, np.array([0.0, settings.duration_min]))
        lw = np.log(tr.wbc_10e9_per_l[:, 0] / tr.wbc_10e9_per_l[:, -1])
        lp = np.log(tr.platelets_10e9_per_l[:, 0] / tr.platelets_10e9_per_l[:, -1])
        p = p.replace(e0=np.clip(p.e0 * target_w / np.maximum(lw, 1e-9), 1e-6, E0_MAX),
                      e_platelet=np.clip(p.e_platelet * target_p / np.maximum(lp, 1e-9), 1e-6, E0_MAX))
    return p


@dataclass(frozen=True)
class Trajectory:
    """Predicted time course; series have shape (n_draws, n_times)."""

    times_min: np.ndarray
    wbc_10e9_per_l: np.ndarray
    ionized_calcium_mmol_per_l: np.ndarray
    platelets_10e9_per_l: np.ndarray | None
    hemoglobin_g_per_dl: np.ndarray | None
    volume_l: np.ndarray
    citrate_mmol_per_l: np.ndarray
    product_volume_ml: np.ndarray
    product_cells_10e9: np.ndarray
    circulating_cells_10e9: np.ndarray
    pool_cells_10e9: np.ndarray
    grown_cells_10e9: np.ndarray
    session_ends_min: tuple[float, ...]
    session_starts_min: tuple[float, ...]

    @property
    def n_draws(self) -> int:
        return self.wbc_10e9_per_l.shape[0]

    def conservation_residual(self) -> np.ndarray:
        """(circulating + pool + product − grown) − initial, relative to the initial total, per draw and time."""
        total = self.circulating_cells_10e9 + self.pool_cells_10e9 + self.product_cells_10e9 - self.grown_cells_10e9
        return (total - total[:, :1]) / total[:, :1]


def simulate(plan: ProcedurePlan | tuple[ProcedureSettings, PatientState], params: ModelParams,
             times_min: np.ndarray, *, n_sessions: int = 1, interval_min: float | None = None,
             dt_on_min: float = 10.0, dt_off_min: float = 30.0) -> Trajectory:
    """Simulate the plan for every parameter draw and report the series at ``times_min``.

    Parameters
    ----------
    plan : ProcedurePlan or (ProcedureSettings, PatientState)
    params : ModelParams
        One draw or arrays over draws (``sample_params``).
    times_min : array
        Output times in minutes from the start of the first procedure (≥ 0).
    n_sessions, interval_min : int, float
        Repeat the procedure ``n_sessions`` times, ``interval_min`` apart (start to start).

    Returns
    -------
    Trajectory
    """
    settings, pat = (plan.settings, plan.patient) if isinstance(plan, ProcedurePlan) else plan
    times = np.asarray(times_min, dtype=float)
    if times.ndim != 1 or times.size == 0 or np.any(times < 0) or np.any(np.diff(times) < 0):
        raise LeukosUserError(ErrorDetail("times_min", "…", "a non-empty increasing array of times ≥ 0", "check the time grid"))
    interval = interval_min if interval_min is not None else 24 * 60.0
    if n_sessions > 1 and interval < settings.duration_min:
        raise LeukosUserError(ErrorDetail("interval", interval, f"at least the procedure duration ({settings.duration_min:.0f} min)",
                                          "space the sessions further apart"))
    sessions = tuple(settings.session(k * interval) for k in range(n_sessions))
    y = m.integrate(params, pat, sessions, times, dt_on_min=dt_on_min, dt_off_min=dt_off_min)
    return _trajectory(y, times, pat, params, sessions)


def _trajectory(y: np.ndarray, times: np.ndarray, pat: PatientState, params: ModelParams,
                sessions: tuple[Session, ...]) -> Trajectory:
    vol = y[m.VOL]
    p = params.as_arrays()
    ica = pat.ionized_calcium_mmol_per_l - p.ica_slope[:, None] * (y[m.CIT] - pat.citrate_basal_mmol_per_l)
    plt = None if pat.platelets_10e9_per_l is None else y[m.PLT] / vol
    hb = None
    if pat.hemoglobin_g_per_dl is not None and pat.hematocrit_fraction:
        rbc0 = pat.hematocrit_fraction * pat.tbv_l
        hb = pat.hemoglobin_g_per_dl * (y[m.RBC] / rbc0) * (pat.tbv_l / vol)
    return Trajectory(
        times_min=times, wbc_10e9_per_l=y[m.NB] / vol, ionized_calcium_mmol_per_l=ica,
        platelets_10e9_per_l=plt, hemoglobin_g_per_dl=hb, volume_l=vol, citrate_mmol_per_l=y[m.CIT],
        product_volume_ml=y[m.PVOL] * 1000.0, product_cells_10e9=y[m.PROD],
        circulating_cells_10e9=y[m.NB], pool_cells_10e9=y[m.NT], grown_cells_10e9=y[m.GROWN],
        session_ends_min=tuple(s.end_min for s in sessions), session_starts_min=tuple(s.start_min for s in sessions))


def band(x: np.ndarray, *, digits: int = 1) -> dict[str, float]:
    """p05 / median / p95 of draws (a single draw gives all three equal)."""
    q = np.percentile(np.asarray(x, dtype=float), PCTS)
    return {"p05": round(float(q[0]), digits), "median": round(float(q[1]), digits), "p95": round(float(q[2]), digits)}


def summarise(settings: ProcedureSettings, pat: PatientState, params: ModelParams, *,
              next_morning_h: float | None = None) -> dict[str, Any]:
    """The plan's ``predicted`` block: post count (end of run and, if asked, next morning), % reduction,
    nadir iCa, platelets, Hb, product."""
    end = settings.duration_min
    times = np.linspace(0.0, end, 61)
    if next_morning_h:
        times = np.append(times, end + next_morning_h * 60.0)
    tr = simulate((settings, pat), params, times)
    morning = tr.wbc_10e9_per_l[:, -1] if next_morning_h else None
    if next_morning_h:
        tr = Trajectory(**{**tr.__dict__, **{k: (v[:, :-1] if isinstance(v, np.ndarray) and v.ndim == 2 else v)
                                             for k, v in tr.__dict__.items()}, "times_min": times[:-1]})
    post = tr.wbc_10e9_per_l[:, -1]
    pre = tr.wbc_10e9_per_l[:, 0]
    red = 100.0 * (1.0 - post / pre)
    nadir = tr.ionized_calcium_mmol_per_l.min(axis=1)
    out: dict[str, Any] = {
        "draws": tr.n_draws,
        "at": "end of the procedure (rinse-back not modelled)",
        "post_wbc_10e9_per_l": band(post),
        **({"next_morning_wbc_10e9_per_l": band(morning), "next_morning_hours_after_end": next_morning_h}
           if morning is not None else {}),
        "pct_reduction": band(red),
        "nadir_ionized_calcium_mmol_per_l": band(nadir, digits=2),
        "product_volume_ml": band(tr.product_volume_ml[:, -1], digits=0),
        "product_cells_10e9": band(tr.product_cells_10e9[:, -1], digits=0),
        "volume_processed_l": round(settings.volume_to_process_l, 2),
        "circulating_volume_end_l": band(tr.volume_l[:, -1], digits=2),
    }
    v_wb = settings.volume_to_process_l
    prod = tr.product_cells_10e9[:, -1]
    out["ce2_pct"] = band(100.0 * prod / (pre * v_wb))
    out["ce1_pct"] = band(100.0 * prod / (v_wb * (pre + post) / 2.0))
    out["platelets_post_10e9_per_l"] = None if tr.platelets_10e9_per_l is None else band(tr.platelets_10e9_per_l[:, -1])
    out["hemoglobin_post_g_per_dl"] = None if tr.hemoglobin_g_per_dl is None else band(tr.hemoglobin_g_per_dl[:, -1])
    return out


def sessions_to_target(settings: ProcedureSettings, pat: PatientState, params: ModelParams, *,
                       target_10e9_per_l: float, max_sessions: int, interval_h: float) -> dict[str, Any]:
    """How many daily sessions until the end-of-session count is at or below the target (a distribution)."""
    interval = interval_h * 60.0
    pre = float(np.median(np.atleast_1d(pat.wbc_10e9_per_l)))
    base = {"target_wbc_10e9_per_l": target_10e9_per_l, "max_sessions": max_sessions, "interval_h": interval_h,
            "criterion": "count at the end of a session ≤ target (regrowth and refill between sessions modelled)"}
    if pre <= target_10e9_per_l:
        return base | {"median": 0, "p05": 0, "p95": 0, "probability_by_session": [], "not_reached_pct": 0.0,
                       "note": "already at or below the target"}
    sessions = tuple(settings.session(k * interval) for k in range(max_sessions))
    ends = np.array([s.end_min for s in sessions])
    tr = simulate((settings, pat), params, ends, n_sessions=max_sessions, interval_min=interval)
    below = tr.wbc_10e9_per_l <= target_10e9_per_l       # (n, max_sessions)
    reached = below.any(axis=1)
    first = np.where(reached, below.argmax(axis=1) + 1, max_sessions + 1)
    prob = [round(100.0 * float(np.mean(first <= k)), 1) for k in range(1, max_sessions + 1)]
    q = np.percentile(first, PCTS)

    def lab(v):
        v = int(math.ceil(v))
        return v if v <= max_sessions else f"> {max_sessions}"

    return base | {"median": lab(q[1]), "p05": lab(q[0]), "p95": lab(q[2]),
                   "probability_by_session": prob, "not_reached_pct": round(100.0 * float(np.mean(~reached)), 1),
                   "post_wbc_by_session_median": [round(float(v), 1) for v in np.median(tr.wbc_10e9_per_l, axis=0)]}
