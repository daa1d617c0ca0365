r"""The runs of the reproduction of Section 7 of Bah, Rauhut, Terstiege, Westdickenberg (2019).

Set-up (Section 7): the autoencoder, Y = X, with X a d x m matrix of i.i.d. N(0, 1/d) entries,
m = 3d (:func:`paper_data`); the loss is :math:`L^1(W) = \tfrac12\|X - WX\|_F^2`, its minimum
over rank <= r is attained at :math:`U_rU_r^T` (top-r eigenvectors of :math:`XX^T`, Proposition
29), with value :math:`\tfrac12\sum_{i>r}\lambda_i`.

A run (:class:`RunSpec`) is one start integrated by :func:`linrank.flows.factor_flow` (the
layer-wise flow (5)); the kinds of start (``init``) are those of
:mod:`linrank.experiments.shared.starts`:

* ``"balanced"`` -- the paper's start (:func:`~linrank.experiments.shared.starts.paper_start`);
* ``"inside47"`` / ``"outside47"`` -- the paper's start conditioned on (47) holding / failing;
* ``"boundary"`` -- near the boundary of (47): :math:`W(0) = (U_r(\varepsilon I + K) +
  U_\perp C)U_r^T`, K skew, C Gaussian (``normal = 1``), so :math:`u_i^TW(0)u_i = \varepsilon`
  (``eps``) and W(0) is not confined to the span of U_r;
* ``"special"`` -- :math:`W(0) = -U_rU_r^T` balanced (any N), perturbed by ``delta`` in W_1;
* ``"nonbalanced"`` -- every factor N(0, 1/d) (Figure 3 for N = 2);
* ``"perturbed"`` -- the paper's start plus a perturbation of relative size ``scale``;
* ``"familyA"`` -- :math:`W(0) = U_rMU_r^T`, diag M > 0, det M < 0: inside (47), on an invariant
  set where det(U_r^T W U_r) keeps its sign (:mod:`linrank.experiments.shared.families`);
* ``"familyB"`` -- family A plus ``scale`` (eta) off the invariant set;
* ``"negdet"`` -- :math:`W(0) = U_r\operatorname{diag}(1, \dots, 1, -1)U_r^T` (r = d: Theorem 31).

Stopping rule
-------------
A run stops when the layer gradient norm is <= ``gtol`` (its error ||W - U_rU_r^T|| is then
~gtol / the smallest Hessian eigenvalue) or when its time budget is spent:
``min(t_cap, t_base + decades / rate)`` with ``rate`` the smallest Riemannian Hessian eigenvalue
at :math:`U_rU_r^T` (closed form, Proposition 30). A run not converged at its budget is continued
from its state with the horizon doubled, up to :data:`~.paper_flow.EXTEND` times the budget
(:func:`~.paper_flow.integrate_chunks`; not the starts proved not to converge, ``CERTIFIED``).
Status ``"completed"`` (stopped by the rule), ``"critical"`` (budget spent after the extensions,
certified as approaching a critical point W_J other than the minimizer by
:func:`~.families.critical_certificate`: loss within ``CRITICAL_RTOL`` (L(W_J) - L*) of
L(W_J)'s closed form, Proposition 29, and the gradient norm and |L - L(W_J)| measured to decay
over the last half of the run), ``"unfinished"`` (budget spent, neither: unresolved, never a
verdict either way) or ``"failed"`` (the integrator diverged: Euler above its stability limit). Special starts of depth
N >= 3 creep towards the saddle W = 0 where the gradient vanishes to high order, so the gradient
test would stop them there: they run to a fixed horizon ``special_horizon`` (status
``"completed"``) and the report states where they are then. An interrupted run raises
KeyboardInterrupt: it is never returned, cached or reported.

Integrators: Dormand-Prince 5(4) with ``rtol``/``atol`` (default), or the paper's explicit Euler
(gradient descent with step ``step``; ``method="Euler"``).

Every run is deterministic for a given seed: the data of dimension d come from
``SeedSequence([seed, d])``, the start from ``SeedSequence([seed, figure, d, depth, rank,
kind])`` (hidden widths, eps and scale do not change the random stream, so a family of runs
differs only in what the parameter changes).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ...critical import closed_form_spectrum
from ...data import LinearData
from ...network import conserved_quantities, imbalance, product
from ..shared import families as fam
from ..shared import starts as st
from .limits import decay_rate, escape_time, figure3_limit, special_norm_exact
from .paper_flow import EXTEND, integrate_chunks

__all__ = [
    "Settings",
    "RunSpec",
    "RunRecord",
    "paper_data",
    "make_start",
    "run_spec",
]

CACHE_VERSION = 5
INITS = ("balanced", "nonbalanced", "special", "inside47", "outside47", "boundary", "perturbed",
         "familyA", "familyB", "negdet")
CERTIFIED = ("familyA", "negdet")  # starts on the invariant set with det(U_r^T W U_r) < 0
CRITICAL_RTOL = fam.CRIT_RTOL  # |L(W(T)) - L(W_J)| / (L(W_J) - L*) for "critical"
CONVERGED = 1e-6  # ||W(T) - U_rU_r^T||_F at which a completed run counts as converged


# ---------------------------------------------------------------------- settings
@dataclass(frozen=True)
class Settings:
    """Sizes, budgets and tolerances of one reproduction (``quick``: the smaller set of the tests).

    Attributes
    ----------
    fig1_dims : dimensions d of Figure 1 (rank r = max(2, d // 5)).
    fig2_dims, fig3_dims, fig4_dims : dimensions of Figures 2-4 (rank ``small_rank``).
    small_rank : the rank r of Figures 2-4 and of the extra studies.
    depths : depths N of Figures 1 and 2.
    conj_depths, conj_dims : depths and dimensions of the runs inside (47) (Conjecture 32).
    boundary_eps : margins eps of the near-boundary starts.
    special_depths : depths of the special start beyond the paper's N = 2.
    special_horizon : fixed horizon of special starts with N >= 3.
    wide_extra : hidden widths r + wide_extra in the hidden-width study.
    nonbalanced_depths : depths of the non-balanced study beyond N = 2.
    perturb_scales : relative sizes of the perturbed (non-balanced) starts.
    euler_fractions : Euler steps as fractions of the stability limit 2 / Hessian norm at the limit.
    euler_dims : dimensions of the Euler study (non-balanced N = 2).
    t_base, decades, t_cap : time budget ``min(t_cap, t_base + decades / rate)``.
    gtol : stop when the layer gradient norm is <= gtol.
    etol, chunk : also stop when ||W - U_rU_r^T||_F <= etol, tested every ``chunk`` time units.
    rtol, atol : the RK45 tolerances.
    max_records : at most this many recorded times per run (uniform grid over the budget).
    fine_until, fine_step : special starts are also recorded every fine_step up to fine_until.
    deltas : sizes of the deliberate perturbations of the N = 2 special start.
    saddle_d, saddle_k : size of the strict-saddle table (Proposition 30).
    quick : the reduced set (says so in the report).
    """

    fig1_dims: tuple[int, ...] = (10, 20, 30, 40, 50)
    fig2_dims: tuple[int, ...] = (10, 30, 50)
    fig3_dims: tuple[int, ...] = (10, 30, 50)
    fig4_dims: tuple[int, ...] = (10, 30, 50)
    small_rank: int = 3
    depths: tuple[int, ...] = (2, 3, 4)
    conj_depths: tuple[int, ...] = (3, 4, 5, 6)
    conj_dims: tuple[int, ...] = (10, 20)
    boundary_eps: tuple[float, ...] = (1e-2, 1e-4, 1e-6)
    special_depths: tuple[int, ...] = (3, 4, 5)
    special_horizon: float = 1e4
    wide_extra: int = 2
    nonbalanced_depths: tuple[int, ...] = (3, 4)
    perturb_scales: tuple[float, ...] = (1e-3, 0.3)
    euler_fractions: tuple[float, ...] = (0.05, 0.2, 0.5, 0.9)
    euler_dims: tuple[int, ...] = (10,)
    t_base: float = 500.0
    decades: float = 30.0
    t_cap: float = 4000.0
    gtol: float = 1e-9
    etol: float = 1e-9
    chunk: float = 100.0
    rtol: float = 1e-10
    atol: float = 1e-13
    max_records: int = 2500
    fine_until: float = 20.0
    fine_step: float = 0.02
    deltas: tuple[float, ...] = (1e-12, 1e-9, 1e-6, 1e-3)
    saddle_d: int = 10
    saddle_k: int = 2
    cex_depths: tuple[int, ...] = (3, 4, 5)
    cex_horizon: float = 300.0
    eta_scan: tuple[tuple[int, float], ...] = ((3, 1e-1), (3, 1e-2), (3, 1e-3), (3, 1e-4),
                                               (4, 1e-1), (4, 10 ** -1.5), (4, 1e-2),
                                               (5, 10 ** -0.5), (5, 1e-1), (5, 10 ** -1.5))
    eta_horizon: float = 6000.0
    quick: bool = False

    @classmethod
    def quick_settings(cls) -> Settings:
        """A smaller reproduction with the same kinds of runs (used by the tests)."""
        return cls(fig1_dims=(6, 10), fig2_dims=(8,), fig3_dims=(8,), fig4_dims=(8,),
                   small_rank=2, depths=(2, 3, 4), conj_depths=(3, 4), conj_dims=(8,),
                   boundary_eps=(1e-2,), special_depths=(3,), special_horizon=2000.0,
                   nonbalanced_depths=(3,), perturb_scales=(0.3,),
                   euler_fractions=(0.2, 0.9), euler_dims=(8,), t_base=300.0, t_cap=1500.0,
                   max_records=800, fine_until=10.0, fine_step=0.05,
                   deltas=(1e-10, 1e-6, 1e-2), saddle_d=6, saddle_k=2, cex_depths=(3,),
                   cex_horizon=200.0, eta_scan=((3, 1e-1), (3, 1e-2), (3, 1e-3)),
                   eta_horizon=1500.0, quick=True)

    def budget(self, rate: float) -> float:
        """The time budget of a run whose slowest rate near the limit is ``rate``."""
        return float(min(self.t_cap, self.t_base + self.decades / max(rate, 1e-300)))

    def grid(self, t_end: float, fine: bool = False, step: float | None = None) -> np.ndarray:
        """Recording times on [0, t_end]: uniform (<= max_records), plus the fine grid if asked.

        With a fixed ``step`` (Euler) every time is a multiple of it, so no step is shortened.
        """
        n = self.max_records
        if step is not None:
            stride = max(1, int(np.ceil(t_end / step / n)))
            k = np.arange(0, int(np.floor(t_end / step)) + 1, stride)
            return k * step
        g = np.linspace(0.0, t_end, n + 1)
        if fine:
            n_fine = int(round(self.fine_until / self.fine_step))
            g = np.union1d(g, np.linspace(0.0, min(self.fine_until, t_end), n_fine + 1))
        return g


@dataclass(frozen=True)
class RunSpec:
    """One flow run: figure (1-4; 5 = a study beyond the paper), depth N, d, rank r, start.

    ``delta``: perturbation of W_1 for special starts; ``eps``: margin of boundary starts;
    ``scale``: relative perturbation of perturbed starts; ``hidden``: hidden widths (None: all
    r); ``method``: "RK45" or "Euler" with ``step`` (Euler: the fraction of the stability limit is
    ``step_fraction``, the actual step is fixed at run time from the data).
    """

    figure: int
    depth: int
    d: int
    rank: int
    init: str
    delta: float = 0.0
    eps: float = 0.0
    scale: float = 0.0
    hidden: tuple[int, ...] | None = None
    method: str = "RK45"
    step_fraction: float = 0.0

    def __post_init__(self) -> None:
        if self.figure not in (1, 2, 3, 4, 5):
            raise ValueError(f"figure must be 1, ..., 5, got {self.figure!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if isinstance(self.depth, bool) or not isinstance(self.depth, int) or self.depth < 2:
            raise ValueError(f"depth must be an integer >= 2, got {self.depth!r}")
        if not (isinstance(self.d, int) and isinstance(self.rank, int) and 1 <= self.rank <= self.d):
            raise ValueError(f"need integers 1 <= rank <= d, got d = {self.d!r}, rank = {self.rank!r}")
        if self.delta < 0 or (self.delta > 0 and self.init != "special"):
            raise ValueError("delta must be >= 0 and is only used by special starts")
        if (self.eps > 0) != (self.init == "boundary"):
            raise ValueError("eps > 0 is required by, and only used by, boundary starts")
        if (self.scale > 0) != (self.init in ("perturbed", "familyB")):
            raise ValueError("scale > 0 is required by, and only used by, perturbed and familyB "
                             "starts")
        if self.init in ("familyA", "familyB") and self.rank < 2:
            raise ValueError("family A/B starts need rank >= 2")
        if self.init == "familyB" and self.rank >= self.d:
            raise ValueError("family B starts need rank < d")
        if self.hidden is not None:
            if len(self.hidden) != self.depth - 1 or min(self.hidden) < self.rank:
                raise ValueError(f"hidden must have depth - 1 widths >= rank, got {self.hidden}")
        if self.method not in ("RK45", "Euler"):
            raise ValueError(f"method must be 'RK45' or 'Euler', got {self.method!r}")
        if (self.method == "Euler") != (0 < self.step_fraction < 2):
            raise ValueError("Euler runs need 0 < step_fraction < 2 (and only they take one)")

    @property
    def widths(self) -> tuple[int, ...]:
        return self.hidden if self.hidden is not None else (self.rank,) * (self.depth - 1)

    @property
    def label(self) -> str:
        extra = ""
        if self.delta:
            extra += f" delta={self.delta:g}"
        if self.eps:
            extra += f" eps={self.eps:g}"
        if self.scale:
            extra += f" {'eta' if self.init == 'familyB' else 'scale'}={self.scale:g}"
        if self.hidden is not None:
            extra += f" widths={','.join(map(str, self.hidden))}"
        if self.method == "Euler":
            extra += f" Euler h={self.step_fraction:g}h_max"
        return f"fig{self.figure} N={self.depth} d={self.d} r={self.rank} {self.init}{extra}"

    def to_json(self) -> dict:
        out = asdict(self)
        out["hidden"] = None if self.hidden is None else list(self.hidden)
        return out

    @classmethod
    def from_json(cls, data: dict) -> RunSpec:
        data = dict(data)
        if data.get("hidden") is not None:
            data["hidden"] = tuple(int(w) for w in data["hidden"])
        return cls(**data)


# ---------------------------------------------------------------------- records
@dataclass
class RunRecord:
    """The outcome of one run: summary numbers (the schema of summary.json) and time series.

    Series at the recorded times ``t``: ``error`` = ||W(t) - U_rU_r^T||_F, ``norm`` = ||W(t)||_F,
    ``residual`` = ||X - W(t)X||_F, ``w2_w1t`` = ||W_2(t) - W_1(t)^T||_F (depth 2), ``drift`` =
    max_j ||D_j(t) - D_j(0)||_F; for depth 2 also ``more["w2_pinv"]`` = ||W_2 - W_1^+||_F.
    ``extra``: run facts beyond the summary schema (steps, conserved imbalance, rates, limits).
    """

    spec: RunSpec
    seed: int
    t: np.ndarray
    error: np.ndarray
    norm: np.ndarray
    residual: np.ndarray
    w2_w1t: np.ndarray | None
    drift: np.ndarray
    optimum_residual: float
    lam: np.ndarray
    extra: dict = field(default_factory=dict)
    more: dict = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return f"seed={self.seed} {self.spec.label}"

    @property
    def status(self) -> str:
        return str(self.extra["status"])

    @property
    def converged(self) -> bool:
        """Completed and within :data:`CONVERGED` of U_rU_r^T."""
        return self.status == "completed" and float(self.error[-1]) <= CONVERGED

    def summary(self) -> dict:
        """One entry of summary.json."""
        s = self.spec
        i_min = int(np.argmin(self.norm))
        return {
            "figure": s.figure,
            "depth": s.depth,
            "d": s.d,
            "rank": s.rank,
            "init": s.init,
            "final_error": float(self.error[-1]),
            "final_loss_gap": float(self.extra["final_loss_gap"]),
            "initial_norm": float(self.norm[0]),
            "min_norm": float(self.norm[i_min]),
            "w2_minus_w1t": None if self.w2_w1t is None else float(self.w2_w1t[-1]),
            "imbalance_drift": float(np.max(self.drift)),
            "escape_time": (escape_time(self.t, self.norm) if s.init == "special" else None),
            "seed": self.seed,
            "condition_47": bool(self.extra["condition_47"]),
            "min_u_W0_u": float(self.extra["min_u_W0_u"]),
            "hidden_widths": list(s.widths),
            "status": self.status,
            "id": self.run_id,
            "method": s.method,
            "t_final": float(self.extra["t_final"]),
            "eta": s.scale if s.init == "familyB" else None,
            "det_C0": self.extra.get("det_C0"),
            "invariant_certificate": self.extra.get("invariant_certificate"),
            "critical_J": (list(self.extra["critical"]["J"]) if self.status == "critical"
                           else None),
            "converge_time": self.extra.get("converge_time"),
        }

    # cache: only finished runs are ever stored (run_spec never returns an interrupted one)
    def to_npz(self, path: str) -> None:
        arrays = {"t": self.t, "error": self.error, "norm": self.norm, "residual": self.residual,
                  "drift": self.drift, "lam": self.lam}
        arrays.update({f"more_{k}": v for k, v in self.more.items()})
        if self.w2_w1t is not None:
            arrays["w2_w1t"] = self.w2_w1t
        meta = {"spec": self.spec.to_json(), "seed": self.seed, "extra": self.extra,
                "optimum_residual": self.optimum_residual, "version": CACHE_VERSION}
        tmp = f"{path}.tmp-{os.getpid()}.npz"
        try:
            with open(tmp, "wb") as fh:
                np.savez(fh, meta=np.array(json.dumps(meta)), **arrays)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    @classmethod
    def from_npz(cls, path: str) -> RunRecord:
        """Load a cached run; ValueError (naming the file) if it is damaged or of another version."""
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                if meta.get("version") != CACHE_VERSION:
                    raise ValueError("written by another version")
                return cls(spec=RunSpec.from_json(meta["spec"]), seed=int(meta["seed"]),
                           t=z["t"], error=z["error"], norm=z["norm"], residual=z["residual"],
                           w2_w1t=z["w2_w1t"] if "w2_w1t" in z.files else None,
                           drift=z["drift"], optimum_residual=float(meta["optimum_residual"]),
                           lam=z["lam"], extra=meta["extra"],
                           more={k[5:]: z[k] for k in z.files if k.startswith("more_")})
        except Exception as exc:  # zipfile.BadZipFile, EOFError, KeyError, JSON errors, ...
            raise ValueError(f"damaged cache file {path}: {type(exc).__name__}: {exc}") from exc


# ---------------------------------------------------------------------- data and starts
def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in key]))


def paper_data(d: int, seed: int) -> np.ndarray:
    """X (d x 3d) with i.i.d. N(0, 1/d) entries, from ``SeedSequence([seed, d])`` (Section 7)."""
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
        raise ValueError(f"d must be a positive integer, got {d!r}")
    return _rng(seed, d).standard_normal((d, 3 * d)) / np.sqrt(d)


def make_start(spec: RunSpec, X: np.ndarray, seed: int) -> list[np.ndarray]:
    """The starting factors of ``spec`` (see the module docstring), deterministic in ``seed``."""
    rng = _rng(seed, spec.figure, spec.d, spec.depth, spec.rank, INITS.index(spec.init))
    U, _ = st.top_eigenbasis(X, spec.rank)
    r, N, hw = spec.rank, spec.depth, spec.hidden
    if spec.init == "balanced":
        return st.paper_start(spec.d, r, N, rng, hw)
    if spec.init == "inside47":
        return st.inside_47_start(U, r, N, rng, hw, basis=True)
    if spec.init == "outside47":
        return st.outside_47_start(U, r, N, rng, hw, basis=True)
    if spec.init == "boundary":
        return st.near_boundary_start(U, r, N, rng, eps=spec.eps, normal=1.0, hidden_widths=hw,
                                      basis=True)
    if spec.init == "nonbalanced":
        return st.gaussian_start(spec.d, r, N, rng, hw)
    if spec.init == "perturbed":
        return st.perturbed_start(st.paper_start(spec.d, r, N, rng, hw), spec.scale, rng)
    if spec.init == "familyA":
        return fam.family_a_start(U, r, N, rng, hw)
    if spec.init == "familyB":
        return fam.family_b_start(U, r, N, rng, spec.scale, hw)
    if spec.init == "negdet":
        return fam.negdet_start(U, r, N, rng, hw)
    fs = st.special_start(U, r, N, rng, hw, basis=True)
    if spec.delta > 0:  # the direction does not depend on delta (escape-rate fit)
        E = rng.standard_normal(fs[0].shape)
        fs[0] = fs[0] + spec.delta * E / np.linalg.norm(E)
    return fs


# ---------------------------------------------------------------------- one run
def _series(depth: int, X: np.ndarray, P: np.ndarray, traj: list,
            D0: list[np.ndarray]) -> dict:
    err, nrm, res, w21, w2p, drift = [], [], [], [], [], []
    for fs in traj:
        W = product(fs)
        drift.append(max((float(np.linalg.norm(a - b))
                          for a, b in zip(conserved_quantities(fs), D0)), default=0.0))
        err.append(np.linalg.norm(W - P))
        nrm.append(np.linalg.norm(W))
        res.append(np.linalg.norm(X - W @ X))
        if depth == 2:
            w21.append(np.linalg.norm(fs[1] - fs[0].T))
            w2p.append(np.linalg.norm(fs[1] - np.linalg.pinv(fs[0])))
    return {"error": np.array(err), "norm": np.array(nrm), "residual": np.array(res),
            "w2_w1t": np.array(w21) if depth == 2 else None, "drift": np.array(drift),
            "more": {"w2_pinv": np.array(w2p)} if depth == 2 else {}}


def euler_step_limit(lam1: float, D: np.ndarray) -> float:
    r"""The stability limit 2 / ||Hess|| of gradient descent at the N = 2 limit with imbalance D.

    At the limit :math:`W_1 = MU_r^T`, :math:`W_2 = U_rM^{-1}`, the largest Hessian eigenvalue
    of the layer loss is about :math:`\lambda_1(\|W_1\|_2^2 + \|W_2\|_2^2) = \lambda_1(s_{max} +
    1/s_{min})` with :math:`S = MM^T = f(D)` (:mod:`linrank.experiments.reproduce.limits`); h_max = 2 / it.
    """
    delta = np.linalg.eigvalsh(0.5 * (D + D.T))
    s = (np.sqrt(delta * delta + 4.0) - delta) / 2.0
    return float(2.0 / (lam1 * (np.max(s) + 1.0 / np.min(s))))


def run_spec(spec: RunSpec, settings: Settings, seed: int) -> RunRecord:
    """Integrate one run with :func:`linrank.flows.factor_flow` and measure it.

    Raises KeyboardInterrupt when the flow was interrupted (nothing is returned for a cut-off
    run). final_loss_gap is :math:`\\tfrac12(\\|X - WX\\| - \\rho)(\\|X - WX\\| + \\rho)` with
    :math:`\\rho` the optimal residual: absolute error ~ eps ||X||^2.
    """
    X = paper_data(spec.d, seed)
    U, lam = st.top_eigenbasis(X, spec.rank)
    r, N = spec.rank, spec.depth
    P = U @ U.T
    rho = float(np.sqrt(max(np.sum(lam[r:]), 0.0)))
    factors = make_start(spec, X, seed)
    D0 = conserved_quantities(factors)
    c47 = st.condition_47(product(factors), U, r, basis=True)
    rate = float(closed_form_spectrum(lam, list(range(r)), N)[0])
    fixed_horizon = spec.init == "special" and N >= 3
    t_end = settings.special_horizon if fixed_horizon else settings.budget(rate)
    if spec.init in CERTIFIED:
        t_end = settings.cex_horizon
    elif spec.init == "familyB":
        t_end = settings.eta_horizon
    opts: dict[str, Any] = dict(target=P, trajectory=True,
                                gtol=None if fixed_horizon else settings.gtol)
    h = None
    if spec.method == "Euler":
        h = spec.step_fraction * euler_step_limit(float(lam[0]), D0[0])
        t_end = min(t_end, settings.t_cap)
        opts.update(method="Euler", step=h)
    else:
        opts.update(rtol=settings.rtol, atol=settings.atol)
    proved = spec.init in CERTIFIED  # proved not to converge: never continued
    t_cap = t_end if (fixed_horizon or proved) else EXTEND * t_end
    flow = integrate_chunks(LinearData.from_samples(X), factors, t_end, opts, settings.chunk,
                            lambda T: settings.grid(T, fine=spec.init == "special", step=h), h,
                            None if fixed_horizon else settings.etol, t_cap)
    if flow["status"] == "failed":
        status = "failed"
    elif flow["status"] == "converged" or fixed_horizon:
        status = "completed"
    else:
        status = "unfinished"
    res = flow["result"]
    ser = _series(N, X, P, flow["trajectory"], D0)
    U_all = np.linalg.svd(X, full_matrices=True)[0]
    U_all[:, :r] = U  # the same U_r as the rest of the run
    cex = fam.certify_run(flow["trajectory"], U_all, r, lam, flow["t"], flow["loss"],
                          flow["grad"], ser["error"], spec.init in CERTIFIED, CRITICAL_RTOL)
    cex["extra"]["converge_time"] = (float(flow["t"][-1]) if flow["status"] == "converged"
                                     else None)
    if status == "unfinished" and cex["extra"]["critical"]["certified"]:
        status = "critical"
    final = res.factors
    r_end = float(ser["residual"][-1])
    extra: dict[str, Any] = {
        "status": status,
        "stop": flow["stop"],
        "t_final": float(flow["t"][-1]),
        "t_budget": float(flow["t_budget"]),
        "t_budget_first": float(t_end),
        "extensions": int(flow["extensions"]),
        "nsteps": flow["nsteps"],
        "nfev": flow["nfev"],
        "initial_imbalance": float(imbalance(factors)),
        "final_loss_gap": 0.5 * (r_end - rho) * (r_end + rho),
        "lambda_1": float(lam[0]),
        "gap": float(lam[r - 1] - lam[r]) if r < spec.d else None,
        "condition_47": c47.holds,
        "min_u_W0_u": c47.min_u_W0_u,
        "rank_W0_U_ok": c47.rank_ok,
        "predicted_rate": rate,
        "step": h,
        "final_singular_values": np.linalg.svd(res.W, compute_uv=False)[: max(spec.widths) + 1]
        .tolist(),
    }
    extra.update(cex["extra"])
    ser["more"].update(cex["more"])
    if spec.init != "special":
        extra["measured_rate"] = decay_rate(flow["t"], ser["error"], floor=100 * settings.rtol)
    if N == 2:
        D = D0[0]
        extra["conserved_norm"] = float(np.linalg.norm(D))
        extra["w2_minus_pinv_w1"] = float(np.linalg.norm(final[1] - np.linalg.pinv(final[0])))
        if spec.widths == (r,):
            extra["w2_w1t_limit"] = figure3_limit(D)  # closed form at D(0)
            extra["w2_w1t_limit_final_D"] = figure3_limit(conserved_quantities(final)[0])
    if spec.init == "special":
        e = ser["norm"]
        i_min = int(np.argmin(e))
        tt = flow["t"]
        extra["t_min_norm"] = float(tt[i_min])
        extra["final_norm"] = float(e[-1])
        if N == 2:
            # before half the time of the minimum the start's decaying mode dominates
            upto = tt <= 0.5 * tt[i_min]
            exact = special_norm_exact(tt[upto], lam[:r])
            extra["exact_deviation"] = float(np.max(np.abs(e[upto] - exact) / exact))
            extra["exact_deviation_until"] = float(tt[upto][-1])
        else:
            # distance from the invariant set {W = -U_r C U_r^T, C symmetric}: the part of W
            # that an escape would have to grow, relative to ||W||
            W = res.W
            inv = U @ (U.T @ W @ U) @ U.T
            C = U.T @ W @ U
            off = np.linalg.norm(W - inv) + np.linalg.norm(C - C.T) / np.sqrt(2)
            extra["off_invariant_final"] = float(off / max(np.linalg.norm(W), 1e-300))
    return RunRecord(spec=spec, seed=seed, t=flow["t"], error=ser["error"], norm=ser["norm"],
                     residual=ser["residual"], w2_w1t=ser["w2_w1t"],
                     drift=ser["drift"], optimum_residual=rho, lam=lam,
                     extra=extra, more=ser["more"])

