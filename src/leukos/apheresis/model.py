"""The patient-and-separator model (apheresis.md §7.2, §7.4), vectorised across Monte Carlo draws.

State per draw (cells in 10⁹, volumes in L, time in minutes)::

    dN_b/dt = −E(C)·Q_wb·C − k_out·N_b + k_in·N_t + g·N_b        C = N_b / V
    dN_t/dt =  k_out·N_b − k_in·N_t + g·N_t
    dP/dt   =  E(C)·Q_wb·C                                        (cells in the product)
    dG/dt   =  g·(N_b + N_t)                                      (cells grown: conservation ledger)
    dV/dt   =  φ·(Q_AC − Q_collect) − (V − TBV)/τ_fluid           (dilution by anticoagulant)
    dCit/dt = (R_cit − J_Ca − CL·(Cit − Cit₀)) / Vd               (one-compartment citrate)
    dPlt/dt = −E_p·Q_wb·Plt/V + (Plt₀·TBV − Plt)/τ_p               (platelet mass, recovery)
    dRBC/dt = −Q_collect·Hct_product                              (red cells lost to the product)

    E(C)  = E0 / (1 + C/C½)          (E falls as the count and leukocrit rise, §7.3a)
    iCa   = iCa₀ − slope·(Cit − Cit₀)  (first-pass coupling; infused calcium neutralises citrate 1:1)
    k_in  = 1/(τ_refill·(1 + R)),  k_out = R·k_in   (pool N_t/N_b = R at equilibrium)

With k = g = 0, φ = 0 and C½ → ∞ the count follows C₀·exp(−E0·V_processed/TBV) (§2.2).
The integrator is the classical Runge–Kutta scheme on a fixed grid with all draws as numpy
arrays; being a Runge–Kutta method it conserves the linear invariant
N_b + N_t + P − G exactly (to rounding), which the tests check.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

__all__ = ["ModelParams", "PatientState", "Session", "State", "rhs", "integrate", "N_STATES"]

# state indices
NB, NT, PROD, GROWN, VOL, CIT, PLT, RBC, PVOL = range(9)
N_STATES = 9


@dataclass(frozen=True)
class ModelParams:
    """Model parameters; each field a float or an array over draws (shape ``(n,)``)."""

    e0: np.ndarray                     # per-pass leukocyte removal efficiency at low count (1)
    c_half_10e9_per_l: np.ndarray      # count at which E is halved (10⁹/L); inf = constant E
    pool_ratio: np.ndarray             # exchangeable pool / circulating pool at equilibrium (1)
    refill_tau_min: np.ndarray         # exchange time constant (min); inf = no exchange
    growth_per_min: np.ndarray         # net leukocyte growth rate (1/min)
    e_platelet: np.ndarray             # per-pass platelet removal efficiency (1)
    platelet_tau_min: np.ndarray       # platelet recovery time constant (min)
    citrate_cl_l_per_min: np.ndarray   # citrate clearance (L/min)
    citrate_vd_l: np.ndarray           # citrate volume of distribution (L)
    ica_slope: np.ndarray              # iCa fall per mmol/L citrate (1)
    fluid_retained: np.ndarray         # fraction of net infused fluid retained intravascularly (1)
    fluid_tau_min: np.ndarray          # time constant of fluid equilibration (min)
    product_hct: np.ndarray            # product haematocrit (fraction)

    @property
    def n(self) -> int:
        return int(max(np.size(getattr(self, f.name)) for f in fields(self)))

    def as_arrays(self, n: int | None = None) -> ModelParams:
        n = n or self.n
        return ModelParams(**{f.name: np.broadcast_to(np.asarray(getattr(self, f.name), dtype=float), (n,)).copy()
                              for f in fields(self)})

    def take(self, idx: np.ndarray) -> ModelParams:
        arr = self.as_arrays()
        return ModelParams(**{f.name: getattr(arr, f.name)[idx] for f in fields(self)})

    def replace(self, **kw) -> ModelParams:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d.update(kw)
        return ModelParams(**d)


@dataclass(frozen=True)
class PatientState:
    """The patient at the start of the simulation (scalars or arrays over draws)."""

    tbv_l: float
    wbc_10e9_per_l: float | np.ndarray
    platelets_10e9_per_l: float | None
    hemoglobin_g_per_dl: float | None
    hematocrit_fraction: float | None
    ionized_calcium_mmol_per_l: float
    citrate_basal_mmol_per_l: float
    weight_kg: float


@dataclass(frozen=True)
class Session:
    """One procedure with constant flows (L/min, mmol/min), starting at ``start_min``."""

    start_min: float
    duration_min: float
    q_wb_l_per_min: float
    q_ac_l_per_min: float
    q_collect_l_per_min: float
    citrate_mmol_per_min: float      # citrate returned to the patient
    calcium_mmol_per_min: float = 0.0

    @property
    def end_min(self) -> float:
        return self.start_min + self.duration_min


@dataclass(frozen=True)
class State:
    """Integrated states on a time grid: ``y`` has shape (N_STATES, n_draws, n_times)."""

    times_min: np.ndarray
    y: np.ndarray


def _flows(sess: Session | None):
    if sess is None:
        return 0.0, 0.0, 0.0, 0.0, 0.0
    return (sess.q_wb_l_per_min, sess.q_ac_l_per_min, sess.q_collect_l_per_min,
            sess.citrate_mmol_per_min, sess.calcium_mmol_per_min)


def rhs(y: np.ndarray, p: ModelParams, pat: PatientState, flows, k_in, k_out, out: np.ndarray | None = None):
    """Right-hand side for all draws at once; ``y`` shape (N_STATES, n)."""
    q_wb, q_ac, q_col, r_cit, j_ca = flows
    nb, nt, vol, cit, plt = y[NB], y[NT], y[VOL], y[CIT], y[PLT]
    d = np.empty_like(y) if out is None else out
    g = p.growth_per_min
    if q_wb > 0.0:
        c = nb / vol
        e = p.e0 / (1.0 + c / p.c_half_10e9_per_l)
        removal = e * q_wb * c
        plt_loss = p.e_platelet * q_wb * plt / vol
    else:
        removal = 0.0
        plt_loss = 0.0
    exch = k_out * nb - k_in * nt
    d[NB] = -removal - exch + g * nb
    d[NT] = exch + g * nt
    d[PROD] = removal
    d[GROWN] = g * (nb + nt)
    d[VOL] = p.fluid_retained * (q_ac - q_col) - (vol - pat.tbv_l) / p.fluid_tau_min
    d[CIT] = (r_cit - j_ca - p.citrate_cl_l_per_min * (cit - pat.citrate_basal_mmol_per_l)) / p.citrate_vd_l
    plt0_mass = (pat.platelets_10e9_per_l or 0.0) * pat.tbv_l
    d[PLT] = -plt_loss + (plt0_mass - plt) / p.platelet_tau_min
    d[RBC] = -q_col * p.product_hct
    d[PVOL] = q_col
    return d


def initial_state(p: ModelParams, pat: PatientState, n: int) -> np.ndarray:
    y = np.zeros((N_STATES, n))
    nb0 = np.asarray(pat.wbc_10e9_per_l, dtype=float) * pat.tbv_l
    y[NB] = nb0
    y[NT] = nb0 * p.pool_ratio
    y[VOL] = pat.tbv_l
    y[CIT] = pat.citrate_basal_mmol_per_l
    y[PLT] = (pat.platelets_10e9_per_l or 0.0) * pat.tbv_l
    y[RBC] = (pat.hematocrit_fraction or 0.0) * pat.tbv_l
    return y


def _grid(sessions: tuple[Session, ...], t_end_min: float, dt_on: float, dt_off: float) -> list[tuple[float, float, Session | None]]:
    """Split [0, t_end] into segments with constant flows: (t0, t1, session or None)."""
    segs: list[tuple[float, float, Session | None]] = []
    t = 0.0
    for s in sorted(sessions, key=lambda s: s.start_min):
        if s.start_min > t:
            segs.append((t, min(s.start_min, t_end_min), None))
        if s.start_min >= t_end_min:
            break
        segs.append((max(t, s.start_min), min(s.end_min, t_end_min), s))
        t = s.end_min
    if t < t_end_min:
        segs.append((t, t_end_min, None))
    return [(a, b, s) for a, b, s in segs if b > a]


def integrate(p: ModelParams, pat: PatientState, sessions: tuple[Session, ...], t_end_min: float,
              *, dt_on_min: float = 2.0, dt_off_min: float = 10.0, y0: np.ndarray | None = None) -> State:
    """Integrate all draws with fixed-step RK4 (steps shortened to land on segment edges).

    Returns the states at every grid point (segment edges included).
    """
    n = p.n
    p = p.as_arrays(n)
    k_in = 1.0 / (p.refill_tau_min * (1.0 + p.pool_ratio))
    k_out = p.pool_ratio * k_in
    y = initial_state(p, pat, n) if y0 is None else np.array(y0, dtype=float)
    # explicit RK4 is stable for h·λ < 2.78; keep h·λ ≤ 1 for accuracy (small children: fast citrate)
    lam = float(np.max(np.concatenate([p.citrate_cl_l_per_min / p.citrate_vd_l, k_in + k_out,
                                       1.0 / p.platelet_tau_min, 1.0 / p.fluid_tau_min])))
    h_max = 1.0 / lam if lam > 0 else np.inf
    times = [0.0]
    ys = [y.copy()]
    for t0, t1, sess in _grid(sessions, t_end_min, dt_on_min, dt_off_min):
        fl = _flows(sess)
        dt_nom = min(dt_on_min if sess is not None else dt_off_min, h_max)
        steps = max(1, int(np.ceil((t1 - t0) / dt_nom - 1e-9)))
        h = (t1 - t0) / steps
        for i in range(steps):
            k1 = rhs(y, p, pat, fl, k_in, k_out)
            k2 = rhs(y + 0.5 * h * k1, p, pat, fl, k_in, k_out)
            k3 = rhs(y + 0.5 * h * k2, p, pat, fl, k_in, k_out)
            k4 = rhs(y + h * k3, p, pat, fl, k_in, k_out)
            y = y + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
            times.append(t0 + (i + 1) * h)
            ys.append(y)
    return State(np.asarray(times), np.stack(ys, axis=-1))
