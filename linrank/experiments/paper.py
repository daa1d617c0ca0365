r"""The runs of Section 7 (Figures 1-4) of Bah, Rauhut, Terstiege, Westdickenberg (2019).

Set-up (Section 7): the autoencoder, Y = X, with X a d x m matrix of i.i.d. N(0, sigma^2) entries,
sigma = 1/sqrt(d), m = 3d (:func:`linrank.network.gaussian_data`); the loss is
:math:`L^1(W) = \tfrac12\|X - WX\|_F^2` and its minimum over rank <= r is attained at
:math:`U_r U_r^T` (top-r eigenvectors of :math:`XX^T`, Proposition 29), with value
:math:`L^* = \tfrac12\sum_{i>r}\lambda_i` where :math:`\lambda_i = \sigma_i(X)^2`.
Factors: W_1 (r x d), W_2, ..., W_{N-1} (r x r), W_N (d x r): hidden widths equal to the rank r.

Starts
------
* ``"balanced"`` (:func:`balanced_start`), condition (47), :math:`W_{j+1}^T W_{j+1} = W_j W_j^T`:
  N = 2: W_1 Gaussian (entries N(0, 1/d)) with SVD :math:`W_1 = P S Q^T`, and
  :math:`W_2 = V S P^T` with V a Haar-random d x r matrix with orthonormal columns, so that
  :math:`W_2^T W_2 = P S^2 P^T = W_1 W_1^T`. N > 2: a Gaussian rank-r product
  :math:`W(0) = A B / d` (A: d x r, B: r x d standard normal), factored by
  :func:`linrank.network.balanced_factors` (:math:`W_j = V_j \Sigma^{1/N} V_{j-1}^T`).
* ``"nonbalanced"`` (:func:`nonbalanced_start`, N = 2): W_1, W_2 with i.i.d. N(0, 1/d) entries.
* ``"special"`` (:func:`special_start`, Remark 33): :math:`W_1 = V_r^T`, :math:`W_2 = -V_r` with
  V_r the top-r eigenvectors of :math:`XX^T`, optionally perturbed by a matrix of Frobenius norm
  ``delta``. On the invariant set :math:`W_1 = \mathrm{diag}(a) V_r^T`, :math:`W_2 = -V_r
  \mathrm{diag}(a)`, :math:`b_j = a_j^2` solves :math:`\dot b_j = -2\lambda_j b_j(1 + b_j)`, so
  :math:`b_j(t) = e^{-2\lambda_j t}/(2 - e^{-2\lambda_j t})` and
  :math:`\|W(t)\|_F = (\sum_j b_j(t)^2)^{1/2}` (:func:`special_norm_exact`).

Integration: :func:`linrank.flows.factor_flow` (the layer-wise flow (5)), Dormand-Prince 5(4)
with error control (``rtol``/``atol`` of :class:`Settings`), stopped when the layer gradient
norm is below ``gtol`` or at ``t_max``. The paper used the explicit Euler method: that is
gradient descent with step h, which does not conserve :math:`W_{j+1}^T W_{j+1} - W_j W_j^T`
(it changes by :math:`h^2 (G_{j+1}^T G_{j+1} - G_j G_j^T)` per step); :func:`euler_comparison`
measures what this changes.

Every run is deterministic for a given seed: the data of dimension d use
``SeedSequence([seed, d])``, the start of a run ``SeedSequence([seed, figure, d, depth, rank,
tag])``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..critical import closed_form_spectrum, iter_critical_points
from ..data import LinearData
from ..flows import factor_flow, manifold_flow
from ..network import balanced_factors, product

__all__ = [
    "Settings",
    "RunSpec",
    "RunRecord",
    "paper_data",
    "balanced_start",
    "nonbalanced_start",
    "special_start",
    "special_norm_exact",
    "escape_time",
    "decay_rate",
    "run_spec",
    "default_specs",
    "perturbation_specs",
    "euler_comparison",
    "manifold_comparison",
    "saddle_table",
    "run_all",
    "escape_rate_fit",
]

_CACHE_VERSION = 1
_INITS = ("balanced", "nonbalanced", "special")


# ---------------------------------------------------------------------- settings
@dataclass(frozen=True)
class Settings:
    """Sizes, horizons and tolerances of one reproduction (``quick`` for the tests).

    Attributes
    ----------
    fig1_dims : dimensions d of Figure 1 (rank r = max(2, d // 5)).
    fig2_dims, fig3_dims, fig4_dims : dimensions of Figures 2-4 (rank ``small_rank``).
    small_rank : the rank r of Figures 2-4.
    depths : depths N of the balanced runs.
    t_max : last time of a run; ``gtol``: stop when the layer gradient norm is below it.
    rtol, atol : the RK45 tolerances (per step, relative/absolute in the factor entries).
    fine_until, fine_step : records every ``fine_step`` on [0, fine_until] (the dip and escape of
        Figure 4), then ``coarse_points`` more up to t_max.
    deltas : sizes of the deliberate perturbations of the special start (escape-rate study).
    saddle_d, saddle_k : size of the strict-saddle table (Proposition 30).
    euler_step : the Euler step of the comparison with the paper's integrator.
    """

    fig1_dims: tuple[int, ...] = (10, 20, 30, 40, 50)
    fig2_dims: tuple[int, ...] = (10, 30, 50)
    fig3_dims: tuple[int, ...] = (10, 30, 50)
    fig4_dims: tuple[int, ...] = (10, 30, 50)
    small_rank: int = 3
    depths: tuple[int, ...] = (2, 3, 4)
    t_max: float = 1000.0
    gtol: float = 1e-9
    rtol: float = 1e-10
    atol: float = 1e-13
    fine_until: float = 20.0
    fine_step: float = 0.02
    coarse_points: int = 1500
    deltas: tuple[float, ...] = (1e-12, 1e-9, 1e-6, 1e-3)
    saddle_d: int = 10
    saddle_k: int = 2
    euler_step: float = 0.01
    quick: bool = False

    @classmethod
    def quick_settings(cls) -> Settings:
        """A smaller reproduction (about 10 s) with the same kinds of runs."""
        return cls(fig1_dims=(6, 10), fig2_dims=(8,), fig3_dims=(8,), fig4_dims=(8,),
                   small_rank=2, t_max=400.0, gtol=1e-9, rtol=1e-10, atol=1e-13,
                   fine_until=10.0, fine_step=0.05, coarse_points=400,
                   deltas=(1e-10, 1e-6, 1e-2), saddle_d=6, saddle_k=2, euler_step=0.02,
                   quick=True)

    def grid(self) -> np.ndarray:
        """The recording times: fine on [0, fine_until], ``coarse_points`` after it."""
        n_fine = int(round(self.fine_until / self.fine_step))
        fine = np.linspace(0.0, self.fine_until, n_fine + 1)
        coarse = np.linspace(self.fine_until, self.t_max, self.coarse_points + 1)[1:]
        return np.concatenate((fine, coarse))


@dataclass(frozen=True)
class RunSpec:
    """One flow run: figure (1-4), depth N, dimension d, rank r, kind of start.

    ``delta`` (special starts only) is the Frobenius norm of a deliberate perturbation of W_1
    (0: the exact start, only rounding errors move the flow off the invariant set).
    """

    figure: int
    depth: int
    d: int
    rank: int
    init: str
    delta: float = 0.0

    def __post_init__(self) -> None:
        if self.figure not in (1, 2, 3, 4):
            raise ValueError(f"figure must be 1, 2, 3 or 4, got {self.figure!r}")
        if self.init not in _INITS:
            raise ValueError(f"init must be one of {_INITS}, got {self.init!r}")
        if not (isinstance(self.depth, int) and self.depth >= 2):
            raise ValueError(f"depth must be an integer >= 2, got {self.depth!r}")
        if not (isinstance(self.d, int) and isinstance(self.rank, int) and 1 <= self.rank <= self.d):
            raise ValueError(f"need integers 1 <= rank <= d, got d = {self.d!r}, rank = {self.rank!r}")
        if self.init in ("nonbalanced", "special") and self.depth != 2:
            raise ValueError(f"the {self.init} start is defined for depth 2, got {self.depth}")
        if self.delta < 0 or (self.delta > 0 and self.init != "special"):
            raise ValueError("delta must be >= 0 and is only used by special starts")

    @property
    def label(self) -> str:
        extra = f", delta={self.delta:g}" if self.delta else ""
        return f"fig{self.figure} N={self.depth} d={self.d} r={self.rank} {self.init}{extra}"


@dataclass
class RunRecord:
    """The outcome of one run: summary numbers (the schema of summary.json) and time series.

    Series (all at the recorded times ``t``): ``error`` = ||W(t) - U_r U_r^T||_F, ``norm`` =
    ||W(t)||_F, ``residual`` = ||X - W(t) X||_F, ``w2_w1t`` = ||W_2(t) - W_1(t)^T||_F (depth 2),
    ``drift`` = max_j ||D_j(t) - D_j(0)||_F; for depth 2 also ``more["w2_pinv"]`` =
    ||W_2(t) - W_1(t)^+||_F and ``more["lower_bound"]`` = the bound
    sqrt(||W_1||_2^2 + ||D||_F) - ||W_1||_2 <= ||W_2 - W_1^T||_F. ``extra`` holds run facts that are not in the
    summary schema (status, steps, conserved imbalance, predicted and measured rates, ...).
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

    def summary(self) -> dict:
        """One entry of summary.json (keys exactly as in issue 5)."""
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
        }

    # cache (a finished run is stored and reused: an interrupted reproduction loses nothing)
    def to_npz(self, path: str) -> None:
        arrays = {"t": self.t, "error": self.error, "norm": self.norm, "residual": self.residual,
                  "drift": self.drift, "lam": self.lam}
        arrays.update({f"more_{k}": v for k, v in self.more.items()})
        if self.w2_w1t is not None:
            arrays["w2_w1t"] = self.w2_w1t
        meta = {"spec": asdict(self.spec), "seed": self.seed, "extra": self.extra,
                "optimum_residual": self.optimum_residual, "version": _CACHE_VERSION}
        tmp = f"{path}.tmp-{os.getpid()}.npz"
        with open(tmp, "wb") as fh:
            np.savez(fh, meta=np.array(json.dumps(meta)), **arrays)
        os.replace(tmp, path)

    @classmethod
    def from_npz(cls, path: str) -> RunRecord:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("version") != _CACHE_VERSION:
                raise ValueError(f"{path}: unknown cache version")
            return cls(spec=RunSpec(**meta["spec"]), seed=int(meta["seed"]), t=z["t"],
                       error=z["error"], norm=z["norm"], residual=z["residual"],
                       w2_w1t=z["w2_w1t"] if "w2_w1t" in z.files else None, drift=z["drift"],
                       optimum_residual=float(meta["optimum_residual"]), lam=z["lam"],
                       extra=meta["extra"],
                       more={k[5:]: z[k] for k in z.files if k.startswith("more_")})


# ---------------------------------------------------------------------- data and starts
def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in key]))


def paper_data(d: int, seed: int) -> np.ndarray:
    """X (d x 3d) with i.i.d. N(0, 1/d) entries, from ``SeedSequence([seed, d])`` (Section 7)."""
    if not (isinstance(d, (int, np.integer)) and d >= 1):
        raise ValueError(f"d must be a positive integer, got {d!r}")
    return _rng(seed, d).standard_normal((d, 3 * d)) / np.sqrt(d)


def _haar(rng: np.random.Generator, d: int, k: int) -> np.ndarray:
    Q, R = np.linalg.qr(rng.standard_normal((d, k)))
    return Q * np.sign(np.diag(R))


def balanced_start(d: int, rank: int, depth: int, rng: np.random.Generator) -> list[np.ndarray]:
    r"""Balanced factors W_1 (r x d), W_2..W_{N-1} (r x r), W_N (d x r) satisfying (47).

    N = 2: :math:`W_1` Gaussian N(0, 1/d) with SVD :math:`PSQ^T`, :math:`W_2 = VSP^T`, V Haar
    (d x r); N > 2: :func:`linrank.network.balanced_factors` of :math:`W(0) = AB/d`. The conserved
    quantities :math:`W_{j+1}^TW_{j+1} - W_jW_j^T` are ~eps ||W_j||^2 (rounding).
    """
    if depth < 2:
        raise ValueError(f"depth must be >= 2, got {depth}")
    if not 1 <= rank <= d:
        raise ValueError(f"need 1 <= rank <= d, got rank = {rank}, d = {d}")
    if depth == 2:
        W1 = rng.standard_normal((rank, d)) / np.sqrt(d)
        P, S, _ = np.linalg.svd(W1, full_matrices=False)
        W2 = (_haar(rng, d, rank) * S) @ P.T
        return [W1, W2]
    W0 = rng.standard_normal((d, rank)) @ rng.standard_normal((rank, d)) / d
    dims = [d] + [rank] * (depth - 1) + [d]
    return balanced_factors(W0, dims, seed=rng, rank=rank)


def nonbalanced_start(d: int, rank: int, rng: np.random.Generator) -> list[np.ndarray]:
    """W_1 (r x d), W_2 (d x r) with i.i.d. N(0, 1/d) entries (Figure 3): not balanced."""
    if not 1 <= rank <= d:
        raise ValueError(f"need 1 <= rank <= d, got rank = {rank}, d = {d}")
    W1 = rng.standard_normal((rank, d)) / np.sqrt(d)
    W2 = rng.standard_normal((d, rank)) / np.sqrt(d)
    return [W1, W2]


def special_start(X: np.ndarray, rank: int, delta: float = 0.0,
                  rng: np.random.Generator | None = None) -> list[np.ndarray]:
    """W_1 = V_r^T, W_2 = -V_r (Remark 33), V_r the top-r eigenvectors of X X^T.

    With ``delta > 0``, W_1 gets a Gaussian perturbation of Frobenius norm ``delta`` (from rng).
    """
    C = X @ X.T
    _, U = np.linalg.eigh(0.5 * (C + C.T))
    V = U[:, ::-1][:, :rank]
    W1, W2 = V.T.copy(), -V.copy()
    if delta > 0:
        if rng is None:
            raise ValueError("a perturbed special start needs rng")
        E = rng.standard_normal(W1.shape)
        W1 += delta * E / np.linalg.norm(E)
    return [W1, W2]


def special_norm_exact(t: np.ndarray, lam_top: np.ndarray) -> np.ndarray:
    r""":math:`\|W(t)\|_F` on the invariant set of the special start (exact solution).

    :math:`b_j(t) = e^{-2\lambda_j t}/(2 - e^{-2\lambda_j t})`, :math:`\|W\|_F = (\sum_j b_j^2)^{1/2}`;
    relative error a few ulps (no overflow for large t).
    """
    e = np.exp(-2.0 * np.outer(np.asarray(lam_top, dtype=float), np.asarray(t, dtype=float)))
    b = e / (2.0 - e)
    return np.sqrt(np.sum(b * b, axis=0))


def escape_time(t: np.ndarray, norm: np.ndarray) -> float | None:
    """First recorded time after the minimum of ||W(t)|| with ||W(t)|| >= ||W(0)|| / 2, or None."""
    i_min = int(np.argmin(norm))
    after = np.nonzero(norm[i_min:] >= 0.5 * norm[0])[0]
    if after.size == 0 or i_min == 0:
        return None
    return float(t[i_min + after[0]])


def decay_rate(t: np.ndarray, err: np.ndarray, upper: float = 1e-4,
               floor: float = 1e-8) -> float | None:
    """The exponential rate of err(t) near its limit, by least squares on log err.

    Fitted on the last contiguous stretch of records with
    ``max(floor, 3 min(err)) <= err <= upper`` (at least 5 points; None otherwise): late enough
    that faster modes have died out, above the integrator's noise floor (``floor``; about
    10 rtol to 1000 rtol for RK45 runs, so :func:`run_spec` passes 100 rtol). This is the rate of the
    flow near its limit, to be compared with the smallest Hessian eigenvalue there.
    """
    t = np.asarray(t, dtype=float)
    err = np.asarray(err, dtype=float)
    lower = max(floor, 3.0 * float(np.min(err)))
    ok = (err <= upper) & (err >= lower) & (t > 0)
    idx = np.nonzero(ok)[0]
    if idx.size < 5:
        return None
    breaks = np.nonzero(np.diff(idx) > 1)[0]
    if breaks.size:
        idx = idx[breaks[-1] + 1:]
    if idx.size < 5:
        return None
    slope = np.polyfit(t[idx], np.log(err[idx]), 1)[0]
    return float(-slope)


# ---------------------------------------------------------------------- one run
def _series(spec: RunSpec, X: np.ndarray, P: np.ndarray, traj: list) -> dict:
    err, nrm, res, w21, w2p, lb = [], [], [], [], [], []
    nD = float(np.linalg.norm(traj[0][1].T @ traj[0][1] - traj[0][0] @ traj[0][0].T)) \
        if spec.depth == 2 else 0.0
    for fs in traj:
        W = product(fs)
        err.append(np.linalg.norm(W - P))
        nrm.append(np.linalg.norm(W))
        res.append(np.linalg.norm(X - W @ X))
        if spec.depth == 2:
            w21.append(np.linalg.norm(fs[1] - fs[0].T))
            w2p.append(np.linalg.norm(fs[1] - np.linalg.pinv(fs[0])))
            n1 = np.linalg.norm(fs[0], 2)
            lb.append(np.sqrt(n1 * n1 + nD) - n1)
    more = {"w2_pinv": np.array(w2p), "lower_bound": np.array(lb)} if spec.depth == 2 else {}
    return {"error": np.array(err), "norm": np.array(nrm), "residual": np.array(res),
            "w2_w1t": np.array(w21) if spec.depth == 2 else None, "more": more}


def _start(spec: RunSpec, X: np.ndarray, seed: int) -> list[np.ndarray]:
    # the perturbation direction of special starts does not depend on delta (escape-rate fit)
    rng = _rng(seed, spec.figure, spec.d, spec.depth, spec.rank, _INITS.index(spec.init))
    if spec.init == "balanced":
        return balanced_start(spec.d, spec.rank, spec.depth, rng)
    if spec.init == "nonbalanced":
        return nonbalanced_start(spec.d, spec.rank, rng)
    return special_start(X, spec.rank, spec.delta, rng)


def run_spec(spec: RunSpec, settings: Settings, seed: int) -> RunRecord:
    """Integrate one run with :func:`linrank.flows.factor_flow` and measure it.

    final_loss_gap is :math:`\\tfrac12\\|X - WX\\|^2 - \\tfrac12\\sum_{i>r}\\lambda_i`, computed as
    :math:`\\tfrac12(\\|X - WX\\| - \\rho)(\\|X - WX\\| + \\rho)` with :math:`\\rho` the optimal
    residual: absolute error ~ eps ||X||^2 (may be a tiny negative number at the optimum).
    """
    X = paper_data(spec.d, seed)
    C = X @ X.T
    lam, U = np.linalg.eigh(0.5 * (C + C.T))
    lam, U = lam[::-1].copy(), U[:, ::-1]
    P = U[:, : spec.rank] @ U[:, : spec.rank].T
    rho = float(np.sqrt(max(np.sum(lam[spec.rank:]), 0.0)))
    factors = _start(spec, X, seed)
    from ..network import conserved_quantities, imbalance

    D0 = conserved_quantities(factors)
    data = LinearData.from_samples(X)
    res = factor_flow(data, None, factors, settings.t_max, conserved=True, target=P,
                      t_eval=settings.grid(), trajectory=True, rtol=settings.rtol,
                      atol=settings.atol, gtol=settings.gtol)
    ser = _series(spec, X, P, res.trajectory)
    final = res.factors
    r_end = float(ser["residual"][-1])
    extra: dict[str, Any] = {
        "status": res.status,
        "t_final": float(res.t_final),
        "nsteps": int(res.nsteps),
        "nfev": int(res.nfev),
        "initial_imbalance": float(imbalance(factors)),
        "final_loss_gap": 0.5 * (r_end - rho) * (r_end + rho),
        "lambda_1": float(lam[0]),
        "gap": float(lam[spec.rank - 1] - lam[spec.rank]) if spec.rank < spec.d else None,
    }
    if spec.init != "special":
        spec_h = closed_form_spectrum(lam, list(range(spec.rank)), spec.depth)
        extra["predicted_rate"] = float(spec_h[0])
        extra["measured_rate"] = decay_rate(res.t, ser["error"], floor=100 * settings.rtol)
    if spec.depth == 2:
        D = D0[0]
        W1 = final[0]
        n1 = float(np.linalg.norm(W1, 2))
        nD = float(np.linalg.norm(D))
        extra["conserved_norm"] = nD
        extra["w2_w1t_lower_bound"] = float(np.sqrt(n1 * n1 + nD) - n1)
        extra["w2_minus_pinv_w1"] = float(np.linalg.norm(final[1] - np.linalg.pinv(W1)))
    if spec.init == "special":
        e = ser["norm"]
        # before the minimum the start's (decaying) mode dominates the rounding-seeded one by
        # a factor ~ delta_eff^(-1/2) at half the time of the minimum
        upto = res.t <= 0.5 * res.t[int(np.argmin(e))]
        exact = special_norm_exact(res.t[upto], lam[: spec.rank])
        extra["exact_deviation"] = float(np.max(np.abs(e[upto] - exact) / exact))
        extra["exact_deviation_until"] = float(res.t[upto][-1])
        extra["t_min_norm"] = float(res.t[int(np.argmin(e))])
    return RunRecord(spec=spec, seed=seed, t=res.t, error=ser["error"], norm=ser["norm"],
                     residual=ser["residual"], w2_w1t=ser["w2_w1t"],
                     drift=np.asarray(res.conserved_drift), optimum_residual=rho, lam=lam,
                     extra=extra, more=ser["more"])


# ---------------------------------------------------------------------- run lists
def default_specs(settings: Settings) -> list[RunSpec]:
    """The runs of summary.json: Figures 1-4 (see :class:`Settings` for the sizes)."""
    specs = []
    for N in settings.depths:
        for d in settings.fig1_dims:
            specs.append(RunSpec(1, N, d, max(2, d // 5), "balanced"))
    r = settings.small_rank
    for N in settings.depths:
        for d in settings.fig2_dims:
            specs.append(RunSpec(2, N, d, r, "balanced"))
    for d in settings.fig3_dims:
        specs.append(RunSpec(3, 2, d, r, "nonbalanced"))
    for d in settings.fig4_dims:
        specs.append(RunSpec(4, 2, d, r, "special"))
    return specs


def perturbation_specs(settings: Settings) -> list[RunSpec]:
    """Special starts perturbed by ``settings.deltas`` (smallest Figure 4 dimension)."""
    d = min(settings.fig4_dims)
    return [RunSpec(4, 2, d, settings.small_rank, "special", delta=float(x))
            for x in settings.deltas]


# ---------------------------------------------------------------------- side studies
def euler_comparison(settings: Settings, seed: int) -> dict:
    """The paper's explicit Euler (step ``settings.euler_step``) against RK45, same balanced start.

    Figure 1's N = 2 run of the smallest d, integrated to T = 60 on a grid of 0.5: the largest
    difference of ||W(t) - U_r U_r^T|| and of W(t), and the drift of the conserved quantity
    (exactly conserved by the flow; Euler changes it by h^2 (G_2^T G_2 - G_1 G_1^T) per step).
    """
    d = min(settings.fig1_dims)
    spec = RunSpec(1, 2, d, max(2, d // 5), "balanced")
    X = paper_data(d, seed)
    U = np.linalg.svd(X, full_matrices=False)[0][:, : spec.rank]
    P = U @ U.T
    factors = _start(spec, X, seed)
    T = 60.0
    grid = np.linspace(0.0, T, 121)
    common = dict(conserved=True, target=P, t_eval=grid, trajectory=True)
    rk = factor_flow(X, None, factors, T, rtol=settings.rtol, atol=settings.atol, **common)
    eu = factor_flow(X, None, factors, T, method="Euler", step=settings.euler_step, **common)
    dW = max(float(np.linalg.norm(product(a) - product(b)))
             for a, b in zip(rk.trajectory, eu.trajectory))
    return {
        "d": d, "rank": spec.rank, "depth": 2, "T": T, "euler_step": settings.euler_step,
        "max_W_difference": dW,
        "max_error_difference": float(np.max(np.abs(rk.distance - eu.distance))),
        "final_error_rk45": float(rk.distance[-1]),
        "final_error_euler": float(eu.distance[-1]),
        "drift_rk45": float(np.max(rk.conserved_drift)),
        "drift_euler": float(np.max(eu.conserved_drift)),
        "w2_minus_w1t_rk45": float(np.linalg.norm(rk.factors[1] - rk.factors[0].T)),
        "w2_minus_w1t_euler": float(np.linalg.norm(eu.factors[1] - eu.factors[0].T)),
        "steps_rk45": int(rk.nsteps), "nfev_rk45": int(rk.nfev), "steps_euler": int(eu.nsteps),
    }


def manifold_comparison(settings: Settings, seed: int) -> dict:
    """Corollary 8: the product of the balanced factor flow (5) equals the manifold flow (31).

    Smallest Figure 1 dimension, depth max(depths), T = 10, both RK45 with the run tolerances:
    the largest ||W_factor(t) - W_manifold(t)||_F on a grid of 0.5.
    """
    d = min(settings.fig1_dims)
    N = max(settings.depths)
    spec = RunSpec(1, N, d, max(2, d // 5), "balanced")
    X = paper_data(d, seed)
    factors = _start(spec, X, seed)
    T = 10.0
    grid = np.linspace(0.0, T, 21)
    tol = dict(rtol=settings.rtol, atol=settings.atol, t_eval=grid, trajectory=True)
    fa = factor_flow(X, None, factors, T, **tol)
    ma = manifold_flow(X, None, product(factors), N, T, rank=spec.rank, **tol)
    from ..manifold import DeepLinearFixedRank

    diff = max(float(np.linalg.norm(product(a) - DeepLinearFixedRank.to_dense(b)))
               for a, b in zip(fa.trajectory, ma.trajectory))
    return {"d": d, "rank": spec.rank, "depth": N, "T": T, "max_difference": diff,
            "norm_W0": float(np.linalg.norm(product(factors)))}


def saddle_table(settings: Settings, seed: int) -> list[dict]:
    """Proposition 30 with :mod:`linrank.critical`: every critical point W_J on M_k.

    X = :func:`paper_data` (saddle_d, seed), k = saddle_k, each depth of ``settings.depths``:
    the number of critical points, global minimizers and strict saddles, whether the computed
    Morse indices equal the closed form, the largest relative spectrum error, and the smallest
    eigenvalue at the minimizer and at the mildest / worst saddle.
    """
    X = paper_data(settings.saddle_d, seed)
    rows = []
    for N in settings.depths:
        cps = list(iter_critical_points(X, settings.saddle_k, N, max_points=10**6, spectra="all"))
        minim = [c for c in cps if c.kind == "global minimizer"]
        sadd = [c for c in cps if c.kind != "global minimizer"]
        rows.append({
            "depth": N, "d": settings.saddle_d, "k": settings.saddle_k, "points": len(cps),
            "minimizers": len(minim), "strict_saddles": len(sadd),
            "saddles_with_negative_eigenvalue": sum(c.computed_smallest < 0 for c in sadd),
            "index_agreement": all(c.computed_index == c.predicted_index for c in cps),
            "max_spectrum_error": max(c.spectrum_error for c in cps),
            "max_gradient_norm": max(c.gradient_norm for c in cps),
            "min_eig_minimizer": min(c.computed_smallest for c in minim),
            "mildest_saddle_eig": max(c.computed_smallest for c in sadd) if sadd else None,
            "worst_saddle_eig": min(c.computed_smallest for c in sadd) if sadd else None,
            "max_index": max(c.computed_index for c in cps),
        })
    return rows


# ---------------------------------------------------------------------- driver
def _cache_path(cache_dir: str, spec: RunSpec, settings: Settings, seed: int) -> str:
    key = json.dumps([asdict(spec), asdict(settings), seed, _CACHE_VERSION], sort_keys=True)
    h = hashlib.sha256(key.encode()).hexdigest()[:16]
    return os.path.join(cache_dir, f"fig{spec.figure}-N{spec.depth}-d{spec.d}-{spec.init}-{h}.npz")


def run_all(specs: Iterable[RunSpec], settings: Settings, seed: int,
            cache_dir: str | None = None,
            progress: Callable[[str], None] | None = None) -> list[RunRecord]:
    """Run every spec (reusing finished runs stored in ``cache_dir``), in order.

    ``progress(label)`` is called after each run. Interrupting loses only the current run.
    """
    out = []
    if cache_dir is not None:
        os.makedirs(cache_dir, exist_ok=True)
    for spec in specs:
        rec = None
        path = None if cache_dir is None else _cache_path(cache_dir, spec, settings, seed)
        if path is not None and os.path.exists(path):
            try:
                rec = RunRecord.from_npz(path)
            except (ValueError, KeyError, OSError):
                rec = None
        if rec is None:
            rec = run_spec(spec, settings, seed)
            if path is not None:
                rec.to_npz(path)
        out.append(rec)
        if progress is not None:
            progress(spec.label)
    return out


def escape_rate_fit(records: Iterable[RunRecord]) -> dict | None:
    r"""Fit :math:`t_{esc}(\delta) = a + \ln(1/\delta)/\rho` over perturbed special starts.

    Near W = 0 the symmetric part :math:`W_1 + W_2^T` grows like :math:`e^{tXX^T}` (rate
    :math:`\lambda_1`) while the start's antisymmetric part decays, so the escape time grows by
    :math:`\ln 10/\lambda_1` per decade of :math:`\delta`: the fitted :math:`\rho` is to be compared
    with :math:`\lambda_1`. Returns None with fewer than two escaped runs.
    """
    pts = [(r.spec.delta, r.summary()["escape_time"], r.extra["lambda_1"]) for r in records
           if r.spec.init == "special" and r.spec.delta > 0]
    pts = [p for p in pts if p[1] is not None]
    if len(pts) < 2:
        return None
    x = np.log(1.0 / np.array([p[0] for p in pts]))
    y = np.array([p[1] for p in pts])
    b, a = np.polyfit(x, y, 1)
    return {"deltas": [p[0] for p in pts], "escape_times": y.tolist(), "intercept": float(a),
            "slope": float(b), "rate": float(1.0 / b), "lambda_1": float(pts[0][2]),
            "max_residual": float(np.max(np.abs(a + b * x - y)))}
