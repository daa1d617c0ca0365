r"""The projected engine of the flow (31): a projected Runge-Kutta method on M_k, any depth.

Every stage and the step are :math:`P_k(W_n + h\sum_j a_{ij} K_j)`, the rank-k truncated SVD
of a low-rank ambient sum (each stage slope :math:`K_j` is a tangent matrix of rank <= 2k, kept
factored), computed from orthonormal bases extended stage by stage (:class:`StepBasis`) and the
SVD of an r x r core, r <= 13k: O((d_x + d_y) k^2) per stage. This is the Runge-Kutta method
applied to the extension :math:`F(P_k(W))` of the vector field, whose solutions from M_k stay on
M_k, followed by a projection that moves the result by the local error only: it keeps the order
of the underlying method (1, 4, 5) and never divides by singular values, so small singular values
are harmless; the weights of :math:`\mathcal{A}_W` come from :func:`linrank.metric.core_weights`
and :func:`linrank.metric.side_weights` (O(k^2), exact at equal singular values, any depth).
Used for depth 1, where the factored engine would divide by the singular values.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..manifold import FixedRankPoint
from ..metric import core_weights, side_weights
from .manifold_base import ManifoldFlowSystem
from .system import Evaluation, StepFailure, safe_norm

__all__ = ["ProjectedSystem", "StepBasis", "extend_basis"]


def _norm(a: np.ndarray) -> float:
    """The Frobenius norm, also where the squares overflow (:func:`safe_norm`)."""
    return safe_norm(float(np.linalg.norm(a)), lambda: (a,))


def extend_basis(Q: np.ndarray, L: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


class StepBasis:
    """Orthonormal bases Qu, Qv containing a base point's u, v and the factors of some slopes.

    Every slope K_j = L_j R_j^T is stored by its coordinates (a_j, b_j): K_j = Qu a_j b_j^T Qv^T.
    The left factors of all slopes of one Runge-Kutta step span at most k + 2k s directions
    (a stage point's u lies in the span of the earlier ones), so the truncated SVD of
    W + h sum c_j K_j costs O((d_x + d_y) r k + r^3), r = Qu.shape[1], without any QR of the
    full stack.
    """

    def __init__(self, base: FixedRankPoint):
        self.base = base
        self.evals: list[Evaluation] = []
        self.Qu = np.array(base.u)
        self.Qv = np.array(base.vt.T)
        self.coords: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, ev: Evaluation) -> None:
        L, R = ev.K
        Qnu, Cu, Du = extend_basis(self.Qu, L)
        Qnv, Cv, Dv = extend_basis(self.Qv, R)
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


class ProjectedSystem(ManifoldFlowSystem):
    """Flow (31) on M_k in SVD coordinates; states are points (u, s, vt), slopes are factored
    ambient matrices (L, R) with K = L R^T."""

    engine = "projected"

    def __init__(self, *args):
        super().__init__(*args)
        self._cache: StepBasis | None = None

    # state representation
    def initial_state(self, p: FixedRankPoint) -> FixedRankPoint:
        return p

    def to_array(self, p: FixedRankPoint) -> np.ndarray:
        return np.concatenate((p.u.ravel(), p.s, p.vt.ravel()))

    def from_array(self, y: np.ndarray) -> FixedRankPoint:
        m, n, k = self.m, self.n, self.k
        u = y[: m * k].reshape(m, k)
        s = y[m * k: m * k + k]
        vt = y[m * k + k:].reshape(k, n)
        return FixedRankPoint(u.copy(), s.copy(), vt.copy())

    def singular_values(self, p: FixedRankPoint) -> np.ndarray:
        return p.s

    def point(self, p: FixedRankPoint) -> FixedRankPoint:
        return p

    def rhs(self, p: FixedRankPoint) -> Evaluation:
        u, s, vt = p
        Gv, Gtu, loss = self.point_products(u, s, vt)
        M = u.T @ Gv
        Up = Gv - u @ M
        Vp = Gtu - vt.T @ M.T
        try:
            w = core_weights(s, self.depth)
            q = side_weights(s, self.depth)
        except ValueError as exc:
            raise StepFailure(str(exc)) from exc
        gn2 = float(np.sum(w * M * M) + np.sum(q * (np.einsum("ij,ij->j", Up, Up)
                                                    + np.einsum("ij,ij->j", Vp, Vp))))
        L = -np.hstack((u @ (w * M) + Up * q, u))
        R = np.hstack((vt.T, Vp * q))
        gn = safe_norm(float(np.sqrt(max(gn2, 0.0))),
                       lambda: (np.sqrt(w) * M, Up * np.sqrt(q), Vp * np.sqrt(q)))
        if not (np.all(np.isfinite(L)) and np.all(np.isfinite(R)) and np.isfinite(gn)):
            raise StepFailure("the right-hand side is not finite: the solution diverged")
        return Evaluation((L, R), loss, gn)

    def _basis(self, base: FixedRankPoint, evals: Sequence[Evaluation]) -> StepBasis:
        """The step's bases, reused while the base point and the leading slopes are the same."""
        c = self._cache
        if (c is None or c.base is not base or len(c.evals) > len(evals)
                or any(e is not f for e, f in zip(c.evals, evals))):
            c = StepBasis(base)
            self._cache = c
        for ev in evals[len(c.evals):]:
            c.add(ev)
        return c

    def advance(self, p: FixedRankPoint, h: float, coeffs: Sequence[float],
                evals: Sequence[Evaluation]) -> FixedRankPoint:
        B = self._basis(p, evals)
        k = self.k
        core = np.zeros((B.Qu.shape[1], B.Qv.shape[1]))
        core[:k, :k] = np.diag(p.s)
        core = B.combine(core, h, coeffs, len(evals))
        if not np.all(np.isfinite(core)):
            raise StepFailure("the step is not finite")
        try:
            Uc, Sc, Vct = np.linalg.svd(core)
        except np.linalg.LinAlgError as exc:  # pragma: no cover - finite input converges
            raise StepFailure(f"the truncated SVD failed: {exc}") from exc
        s = Sc[:k]
        if s.size < k or s[-1] <= 0.0:
            raise StepFailure(f"the step lost rank k = {k} (singular values {Sc[: k + 1]})")
        return FixedRankPoint(B.Qu @ Uc[:, :k], s.copy(), Vct[:k] @ B.Qv.T)

    def error_scale(self, a: FixedRankPoint, b: FixedRankPoint, rtol: float,
                    atol: float) -> float:
        size = np.sqrt(self.m * self.n)
        return atol + rtol * max(_norm(a.s), _norm(b.s)) / size

    def error_norm(self, base: FixedRankPoint, coeffs: Sequence[float],
                   evals: Sequence[Evaluation], scale: float) -> float:
        B = self._basis(base, evals)
        core = B.combine(np.zeros((B.Qu.shape[1], B.Qv.shape[1])), 1.0, coeffs, len(evals))
        return _norm(core) / np.sqrt(self.m * self.n) / scale

    def state_norm(self, p: FixedRankPoint, scale: float) -> float:
        return _norm(p.s) / np.sqrt(self.m * self.n) / scale
