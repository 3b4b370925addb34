"""How far one leukapheresis lowers the count: a fitted, partially pooled model (pure computation).

The quantity modelled is the per-blood-volume log-fall ``k`` of a procedure::

    post / pre = exp(−k · x)        x = whole-blood volume processed / TBV   (so children scale by TBV)

``k`` folds together the per-pass removal efficiency, dilution and refill during the run, i.e.
what the published post counts measure. On the log scale,

    log k = μ + b_group + β·log(pre/250) + u_source + e_patient
    b_group ~ N(0, ω²)   u_source ~ N(0, τ²)   e_patient ~ N(0, σ²)

* σ (between-procedure spread) comes from the reported SDs of the per-procedure falls, converted
  to the log-k scale by the delta method — not from a bound (exact moment matching is a candidate).
* μ, β by generalised least squares at each point of a (τ, ω) grid; the grid's weights are the
  marginal posterior of τ and ω (REML likelihood times a half-normal prior on each SD). A group
  effect is shrunk toward μ in proportion to how little data the group has, so one case report
  cannot drag a parameter. ``pooled+median`` centres log k on the median of the rows instead.
* Which terms are kept (groups, count, robust centre) is decided by leave-one-source-out
  validation (``leukos.apheresis.validate``): the data set the structure, not a prior belief.

Predictions are Monte Carlo: a grid point by its posterior weight (so the uncertainty of τ is
carried), a new source's mean ``log k``, the volume (uniform on the log scale over the reported or
assumed range), and for a cohort row the mean (or median) over its procedures (``n_eff``). The same machinery fits the platelet fall (groups: depletion vs collection) and the
logit of the collection efficiency (CD34+, CD3+).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from leukos.apheresis.outcome_data import CeRow, FallRow

__all__ = ["Fit", "GridPoint", "Prediction", "fit_fall_model", "predict_fall", "fit_ce_model", "predict_ce",
           "sigma_from_reported_sds", "STRUCTURES", "POOLED", "BAND_METHODS",
           "CENTRE_VARIANTS", "MODEL_VARIANTS", "recentre", "log_k", "cohort_log_k", "moment_match"]

# pooled+median: the pooled model with a robust centre (the median of the rows' log k instead of the GLS mean)
STRUCTURES = ("pooled", "pooled+median", "groups", "groups+count")
POOLED = ("pooled", "pooled+median")
# How the predictive band treats the between-source SD tau (see predict_fall):
#   posterior  - integrate over the marginal posterior of (tau, omega) on the fitting grid (default)
#   plug-in    - the posterior mode of tau as if known (the first version; under-covers with few sources)
#   higgins-t  - Higgins, Thompson & Spiegelhalter 2009: mode tau, Student t with (sources - 2) df
#   student-t  - posterior over tau, but the new source's effect heavy-tailed: Student t (df from the
#                knowledge data) with tau as its scale (round 3: do heavier tails cover the outlying sources?)
BAND_METHODS = ("posterior", "plug-in", "higgins-t", "student-t")
# Other centres tried for the pooled model (reported by `leukos calibrate --cv`, never chosen automatically):
#   unweighted-mean   - plain mean of the rows' log k (every row one vote)
#   source-median     - median over sources of each source's mean log k (C4/C4i count once)
#   cohort-mean       - mean log k of the cohort rows only (single-case reports left out of the centre)
#   no-volume-scaling - the fall does not depend on the volume processed (x = 1 for every row), median centre
CENTRE_VARIANTS = ("unweighted-mean", "source-median", "cohort-mean", "no-volume-scaling")
# Round-3 variants of the chosen structure (reported by `leukos calibrate --cv`, never chosen automatically):
#   practice-volume-range     - an unreported volume spans the practice envelope 1-3 TBV, not ASFA's 1.5-2
#   reported-volume-uncertain - volumes derived with assumptions (C1: TBV from an unknown weight; C4: flows)
#                               span their sensitivity range instead of a point
#   moment-matched-sigma      - sigma from the reported mean and SD matched exactly (not the delta method)
#   cohort-mean-inverted      - a cohort's mean fall is read as the median log k that reproduces it under sigma
#                               (the way predict_fall predicts a cohort mean), not as log k at the mean fall
MODEL_VARIANTS = ("practice-volume-range", "reported-volume-uncertain", "moment-matched-sigma", "cohort-mean-inverted")
SIGMA_METHODS = ("delta", "moments")
COHORT_Y = ("at-mean", "inverted")


@dataclass(frozen=True)
class GridPoint:
    """One point of the variance-component grid with its posterior weight and the conditional fit."""

    weight: float
    tau: float
    omega: float
    mu: float
    beta: float
    mu_var: float
    group_effect: Mapping[str, float]
    group_pev: Mapping[str, float]


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
    tau_mode: float = 0.0
    posterior: tuple[GridPoint, ...] = ()

    @property
    def t_df(self) -> int:
        """Degrees of freedom of the Higgins-Thompson-Spiegelhalter prediction interval (sources - 2, at least 1)."""
        return max(1, len(self.sources) - 2)


def _y(f: float, x: float) -> float:
    return math.log(-math.log(1.0 - f) / x)


def log_k(row: FallRow) -> float:
    """The row's observed per-blood-volume log-fall on the log scale, log k = log(-log(1 - f) / x)."""
    return _y(row.observed_pct / 100.0, row.blood_volumes)


def recentre(fit: Fit, mu: float, *, var_factor: float = 1.0) -> Fit:
    """The same fit (variance components, bands) around another centre ``mu`` of log k; the estimation
    variance of the centre is the GLS one times ``var_factor`` (pi/2 for a median)."""
    pts = tuple(replace(p, mu=mu, mu_var=p.mu_var * var_factor,
                        group_pev={g: v * var_factor for g, v in p.group_pev.items()}) for p in fit.posterior)
    return replace(fit, mu=mu, mu_var=fit.mu_var * var_factor,
                   group_pev={g: v * var_factor for g, v in fit.group_pev.items()}, posterior=pts)


def _dy_df(f: float) -> float:
    return 1.0 / ((1.0 - f) * -math.log(1.0 - f))


# Gauss-Hermite (probabilists') nodes for expectations over a normal log k
_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(48)
_GH_W = _GH_W / _GH_W.sum()


def _fall_moments(theta: float, s: float, x: float) -> tuple[float, float]:
    """Mean and SD of the fall 1 - exp(-k x) over procedures with log k ~ N(theta, s^2)."""
    f = 1.0 - np.exp(-np.exp(np.minimum(theta + s * _GH_X, 30.0)) * x)
    m = float(_GH_W @ f)
    return m, float(math.sqrt(max(float(_GH_W @ (f - m) ** 2), 0.0)))


def _bisect(fn, lo: float, hi: float, target: float, iters: int = 48) -> float:
    """Root of an increasing fn(t) = target on [lo, hi]."""
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if fn(mid) < target else (lo, mid)
    return 0.5 * (lo + hi)


def cohort_log_k(f: float, s: float, x: float) -> float:
    """The median log k whose procedures (log k ~ N(., s^2), volume x) have mean fall ``f`` (a fraction)."""
    return _bisect(lambda t: _fall_moments(t, s, x)[0], -15.0, 8.0, f)


@lru_cache(maxsize=256)
def moment_match(f: float, sd: float, x: float) -> tuple[float, float]:
    """(median log k, SD of log k) that reproduce a reported mean fall ``f`` and SD ``sd`` (fractions) exactly."""
    s = _bisect(lambda v: _fall_moments(cohort_log_k(f, v, x), v, x)[1], 1e-3, 5.0, sd)
    return cohort_log_k(f, s, x), s


def sigma_from_reported_sds(rows: Sequence[FallRow], *, method: str = "delta") -> float:
    """Between-procedure SD of log k from the reported SDs, pooled as a root mean square.

    ``delta``: the SD of the fall times d log k / d f at the mean fall (first order); ``moments``: the SD
    of log k that, with its median, reproduces the reported mean and SD of the falls exactly.
    """
    if method not in SIGMA_METHODS:
        raise ValueError(f"sigma method {method!r} not in {SIGMA_METHODS}")
    use = [r for r in rows if r.sd_pct and r.observed_pct]
    if not use:
        raise ValueError("no row with a reported SD: the between-procedure spread cannot be estimated")
    if method == "moments":
        s = [moment_match(r.observed_pct / 100.0, r.sd_pct / 100.0, r.blood_volumes)[1] for r in use]
    else:
        s = [(r.sd_pct / 100.0) * _dy_df(r.observed_pct / 100.0) for r in use]
    return float(math.sqrt(np.mean(np.square(s))))


def _row_y(r: FallRow, sigma: float, cohort_y: str) -> float:
    if cohort_y == "inverted" and r.kind == "cohort" and not r.median_stat:
        return cohort_log_k(r.observed_pct / 100.0, sigma, r.blood_volumes)
    return _y(r.observed_pct / 100.0, r.blood_volumes)


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
        return ((r.sd_pct / 100.0) / math.sqrt(r.n_eff) * _dy_df(f)) ** 2 + var_x
    return sigma**2 / r.n_eff + var_x


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
                 prior_scale: float) -> list[tuple[float, float, float, np.ndarray, np.ndarray, np.ndarray]]:
    """Grid over (tau, omega): for each point the posterior weight and the GLS fit given it.

    The objective is the REML-type negative log likelihood (the fixed effects integrated out under a
    flat prior) plus half-normal priors on tau and omega, so exp(-objective) is the marginal
    posterior of the variance components on the grid. Points with weight < 1e-4 of the best are dropped.
    Returns (weight, tau, omega, b, Ai, Vi) sorted by weight, largest first; weights sum to 1.
    """
    same = np.array([[gi == gj and gi != "mixed" for gj in groups] for gi in groups], dtype=float)
    use_groups = structure not in POOLED
    taus = np.concatenate([[0.0], np.geomspace(0.01, 2.0, 40)])
    omegas = np.concatenate([[0.0], np.geomspace(0.01, 2.0, 40)]) if use_groups else np.array([0.0])
    pts = []
    for t in taus:
        for w in omegas:
            V = np.diag(v + t**2) + w**2 * same
            b, Ai, Vi, nll = _gls(y, X, V)
            obj = nll + 0.5 * (t / prior_scale) ** 2 + 0.5 * (w / prior_scale) ** 2
            pts.append((obj, float(t), float(w), b, Ai, Vi))
    # grid cells are log-spaced: weight each point by its cell width so the grid integrates the posterior
    def cell(g: np.ndarray) -> dict[float, float]:
        if len(g) == 1:
            return {float(g[0]): 1.0}
        edges = np.concatenate([[g[0]], (g[1:] + g[:-1]) / 2.0, [g[-1]]])
        return {float(x): float(edges[i + 1] - edges[i]) for i, x in enumerate(g)}
    ct, cw = cell(taus), cell(omegas)
    best = min(p[0] for p in pts)
    raw = [(math.exp(-(p[0] - best)) * ct[p[1]] * cw[p[2]], *p[1:]) for p in pts]
    top = max(r[0] for r in raw)
    keep = sorted((r for r in raw if r[0] >= 1e-4 * top), key=lambda r: -r[0])
    tot = sum(r[0] for r in keep)
    mode = min(pts, key=lambda p: p[0])
    return [(r[0] / tot, *r[1:]) for r in keep] + [(0.0, *mode[1:])]   # last entry: the posterior mode


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


def _assemble(structure: str, y, X, groups, grid, *, sigma: float, count_reference: float, n_rows: int,
              sources: tuple[str, ...]) -> Fit:
    """Summarise the grid posterior: the stored mu/tau/mu_var match the first two moments of the
    posterior predictive (mu = E mu, mu_var = E Var(mu|tau) + Var E(mu|tau), tau = sqrt(E tau^2))."""
    pts = []
    for wgt, t, om, b, Ai, Vi in grid:
        eff, pev = _group_blups(y, X, b, Ai, Vi, groups, om)
        mu_p, var_p = float(b[0]), float(Ai[0, 0])
        if structure == "pooled+median":
            # robust centre: a case report far out cannot drag it; a median is estimated with variance
            # pi/2 times that of the mean (its asymptotic relative efficiency under normality)
            mu_p, var_p = float(np.median(y)), var_p * math.pi / 2.0
            pev = {"mixed": var_p}
        pts.append(GridPoint(weight=wgt, tau=t, omega=om, mu=mu_p, beta=float(b[1]) if len(b) > 1 else 0.0,
                             mu_var=var_p, group_effect=eff, group_pev=pev))
    mode, post = pts[-1], tuple(pts[:-1])
    w = np.array([p.weight for p in post])
    mus = np.array([p.mu for p in post])
    mu = float(w @ mus)
    keys = set().union(*(p.group_pev for p in post))
    eff = {g: float(sum(p.weight * p.group_effect.get(g, 0.0) for p in post)) for g in keys - {"mixed"}}
    pev = {}
    for g in keys:
        m_g = np.array([p.mu + p.group_effect.get(g, 0.0) for p in post])
        v_g = np.array([p.group_pev.get(g, p.mu_var + p.omega**2) for p in post])
        pev[g] = float(w @ v_g + w @ (m_g - w @ m_g) ** 2)
    return Fit(structure=structure, mu=mu, beta=float(w @ np.array([p.beta for p in post])),
               tau=float(math.sqrt(w @ np.array([p.tau**2 for p in post]))),
               omega=float(math.sqrt(w @ np.array([p.omega**2 for p in post]))), sigma=sigma, group_effect=eff,
               group_pev=pev, mu_var=float(w @ np.array([p.mu_var for p in post]) + w @ (mus - mu) ** 2),
               count_reference=count_reference, n_rows=n_rows, sources=sources, tau_mode=mode.tau, posterior=(mode, *post))


def fit_fall_model(rows: Sequence[FallRow], *, structure: str, prior_scale: float, count_reference: float,
                   sigma: float | None = None, sigma_method: str = "delta", cohort_y: str = "at-mean") -> Fit:
    """Empirical-Bayes fit of log k on the scored rows (each row its own source effect).

    ``posterior[0]`` is the posterior mode of the variance components (the plug-in fit);
    ``posterior[1:]`` the weighted grid used for predictive bands. ``sigma_method`` and ``cohort_y``
    select the round-3 candidates (see ``MODEL_VARIANTS``); the defaults are the chosen model.
    """
    rows = [r for r in rows if r.scored]
    if structure not in STRUCTURES:
        raise ValueError(f"structure {structure!r} not in {STRUCTURES}")
    if cohort_y not in COHORT_Y:
        raise ValueError(f"cohort_y {cohort_y!r} not in {COHORT_Y}")
    sig = sigma if sigma is not None else sigma_from_reported_sds(rows, method=sigma_method)
    y = np.array([_row_y(r, sig, cohort_y) for r in rows])
    v = np.array([_row_var(r, sig) for r in rows])
    X = _design(rows, structure, count_reference)
    groups = [r.group if structure not in POOLED else "mixed" for r in rows]
    grid = _fit_generic(y, v, groups, X, structure, prior_scale)
    return _assemble(structure, y, X, groups, grid, sigma=sig, count_reference=count_reference, n_rows=len(rows),
                     sources=tuple(sorted({r.source for r in rows})))


@dataclass(frozen=True)
class Prediction:
    median: float
    p05: float
    p95: float
    draws: np.ndarray

    def covers(self, x: float) -> bool:
        return self.p05 <= x <= self.p95


def _point_mean_var(fit: Fit, pt: GridPoint, group: str, pre_wbc: float | None) -> tuple[float, float]:
    g = group if fit.structure not in POOLED else "mixed"
    m = pt.mu + pt.group_effect.get(g, 0.0)
    if fit.structure == "groups+count" and pre_wbc:
        m += pt.beta * math.log(pre_wbc / fit.count_reference)
    v = pt.group_pev.get(g, pt.mu_var + (pt.omega**2 if g != "mixed" else 0.0))
    return m, v


def _theta(fit: Fit, group: str, pre_wbc: float | None, rng: np.random.Generator, draws: int,
           band: str, t_df: float = 4.0) -> np.ndarray:
    """Draws of a new source's mean log k (or logit CE): parameter uncertainty plus between-source spread."""
    if band not in BAND_METHODS:
        raise ValueError(f"band {band!r} not in {BAND_METHODS}")
    if band in ("posterior", "student-t") and len(fit.posterior) > 1:
        post = fit.posterior[1:]
        idx = rng.choice(len(post), size=draws, p=np.array([p.weight for p in post]))
        mv = np.array([_point_mean_var(fit, p, group, pre_wbc) for p in post])
        tau2 = np.array([p.tau**2 for p in post])
        if band == "student-t":     # heavy-tailed new-source effect, tau as its scale
            return (mv[idx, 0] + np.sqrt(mv[idx, 1]) * rng.standard_normal(draws)
                    + np.sqrt(tau2[idx]) * rng.standard_t(t_df, draws))
        return mv[idx, 0] + np.sqrt(mv[idx, 1] + tau2[idx]) * rng.standard_normal(draws)
    mode = fit.posterior[0] if fit.posterior else None
    if mode is None:     # a Fit built by hand (tests): the stored summary
        mode = GridPoint(1.0, fit.tau, fit.omega, fit.mu, fit.beta, fit.mu_var, fit.group_effect, fit.group_pev)
    m, v = _point_mean_var(fit, mode, group, pre_wbc)
    z = rng.standard_t(fit.t_df, draws) if band == "higgins-t" else rng.standard_normal(draws)
    return m + math.sqrt(v + mode.tau**2) * z


def predict_fall(fit: Fit, row: FallRow, *, draws: int = 4000, seed: int = 0, band: str = "posterior",
                 t_df: float = 4.0) -> Prediction:
    """Predictive distribution (in % fall) of what the row reports: one procedure, or a cohort's mean/median.

    A row of a source the fit has not seen gets: the parameter uncertainty of the population mean,
    the between-source spread tau (integrated over its posterior unless ``band`` says otherwise),
    the volume uncertainty, and the between-procedure spread sigma -- the latter averaged over the
    procedures of a cohort row (``n_eff``: fewer than n when patients had several procedures),
    because a mean of n procedures varies less than one procedure.
    """
    rng = np.random.default_rng(seed)
    theta = _theta(fit, row.group, row.pre_wbc, rng, draws, band, t_df)
    logx = rng.uniform(math.log(row.bv_low), math.log(row.bv_high), draws) if row.bv_high > row.bv_low \
        else np.full(draws, math.log(row.bv_low))
    # a cohort mean: over n_eff independent procedures (same-patient procedures are correlated)
    n = 1 if row.kind == "patient" else max(1, min(round(row.n_eff), 200))
    lk = np.minimum(theta[:, None] + fit.sigma * rng.standard_normal((draws, n)), 30.0)   # heavy t tails: no overflow
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
    groups = [r.marker if structure not in POOLED else "mixed" for r in rows]
    grid = _fit_generic(y, v, groups, X, structure, prior_scale)
    return _assemble(structure, y, X, groups, grid, sigma=0.0, count_reference=1.0, n_rows=len(rows),
                     sources=tuple(sorted({r.source for r in rows})))


def predict_ce(fit: Fit, marker: str, *, draws: int = 4000, seed: int = 0, band: str = "posterior",
               t_df: float = 4.0) -> Prediction:
    """CE (%) median and 90 % band for a new source (logit scale, same band methods as :func:`predict_fall`)."""
    z = _theta(fit, marker, None, np.random.default_rng(seed), draws, band, t_df)
    ce = 100.0 / (1.0 + np.exp(-z))
    q = np.percentile(ce, [5, 50, 95])
    return Prediction(median=float(q[1]), p05=float(q[0]), p95=float(q[2]), draws=ce)
