"""The patient-and-separator model, vectorised across Monte Carlo draws.

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
All draws are integrated together as numpy arrays: the linear, decoupled states (V, Cit, RBC,
product volume) by their exact exponential propagators, the others by classical RK4 on a fixed
grid. A Runge–Kutta method conserves the linear invariant N_b + N_t + P − G exactly (to
rounding), which the tests check.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

__all__ = ["ModelParams", "PatientState", "Session", "rhs", "integrate", "initial_state", "N_STATES"]

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


def _grid(sessions: tuple[Session, ...], t_end_min: float) -> list[tuple[float, float, Session | None]]:
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


# States with linear, decoupled dynamics are advanced exactly; the others by RK4.
LIN = (VOL, CIT, RBC, PVOL)
RKS = (NB, NT, PROD, GROWN, PLT)


def _lin_coeffs(p: ModelParams, pat: PatientState, fl) -> tuple[np.ndarray, np.ndarray]:
    """dx/dt = a − b·x for the linear states (rows in LIN order); arrays (4, n)."""
    q_wb, q_ac, q_col, r_cit, j_ca = fl
    n = p.e0.shape[0]
    b = np.zeros((4, n))
    a = np.zeros((4, n))
    b[0] = 1.0 / p.fluid_tau_min
    a[0] = p.fluid_retained * (q_ac - q_col) + pat.tbv_l * b[0]
    b[1] = p.citrate_cl_l_per_min / p.citrate_vd_l
    a[1] = (r_cit - j_ca + p.citrate_cl_l_per_min * pat.citrate_basal_mmol_per_l) / p.citrate_vd_l
    a[2] = -q_col * p.product_hct
    a[3] = q_col
    return a, b


def _lin_step(b: np.ndarray, dt) -> tuple[np.ndarray, np.ndarray]:
    """Propagator of dx/dt = a − b·x over dt: x(t+dt) = x·E + a·Φ."""
    dt = np.asarray(dt, dtype=float)
    bd = b * dt
    e = np.exp(-bd)
    safe = np.where(b > 0, b, 1.0)
    phi = np.where(b > 0, -np.expm1(-bd) / safe, dt)
    return e, phi


class _RkRhs:
    """Right-hand side of the RK4 states given the circulating volume V (all draws)."""

    def __init__(self, p: ModelParams, pat: PatientState, k_in, k_out):
        self.e0 = p.e0
        self.inv_c_half = 1.0 / p.c_half_10e9_per_l
        self.g = p.growth_per_min
        self.k_in, self.k_out = k_in, k_out
        self.ep = p.e_platelet
        self.inv_tau_p = 1.0 / p.platelet_tau_min
        self.plt_src = (pat.platelets_10e9_per_l or 0.0) * pat.tbv_l * self.inv_tau_p

    def __call__(self, y: np.ndarray, vol: np.ndarray, q_wb: float) -> np.ndarray:
        nb, nt, plt = y[0], y[1], y[4]
        d = np.empty_like(y)
        exch = self.k_out * nb - self.k_in * nt
        gb = self.g * nb
        gt = self.g * nt
        if q_wb > 0.0:
            c = nb / vol
            removal = (self.e0 * q_wb) * c / (1.0 + c * self.inv_c_half)
            d[0] = gb - removal - exch
            d[2] = removal
            d[4] = self.plt_src - plt * (self.ep * q_wb / vol + self.inv_tau_p)
        else:
            d[0] = gb - exch
            d[2] = 0.0
            d[4] = self.plt_src - plt * self.inv_tau_p
        d[1] = exch + gt
        d[3] = gb + gt
        return d


def integrate(p: ModelParams, pat: PatientState, sessions: tuple[Session, ...], times_out: np.ndarray,
              *, dt_on_min: float = 10.0, dt_off_min: float = 30.0, y0: np.ndarray | None = None) -> np.ndarray:
    """Integrate all draws and return the states at ``times_out``: array (N_STATES, n, len(times_out)).

    Volume, citrate, red cells and product volume are linear and decoupled: they are advanced
    exactly (exponential propagators). Leukocyte pools, product cells, growth ledger and
    platelets use classical RK4 with fixed steps (≤ ``dt_on_min`` during a procedure,
    ≤ ``dt_off_min`` after, and ≤ 1/λ for the fastest exchange/recovery rate); output times
    inside a step are filled by cubic Hermite interpolation (RK states) and the exact
    propagator (linear states). Both keep the linear invariant N_b + N_t + P − G exact.
    """
    times_out = np.asarray(times_out, dtype=float)
    n = p.n
    p = p.as_arrays(n)
    k_in = 1.0 / (p.refill_tau_min * (1.0 + p.pool_ratio))
    k_out = p.pool_ratio * k_in
    y = initial_state(p, pat, n) if y0 is None else np.array(y0, dtype=float)
    out = np.empty((N_STATES, times_out.size, n))  # time-major: each output row is contiguous over draws
    lam = float(np.max(np.concatenate([k_in + k_out, 1.0 / p.platelet_tau_min, np.abs(p.growth_per_min)])))
    h_max = 1.0 / lam if lam > 0 else np.inf
    f_rk = _RkRhs(p, pat, k_in, k_out)
    rk_idx, lin_idx = list(RKS), list(LIN)
    yr = y[rk_idx]
    yl = y[lin_idx]
    at0 = times_out <= 0.0
    for k in np.nonzero(at0)[0]:
        out[:, k] = y
    t_end = float(times_out[-1]) if times_out.size else 0.0
    for t0, t1, sess in _grid(sessions, t_end):
        fl = _flows(sess)
        q_wb = fl[0]
        a, b = _lin_coeffs(p, pat, fl)
        x_inf_a = a  # for the propagator x·E + a·Φ
        steps = max(1, int(np.ceil((t1 - t0) / min(dt_on_min if sess is not None else dt_off_min, h_max) - 1e-9)))
        h = (t1 - t0) / steps
        e_h, phi_h = _lin_step(b, h)
        e_2, phi_2 = _lin_step(b, h / 2)
        f0 = f_rk(yr, yl[0], q_wb)
        for i in range(steps):
            ta = t0 + i * h
            tb = t0 + (i + 1) * h if i < steps - 1 else t1
            v_mid = yl[0] * e_2[0] + x_inf_a[0] * phi_2[0]
            yl_new = yl * e_h + x_inf_a * phi_h
            k1 = f0
            k2 = f_rk(yr + (0.5 * h) * k1, v_mid, q_wb)
            k3 = f_rk(yr + (0.5 * h) * k2, v_mid, q_wb)
            k4 = f_rk(yr + h * k3, yl_new[0], q_wb)
            yr_new = yr + (h / 6.0) * (k1 + 2.0 * (k2 + k3) + k4)
            f1 = f_rk(yr_new, yl_new[0], q_wb)
            for k in np.nonzero((times_out > ta) & (times_out <= tb))[0]:
                u = (times_out[k] - ta) / h
                u2, u3 = u * u, u * u * u
                out[rk_idx, k] = (yr * (2 * u3 - 3 * u2 + 1) + (h * (u3 - 2 * u2 + u)) * k1
                                  + yr_new * (-2 * u3 + 3 * u2) + (h * (u3 - u2)) * f1)
                e_s, phi_s = _lin_step(b, times_out[k] - ta)
                out[lin_idx, k] = yl * e_s + x_inf_a * phi_s
            yr, yl, f0 = yr_new, yl_new, f1
    return out.transpose(0, 2, 1)
