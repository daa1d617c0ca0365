r"""Gradient flows of deep linear networks: the layer-wise flow (5) and the Riemannian flow (31).

API summary
-----------
``factor_flow(X, Y, factors, t_end, **options) -> FlowResult``
    The gradient flow (5) of :math:`L^N(W_1, \dots, W_N) = L^1(W_N \cdots W_1)` on the layers,

    .. math:: \dot W_i = -W_{i+1}^T \cdots W_N^T\, \nabla L^1(W)\, W_1^T \cdots W_{i-1}^T ,

    any N >= 1, any widths, balanced or not. Extra options: ``conserved=True`` records the drift
    :math:`\max_j \|D_j(t) - D_j(0)\|_F` of :math:`D_j = W_{j+1}^T W_{j+1} - W_j W_j^T` (Lemma 2(3)).
    The result has ``factors`` (final W_1..W_N).

``manifold_flow(X, Y, W0, depth, t_end, **options) -> FlowResult``
    The Riemannian gradient flow (31) on M_k, :math:`\dot W = -\mathcal{A}_W(\nabla L^1(W))`,
    with state the thin SVD (u, s, vt): memory O((d_x + d_y) k) beyond the data (plus X X^T when
    the data are used as covariances), cost per step independent of the depth. W0 is dense (k =
    its numerical rank, or ``rank=k``) or a point (u, s, vt). The result has ``point``.
    ``engine``: "auto", "factored" or "projected" (see Integrators).

Data: ``X`` (d_x x n) and ``Y`` (d_y x n; ``None`` means Y = X, the autoencoder), or
``covariance=True`` with X := X X^T, Y := Y X^T and optionally ``yy = ||Y||_F^2``, or a
:class:`linrank.network.LinearData` as X.

Common options (keyword only)
    ``method``: "RK45" (default; Dormand-Prince 5(4), adaptive, error-controlled), "RK4" (classical,
    fixed step) or "Euler" (explicit, fixed step: the paper's choice); ``rtol`` (1e-6), ``atol``
    (1e-9): as in scipy's solve_ivp (manifold_flow measures the error in the Frobenius norm of
    the product: ``||E||_F <= atol sqrt(d_x d_y) + rtol ||W||_F`` per step); ``step``: the step
    of RK4/Euler (required for them); ``first_step``, ``max_step``, ``max_steps``;
    ``t_eval``: increasing times in [0, t_end] to record (default: every accepted step; steps are
    shortened to land on them exactly); ``trajectory=True``: keep the state at recorded times;
    ``target``: a d_y x d_x matrix (or point) whose Frobenius distance is recorded;
    ``gtol``: stop when the Riemannian gradient norm is <= gtol; ``checkpoint``: a path (.npz)
    written every ``checkpoint_every`` seconds (default 60) and/or ``checkpoint_steps`` steps,
    at the end and on KeyboardInterrupt; a later call with the same arguments resumes from it
    (``resume=True``) and ends bit-identical to an uninterrupted run; ``progress=True``: a tqdm
    bar over [0, t_end]. manifold_flow also takes ``rank`` and ``collapse_tol`` (default 1e-10):
    the run stops with ``status == "collapsed"`` when
    :math:`s_k < \text{collapse\_tol} \cdot \max(s_1(t), s_1(0))` (Remark 33), not with NaN.

:class:`FlowResult` attributes: ``t``, ``loss`` (L^1 at ``t``), ``grad_norm`` (Riemannian gradient
norm at ``t``; for factor_flow the norm of the layer gradient, equal to it for balanced factors),
``distance`` (or None), ``conserved_drift`` (factor_flow with ``conserved=True``, else None),
``singular_values`` (manifold_flow: s(t), shape (len(t), k)), ``trajectory`` (list of points or of
factor lists, or None), ``W`` (final product, dense), ``point`` / ``factors`` (final state),
``status`` ("completed", "converged", "collapsed", "interrupted", "failed"), ``message``,
``success``, ``t_final``, ``nfev``, ``nsteps``, ``nrejected``, ``method``.

Integrators
-----------
manifold_flow has two engines (option ``engine``; "auto" picks "factored" for N >= 2 and
"projected" for N = 1).

**factored** (:class:`_FactoredSystem`): the dynamical low-rank form of the flow in factors
W = u S v^T, u and v orthonormal, S (k x k) invertible, with the Koch-Lubich equations of motion
of the tangent field :math:`F = -\mathcal{A}_W(P_T \nabla L^1(W))`:
:math:`\dot S = u^T F v`, :math:`\dot u = (I - uu^T) F v S^{-1}`,
:math:`\dot v = (I - vv^T) F^T u S^{-T}`. In the frame of the SVD of S the factor S^{-1} meets
the side weight :math:`p_i = \sigma_i^{2(N-1)/N}` and leaves :math:`\sigma_i^{(N-2)/N}`,
bounded as :math:`\sigma_i \to 0` for N >= 2 (computed as exp of a logarithm, never as a
quotient), so small and collapsing singular values are harmless; for N = 1 the quotient is a
genuine 1/sigma (stiff), hence the projected engine there. The Runge-Kutta method (the same
tableaux) runs on the flat vector (u, S, v); every accepted step re-orthonormalizes u and v by
Cholesky-QR and absorbs the R factors into S (W unchanged to rounding). The error of W is
estimated from the factor errors as :math:`(\|E_u S\|^2 + \|E_S\|^2 + \|S E_v^T\|^2)^{1/2}`
(the Frobenius norm of the first-order change of W, the three terms being orthogonal up to
higher order), so rtol/atol keep their meaning. Per evaluation: one k x k SVD (LAPACK gesdd),
the data products, O((d_x + d_y) k^2) work in ~30 numpy calls; the loss and the gradient norm
are computed only at accepted points. Cost per evaluation independent of the depth, state
O((d_x + d_y) k).

Tested against the dense ODE of Definition 4 at rtol 1e-10: relative error of W <= 1e-9 at
N = 2, 3, 8 and <= 1e-8 at N = 1000 (measured 3e-11 at N = 2, where the projected engine is off
by 8e-8), and at N = 3 along a singular value decaying like t^-3 (relative 1e-6 down to 1e-6).

**projected** (:class:`_ManifoldSystem`): a projected Runge-Kutta method: every stage and the
step are :math:`P_k(W_n + h\sum_j a_{ij} K_j)`, the rank-k truncated SVD of a low-rank ambient sum (each
stage slope :math:`K_j` is a tangent matrix of rank <= 2k, kept factored), computed from two thin
QR factorizations and the SVD of an r x r core, r <= 13k: O((d_x + d_y) k^2) per stage. This is
the Runge-Kutta method applied to the extension :math:`F(P_k(W))` of the vector field, whose
solutions from M_k stay on M_k, followed by a projection that moves the result by the local error
only: it keeps the order of the underlying method (1, 4, 5) and never divides by singular values,
so small singular values are harmless; the weights of :math:`\mathcal{A}_W` come from
:func:`linrank.metric.core_weights` and :func:`linrank.metric.side_weights` (O(k^2), exact at
equal singular values, any depth).
"""

from __future__ import annotations

import hashlib
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pymanopt
from scipy.linalg.lapack import dgesdd as _dgesdd

from .manifold import DeepLinearFixedRank, FixedRankPoint
from .metric import check_depth, core_weights, core_weights_from_log, side_weights
from .network import LinearData, as_data, check_factors, conserved_quantities, product
from .problem_data import ProblemData

__all__ = ["FlowResult", "factor_flow", "manifold_flow", "riemannian_flow"]

_CHECKPOINT_VERSION = 1

# ---------------------------------------------------------------------- tableaux
# Dormand-Prince 5(4) (Hairer, Norsett, Wanner I, Table 5.2), as in scipy's RK45.
_DP_C = np.array([0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0])
_DP_A = [
    [],
    [1 / 5],
    [3 / 40, 9 / 40],
    [44 / 45, -56 / 15, 32 / 9],
    [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
    [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
]
_DP_B = [35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84]
_DP_E = [-71 / 57600, 0.0, 71 / 16695, -71 / 1920, 17253 / 339200, -22 / 525, 1 / 40]
_RK4_A = [[], [0.5], [0.0, 0.5], [0.0, 0.0, 1.0]]
_RK4_B = [1 / 6, 1 / 3, 1 / 3, 1 / 6]

_METHODS = {"rk45": "RK45", "rk4": "RK4", "euler": "Euler"}


def _QUIET() -> np.errstate:
    """Overflow and invalid operations in a step are detected by the driver, not warned about."""
    return np.errstate(over="ignore", invalid="ignore")


class _StepFailure(Exception):
    """A stage could not be evaluated (rank lost, non-finite values)."""


@dataclass
class _Eval:
    """The right-hand side at a state, with the loss and gradient norm there."""

    K: Any
    loss: float
    gnorm: float


# ---------------------------------------------------------------------- result
@dataclass
class FlowResult:
    """Result of :func:`factor_flow` or :func:`manifold_flow` (see the module docstring)."""

    t: np.ndarray
    loss: np.ndarray
    grad_norm: np.ndarray
    method: str
    status: str
    message: str
    t_final: float
    nfev: int
    nsteps: int
    nrejected: int
    depth: int
    distance: np.ndarray | None = None
    conserved_drift: np.ndarray | None = None
    singular_values: np.ndarray | None = None
    trajectory: list | None = None
    point: FixedRankPoint | None = None
    factors: list[np.ndarray] | None = None
    collapse: dict | None = None
    _W: np.ndarray | None = field(default=None, repr=False)

    @property
    def W(self) -> np.ndarray:
        """The final end-to-end matrix as a dense d_y x d_x array (computed on first access)."""
        if self._W is None:
            if self.point is not None:
                self._W = DeepLinearFixedRank.to_dense(self.point)
            else:
                self._W = product(self.factors)
        return self._W

    @property
    def success(self) -> bool:
        """True when the run reached t_end or the gradient tolerance."""
        return self.status in ("completed", "converged")


# ---------------------------------------------------------------------- systems
def _qr_r(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.linalg.qr(A, mode="reduced")


def _lowrank_norm(L: np.ndarray, R: np.ndarray) -> float:
    """||L R^T||_F via thin QR of both factors (absolute error ~ eps ||L|| ||R||, no squaring)."""
    _, Rl = _qr_r(L)
    _, Rr = _qr_r(R)
    return float(np.linalg.norm(Rl @ Rr.T))


def _extend_basis(Q: np.ndarray, L: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Extend the orthonormal Q by the part of span(L) outside span(Q).

    Returns (Q_new, C, D) with L = Q C + Q_new D to rounding (C = Q^T L, D = Q_new^T L).
    Classical Gram-Schmidt twice, a rank-revealing SVD of the remainder (directions below
    1e-13 of the largest column of L are dropped: they change the step by that fraction of
    h ||K||), one more projection and a QR re-orthonormalization: Q stays orthonormal to ~eps.
    """
    C = Q.T @ L
    Z = L - Q @ C
    C2 = Q.T @ Z
    Z -= Q @ C2
    C += C2
    scale = float(np.max(np.linalg.norm(L, axis=0), initial=0.0))
    room = Q.shape[0] - Q.shape[1]
    if scale == 0.0 or room <= 0:
        return Q[:, :0], C, np.zeros((0, L.shape[1]))
    Qz, Rz = np.linalg.qr(Z)
    Ur, Sz, _ = np.linalg.svd(Rz)
    keep = int(np.sum(Sz > 1e-13 * scale))
    keep = min(keep, room)
    if keep == 0:
        return Q[:, :0], C, np.zeros((0, L.shape[1]))
    Qn = Qz @ Ur[:, :keep]
    Qn = Qn - Q @ (Q.T @ Qn)
    Qn, _ = np.linalg.qr(Qn)
    return Qn, C, Qn.T @ Z


class _StepBasis:
    """Orthonormal bases Qu, Qv containing a base point's u, v and the factors of some slopes.

    Every slope K_j = L_j R_j^T is stored by its coordinates (a_j, b_j): K_j = Qu a_j b_j^T Qv^T.
    The left factors of all slopes of one Runge-Kutta step span at most k + 2k s directions
    (a stage point's u lies in the span of the earlier ones), so the truncated SVD of
    W + h sum c_j K_j costs O((d_x + d_y) r k + r^3), r = Qu.shape[1], without any QR of the
    full stack.
    """

    def __init__(self, base: FixedRankPoint):
        self.base = base
        self.evals: list[_Eval] = []
        self.Qu = np.array(base.u)
        self.Qv = np.array(base.vt.T)
        self.coords: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, ev: _Eval) -> None:
        L, R = ev.K
        Qnu, Cu, Du = _extend_basis(self.Qu, L)
        Qnv, Cv, Dv = _extend_basis(self.Qv, R)
        self.Qu = np.hstack((self.Qu, Qnu))
        self.Qv = np.hstack((self.Qv, Qnv))
        self.coords.append((np.vstack((Cu, Du)), np.vstack((Cv, Dv))))
        self.evals.append(ev)

    def combine(self, core: np.ndarray, h: float, coeffs: Sequence[float], n: int) -> np.ndarray:
        """core + h sum_j coeffs[j] a_j b_j^T (coordinates padded with zeros to the full basis)."""
        for c, (a, b) in zip(coeffs, self.coords[:n]):
            if c != 0.0:
                core[: a.shape[0], : b.shape[0]] += (h * c) * (a @ b.T)
        return core


class _ManifoldBase:
    """What both engines of the flow (31) share: the data, depth, rank, target and the collapse
    test (Remark 33) on the singular values."""

    kind = "manifold"

    def __init__(self, data: LinearData, depth: int, k: int, target: Any, collapse_tol: float,
                 s_ref: float):
        self.data = data
        self.depth = depth
        self.k = k
        self.m, self.n = data.d_y, data.d_x
        self.target = target
        self.collapse_tol = collapse_tol
        self.s_ref = s_ref
        self.loss_scale = 0.0 if data.yy is None else 0.5 * data.yy

    def _collapse(self, s: np.ndarray) -> dict | None:
        """The collapse record if min s < collapse_tol * max(s_ref, max s), else None."""
        s_ref = max(self.s_ref, float(np.max(s)))
        i = int(np.argmin(s))
        if s[i] < self.collapse_tol * s_ref:
            return {"index": i, "value": float(s[i]), "reference": s_ref}
        return None


class _ManifoldSystem(_ManifoldBase):
    """Flow (31) on M_k in SVD coordinates; slopes are factored ambient matrices (L, R)."""

    def __init__(self, *args: Any):
        super().__init__(*args)
        self._cache: _StepBasis | None = None

    # state <-> vector
    def pack(self, p: FixedRankPoint) -> np.ndarray:
        return np.concatenate((p.u.ravel(), p.s, p.vt.ravel()))

    def unpack(self, y: np.ndarray) -> FixedRankPoint:
        m, n, k = self.m, self.n, self.k
        u = y[: m * k].reshape(m, k)
        s = y[m * k: m * k + k]
        vt = y[m * k + k:].reshape(k, n)
        return FixedRankPoint(u.copy(), s.copy(), vt.copy())

    def rhs(self, p: FixedRankPoint) -> _Eval:
        u, s, vt = p
        Gv, Gtu, loss = self.data.point_products(u, s, vt)
        M = u.T @ Gv
        Up = Gv - u @ M
        Vp = Gtu - vt.T @ M.T
        try:
            w = core_weights(s, self.depth)
            q = side_weights(s, self.depth)
        except ValueError as exc:
            raise _StepFailure(str(exc)) from exc
        gn2 = float(np.sum(w * M * M) + np.sum(q * (np.einsum("ij,ij->j", Up, Up)
                                                    + np.einsum("ij,ij->j", Vp, Vp))))
        L = -np.hstack((u @ (w * M) + Up * q, u))
        R = np.hstack((vt.T, Vp * q))
        if not (np.all(np.isfinite(L)) and np.all(np.isfinite(R)) and np.isfinite(gn2)):
            raise _StepFailure("the right-hand side is not finite: the solution diverged")
        return _Eval((L, R), loss, float(np.sqrt(max(gn2, 0.0))))

    def _basis(self, base: FixedRankPoint, evals: Sequence[_Eval]) -> _StepBasis:
        """The step's bases, reused while the base point and the leading slopes are the same."""
        c = self._cache
        if (c is None or c.base is not base or len(c.evals) > len(evals)
                or any(e is not f for e, f in zip(c.evals, evals))):
            c = _StepBasis(base)
            self._cache = c
        for ev in evals[len(c.evals):]:
            c.add(ev)
        return c

    def advance(self, p: FixedRankPoint, h: float, coeffs: Sequence[float],
                evals: Sequence[_Eval]) -> FixedRankPoint:
        B = self._basis(p, evals)
        k = self.k
        core = np.zeros((B.Qu.shape[1], B.Qv.shape[1]))
        core[:k, :k] = np.diag(p.s)
        core = B.combine(core, h, coeffs, len(evals))
        if not np.all(np.isfinite(core)):
            raise _StepFailure("the step is not finite")
        try:
            Uc, Sc, Vct = np.linalg.svd(core)
        except np.linalg.LinAlgError as exc:  # pragma: no cover - finite input converges
            raise _StepFailure(f"the truncated SVD failed: {exc}") from exc
        s = Sc[:k]
        if s.size < k or s[-1] <= 0.0:
            raise _StepFailure(f"the step lost rank k = {k} (singular values {Sc[: k + 1]})")
        return FixedRankPoint(B.Qu @ Uc[:, :k], s.copy(), Vct[:k] @ B.Qv.T)

    def scale(self, a: FixedRankPoint, b: FixedRankPoint, rtol: float, atol: float) -> float:
        size = np.sqrt(self.m * self.n)
        return atol + rtol * max(float(np.linalg.norm(a.s)), float(np.linalg.norm(b.s))) / size

    def rms(self, base: FixedRankPoint, coeffs: Sequence[float], evals: Sequence[_Eval],
            sc: float) -> float:
        B = self._basis(base, evals)
        core = B.combine(np.zeros((B.Qu.shape[1], B.Qv.shape[1])), 1.0, coeffs, len(evals))
        return float(np.linalg.norm(core)) / np.sqrt(self.m * self.n) / sc

    def rms_state(self, p: FixedRankPoint, sc: float) -> float:
        return float(np.linalg.norm(p.s)) / np.sqrt(self.m * self.n) / sc

    def extras(self, p: FixedRankPoint) -> dict:
        out = {"sv": p.s.copy()}
        if self.target is not None:
            out["distance"] = _distance_point(p, self.target)
        return out

    def collapsed(self, p: FixedRankPoint) -> dict | None:
        return self._collapse(p.s)

    def finish(self, p: FixedRankPoint) -> dict:
        return {"point": p}

    def traj_item(self, y: np.ndarray) -> Any:
        return self.unpack(y)


class _LazyEval:
    """A right-hand side whose loss and gradient norm are computed only when read.

    Stage evaluations of a Runge-Kutta step never need them; accepted points do (records,
    divergence and gtol tests), and the driver forces them there (:meth:`_Run._eval`).
    """

    __slots__ = ("K", "_fn", "_vals")

    def __init__(self, K: np.ndarray, fn):
        self.K = K
        self._fn = fn
        self._vals: tuple[float, float] | None = None

    def _get(self) -> tuple[float, float]:
        if self._vals is None:
            self._vals = self._fn()
            self._fn = None
        return self._vals

    @property
    def loss(self) -> float:
        return self._get()[0]

    @property
    def gnorm(self) -> float:
        return self._get()[1]


class _FactoredSystem(_ManifoldBase):
    r"""Flow (31) on M_k for depth N >= 2 as a dynamical low-rank ODE in factors W = u S v^T.

    The state is the flat vector (u, S, v), u (d_y x k) and v (d_x x k) orthonormal at accepted
    points, S (k x k) invertible. Koch-Lubich equations of motion for the tangent field
    :math:`F(W) = -\mathcal{A}_W(P_T \nabla L^1(W))`:

    .. math::

        \dot S = u^T F v,\qquad \dot u = (I - uu^T) F v S^{-1},\qquad
        \dot v = (I - vv^T) F^T u S^{-T}.

    With the SVD :math:`S = a\,\mathrm{diag}(\sigma)\,b^T` and :math:`u' = ua`, :math:`v' = vb`:
    :math:`\dot S = -a\,(w \circ u'^T G v')\,b^T`,
    :math:`\dot u = -(I - u'u'^T) G v'\,\mathrm{diag}(\sigma^{(N-2)/N})\,a^T`,
    :math:`\dot v = -(I - v'v'^T) G^T u'\,\mathrm{diag}(\sigma^{(N-2)/N})\,b^T`, since
    :math:`p_i / \sigma_i = \sigma_i^{(N-2)/N}` (:func:`linrank.metric.side_weights`). For
    N >= 2 nothing is divided by a singular value: the right-hand side is bounded as
    :math:`\sigma_k \to 0` (N = 1, where it is not, uses :class:`_ManifoldSystem`). The exact
    solution keeps u^T u = v^T v = I; the Runge-Kutta step keeps it to its local error, and every
    accepted step re-orthonormalizes u and v by Cholesky-QR (positive-diagonal R factors absorbed
    into S, so W is unchanged to rounding). Per evaluation: one k x k SVD, the data products and
    O((d_x + d_y) k^2) work in ~30 numpy calls.
    """

    def __init__(self, *args: Any):
        super().__init__(*args)
        self.size = float(np.sqrt(self.m * self.n))
        k, depth = self.k, self.depth
        self._mk = self.m * k
        self._mkk = self._mk + k * k
        self._r_exp = (depth - 2.0) / depth
        self._q_exp = 2.0 * (depth - 1.0) / depth
        self._svd_cache: tuple[Any, Any] = (None, None)

    # state <-> vector
    def views(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        k = self.k
        return (y[: self._mk].reshape(self.m, k), y[self._mk: self._mkk].reshape(k, k),
                y[self._mkk:].reshape(self.n, k))

    def from_point(self, p: FixedRankPoint) -> np.ndarray:
        return np.concatenate((p.u.ravel(), np.diag(p.s).ravel(), p.vt.T.ravel()))

    def pack(self, y: np.ndarray) -> np.ndarray:
        return y

    def unpack(self, y: np.ndarray) -> np.ndarray:
        return np.array(y, dtype=float)

    def _svd(self, y: np.ndarray):
        c = self._svd_cache
        if c[0] is y:
            return c[1]
        u, S, v = self.views(y)
        a, sig, bt = np.linalg.svd(S)
        out = (u @ a, sig, bt @ v.T)
        self._svd_cache = (y, out)
        return out

    def point(self, y: np.ndarray) -> FixedRankPoint:
        u, s, vt = self._svd(y)
        return FixedRankPoint(u.copy(), s.copy(), vt.copy())

    # right-hand side
    def rhs(self, y: np.ndarray) -> _LazyEval:
        """Slope of (u, S, v) at y. All data terms carry the sign of -G (H = -G), so the slopes
        need no separate negation; the loss and gradient norm are computed on demand."""
        m, n, k = self.m, self.n, self.k
        mk, mkk = self._mk, self._mkk
        u = y[:mk].reshape(m, k)
        v = y[mkk:].reshape(n, k)
        a, sig, bt, info = _dgesdd(y[mk:mkk].reshape(k, k))
        if info != 0 or not sig[-1] > 0.0 or not sig[0] < np.inf:
            raise _StepFailure(f"the state lost rank k = {k} or is not finite (core singular "
                               f"values {sig}, LAPACK info {info})")
        up = u @ a
        vp = v @ bt.T
        data = self.data
        if data.form == "covariance":
            if data.autoencoder:  # one pass over XX^T for both products (memory bound)
                CV = data.Cxx @ np.hstack((vp, up))
                Cv, Cyx_t_u = CV[:, :k], CV[:, k:]
                Cyx_v = Cv
            else:
                Cv = data.Cxx @ vp
                Cyx_v, Cyx_t_u = data.Cyx @ vp, data.Cyx.T @ up
            B = vp.T @ Cv
            Hv = Cyx_v - up @ (sig[:, None] * B)  # -G v'
            Htu = Cyx_t_u - Cv * sig  # -G^T u'
            loss = None
        else:
            Gv, Gtu, loss = data.point_products(up, sig, vp.T)
            Hv, Htu, B = -Gv, -Gtu, None
        Hm = up.T @ Hv  # -M
        Hup = Hv - up @ Hm  # -U_p
        Hvp = Htu - vp @ Hm.T  # -V_p
        lg = np.log(sig)
        w = core_weights_from_log(lg, self.depth)
        rr = np.exp(self._r_exp * lg)  # p / sigma = sigma^((N-2)/N), never a division
        K = np.empty(y.shape[0])
        np.matmul(Hup * rr, a.T, out=K[:mk].reshape(m, k))
        np.matmul(a, (w * Hm) @ bt, out=K[mk:mkk].reshape(k, k))
        np.matmul(Hvp * rr, bt, out=K[mkk:].reshape(n, k))
        q_exp = self._q_exp
        yy = data.yy

        def values() -> tuple[float, float]:
            q = np.exp(q_exp * lg)
            gn2 = float(np.sum(w * Hm * Hm) + q @ (np.einsum("ij,ij->j", Hup, Hup)
                                                    + np.einsum("ij,ij->j", Hvp, Hvp)))
            if loss is None:
                # 0.5 (||Y||^2 - 2 tr(W^T YX^T) + tr(W XX^T W^T)) with u'^T YX^T v' = diag(s) B - M
                s2b = sig * sig * np.diagonal(B)
                val = 0.5 * ((0.0 if yy is None else yy) - float(np.sum(s2b))
                             - 2.0 * float(sig @ np.diagonal(Hm)))
            else:
                val = loss
            return val, float(np.sqrt(max(gn2, 0.0)))

        return _LazyEval(K, values)

    def normalize(self, y: np.ndarray) -> np.ndarray:
        """Re-orthonormalize u and v (Cholesky-QR, R factors into S): W unchanged to rounding."""
        u, S, v = self.views(y)
        try:
            Lu = np.linalg.cholesky(u.T @ u)
            Lv = np.linalg.cholesky(v.T @ v)
        except np.linalg.LinAlgError as exc:
            raise _StepFailure(f"the step lost the rank of u or v: {exc}") from exc
        out = np.empty_like(y)
        k = self.k
        np.matmul(u, np.linalg.inv(Lu).T, out=out[: self._mk].reshape(self.m, k))
        np.matmul(Lu.T @ S, Lv, out=out[self._mk: self._mkk].reshape(k, k))
        np.matmul(v, np.linalg.inv(Lv).T, out=out[self._mkk:].reshape(self.n, k))
        return out

    def advance(self, y: np.ndarray, h: float, coeffs: Sequence[float],
                evals: Sequence[Any]) -> np.ndarray:
        # non-finite results are caught by the next evaluation (the SVD of the core)
        nc = len(coeffs)
        if nc == 1:
            return y + (h * coeffs[0]) * evals[0].K
        return y + np.dot(np.multiply(h, coeffs), np.array([ev.K for ev in evals[:nc]]))

    def _w_norm(self, base: np.ndarray, E: np.ndarray) -> float:
        """||dW||_F for the factor increment E at base (u, v orthonormal there): first order,
        sqrt(||E_u S||^2 + ||E_S||^2 + ||S E_v^T||^2) (the three terms are orthogonal up to the
        components of E_u, E_v along u, v, which are of higher order)."""
        k = self.k
        S = base[self._mk: self._mkk].reshape(k, k)
        Eu = E[: self._mk].reshape(self.m, k) @ S
        Es = E[self._mk: self._mkk]
        Ev = E[self._mkk:].reshape(self.n, k) @ S.T
        return float(np.sqrt(np.vdot(Eu, Eu) + Es @ Es + np.vdot(Ev, Ev)))

    def scale(self, a: np.ndarray, b: np.ndarray, rtol: float, atol: float) -> float:
        sa = a[self._mk: self._mkk]
        sb = b[self._mk: self._mkk]
        return atol + rtol * float(np.sqrt(max(sa @ sa, sb @ sb))) / self.size

    def rms(self, base: np.ndarray, coeffs: Sequence[float], evals: Sequence[Any],
            sc: float) -> float:
        E = np.dot(coeffs, np.array([ev.K for ev in evals[: len(coeffs)]]))
        return self._w_norm(base, E) / self.size / sc

    def rms_state(self, y: np.ndarray, sc: float) -> float:
        s = y[self._mk: self._mkk]
        return float(np.sqrt(s @ s)) / self.size / sc

    def extras(self, y: np.ndarray) -> dict:
        _, s, _ = self._svd(y)
        out = {"sv": s.copy()}
        if self.target is not None:
            out["distance"] = _distance_point(self.point(y), self.target)
        return out

    def collapsed(self, y: np.ndarray) -> dict | None:
        return self._collapse(self._svd(y)[1])

    def finish(self, y: np.ndarray) -> dict:
        return {"point": self.point(y)}

    def traj_item(self, y: np.ndarray) -> Any:
        return self.point(np.asarray(y, dtype=float))


def _distance_point(p: FixedRankPoint, target: Any) -> float:
    if isinstance(target, FixedRankPoint):
        L = np.hstack((p.u * p.s, -(target.u * target.s)))
        R = np.hstack((p.vt.T, target.vt.T))
        return _lowrank_norm(L, R)
    return float(np.linalg.norm(DeepLinearFixedRank.to_dense(p) - target))


class _FactorSystem:
    """Flow (5) on the factors; the state is the concatenation of the raveled factors."""

    kind = "factor"

    def __init__(self, data: LinearData, shapes: list[tuple[int, int]], target: Any,
                 conserved: bool, D0: list[np.ndarray] | None):
        self.data = data
        self.shapes = shapes
        self.sizes = [a * b for a, b in shapes]
        self.offsets = np.cumsum([0] + self.sizes)
        self.target = target
        self.conserved = conserved
        self.D0 = D0
        self.depth = len(shapes)
        self.loss_scale = 0.0 if data.yy is None else 0.5 * data.yy

    def pack(self, y: np.ndarray) -> np.ndarray:
        return y

    def unpack(self, y: np.ndarray) -> np.ndarray:
        return y

    def pack_factors(self, factors: Sequence[np.ndarray]) -> np.ndarray:
        return np.concatenate([np.asarray(W, dtype=float).ravel() for W in factors])

    def split(self, y: np.ndarray) -> list[np.ndarray]:
        return [y[self.offsets[j]: self.offsets[j + 1]].reshape(self.shapes[j])
                for j in range(len(self.shapes))]

    def rhs(self, y: np.ndarray) -> _Eval:
        Ws = self.split(y)
        N = len(Ws)
        prefix = [Ws[0]]  # prefix[j] = W_{j+1} ... W_1
        for j in range(1, N):
            prefix.append(Ws[j] @ prefix[-1])
        loss, G = self.data.loss_and_gradient(prefix[-1])
        grads = [None] * N
        T = G  # T = (W_N ... W_{i+1})^T G
        for i in range(N - 1, -1, -1):
            grads[i] = T @ prefix[i - 1].T if i > 0 else T
            if i > 0:
                T = Ws[i].T @ T
        K = -np.concatenate([g.ravel() for g in grads])
        if not np.all(np.isfinite(K)):
            raise _StepFailure("the right-hand side is not finite: the solution diverged")
        return _Eval(K, loss, float(np.linalg.norm(K)))

    def advance(self, y: np.ndarray, h: float, coeffs: Sequence[float],
                evals: Sequence[_Eval]) -> np.ndarray:
        out = y.copy()
        for c, ev in zip(coeffs, evals):
            if c != 0.0:
                out += (h * c) * ev.K
        if not np.all(np.isfinite(out)):
            raise _StepFailure("the step is not finite")
        return out

    def scale(self, a: np.ndarray, b: np.ndarray, rtol: float, atol: float) -> np.ndarray:
        return atol + rtol * np.maximum(np.abs(a), np.abs(b))

    def rms(self, base: np.ndarray, coeffs: Sequence[float], evals: Sequence[_Eval],
            sc: np.ndarray) -> float:
        acc = np.zeros_like(evals[0].K)
        for c, ev in zip(coeffs, evals):
            if c != 0.0:
                acc += c * ev.K
        return float(np.linalg.norm(acc / sc)) / np.sqrt(acc.size)

    def rms_state(self, y: np.ndarray, sc: np.ndarray) -> float:
        return float(np.linalg.norm(y / sc)) / np.sqrt(y.size)

    def extras(self, y: np.ndarray) -> dict:
        out: dict = {}
        Ws = self.split(y)
        if self.conserved:
            D = conserved_quantities(Ws)
            out["drift"] = max((float(np.linalg.norm(a - b)) for a, b in zip(D, self.D0)),
                               default=0.0)
        if self.target is not None:
            out["distance"] = float(np.linalg.norm(product(Ws) - self.target))
        return out

    def collapsed(self, y: np.ndarray) -> None:
        return None

    def finish(self, y: np.ndarray) -> dict:
        return {"factors": [W.copy() for W in self.split(y)]}

    def traj_item(self, y: np.ndarray) -> Any:
        return [W.copy() for W in self.split(y)]


# ---------------------------------------------------------------------- options
def _check_t_end(t_end: object) -> float:
    if isinstance(t_end, bool) or not isinstance(t_end, (int, float, np.integer, np.floating)):
        raise TypeError(f"t_end must be a real number >= 0, got {t_end!r}")
    t_end = float(t_end)
    if not np.isfinite(t_end) or t_end < 0:
        raise ValueError(f"t_end must be finite and >= 0, got {t_end}")
    return t_end


def _positive(name: str, val: object, allow_none: bool = True) -> float | None:
    if val is None and allow_none:
        return None
    if isinstance(val, bool) or not isinstance(val, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a positive number, got {val!r}")
    val = float(val)
    if not (np.isfinite(val) and val > 0):
        raise ValueError(f"{name} must be finite and positive, got {val}")
    return val


@dataclass
class _Options:
    method: str
    rtol: float
    atol: float
    step: float | None
    first_step: float | None
    max_step: float
    max_steps: int | None
    t_eval: np.ndarray | None
    trajectory: bool
    gtol: float | None
    checkpoint: str | None
    checkpoint_every: float | None
    checkpoint_steps: int | None
    resume: bool
    progress: bool


def _parse_options(t_end: float, method: str = "RK45", rtol: float = 1e-6, atol: float = 1e-9,
                   step: float | None = None, first_step: float | None = None,
                   max_step: float | None = None, max_steps: int | None = None,
                   t_eval: object = None, trajectory: bool = False, gtol: float | None = None,
                   checkpoint: object = None, checkpoint_every: float | None = 60.0,
                   checkpoint_steps: int | None = None, resume: bool = True,
                   progress: bool = False) -> _Options:
    if not isinstance(method, str) or method.lower() not in _METHODS:
        raise ValueError(f"method must be one of 'RK45', 'RK4', 'Euler', got {method!r}")
    method = _METHODS[method.lower()]
    rtol = _positive("rtol", rtol, allow_none=False)
    if isinstance(atol, bool) or not isinstance(atol, (int, float, np.integer, np.floating)):
        raise TypeError(f"atol must be a number >= 0, got {atol!r}")
    atol = float(atol)
    if not (np.isfinite(atol) and atol >= 0):
        raise ValueError(f"atol must be finite and >= 0, got {atol}")
    if rtol < 100 * np.finfo(float).eps:
        raise ValueError(f"rtol must be >= 100 eps ~ 2.2e-14, got {rtol}")
    step = _positive("step", step)
    if method != "RK45" and step is None:
        raise ValueError(f"method {method!r} uses a fixed step: pass step=h > 0")
    if method == "RK45" and step is not None:
        raise ValueError("step= is for the fixed-step methods 'RK4' and 'Euler'; RK45 adapts its "
                         "step (use first_step= / max_step=)")
    first_step = _positive("first_step", first_step)
    max_step = _positive("max_step", max_step)
    if max_steps is not None:
        if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or \
                max_steps < 1:
            raise ValueError(f"max_steps must be a positive integer, got {max_steps!r}")
        max_steps = int(max_steps)
    if t_eval is not None:
        te = np.asarray(t_eval, dtype=float)
        if te.ndim != 1 or te.size == 0:
            raise ValueError(f"t_eval must be a non-empty 1-d array of times, got shape {te.shape}")
        if not np.all(np.isfinite(te)) or np.any(te < 0) or np.any(te > t_end):
            raise ValueError(f"t_eval must lie in [0, t_end] = [0, {t_end}]")
        if np.any(np.diff(te) <= 0):
            raise ValueError("t_eval must be strictly increasing")
        t_eval = te
    gtol = _positive("gtol", gtol)
    if checkpoint is not None:
        if not isinstance(checkpoint, (str, os.PathLike)):
            raise TypeError(f"checkpoint must be a path, got {type(checkpoint).__name__}")
        checkpoint = os.fspath(checkpoint)
    checkpoint_every = _positive("checkpoint_every", checkpoint_every)
    if checkpoint_steps is not None:
        if isinstance(checkpoint_steps, bool) or not isinstance(checkpoint_steps, (int, np.integer)) \
                or checkpoint_steps < 1:
            raise ValueError(f"checkpoint_steps must be a positive integer, got {checkpoint_steps!r}")
        checkpoint_steps = int(checkpoint_steps)
    return _Options(method, rtol, atol, step, first_step,
                    np.inf if max_step is None else max_step, max_steps, t_eval,
                    bool(trajectory), gtol, checkpoint, checkpoint_every, checkpoint_steps,
                    bool(resume), bool(progress))


# ---------------------------------------------------------------------- driver
class _Run:
    """Integrates a system from its initial state; handles grid, stop rules and checkpoints."""

    def __init__(self, system, y0: np.ndarray, t_end: float, opts: _Options, fingerprint: str):
        self.sys = system
        self.t_end = t_end
        self.o = opts
        self.fp = fingerprint
        self.t = 0.0
        self.y = y0
        self.h = np.nan
        self.loss0 = np.nan
        self.nfev = 0
        self.nsteps = 0
        self.nrej = 0
        self.grid_i = 0
        self.status = "running"
        self.message = ""
        self.collapse = None
        self.rec: dict[str, list] = {k: [] for k in
                                     ("t", "loss", "gnorm", "distance", "drift", "sv", "traj")}

    # -------------------------------------------------------------- records
    def _record(self, t: float, y: np.ndarray, ev: _Eval) -> None:
        ex = self.sys.extras(y)
        r = self.rec
        r["t"].append(t)
        r["loss"].append(ev.loss)
        r["gnorm"].append(ev.gnorm)
        for key in ("distance", "drift", "sv"):
            if key in ex:
                r[key].append(ex[key])
        if self.o.trajectory:
            r["traj"].append(self.sys.pack(y).copy())

    def _wants_record(self, t: float) -> bool:
        te = self.o.t_eval
        if te is None:
            return True
        return self.grid_i < te.size and t == te[self.grid_i]

    def _next_stop(self) -> float:
        te = self.o.t_eval
        if te is not None:
            while self.grid_i < te.size and te[self.grid_i] < self.t:
                self.grid_i += 1
            if self.grid_i < te.size and te[self.grid_i] > self.t:
                return float(te[self.grid_i])
        return self.t_end

    # -------------------------------------------------------------- checkpoints
    def _save(self) -> None:
        if self.o.checkpoint is None:
            return
        r = self.rec
        arrays = {
            "version": np.array(_CHECKPOINT_VERSION),
            "fingerprint": np.array(self.fp),
            "scalars": np.array([self.t, self.h, self.loss0], dtype=float),
            "counters": np.array([self.nfev, self.nsteps, self.nrej, self.grid_i], dtype=np.int64),
            "status": np.array(self.status),
            "message": np.array(self.message),
            "y": self.sys.pack(self.y),
            "rec_t": np.array(r["t"], dtype=float),
            "rec_loss": np.array(r["loss"], dtype=float),
            "rec_gnorm": np.array(r["gnorm"], dtype=float),
            "rec_distance": np.array(r["distance"], dtype=float),
            "rec_drift": np.array(r["drift"], dtype=float),
            "rec_sv": _rows(r["sv"]),
            "rec_traj": _rows(r["traj"]),
        }
        if self.collapse is not None:
            arrays["collapse"] = np.array([self.collapse["t"], self.collapse["index"],
                                           self.collapse["value"], self.collapse["reference"]])
        path = self.o.checkpoint
        tmp = f"{path}.tmp-{os.getpid()}.npz"
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)

    def _load(self) -> bool:
        path = self.o.checkpoint
        if path is None or not self.o.resume or not os.path.exists(path):
            return False
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {key: z[key] for key in z.files}
        except Exception as exc:
            raise ValueError(f"checkpoint {path!r} is not a readable linrank checkpoint: {exc}") \
                from exc
        if int(data.get("version", -1)) != _CHECKPOINT_VERSION:
            raise ValueError(f"checkpoint {path!r} has an unknown format version")
        if str(data["fingerprint"]) != self.fp:
            raise ValueError(
                f"checkpoint {path!r} belongs to a different run (data, start, depth or options "
                "differ); delete it, choose another path or pass resume=False"
            )
        self.t, self.h, self.loss0 = (float(x) for x in data["scalars"])
        self.nfev, self.nsteps, self.nrej, self.grid_i = (int(x) for x in data["counters"])
        self.status = str(data["status"])
        if self.status == "interrupted":
            self.status = "running"  # continue where the interrupted run stopped
        self.message = str(data["message"])
        self.y = self.sys.unpack(np.array(data["y"], dtype=float))
        r = self.rec
        r["t"] = [float(x) for x in data["rec_t"]]
        r["loss"] = [float(x) for x in data["rec_loss"]]
        r["gnorm"] = [float(x) for x in data["rec_gnorm"]]
        r["distance"] = [float(x) for x in data["rec_distance"]]
        r["drift"] = [float(x) for x in data["rec_drift"]]
        r["sv"] = [row.copy() for row in data["rec_sv"]]
        r["traj"] = [row.copy() for row in data["rec_traj"]]
        if "collapse" in data:
            c = data["collapse"]
            self.collapse = {"t": float(c[0]), "index": int(c[1]), "value": float(c[2]),
                             "reference": float(c[3])}
        return True

    # -------------------------------------------------------------- stepping
    def _eval(self, y: np.ndarray, full: bool = True) -> _Eval:
        """The right-hand side at y; ``full=False`` (Runge-Kutta stages) skips the loss and the
        gradient norm when the system computes them lazily and only checks the slope."""
        self.nfev += 1
        ev = self.sys.rhs(y)
        if not full and isinstance(ev, _LazyEval):
            if not np.isfinite(ev.K).all():
                raise _StepFailure("the right-hand side is not finite: the solution diverged")
            return ev
        if not (np.isfinite(ev.loss) and np.isfinite(ev.gnorm)):
            raise _StepFailure(
                "the loss or the gradient is not finite: the solution diverged (for the fixed-step "
                "methods the step is probably above the stability limit ~ 2 / (N s_max^(2(N-1)/N)"
                " lambda_max(XX^T)))"
            )
        return ev

    def _stage_point(self, y: np.ndarray, h: float, coeffs, evals) -> np.ndarray:
        return self.sys.advance(y, h, coeffs, evals)

    def _accept_point(self, y: np.ndarray) -> np.ndarray:
        """The system's canonical form of a step's result (re-orthonormalized factors)."""
        norm = getattr(self.sys, "normalize", None)
        return y if norm is None else norm(y)

    def _fixed_step(self, y, ev0: _Eval, h: float):
        if self.o.method == "Euler":
            y_new = self._accept_point(self._stage_point(y, h, [1.0], [ev0]))
            return y_new, self._eval(y_new), 1.0
        evals = [ev0]
        for i in range(1, 4):
            yi = self._stage_point(y, h, _RK4_A[i], evals)
            evals.append(self._eval(yi, full=False))
        y_new = self._accept_point(self._stage_point(y, h, _RK4_B, evals))
        return y_new, self._eval(y_new), 1.0

    def _dp_step(self, y, ev0: _Eval, h: float):
        """One Dormand-Prince attempt: (y_new, ev_new, error norm).

        The last stage (first-same-as-last) is evaluated at the canonical form of y_new; for the
        factored manifold system that differs from y_new by its orthonormality defect, of the
        order of the local error, so the error estimate changes by h times that only.
        """
        evals = [ev0]
        for i in range(1, 6):
            yi = self._stage_point(y, h, _DP_A[i], evals)
            evals.append(self._eval(yi, full=False))
        y_new = self._accept_point(self._stage_point(y, h, _DP_B, evals))
        ev_new = self._eval(y_new)
        evals.append(ev_new)
        sc = self.sys.scale(y, y_new, self.o.rtol, self.o.atol)
        err = h * self.sys.rms(y, _DP_E, evals, sc)
        return y_new, ev_new, err

    def _initial_step(self, y, ev0: _Eval) -> float:
        """Hairer-Norsett-Wanner's starting step (as scipy's select_initial_step), order 4."""
        if self.o.first_step is not None:
            return min(self.o.first_step, self.o.max_step)
        interval = self.t_end - self.t
        sc = self.sys.scale(y, y, self.o.rtol, self.o.atol)
        d0 = self.sys.rms_state(y, sc)
        d1 = self.sys.rms(y, [1.0], [ev0], sc)
        h0 = 1e-6 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / d1
        h0 = min(h0, interval)
        try:
            y1 = self._stage_point(y, h0, [1.0], [ev0])
            ev1 = self._eval(y1, full=False)
            d2 = self.sys.rms(y, [1.0, -1.0], [ev1, ev0], sc) / h0
        except _StepFailure:
            return min(h0, self.o.max_step)
        if d1 <= 1e-15 and d2 <= 1e-15:
            h1 = max(1e-6, h0 * 1e-3)
        else:
            h1 = (0.01 / max(d1, d2)) ** (1 / 5)
        return min(100 * h0, h1, interval, self.o.max_step)

    def run(self) -> None:
        o = self.o
        resumed = self._load()
        if self.status != "running":
            return  # a finished run, loaded from its checkpoint
        try:
            with _QUIET():
                ev = self._eval(self.y)
        except _StepFailure as exc:
            raise ValueError(f"the flow cannot start from this point: {exc}") from exc
        # the flow never increases L: growth by more than max(|L(0)|, L(0 matrix)) is divergence
        if not resumed:
            self.loss0 = ev.loss
        self.loss_margin = max(abs(self.loss0), self.sys.loss_scale)
        if not resumed:
            if o.t_eval is None or o.t_eval[0] == 0.0:
                self._record(0.0, self.y, ev)
                if o.t_eval is not None:
                    self.grid_i = 1
            if o.method == "RK45":
                with _QUIET():
                    self.h = self._initial_step(self.y, ev) if self.t_end > 0 else 0.0
            else:
                self.h = o.step
            if o.gtol is not None and ev.gnorm <= o.gtol:
                self.status, self.message = "converged", "gradient norm <= gtol at t = 0"
                return
        bar = None
        if o.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.t_end, initial=self.t, unit="t", desc=f"{self.sys.kind} flow",
                       bar_format="{l_bar}{bar}| t={n:.4g}/{total:.4g} [{elapsed}<{remaining}]")
        last_save = time.monotonic()
        steps_since_save = 0
        try:
            while self.t < self.t_end:
                if o.max_steps is not None and self.nsteps >= o.max_steps:
                    self.status = "failed"
                    self.message = f"max_steps = {o.max_steps} reached at t = {self.t:.6g}"
                    break
                stop = self._next_stop()
                t, y = self.t, self.y
                h = self.h
                while True:  # attempts (only RK45 repeats)
                    h_try = min(h, stop - t)
                    if t + h_try >= stop - 1e-12 * max(abs(stop), h_try):
                        t_new, h_try = stop, stop - t
                    else:
                        t_new = t + h_try
                    try:
                        with _QUIET():
                            if o.method == "RK45":
                                y_new, ev_new, err = self._dp_step(y, ev, h_try)
                            else:
                                y_new, ev_new, err = self._fixed_step(y, ev, h_try)
                                err = 0.0
                    except _StepFailure as exc:
                        if o.method != "RK45":
                            raise
                        err, fail_msg = np.inf, str(exc)
                    else:
                        fail_msg = ""
                    if o.method != "RK45" or err <= 1.0:
                        break
                    self.nrej += 1
                    factor = 0.2 if not np.isfinite(err) else max(0.2, 0.9 * err ** -0.2)
                    h = h_try * factor
                    if h < 10 * np.spacing(max(abs(t), 1.0)):
                        raise _StepFailure(
                            f"step size underflow at t = {t:.6g}" + (f": {fail_msg}" if fail_msg
                                                                      else "")
                        )
                if o.method == "RK45":
                    factor = 10.0 if err == 0 else min(10.0, 0.9 * err ** -0.2)
                    h_next = min(h_try * factor, o.max_step)
                    if t_new == stop and stop != self.t_end:
                        h_next = max(h_next, min(h, o.max_step))  # a grid cut is not a signal
                else:
                    h_next = o.step
                record = self._wants_record(t_new)
                if record:
                    self._record(t_new, y_new, ev_new)
                    if o.t_eval is not None:
                        self.grid_i += 1
                self.t, self.y, self.h, ev = t_new, y_new, h_next, ev_new
                self.nsteps += 1
                steps_since_save += 1
                if bar is not None:
                    bar.update(t_new - t)
                if ev_new.loss > self.loss0 + self.loss_margin:
                    self.status = "failed"
                    self.message = (
                        f"the loss grew from {self.loss0:.6g} to {ev_new.loss:.6g} at t = {t_new:.6g}"
                        " (a gradient flow never increases it): the solution diverged; for "
                        "Euler/RK4 the step exceeds the stability limit ~ 2 / (N s_max^(2(N-1)/N)"
                        " lambda_max(XX^T))"
                    )
                    break
                col = self.sys.collapsed(y_new)
                if col is not None:
                    col["t"] = t_new
                    self.collapse = col
                    self.status = "collapsed"
                    self.message = (
                        f"singular value s_{col['index'] + 1} = {col['value']:.3e} fell below "
                        f"collapse_tol * s_ref = {self.sys.collapse_tol:.1e} * {col['reference']:.3e}"
                        f" at t = {t_new:.6g}: W(t) leaves M_k (Remark 33)"
                    )
                    if not record:
                        self._record(t_new, y_new, ev_new)
                    break
                if o.gtol is not None and ev.gnorm <= o.gtol:
                    self.status = "converged"
                    self.message = f"gradient norm {ev.gnorm:.3e} <= gtol at t = {t_new:.6g}"
                    if not record:
                        self._record(t_new, y_new, ev_new)
                    break
                if o.checkpoint is not None and (
                    (o.checkpoint_steps is not None and steps_since_save >= o.checkpoint_steps)
                    or (o.checkpoint_every is not None
                        and time.monotonic() - last_save >= o.checkpoint_every)
                ):
                    self._save()
                    last_save = time.monotonic()
                    steps_since_save = 0
            else:
                self.status, self.message = "completed", f"reached t_end = {self.t_end:g}"
        except KeyboardInterrupt:
            # keep what was computed; drop a record written for a step that was not committed
            while self.rec["t"] and self.rec["t"][-1] > self.t:
                for key in self.rec:
                    if len(self.rec[key]) == len(self.rec["t"]):
                        self.rec[key].pop()
            self.status = "interrupted"
            self.message = f"interrupted (KeyboardInterrupt) at t = {self.t:.6g}"
            warnings.warn(f"flow {self.message}; returning the trajectory so far", stacklevel=3)
        except _StepFailure as exc:
            self.status = "failed"
            self.message = f"integration failed at t = {self.t:.6g}: {exc}"
        finally:
            if bar is not None:
                bar.close()
        if self.status == "running":  # pragma: no cover - defensive
            self.status = "failed"
        if self.status == "collapsed":
            warnings.warn(self.message, RuntimeWarning, stacklevel=3)
        self._save()

    # -------------------------------------------------------------- result
    def result(self) -> FlowResult:
        r = self.rec
        n = len(r["t"])
        sysm = self.sys
        res = FlowResult(
            t=np.array(r["t"], dtype=float),
            loss=np.array(r["loss"], dtype=float),
            grad_norm=np.array(r["gnorm"], dtype=float),
            method=self.o.method,
            status=self.status,
            message=self.message,
            t_final=self.t,
            nfev=self.nfev,
            nsteps=self.nsteps,
            nrejected=self.nrej,
            depth=sysm.depth,
            distance=np.array(r["distance"], dtype=float) if r["distance"] else None,
            conserved_drift=np.array(r["drift"], dtype=float) if r["drift"] else None,
            singular_values=(np.array(r["sv"], dtype=float).reshape(n, -1) if r["sv"] else None),
            trajectory=[sysm.traj_item(row) for row in r["traj"]] if self.o.trajectory else None,
            collapse=self.collapse,
        )
        for key, val in sysm.finish(self.y).items():
            setattr(res, key, val)
        return res


def _rows(rows: list) -> np.ndarray:
    """A list of equal-length 1-d arrays as a 2-d array (shape (0, 0) when empty)."""
    return np.array(rows, dtype=float) if rows else np.zeros((0, 0))


def _fingerprint(kind: str, arrays: Sequence[np.ndarray], opts: _Options, extra: tuple) -> str:
    h = hashlib.sha256()
    h.update(kind.encode())
    for a in arrays:
        a = np.ascontiguousarray(a, dtype=float)
        h.update(str(a.shape).encode())
        h.update(memoryview(a).cast("B"))  # no copy of the data
    te = None if opts.t_eval is None else opts.t_eval.tobytes().hex()
    h.update(repr((opts.method, opts.rtol, opts.atol, opts.step, opts.first_step, opts.max_step,
                   opts.max_steps, te, opts.trajectory, opts.gtol, extra)).encode())
    return h.hexdigest()


def _target(target: object, d_y: int, d_x: int, as_point: bool) -> Any:
    if target is None:
        return None
    if isinstance(target, (tuple, list)) and len(target) == 3 and np.ndim(target[1]) == 1:
        k = np.shape(target[1])[0]
        p = DeepLinearFixedRank(d_y, d_x, k).check_point(target)
        return FixedRankPoint(*(np.asarray(x, dtype=float) for x in p)) if as_point else \
            DeepLinearFixedRank.to_dense(p)
    T = np.asarray(target, dtype=float)
    if T.shape != (d_y, d_x):
        raise ValueError(f"target must be a (d_y, d_x) = {(d_y, d_x)} matrix, got shape {T.shape}")
    if not np.all(np.isfinite(T)):
        raise ValueError("target must be finite")
    return T


def _start_point(W0: object, rank: int | None, d_y: int, d_x: int, N: int
                 ) -> tuple[FixedRankPoint, int]:
    """The start of a manifold flow as a point (u, s, vt) and its rank k."""
    if isinstance(W0, (tuple, list)) and len(W0) == 3 and np.ndim(W0[1]) == 1:
        if rank is not None and rank != np.shape(W0[1])[0]:
            raise ValueError(f"rank = {rank} differs from the point's rank {np.shape(W0[1])[0]}")
        k = np.shape(W0[1])[0]
        if k == 0:
            raise ValueError("W0 has rank 0: the flow needs a point of M_k with k >= 1")
        man = DeepLinearFixedRank(d_y, d_x, k, N)
        try:
            p = man.check_point(tuple(np.asarray(x, dtype=float) for x in W0))
        except ValueError as exc:
            raise ValueError(f"W0 is not a valid point (u, s, vt) for data {d_y} x {d_x}: {exc}") \
                from exc
        p = FixedRankPoint(*(np.array(x, dtype=float) for x in p))
    else:
        if isinstance(W0, (str, bytes)) or W0 is None:
            raise TypeError(f"W0 must be a (d_y, d_x) array or a point (u, s, vt), got {W0!r}")
        Wd = np.asarray(W0, dtype=float)
        if Wd.shape != (d_y, d_x):
            raise ValueError(f"W0 must have shape (d_y, d_x) = {(d_y, d_x)}, got {Wd.shape}")
        if not np.all(np.isfinite(Wd)):
            raise ValueError("W0 must be finite")
        u, s, vt = np.linalg.svd(Wd, full_matrices=False)
        tol = max(Wd.shape) * np.finfo(float).eps * (s[0] if s.size else 0.0)
        num_rank = int(np.sum(s > tol))
        if rank is None:
            k = num_rank
        else:
            if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or rank < 1:
                raise ValueError(f"rank must be a positive integer, got {rank!r}")
            k = int(rank)
            if k > num_rank:
                raise ValueError(f"rank = {k} exceeds the numerical rank {num_rank} of W0")
        if k == 0:
            raise ValueError("W0 has rank 0 (it is zero): the flow needs a point of M_k, k >= 1")
        p = FixedRankPoint(u[:, :k].copy(), s[:k].copy(), vt[:k].copy())
    return p, k


# ---------------------------------------------------------------------- public
def factor_flow(
    X: object, Y: object, factors: Sequence[np.ndarray], t_end: float, *,
    conserved: bool = False, target: object = None, covariance: bool = False,
    yy: float | None = None, form: str = "auto", **options: Any,
) -> FlowResult:
    r"""Integrate the layer-wise gradient flow (5) of :math:`L^N` from ``factors`` up to ``t_end``.

    .. math::

        \dot W_i = -\nabla_{W_i} L^N = -W_{i+1}^T \cdots W_N^T\,(W X - Y) X^T\,
        W_1^T \cdots W_{i-1}^T,\qquad W = W_N \cdots W_1 .

    Parameters
    ----------
    X, Y : data (d_x x n, d_y x n; Y None for Y = X) or covariances with ``covariance=True``
        (see the module docstring), or a LinearData as X; or, for any other loss f of the
        product, a pymanopt Problem as X (Y None) that gives f and its Euclidean gradient at a
        dense W of any rank: :func:`linrank.ambient_problem`, :func:`linrank.autograd_problem`,
        :func:`linrank.least_squares_problem`, :func:`linrank.matrix_completion_problem`,
        :func:`linrank.matrix_sensing_problem` (only the loss is used, not the manifold's rank or
        depth). The flow is then :math:`\dot W_i = -W_{i+1}^T\cdots W_N^T \nabla f(W)\,
        W_1^T\cdots W_{i-1}^T`; ``method="Euler", step=h`` is plain gradient descent on the
        layers with step h (the paper's method).
    factors : W_1, ..., W_N with W_j of shape (d_j, d_{j-1}), d_0 = d_x, d_N = d_y; N >= 1.
    t_end : final time >= 0.
    conserved : record the drift max_j ||D_j(t) - D_j(0)||_F of the conserved quantities
        D_j = W_{j+1}^T W_{j+1} - W_j W_j^T (Lemma 2(3)) at the recorded times.
    target : a d_y x d_x matrix (or point (u, s, vt)); its distance ||W(t) - target||_F is recorded.
    **options : method, rtol, atol, step, first_step, max_step, max_steps, t_eval, trajectory,
        gtol, checkpoint, checkpoint_every, checkpoint_steps, resume, progress (module docstring).

    Returns
    -------
    FlowResult with ``factors`` (final) and ``W`` (their product).

    Accuracy: RK45 keeps each step's error in the factor entries below ``atol + rtol |W_j|``
    (scipy's RMS norm); the global error is of that order times the flow's growth rate. Near an
    attracting equilibrium each step may still move the state by ~ the tolerance, so gradient
    norms level off there at about rtol times the gradient's scale.

    Note: with hidden widths above rank(W(0)) the rank is invariant only in exact arithmetic.
    A rank-k critical point such as U_k U_k^T of the autoencoder is a saddle among products of
    higher rank, and rounding errors (for N = 2 growing at a rate ~ lambda_{k+1}) let the flow
    escape from it towards U_{k'} U_{k'}^T, k' = min hidden width, as in Remark 33; the manifold
    flow stays on M_k.
    Cost per right-hand side: O(sum_j d_j d_{j-1} d_x + d_y d_x min(d_x, n)).

    Raises
    ------
    TypeError, ValueError
        Non-finite data or factors, sample counts that differ, factors that do not chain or do
        not match the data, a negative t_end, bad options.
    """
    t_end = _check_t_end(t_end)
    opts = _parse_options(t_end, **options)
    if isinstance(X, pymanopt.Problem):
        if Y is not None or covariance or yy is not None:
            raise ValueError("with a problem as the loss, leave Y, covariance and yy out")
        data = ProblemData(X)
        if not data.has_dense_gradient:
            data.loss_and_gradient(None)  # raises the TypeError that says what is needed
        Ws = check_factors(factors, d_x=data.d_x, d_y=data.d_y)
        data_arrays = data.fingerprint_arrays(product(Ws))
    else:
        data = as_data(X, Y, covariance=covariance, form=form, yy=yy)
        Ws = check_factors(factors, d_x=data.d_x, d_y=data.d_y)
        data_arrays = data.fingerprint_arrays()
    tgt = _target(target, data.d_y, data.d_x, as_point=False)
    D0 = conserved_quantities(Ws) if conserved else None
    system = _FactorSystem(data, [W.shape for W in Ws], tgt, bool(conserved), D0)
    y0 = system.pack_factors(Ws)
    fp = _fingerprint("factor", data_arrays + [y0] + ([tgt] if tgt is not None else []),
                      opts, (t_end, bool(conserved)))
    run = _Run(system, y0, t_end, opts, fp)
    run.run()
    return run.result()


def manifold_flow(
    X: object, Y: object, W0: object, depth: int, t_end: float, *, rank: int | None = None,
    collapse_tol: float = 1e-10, target: object = None, covariance: bool = False,
    yy: float | None = None, form: str = "auto", engine: str = "auto", **options: Any,
) -> FlowResult:
    r"""Integrate the Riemannian gradient flow (31) :math:`\dot W = -\mathcal{A}_W(\nabla L^1(W))`.

    On M_k with the metric of depth N (Definition 4); by Corollary 8 this is the flow of the
    product :math:`W_N \cdots W_1` under (5) from balanced factors. In SVD coordinates

    .. math::

        \dot W = -\big(u\,(w \circ M)\,v^T + U_p\,\mathrm{diag}(p)\,v^T
                      + u\,(V_p\,\mathrm{diag}(p))^T\big),

    with :math:`M = u^T G v`, :math:`U_p = (I - uu^T) G v`, :math:`V_p = (I - vv^T) G^T u`,
    G = grad L^1(W) applied only through the data products, and the weights w, p of
    :mod:`linrank.metric`.

    Parameters
    ----------
    X, Y : data (d_x x n, d_y x n; Y None for Y = X) or covariances with ``covariance=True``,
        or a LinearData as X. With ``form="auto"`` samples are turned into X X^T, Y X^T when
        d_x <= n (cheaper products).
    W0 : the start, a dense (d_y, d_x) array (k = numerical rank unless ``rank``) or a point
        (u, s, vt) with orthonormal u, vt and s > 0.
    depth : N >= 1 (N = 1: the Euclidean flow projected to M_k).
    t_end : final time >= 0.
    rank : the rank k for a dense W0 (its k-th singular value must be positive).
    collapse_tol : the run stops with status "collapsed" when the smallest singular value drops
        below ``collapse_tol * max(s_1(t), s_1(0))``.
    target : a d_y x d_x matrix or a point; ||W(t) - target||_F is recorded (from factors, error
        ~eps ||W||, for a point target).
    engine : "auto" (default: "factored" for N >= 2, "projected" for N = 1), "factored" (the
        dynamical low-rank ODE in factors u S v^T, Koch-Lubich; N >= 2 only, since for N = 1 its
        right-hand side divides by the singular values) or "projected" (projected Runge-Kutta
        with truncated SVDs of low-rank sums; any N). See the module docstring.
    **options : see the module docstring.

    Returns
    -------
    FlowResult with ``point`` (final (u, s, vt)), ``W``, ``singular_values``.

    Accuracy: RK45 keeps each step's local error below ``atol sqrt(d_x d_y) + rtol ||W||_F``
    in Frobenius norm. Memory O((d_x + d_y) k) beyond the data, cost per right-hand side
    O((d_x + d_y) k^2 + products with the data), independent of the depth.

    Raises
    ------
    TypeError, ValueError
        Non-finite data or W0, sample counts that differ, W0 of the wrong shape or rank 0,
        a negative t_end, bad options.
    """
    N = check_depth(depth)
    t_end = _check_t_end(t_end)
    opts = _parse_options(t_end, **options)
    engine = _engine(engine, N)
    ct = _collapse_tol(collapse_tol)
    data = as_data(X, Y, covariance=covariance, form=form, yy=yy)
    d_y, d_x = data.d_y, data.d_x
    p, k = _start_point(W0, rank, d_y, d_x, N)
    return _run_manifold(data, data.fingerprint_arrays(), p, N, k, t_end, opts, ct, target,
                         engine, "manifold")


def _engine(engine: object, N: int) -> str:
    if not isinstance(engine, str) or engine not in ("auto", "factored", "projected"):
        raise ValueError(f"engine must be 'auto', 'factored' or 'projected', got {engine!r}")
    if engine == "auto":
        engine = "factored" if N >= 2 else "projected"
    if engine == "factored" and N < 2:
        raise ValueError("engine='factored' needs depth N >= 2 (for N = 1 its right-hand side "
                         "divides by the singular values); use 'projected' or 'auto'")
    return engine


def _collapse_tol(collapse_tol: object) -> float:
    ct = _positive("collapse_tol", collapse_tol, allow_none=False)
    if ct >= 1:
        raise ValueError(f"collapse_tol must be < 1, got {ct}")
    return ct


def _run_manifold(data: Any, data_arrays: list, p: FixedRankPoint, N: int, k: int, t_end: float,
                  opts: _Options, ct: float, target: object, engine: str, kind: str) -> FlowResult:
    """The flow (31) of ``data``'s loss on M_k from p: the part manifold_flow and
    riemannian_flow share (system, fingerprint, driver)."""
    tgt = _target(target, data.d_y, data.d_x, as_point=True)
    cls = _FactoredSystem if engine == "factored" else _ManifoldSystem
    system = cls(data, N, k, tgt, ct, float(np.max(p.s)))
    y0 = system.from_point(p) if engine == "factored" else p
    tg_arrays = [] if tgt is None else (list(tgt) if isinstance(tgt, FixedRankPoint) else [tgt])
    fp = _fingerprint(kind, data_arrays + [np.concatenate((p.u.ravel(), p.s, p.vt.ravel()))]
                      + tg_arrays, opts, (t_end, N, k, ct, engine))
    run = _Run(system, y0, t_end, opts, fp)
    run.run()
    return run.result()


def riemannian_flow(
    problem: pymanopt.Problem, x0: object, t_end: float, *, collapse_tol: float = 1e-10,
    target: object = None, engine: str = "auto", **options: Any,
) -> FlowResult:
    r"""The Riemannian gradient flow :math:`\dot x = -\operatorname{grad} f(x)` of any pymanopt
    Problem on :class:`~linrank.DeepLinearFixedRank`.

    With the manifold's depth N and rank k this is :math:`\dot W = -\mathcal{A}_W(P_T\nabla f(W))`
    on :math:`\mathcal{M}_k` (eq. (31) with the loss f in place of :math:`L^1`): by the chain-rule
    argument of Corollary 8, the end-to-end matrix of the layer-wise gradient flow of
    :math:`f(W_N\cdots W_1)` from balanced factors (:func:`factor_flow` with the problem). Same
    integrators, engines, options, result, checkpoints, interrupts, progress bar and collapse
    handling as :func:`manifold_flow` (see the module docstring); the cost per right-hand side is
    one gradient evaluation of the problem plus O((m + n) k^2 + k^3), independent of N.

    Parameters
    ----------
    problem : a :class:`pymanopt.Problem` on a DeepLinearFixedRank (m x n, rank k, depth N):
        :func:`linrank.matrix_completion_problem`, :func:`linrank.matrix_sensing_problem`,
        :func:`linrank.least_squares_problem`, :func:`linrank.ambient_problem`,
        :func:`linrank.autograd_problem`, or any problem whose Riemannian gradient the manifold
        computes (pymanopt's autodiff costs of (u, s, vt) included: then
        :math:`P_T\nabla f = \mathcal{A}_W^{-1}\operatorname{grad} f` is recovered from it).
    x0 : the start, a point (u, s, vt) of rank k or a dense m x n array of numerical rank k.
    t_end : final time >= 0.
    collapse_tol, target, engine, **options : as in :func:`manifold_flow`.

    Returns
    -------
    FlowResult with ``point``, ``W``, ``singular_values``; ``loss`` is f.

    Raises
    ------
    TypeError, ValueError
        Not a problem on a DeepLinearFixedRank; x0 of the wrong shape or rank, not finite; bad
        options. A loss that is not finite at x0 raises; later, a non-finite loss or gradient ends
        the run with status "failed".
    """
    data = ProblemData(problem)
    man = data.manifold
    N, k = man.depth, man.k
    t_end = _check_t_end(t_end)
    opts = _parse_options(t_end, **options)
    engine = _engine(engine, N)
    ct = _collapse_tol(collapse_tol)
    p, k0 = _start_point(x0, None, data.d_y, data.d_x, N)
    if k0 != k:
        raise ValueError(f"x0 has rank {k0}, the problem's manifold has rank k = {k}: start on M_k "
                         "(truncate a dense start yourself if that is what you want)")
    return _run_manifold(data, data.fingerprint_arrays(p), p, N, k, t_end, opts, ct, target,
                         engine, "riemannian")
