"""Leave-one-source-out validation of the outcome model against constant baselines (pure computation).

For each source in turn, the model is refitted on the other sources and predicts the held-out
rows (median and 90 % band). Baselines: the constant 35 % per session, the training fold's mean
and median observed fall, and the ASFA-derived midpoint 45 % (range 30-60 %). Rows that are not scored
(concurrent cytoreduction, whole courses, bounds, non-apheresis) are predicted and shown but not
counted. Nothing is tuned on the held-out fold: the variance priors and volume assumptions are
fixed in the knowledge data before the run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from leukos.apheresis.outcome import (
    BAND_METHODS,
    CENTRE_VARIANTS,
    MODEL_VARIANTS,
    STRUCTURES,
    Fit,
    fit_ce_model,
    fit_fall_model,
    log_k,
    predict_ce,
    predict_fall,
    recentre,
    sigma_from_reported_sds,
)
from leukos.apheresis.outcome_data import CeRow, FallRow, OutcomeData
from leukos.knowledge import KnowledgeBase

__all__ = ["CvTable", "cross_validate_falls", "cross_validate_ce", "validate_all", "summarise_rows",
           "CONSTANT_PCT", "ASFA_PCT", "ASFA_RANGE"]

CONSTANT_PCT = 35.0
ASFA_PCT = 45.0
ASFA_RANGE = (30.0, 60.0)


@dataclass(frozen=True)
class CvTable:
    """Per-row out-of-sample predictions and the summary by method."""

    what: str
    structure: str
    rows: tuple[dict[str, Any], ...]
    summary: dict[str, dict[str, Any]]


def _band(lo: float, hi: float) -> list[float]:
    return [round(lo, 1), round(hi, 1)]


def summarise_rows(rows: Sequence[dict[str, Any]], methods: Sequence[str], *, log_space: bool = False) -> dict[str, dict[str, Any]]:
    """MAE, median error, 90 % band coverage and mean band width per method over the scored rows."""
    out: dict[str, dict[str, Any]] = {}
    scored = [r for r in rows if r["scored"]]
    for m in methods:
        errs, cov, width = [], [], []
        for r in scored:
            p = r[m]
            if log_space:
                errs.append(abs(math.log(p["median"] / r["observed"])))
            else:
                errs.append(abs(p["median"] - r["observed"]))
            if p.get("band"):
                lo, hi = p["band"]
                cov.append(lo <= r["observed"] <= hi)
                width.append(hi - lo)
        out[m] = {"n": len(errs),
                  ("mean_abs_log_error" if log_space else "mae_pct_points"): round(float(np.mean(errs)), 3 if log_space else 1) if errs else None,
                  ("median_abs_log_error" if log_space else "median_abs_error_pct_points"):
                      round(float(np.median(errs)), 3 if log_space else 1) if errs else None,
                  "coverage_90": f"{sum(cov)}/{len(cov)}" if cov else "n/a",
                  "coverage_90_pct": round(100.0 * sum(cov) / len(cov), 1) if cov else None,
                  "mean_band_width": round(float(np.mean(width)), 1) if width else None}
    return out


def _variant_rows(kb: KnowledgeBase, rows: Sequence[FallRow], variant: str | None) -> list[FallRow]:
    """The rows as a volume candidate sees them (the published values never change, only the assumed volumes)."""
    if variant == "no-volume-scaling":
        return [replace(r, bv_low=1.0, bv_high=1.0) for r in rows]
    if variant == "practice-volume-range":
        lo, hi = (kb.value(f"apheresis_outcomes.blood_volumes_practice_{e}") for e in ("low", "high"))
        return [replace(r, bv_low=lo, bv_high=hi) if r.volume_assumed else r for r in rows]
    if variant == "reported-volume-uncertain":
        return [replace(r, bv_low=r.bv_sensitivity[0], bv_high=r.bv_sensitivity[1]) if r.bv_sensitivity else r
                for r in rows]
    return list(rows)


def cross_validate_falls(kb: KnowledgeBase, rows: Sequence[FallRow], *, structure: str, what: str = "wbc",
                         draws: int = 4000, seed: int = 0, band: str = "posterior", variant: str | None = None) -> CvTable:
    """Leave-one-source-out over the scored rows; unscored rows are predicted from the full fit and shown.

    ``variant`` reports a candidate that was tried; the chosen model never uses one. One of
    ``CENTRE_VARIANTS`` (pooled structure only) replaces the centre of each fold's fit; one of
    ``MODEL_VARIANTS`` (any structure) changes the assumed volumes, the sigma conversion or how a
    cohort mean is read, in every fold alike.
    """
    fit_kw: dict[str, str] = {}
    if variant is not None:
        if variant in MODEL_VARIANTS:
            fit_kw = {"moment-matched-sigma": {"sigma_method": "moments"},
                      "cohort-mean-inverted": {"cohort_y": "inverted"}}.get(variant, {})
        elif variant not in CENTRE_VARIANTS or structure != "pooled":
            raise ValueError(f"variant {variant!r} needs structure 'pooled' and one of {CENTRE_VARIANTS}, "
                             f"or one of {MODEL_VARIANTS}")
        rows = _variant_rows(kb, rows, variant)
    prior = kb.value("apheresis_outcomes.variance_prior_scale")
    ref = kb.value("apheresis_outcomes.count_reference_10e9_per_l")
    t_df = kb.value("apheresis_outcomes.band_student_t_df")
    sig_method = fit_kw.get("sigma_method", "delta")
    scored = [r for r in rows if r.scored]
    sources = sorted({r.source for r in scored})
    full = fit_fall_model(scored, structure=structure, prior_scale=prior, count_reference=ref, **fit_kw)
    out = []
    for r in rows:
        if r.scored:
            train = [t for t in scored if t.source != r.source]
            try:
                sig = sigma_from_reported_sds(train, method=sig_method)
            except ValueError:
                sig = full.sigma
            fit = fit_fall_model(train, structure=structure, prior_scale=prior, count_reference=ref, sigma=sig,
                                 cohort_y=fit_kw.get("cohort_y", "at-mean"))
            obs_train = np.array([t.observed_pct for t in train])
        else:
            train, fit, obs_train = scored, full, np.array([t.observed_pct for t in scored])
        if variant in CENTRE_VARIANTS:
            fit = _variant_centre(fit, train, variant)
        p = predict_fall(fit, r, draws=draws, seed=seed, band=band, t_df=t_df)
        tm, ts = float(obs_train.mean()), float(obs_train.std(ddof=1)) if len(obs_train) > 1 else 0.0
        rec: dict[str, Any] = {
            "id": r.id, "source": r.source, "group": r.group, "kind": r.kind if r.kind == "patient" else f"cohort n={r.n}",
            "blood_volumes": (round(r.bv_low, 2) if r.bv_low == r.bv_high else f"{r.bv_low:g}-{r.bv_high:g}"),
            "observed": r.observed_pct, "scored": r.scored, "reason": r.reason,
            "model": {"median": round(p.median, 1), "band": _band(p.p05, p.p95)},
            "training_mean": {"median": round(tm, 1), "band": _band(tm - 1.6449 * ts, tm + 1.6449 * ts)},
            # the robust constant: training-fold median, band its 5th-95th percentiles
            "training_median": {"median": round(float(np.median(obs_train)), 1),
                                "band": _band(*np.percentile(obs_train, [5, 95]))},
        }
        if what == "wbc":
            rec["constant_35"] = {"median": CONSTANT_PCT, "band": None}
            rec["asfa_45"] = {"median": ASFA_PCT, "band": list(ASFA_RANGE)}
        rec["covered"] = (p.covers(r.observed_pct) if r.observed_pct is not None else None)
        out.append(rec)
    methods = ["model", "training_mean", "training_median"] + (["constant_35", "asfa_45"] if what == "wbc" else [])
    summ = summarise_rows(out, methods)
    summ["_sources"] = {"n": len(sources), "names": sources}
    return CvTable(what=what, structure=structure, rows=tuple(out), summary=summ)


def _variant_centre(fit: Fit, train: Sequence[FallRow], variant: str) -> Fit:
    y = {t.id: log_k(t) for t in train}
    if variant == "unweighted-mean":
        return recentre(fit, float(np.mean(list(y.values()))))
    if variant == "cohort-mean":
        return recentre(fit, float(np.mean([y[t.id] for t in train if t.kind == "cohort"] or list(y.values()))))
    by_source: dict[str, list[float]] = {}
    for t in train:
        by_source.setdefault(t.source, []).append(y[t.id])
    if variant == "source-median":
        return recentre(fit, float(np.median([np.mean(v) for v in by_source.values()])), var_factor=math.pi / 2)
    return recentre(fit, float(np.median(list(y.values()))), var_factor=math.pi / 2)   # no-volume-scaling


def cross_validate_ce(kb: KnowledgeBase, rows: Sequence[CeRow], *, structure: str, band: str = "posterior") -> CvTable:
    """Leave-one-source-out for the collection efficiency (yield error in log space)."""
    prior = kb.value("apheresis_outcomes.ce_logit_prior_sd")
    dev = kb.table("apheresis")["devices"]["spectra_optia_cmnc"]
    const = {"CD34": 100.0 * dev["ce2_cd34"], "CD3": 100.0 * dev["ce2_cd3"]}
    out = []
    for r in rows:
        train = [t for t in rows if t.source != r.source]
        fit = fit_ce_model(train, structure=structure, prior_scale=prior)
        p = predict_ce(fit, r.marker, band=band, t_df=kb.value("apheresis_outcomes.band_student_t_df"))
        same = np.array([t.ce_pct for t in train if t.marker == r.marker] or [t.ce_pct for t in train])
        lm, ls = float(np.mean(np.log(same))), float(np.std(np.log(same), ddof=1)) if len(same) > 1 else 0.0
        out.append({"id": r.id, "source": r.source, "marker": r.marker, "observed": r.ce_pct, "scored": True,
                    "model": {"median": round(p.median, 1), "band": _band(p.p05, p.p95)},
                    "device_profile": {"median": round(const[r.marker], 1), "band": None},
                    "training_mean": {"median": round(math.exp(lm), 1),
                                      "band": _band(math.exp(lm - 1.6449 * ls), math.exp(lm + 1.6449 * ls))},
                    "covered": p.covers(r.ce_pct)})
    summ = summarise_rows(out, ["model", "device_profile", "training_mean"], log_space=True)
    summ["_sources"] = {"n": len({r.source for r in rows}), "names": sorted({r.source for r in rows})}
    return CvTable(what="ce", structure=structure, rows=tuple(out), summary=summ)


def validate_all(kb: KnowledgeBase, data: OutcomeData, *, draws: int = 4000, seed: int = 0) -> dict[str, Any]:
    """Every structure for WBC, platelets and CE; the chosen structure is the lowest out-of-sample MAE
    (ties -> the simpler one)."""
    res: dict[str, Any] = {"wbc": {}, "platelets": {}, "ce": {}}
    for s in STRUCTURES:
        res["wbc"][s] = cross_validate_falls(kb, data.wbc, structure=s, what="wbc", draws=draws, seed=seed)
    for s in [x for x in STRUCTURES if x != "groups+count"]:
        res["platelets"][s] = cross_validate_falls(kb, data.platelets, structure=s, what="platelets", draws=draws, seed=seed)
        res["ce"][s] = cross_validate_ce(kb, data.ce, structure=s)

    gain = kb.value("apheresis_outcomes.structure_min_relative_gain")

    def pick(tables: dict[str, CvTable], key: str) -> str:
        # walk from the simplest structure; a richer one is taken only if it lowers the out-of-sample
        # error of the current choice by more than `gain` (relative), so Monte Carlo noise cannot decide
        best = STRUCTURES[0]
        for s in STRUCTURES[1:]:   # candidates in order: robust centre, disease groups, count term
            if s in tables and tables[s].summary["model"][key] < (1.0 - gain) * tables[best].summary["model"][key]:
                best = s
        return best

    res["chosen"] = {"wbc": pick(res["wbc"], "mae_pct_points"), "platelets": pick(res["platelets"], "mae_pct_points"),
                     "ce": pick(res["ce"], "mean_abs_log_error")}
    # sensitivity of the bands to how tau is treated (chosen structure; the point predictions barely move)
    res["bands"] = {"wbc": {}, "platelets": {}, "ce": {}}
    for b in BAND_METHODS:
        for what in ("wbc", "platelets"):
            t = res[what][res["chosen"][what]] if b == "posterior" else cross_validate_falls(
                kb, getattr(data, what), structure=res["chosen"][what], what=what, draws=draws, seed=seed, band=b)
            res["bands"][what][b] = t.summary["model"]
        t = res["ce"][res["chosen"]["ce"]] if b == "posterior" else cross_validate_ce(
            kb, data.ce, structure=res["chosen"]["ce"], band=b)
        res["bands"]["ce"][b] = t.summary["model"]
    # centres tried on the pooled model (round 2), model variants of the chosen structure (round 3)
    res["candidates"] = {what: {v: cross_validate_falls(kb, getattr(data, what), what=what, draws=draws, seed=seed, variant=v,
                                                         structure="pooled" if v in CENTRE_VARIANTS else res["chosen"][what]
                                                         ).summary["model"] for v in (*CENTRE_VARIANTS, *MODEL_VARIANTS)}
                         for what in ("wbc", "platelets")}
    return res


def final_fits(kb: KnowledgeBase, data: OutcomeData, chosen: dict[str, str]) -> dict[str, Fit]:
    """The fits on all rows with the chosen structures (what the planner uses)."""
    prior = kb.value("apheresis_outcomes.variance_prior_scale")
    ref = kb.value("apheresis_outcomes.count_reference_10e9_per_l")
    return {"wbc": fit_fall_model(data.wbc, structure=chosen["wbc"], prior_scale=prior, count_reference=ref),
            "platelets": fit_fall_model(data.platelets, structure=chosen["platelets"], prior_scale=prior, count_reference=ref),
            "ce": fit_ce_model(data.ce, structure=chosen["ce"], prior_scale=kb.value("apheresis_outcomes.ce_logit_prior_sd"))}


def _tv(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(round(float(v), 6))
    if v is None:
        return '"n/a"'
    s = str(v).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{s}"'


_FIT_NOTES = {
    "wbc_mu": ("1", "Population mean of log k, k = per-blood-volume log-fall of the WBC count (post/pre = exp(-k x))."),
    "wbc_tau": ("1", "Between-source SD of log k (device, centre, sampling time): root posterior mean of tau^2 over the grid, so a normal with mu_var + tau^2 matches the predictive spread."),
    "wbc_tau_mode": ("1", "Posterior mode of the between-source SD of log k (the plug-in value; shown for comparison, not used)."),
    "wbc_omega": ("1", "Between-disease-group SD of log k (0 when the pooled structure was chosen)."),
    "wbc_sigma": ("1", "Between-procedure SD of log k, from the reported SDs of the per-procedure falls (delta method)."),
    "wbc_mu_var": ("1", "Estimation variance of the population mean of log k, including its spread over the tau posterior."),
    "wbc_beta": ("1", "Slope of log k on log(pre/250) (0 unless the count term was chosen)."),
    "plt_mu": ("1", "Population mean of log k for the platelet fall."),
    "plt_tau": ("1", "Between-source SD of the platelet log k (root posterior mean of tau^2)."),
    "plt_sigma": ("1", "Between-procedure SD of the platelet log k (reported SDs)."),
    "plt_mu_var": ("1", "Estimation variance of the platelet population mean."),
    "ce_mu": ("1", "Population mean of logit(collection efficiency CE2)."),
    "ce_tau": ("1", "Between-source SD of logit CE (root posterior mean of tau^2; the spread used for multi-day collection plans)."),
    "ce_mu_var": ("1", "Estimation variance of the CE population mean."),
}


def outcome_fit_toml(fits: dict[str, Fit], validation: dict[str, Any], *, data_sha256: dict[str, str],
                     study: dict[str, Any] | None, citations: dict[str, list[str]]) -> str:
    """The generated knowledge file ``rules/apheresis_outcome_fit.toml`` (values, provenance, validation summary)."""
    w, p, c = fits["wbc"], fits["platelets"], fits["ce"]
    vals = {"wbc_mu": w.mu, "wbc_tau": w.tau, "wbc_tau_mode": w.tau_mode, "wbc_omega": w.omega, "wbc_sigma": w.sigma, "wbc_mu_var": w.mu_var,
            "wbc_beta": w.beta, "plt_mu": p.mu, "plt_tau": p.tau, "plt_sigma": p.sigma, "plt_mu_var": p.mu_var,
            "ce_mu": c.mu, "ce_tau": c.tau, "ce_mu_var": c.mu_var}
    lines = ["# GENERATED by `leukos calibrate --write` (leukos.apheresis.validate): do not edit by hand.",
             "# Fitted to the published rows of knowledge/data/apheresis (see rules/apheresis_outcomes.toml).", ""]
    for k, v in vals.items():
        unit, note = _FIT_NOTES[k]
        cites = citations["wbc" if k.startswith("wbc") else "platelets" if k.startswith("plt") else "ce"]
        lines += [f"[params.{k}]", f"value = {_tv(v)}", f'unit = "{unit}"', 'status = "U"',
                  "citations = [" + ", ".join(f'"{x}"' for x in ["leukos_outcome_model", *cites]) + "]",
                  f"note = {_tv(note + ' Fitted by leukos, not a published value.')}", ""]
    lines += ["[structure]", f"wbc = {_tv(w.structure)}", f"platelets = {_tv(p.structure)}", f"ce = {_tv(c.structure)}", ""]
    for name, fit in (("wbc_groups", w), ("plt_groups", p), ("ce_groups", c)):
        for g in sorted(set(fit.group_pev)):
            lines += [f"[{name}.{g}]", f"effect = {_tv(fit.group_effect.get(g, 0.0))}", f"pev = {_tv(fit.group_pev[g])}", ""]
    lines.append("[data_sha256]")
    lines += [f"{k} = {_tv(v)}" for k, v in sorted(data_sha256.items())] + [""]
    for what in ("wbc", "platelets", "ce"):
        chosen = validation["chosen"][what]
        for s, tab in validation[what].items():
            for m, summ in tab.summary.items():
                if m.startswith("_"):
                    continue
                lines.append(f"[validation.{what}.{s.replace('+', '_')}.{m}]")
                lines += [f"{k} = {_tv(v)}" for k, v in summ.items()]
                lines.append("")
        lines += [f"[validation.{what}.chosen]", f"structure = {_tv(chosen)}", ""]
        for v, summ in validation.get("candidates", {}).get(what, {}).items():
            lines.append(f"[validation.{what}.candidates.{v.replace('-', '_')}]")
            lines += [f"{k} = {_tv(x)}" for k, x in summ.items()]
            lines.append("")
        for b, summ in validation.get("bands", {}).get(what, {}).items():
            lines.append(f"[validation.{what}.bands.{b.replace('-', '_')}]")
            lines += [f"{k} = {_tv(v)}" for k, v in summ.items()]
            lines.append("")
    if study:
        lines.append("[simulation_study]")
        lines += [f"{k} = {_tv(v) if not isinstance(v, list) else '[' + ', '.join(_tv(x) for x in v) + ']'}"
                  for k, v in study.items()]
    return "\n".join(lines) + "\n"
