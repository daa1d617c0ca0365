r"""The objective of ``linrank search``: a start's parametrization, its flow and its row.

Set-up (:class:`SearchProblem`): Section 7 data :math:`X` (d x 3d, i.i.d. N(0, 1/d) entries,
:func:`linrank.gaussian_data` with the search's seed), the autoencoder Y = X, the eigenbasis
:math:`E = (u_1, \dots, u_d)` of :math:`XX^T` (eigenvalues :math:`\lambda_1 \ge \dots`), the
minimizer :math:`W^* = U_rU_r^T`.

Parametrization: a vector :math:`x = (P, Q, a, b) \in \mathbb R^{2dr + 2}` (P, Q d x r; a, b
only for r < d) gives

.. math:: B = \frac{s\,\tilde P\tilde Q^T}{\|\tilde P\tilde Q^T\|_F},\qquad
          W(0) = E B E^T,

where :math:`\tilde P`, :math:`\tilde Q` are P, Q with their rows r+1..d (the part off
:math:`\operatorname{span} U_r`) multiplied by :math:`10^{a+b}`, :math:`10^{a-b}` (exponents
clipped to [-12, 12]): the weight of the start off the top eigenspace, on either side, is a
parameter of its own on a log scale, in both directions (towards span U_r and away from it);
random starts have a = b = 0 and Gaussian P, Q. B has rank r for almost every x, Frobenius norm
s = ``scale`` (fixed, so that the search cannot make a start slow by making it small: small
starts are slow for N >= 3 whatever their direction). For
hypotheses that contain (47) the map folds x into (47): column i <= r of B is negated where
:math:`B_{ii} < 0` (:math:`W(0) \to W(0)(I - 2u_iu_i^T)` changes the sign of
:math:`u_i^TW(0)u_i` and of no other :math:`u_j^TW(0)u_j`), so every x lands in (47) up to a
null set. The hypothesis itself (:mod:`linrank.experiments.shared.hypotheses`) decides: a start outside
it is not run and scores :math:`-1 + \min(\text{margin}, 0) < 0` (a penalty that points back
inside).

Evaluation (:meth:`SearchProblem.evaluate`): the manifold flow (31) from W(0)
(:func:`linrank.manifold_flow`, RK45 at ``rtol``/``atol``; balanced factors follow it by
Corollary 8) in chunks of doubling length until :math:`\|W(t) - W^*\|_F \le
\text{tol}\,\|W^*\|_F` (``converged`` at that step's time :math:`t_c`) or the horizon T
(flow time) or ``max_steps``. The objective is

.. math:: f = t_c / T \ \ \text{(converged)},\qquad f = 1 + \|W(T) - W^*\|_F / \|W^*\|_F
          \ \ \text{(not converged)},

so a start that does not converge by the horizon outranks every one that does, and among those
the one farther from :math:`W^*`. A run that did not converge is classified by the critical point
it approaches (Proposition 29: :math:`W_J = \sum_{j\in J}u_ju_j^T`, :math:`|J| \le r`, read off as
:math:`J = \{j: u_j^TW(T)u_j > 1/2\}`): ``approaching`` when
:math:`\|W(T) - W_J\|_F \le 0.05\,\|W^*\|_F` for a J other than the minimizer's, else
``unresolved`` (a budget end is never counted as a counterexample by itself). ``certificate``
names a proof that the run cannot converge, where one applies: r = d and det W(0) < 0 (W(t)
stays in M_d, so det W(t) keeps its sign, and det I = 1), or W(0) inside the invariant set
:math:`\{U_rMU_r^T\}` (exactly: no weight off span U_r) with det M < 0 (docs/theory.rst).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ...data import as_data, gaussian_data
from ...flows import manifold_flow
from ..shared.hypotheses import HYPOTHESES
from ..shared.startfile import eigenbasis, format_matrix

__all__ = ["SearchConfig", "SearchProblem", "APPROACH_TOL", "INVARIANT_TOL"]

#: ||W(T) - W_J|| <= APPROACH_TOL ||W*|| counts as approaching W_J
APPROACH_TOL = 0.05
#: the exponents a, b of the off-span weights 10^a, 10^b are clipped to [-SCALE_EXP, SCALE_EXP]
SCALE_EXP = 12.0
#: off-subspace weight at or below which W(0) counts as inside {U_r M U_r^T}: exactly 0 (a start
#: a little off the set is not certified, it may converge after a long time)
INVARIANT_TOL = 0.0


@dataclass(frozen=True)
class SearchConfig:
    """Everything a search's rows depend on (the search's budget in seconds is not part of it)."""

    hypothesis: str = "theorem31"
    d: int = 3
    rank: int = 3
    depth: int = 3
    seed: int = 0
    horizon: float = 200.0
    tol: float = 1e-6
    scale: float | None = None  # ||W(0)||_F; None: sqrt(rank) = ||W*||_F
    evals: int = 120
    optimizer: str = "cma"
    random: int = 16
    rtol: float = 1e-8
    atol: float = 1e-12
    max_steps: int = 200_000

    def __post_init__(self) -> None:
        if self.hypothesis not in HYPOTHESES:
            raise ValueError(f"hypothesis must be one of {', '.join(HYPOTHESES)}, got "
                             f"{self.hypothesis!r}")
        for name, low in (("d", 1), ("rank", 1), ("depth", 2), ("seed", 0), ("evals", 1),
                          ("random", 0), ("max_steps", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
        from .optim import OPTIMIZERS

        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got "
                             f"{self.optimizer!r}")
        if self.rank > self.d:
            raise ValueError(f"rank must be <= d = {self.d}, got {self.rank}")
        if self.d > 200:
            raise ValueError(f"d must be <= 200 (the search runs thousands of flows), got {self.d}")
        for name in ("horizon", "tol", "rtol", "atol") + (("scale",) if self.scale is not None
                                                         else ()):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (
                    0 < v < math.inf):
                raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
        if self.rtol < 1e-13:
            raise ValueError(f"rtol must be >= 1e-13, got {self.rtol}")

    @property
    def start_scale(self) -> float:
        return math.sqrt(self.rank) if self.scale is None else float(self.scale)

    def to_dict(self) -> dict:
        return asdict(self)


class SearchProblem:
    """Data, eigenbasis, hypothesis and flow settings of a search (module docstring)."""

    def __init__(self, cfg: SearchConfig):
        self.cfg = cfg
        d, r = cfg.d, cfg.rank
        self.X = gaussian_data(d, seed=cfg.seed)
        self.lam, self.E = eigenbasis(self.X)
        self.U_r = self.E[:, :r]
        self.W_star = self.U_r @ self.U_r.T
        self.norm_star = math.sqrt(r)
        self.data = as_data(self.X, None, form="covariance")
        self.trace = float(np.sum(self.lam))
        self.L_star = 0.5 * float(np.sum(self.lam[r:]))
        self.predicate = HYPOTHESES[cfg.hypothesis][0]
        self.fold = cfg.hypothesis in ("conjecture32", "amended", "amended_det")
        self.n_params = 2 * d * r + (2 if r < d else 0)

    # ------------------------------------------------------------------ parametrization
    def matrix(self, x: np.ndarray) -> np.ndarray:
        """B (d x d, in the eigenbasis) of the parameters x (module docstring); zeros if x
        gives the zero matrix."""
        d, r = self.cfg.d, self.cfg.rank
        x = np.asarray(x, dtype=float)
        P = x[: d * r].reshape(d, r).copy()
        Q = x[d * r: 2 * d * r].reshape(d, r).copy()
        if r < d:
            a, b = x[2 * d * r:]
            P[r:] *= 10.0 ** float(np.clip(a + b, -SCALE_EXP, SCALE_EXP))
            Q[r:] *= 10.0 ** float(np.clip(a - b, -SCALE_EXP, SCALE_EXP))
        B = P @ Q.T
        n = float(np.linalg.norm(B))
        if not (n > 0 and math.isfinite(n)):
            return np.zeros((d, d))
        B = B * (self.cfg.start_scale / n)
        if self.fold:
            neg = np.flatnonzero(np.diag(B)[:r] < 0)
            B[:, neg] *= -1.0
        return B

    def inside(self, B: np.ndarray):
        """The hypothesis check of W(0) = E B E^T (None for the zero matrix)."""
        if not np.any(B):
            return None
        return self.predicate(self.E @ B @ self.E.T, self.U_r)

    def random_params(self, rng: np.random.Generator, tries: int = 1000) -> np.ndarray:
        """Standard normal parameters conditioned on the start lying inside the hypothesis."""
        for _ in range(tries):
            x = rng.standard_normal(self.n_params)
            x[2 * self.cfg.d * self.cfg.rank:] = 0.0  # no weighting: Gaussian P, Q
            hc = self.inside(self.matrix(x))
            if hc is not None and hc.holds:
                return x
        raise RuntimeError(f"no start inside {self.cfg.hypothesis} in {tries} random draws")

    # ------------------------------------------------------------------ evaluation
    def _flow(self, W0: np.ndarray) -> dict:
        cfg = self.cfg
        goal = cfg.tol * self.norm_star
        chunk = min(cfg.horizon, 10.0 / max(float(self.lam[0]), 1e-300))
        t_now, steps, state, res = 0.0, 0, W0, None
        t_conv = None
        while True:
            length = min(chunk, cfg.horizon - t_now)
            res = manifold_flow(self.data, None, state, cfg.depth, length, rank=cfg.rank,
                                collapse_tol=1e-300, target=self.W_star, rtol=cfg.rtol,
                                atol=cfg.atol, max_steps=max(1, cfg.max_steps - steps))
            if res.status == "interrupted":
                raise KeyboardInterrupt(res.message)
            steps += res.nsteps
            hit = np.flatnonzero(res.distance <= goal)
            if hit.size:
                t_conv = t_now + float(res.t[hit[0]])
                t_now += float(res.t[-1])
                break
            t_now += float(res.t[-1])
            state = res.point
            if res.status in ("failed", "collapsed") or steps >= cfg.max_steps:
                break
            if t_now >= cfg.horizon * (1 - 1e-12):
                break
            chunk *= 2.0
        return dict(res=res, t_conv=t_conv, t_final=t_now, steps=steps)

    def critical_point(self, W: np.ndarray) -> tuple[tuple[int, ...] | None, float, float]:
        """(J, ||W - W_J||_F / ||W*||_F, L(W_J)) of the critical point W_J nearest W (at most r indices,
        Proposition 29; J None if W has more than r diagonal entries above 1/2)."""
        c = np.einsum("ij,ij->j", self.E, W @ self.E)
        J = tuple(int(j) for j in np.flatnonzero(c > 0.5))
        if len(J) > self.cfg.rank:
            return None, math.nan, math.nan
        EJ = self.E[:, list(J)]
        dist = float(np.linalg.norm(W - EJ @ EJ.T)) / self.norm_star
        return J, dist, 0.5 * (self.trace - float(np.sum(self.lam[list(J)])))

    def evaluate(self, x: np.ndarray) -> dict:
        """The row of the start with parameters x (columns of
        :data:`linrank.experiments.shared.startfile.COLUMNS` but unit, index, of, kind and checksum)."""
        cfg = self.cfg
        B = self.matrix(x)
        row: dict = dict(hypothesis=cfg.hypothesis, d=cfg.d, rank=cfg.rank, depth=cfg.depth,
                         seed=cfg.seed, params=format_matrix(x), B=format_matrix(B))
        hc = self.inside(B)
        if hc is None:
            row.update(objective=-2.0, inside=False, hyp_margin=-1.0, condition_47=False,
                       status="outside")
            return row
        W0 = self.E @ B @ self.E.T
        Boff = B.copy()
        Boff[: cfg.rank, : cfg.rank] = 0.0  # the part off span U_r (no cancellation)
        off = float(np.linalg.norm(Boff) / np.linalg.norm(B))
        row.update(inside=hc.holds, hyp_margin=hc.margin, condition_47=hc.condition_47,
                   margin_47=hc.margin_47, det_r=hc.det_r, off_subspace=off)
        if not hc.holds:
            row.update(objective=-1.0 + min(hc.margin, 0.0), status="outside")
            return row
        out = self._flow(W0)
        res = out["res"]
        W = res.W
        loss = float(res.loss[-1])
        dist = float(np.linalg.norm(W - self.W_star)) / self.norm_star
        J, jdist, LJ = self.critical_point(W)
        optimal = tuple(range(cfg.rank))
        if out["t_conv"] is not None:
            status = "converged"
            objective = out["t_conv"] / cfg.horizon
        else:
            objective = 1.0 + dist
            status = ("approaching" if J is not None and J != optimal and jdist <= APPROACH_TOL
                      else "unresolved")
        cert = ""
        if status != "converged":
            if cfg.rank == cfg.d and np.linalg.det(B) < 0:
                cert = "det W(0) < 0 at r = d"
            elif off <= INVARIANT_TOL and hc.det_r < 0:
                cert = "W(0) in {U_r M U_r^T}, det M < 0"
        row.update(
            objective=objective, status=status, t_converge=out["t_conv"],
            t_final=out["t_final"], nsteps=out["steps"], final_distance=dist,
            final_loss_gap=loss - self.L_star,
            critical_J="" if J is None else "{" + ",".join(str(j + 1) for j in J) + "}",
            critical_distance=jdist, critical_loss_gap=loss - LJ, certificate=cert)
        return row
