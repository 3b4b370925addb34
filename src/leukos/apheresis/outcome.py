"""How far one leukapheresis lowers the count: a fitted, partially pooled model (pure computation).

The quantity modelled is the per-blood-volume log-fall ``k`` of a procedure::

    post / pre = exp(−k · x)        x = whole-blood volume processed / TBV   (so children scale by TBV)

``k`` folds together the per-pass removal efficiency, dilution and refill during the run, i.e.
what the published post counts measure. On the log scale,

    log k = μ + b_group + β·log(pre/250) + u_source + e_patient
    b_group ~ N(0, ω²)   u_source ~ N(0, τ²)   e_patient ~ N(0, σ²)

* σ (between-procedure spread) comes from the reported SDs of the per-procedure falls, converted
  to the log-k scale by the delta method — not from a bound.
* μ, β by generalised least squares; τ and ω by maximising the marginal likelihood with a
  half-normal prior on each SD (empirical Bayes). A group effect is shrunk toward μ in proportion
  to how little data the group has, so one case report cannot drag a parameter.
* Which terms are kept (groups, count) is decided by leave-one-source-out validation
  (:func:`cross_validate`): the data set the structure, not a prior belief.

Predictions are Monte Carlo: a source/patient draw of ``log k``, the volume (uniform on the log
scale over the reported or assumed range), and for a cohort row the mean (or median) over its n
procedures. The same machinery fits the platelet fall (groups: depletion vs collection) and the
logit of the collection efficiency (CD34+, CD3+).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from leukos.apheresis.outcome_data import CeRow, FallRow

__all__ = ["Fit", "Prediction", "fit_fall_model", "predict_fall", "fit_ce_model", "predict_ce",
           "sigma_from_reported_sds", "STRUCTURES"]

STRUCTURES = ("pooled", "groups", "groups+count")
_Z90 = 1.6448536269514722


@dataclass(frozen=True)
class Fit:
    """A fitted fall (or CE) model: population mean, group effects, variance components."""

    structure: str
    mu: float
    beta: float
    tau: float
    omega: float
    sigma: float
    group_effect: Mapping[str, float]
    group_pev: Mapping[str, float]           # prediction-error variance of mu + b_group
    mu_var: float
    count_reference: float
    n_rows: int
    sources: tuple[str, ...]


def _y(f: float, x: float) -> float:
    return math.log(-math.log(1.0 - f) / x)


def _dy_df(f: float) -> float:
    return 1.0 / ((1.0 - f) * -math.log(1.0 - f))


def sigma_from_reported_sds(rows: Sequence[FallRow]) -> float:
    """Between-procedure SD of log k from the reported SDs (delta method), pooled as a root mean square."""
    s = [(r.sd_pct / 100.0) * _dy_df(r.observed_pct / 100.0) for r in rows if r.sd_pct and r.observed_pct]
    if not s:
        raise ValueError("no row with a reported SD: the between-procedure spread cannot be estimated")
    return float(math.sqrt(np.mean(np.square(s))))


def _design(rows: Sequence[FallRow], structure: str, ref: float) -> np.ndarray:
    cols = [np.ones(len(rows))]
    if structure == "groups+count":
        cols.append(np.array([math.log(r.pre_wbc / ref) if r.pre_wbc else 0.0 for r in rows]))
    return np.column_stack(cols)


def _row_var(r: FallRow, sigma: float) -> float:
    """Sampling variance of a row's y as a measure of its source's mean log k."""
    f = r.observed_pct / 100.0
    var_x = (math.log(r.bv_high / r.bv_low)) ** 2 / 12.0
    if r.kind == "patient":
        return sigma**2 + var_x
    if r.sd_pct:
        return ((r.sd_pct / 100.0) / math.sqrt(r.n) * _dy_df(f)) ** 2 + var_x
    return sigma**2 / r.n + var_x


def _gls(y, X, V):
    Vi = np.linalg.inv(V)
    A = X.T @ Vi @ X
    Ai = np.linalg.inv(A)
    b = Ai @ X.T @ Vi @ y
    r = y - X @ b
    _, logdet = np.linalg.slogdet(V)
    nll = 0.5 * (logdet + r @ Vi @ r + np.linalg.slogdet(A)[1])   # REML-type
    return b, Ai, Vi, nll


def _fit_generic(y: np.ndarray, v: np.ndarray, groups: Sequence[str], X: np.ndarray, structure: str,
                 prior_scale: float) -> tuple[np.ndarray, np.ndarray, float, float, np.ndarray]:
    same = np.array([[gi == gj and gi != "mixed" for gj in groups] for gi in groups], dtype=float)
    use_groups = structure != "pooled"
    taus = np.concatenate([[0.0], np.geomspace(0.01, 2.0, 40)])
    omegas = np.concatenate([[0.0], np.geomspace(0.01, 2.0, 40)]) if use_groups else np.array([0.0])
    best = None
    for t in taus:
        for w in omegas:
            V = np.diag(v + t**2) + w**2 * same
            b, Ai, Vi, nll = _gls(y, X, V)
            obj = nll + 0.5 * (t / prior_scale) ** 2 + 0.5 * (w / prior_scale) ** 2
            if best is None or obj < best[0]:
                best = (obj, t, w, b, Ai, Vi)
    _, t, w, b, Ai, Vi = best
    return b, Ai, float(t), float(w), Vi


def _group_blups(y, X, b, Ai, Vi, groups, omega) -> tuple[dict[str, float], dict[str, float]]:
    """Shrunken group effects (BLUP) and the prediction-error variance of mu + b_group per group."""
    resid = y - X @ b
    eff, pev = {}, {}
    x0 = np.zeros(X.shape[1])
    x0[0] = 1.0
    for g in sorted(set(groups) - {"mixed"}):
        c = omega**2 * np.array([gi == g for gi in groups], dtype=float)
        eff[g] = float(c @ Vi @ resid)
        d = x0 - X.T @ Vi @ c
        pev[g] = float(omega**2 - c @ Vi @ c + d @ Ai @ d)
    pev["mixed"] = float(Ai[0, 0])
    return eff, pev


def fit_fall_model(rows: Sequence[FallRow], *, structure: str, prior_scale: float, count_reference: float,
                   sigma: float | None = None) -> Fit:
    """Empirical-Bayes fit of log k on the scored rows (each row its own source effect)."""
    rows = [r for r in rows if r.scored]
    if structure not in STRUCTURES:
        raise ValueError(f"structure {structure!r} not in {STRUCTURES}")
    sig = sigma if sigma is not None else sigma_from_reported_sds(rows)
    y = np.array([_y(r.observed_pct / 100.0, r.blood_volumes) for r in rows])
    v = np.array([_row_var(r, sig) for r in rows])
    X = _design(rows, structure, count_reference)
    groups = [r.group if structure != "pooled" else "mixed" for r in rows]
    b, Ai, tau, omega, Vi = _fit_generic(y, v, groups, X, structure, prior_scale)
    eff, pev = _group_blups(y, X, b, Ai, Vi, groups, omega)
    return Fit(structure=structure, mu=float(b[0]), beta=float(b[1]) if len(b) > 1 else 0.0, tau=tau, omega=omega,
               sigma=sig, group_effect=eff, group_pev=pev, mu_var=float(Ai[0, 0]), count_reference=count_reference,
               n_rows=len(rows), sources=tuple(sorted({r.source for r in rows})))


@dataclass(frozen=True)
class Prediction:
    median: float
    p05: float
    p95: float
    draws: np.ndarray

    def covers(self, x: float) -> bool:
        return self.p05 <= x <= self.p95


def _param_mean_var(fit: Fit, group: str, pre_wbc: float | None) -> tuple[float, float]:
    g = group if fit.structure != "pooled" else "mixed"
    m = fit.mu + fit.group_effect.get(g, 0.0)
    if fit.structure == "groups+count" and pre_wbc:
        m += fit.beta * math.log(pre_wbc / fit.count_reference)
    v = fit.group_pev.get(g, fit.mu_var + (fit.omega**2 if g != "mixed" else 0.0))
    return m, v


def predict_fall(fit: Fit, row: FallRow, *, draws: int = 4000, seed: int = 0) -> Prediction:
    """Predictive distribution (in % fall) of what the row reports: one procedure, or a cohort's mean/median."""
    rng = np.random.default_rng(seed)
    m, v = _param_mean_var(fit, row.group, row.pre_wbc)
    theta = m + math.sqrt(v + fit.tau**2) * rng.standard_normal(draws)
    logx = rng.uniform(math.log(row.bv_low), math.log(row.bv_high), draws) if row.bv_high > row.bv_low \
        else np.full(draws, math.log(row.bv_low))
    n = 1 if row.kind == "patient" else min(row.n, 200)
    lk = theta[:, None] + fit.sigma * rng.standard_normal((draws, n))
    f = 100.0 * (1.0 - np.exp(-np.exp(lk) * np.exp(logx)[:, None]))
    stat = np.median(f, axis=1) if row.median_stat else f.mean(axis=1)
    q = np.percentile(stat, [5, 50, 95])
    return Prediction(median=float(q[1]), p05=float(q[0]), p95=float(q[2]), draws=stat)


def _logit(p):
    return math.log(p / (1 - p))


def fit_ce_model(rows: Sequence[CeRow], *, structure: str, prior_scale: float) -> Fit:
    """Logit-normal CE per marker (groups) or pooled, partial pooling across sources."""
    y = np.array([_logit(r.ce_pct / 100.0) for r in rows])
    v = np.full(len(rows), 1e-4)
    X = np.ones((len(rows), 1))
    groups = [r.marker if structure != "pooled" else "mixed" for r in rows]
    b, Ai, tau, omega, Vi = _fit_generic(y, v, groups, X, structure, prior_scale)
    eff, pev = _group_blups(y, X, b, Ai, Vi, groups, omega)
    return Fit(structure=structure, mu=float(b[0]), beta=0.0, tau=tau, omega=omega, sigma=0.0, group_effect=eff,
               group_pev=pev, mu_var=float(Ai[0, 0]), count_reference=1.0, n_rows=len(rows),
               sources=tuple(sorted({r.source for r in rows})))


def predict_ce(fit: Fit, marker: str) -> Prediction:
    """CE (%) median and 90 % band for a new source (logit-normal; closed form)."""
    m, v = _param_mean_var(fit, marker, None)
    s = math.sqrt(v + fit.tau**2)

    def inv(z):
        return 100.0 / (1.0 + math.exp(-z))

    return Prediction(median=inv(m), p05=inv(m - _Z90 * s), p95=inv(m + _Z90 * s), draws=np.array([]))

