r"""The chain engine of :func:`linrank.riemannian_flow`: the flow (31) on M_k integrated as a
balanced chain of N factors of width k, for small depths.

By Corollary 8 (whose chain-rule argument holds for any loss f of the product) the product of the
layer-wise gradient flow from balanced factors is the Riemannian gradient flow of f on
:math:`\mathcal{M}_k` for the metric of depth N. A balanced chain of width k,

.. math::

    W = W_N W_{N-1} \cdots W_1,\quad W_1 = \mathrm{diag}(s^{1/N})\,v^T,\quad
    W_j = \mathrm{diag}(s^{1/N})\ (1 < j < N),\quad W_N = u\,\mathrm{diag}(s^{1/N}),

has rank at most k, and its right-hand side
:math:`\dot W_j = -(W_N \cdots W_{j+1})^T \nabla f(W)\,(W_{j-1} \cdots W_1)^T` needs only the two
products :math:`\nabla f(W) B` and :math:`\nabla f(W)^T W_N` (:math:`B^T = W_{N-1}\cdots W_1`) and
O(N k^2 (m + n)) matrix products: no k x k SVD per evaluation, where the factored engine
(:mod:`linrank.flows.factored`) needs one (about 0.1 ms at k = 30 and 1 ms at k = 100, the bulk
of its right-hand side at full width). Its cost grows with N, the factored engine's does not:
``engine="auto"`` takes the chain for small N only (:func:`chain_is_cheaper`).

What keeps it the Riemannian flow:

* error control on W as in the factored engine: the first-order change of W,
  :math:`\Delta W = \sum_j W_N\cdots W_{j+1} E_j W_{j-1}\cdots W_1` for the factor errors
  :math:`E_j`, in Frobenius norm against ``atol sqrt(m n) + rtol ||W||_F``;
* balance: the flow conserves :math:`D_j = W_{j+1}^T W_{j+1} - W_j W_j^T` exactly (Lemma 2(3)),
  the integrator to its local error. After every step whose imbalance
  :math:`\max_j \|D_j\|_F` exceeds ``rtol`` times :math:`\max_j \|W_j W_j^T\|_F` the chain is
  rebuilt balanced from the SVD of its product (W unchanged to rounding), so the vector field
  followed is the Riemannian one to within the tolerance;
* singular values (records, the collapse test) from the product's SVD at accepted points: QR of
  :math:`W_N` and :math:`B^T`, then the k x k SVD of the R factors' product (absolute error
  ~eps ||W||).

Nothing is divided by a singular value, so small and collapsing singular values are as harmless
as in the factored engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.linalg.lapack import dgeqrf, dgesdd

from ..manifold import FixedRankPoint
from .manifold_base import ManifoldFlowSystem
from .system import LazyEvaluation, StepFailure, safe_norm

__all__ = ["ChainSystem", "chain_is_cheaper"]


def chain_is_cheaper(m: int, n: int, k: int, depth: int) -> bool:
    r"""Whether the chain engine's right-hand side is expected to cost less than the factored
    engine's, from a cost model fitted to measurements (matrix completion, RK45, one BLAS
    thread; BENCHMARKS.md, "Riemannian flow of any loss", section 6): each square layer beyond
    two adds about :math:`8.4 + 1.1\cdot 10^{-4}\, k^2 (m + n)` microseconds per evaluation
    to the chain, and the factored engine costs about :math:`83 + 0.018\, k^{2.5}` microseconds
    more than a chain of depth 2 (its k x k SVD, weights and re-orthonormalization). The chain
    is taken when its extra cost is below 0.6 times the factored engine's. Measured crossovers:
    N ~ 14 at m = n = k = 30, ~ 11 at m = n = k = 100, ~ 6-8 at 120 x 120, k = 10; the rule
    gives N <= 9, 6 and 6. Both engines compute the same flow; the rule only affects speed."""
    if depth < 2:
        return False
    per_layer = 8.4 + 1.1e-4 * k * k * (m + n)
    return (depth - 2) * per_layer <= 0.6 * (83.0 + 0.018 * k**2.5)


def _r_factor(A: np.ndarray) -> np.ndarray:
    """The k x k R factor of a tall (rows >= k) matrix A (Householder QR, LAPACK geqrf)."""
    qr, _, _, info = dgeqrf(A)
    if info != 0:  # pragma: no cover - LAPACK argument error
        raise StepFailure(f"QR failed (LAPACK info {info})")
    return np.triu(qr[: A.shape[1]])


class ChainSystem(ManifoldFlowSystem):
    r"""The flow (31) on M_k as the layer-wise flow of a balanced chain of N factors of width k.

    The state is the concatenation of the raveled :math:`W_1` (k x n), :math:`W_2, \dots,
    W_{N-1}` (k x k) and :math:`W_N` (m x k); ``data`` must give the products with the full
    Euclidean gradient at factors that are not orthonormal (a
    :class:`linrank.problems.base.FactorizationProblem` through
    :class:`linrank.flows.problem_data.ProblemData`). See the module docstring.
    """

    engine = "chain"

    #: relative imbalance above which a step's result is rebuilt balanced (set from rtol)
    balance_tol: float = 1e-8

    def __init__(self, *args: Any):
        super().__init__(*args)
        m, n, k, N = self.m, self.n, self.k, self.depth
        if N < 2:
            raise ValueError("the chain engine needs depth N >= 2")
        self.shapes = [(k, n)] + [(k, k)] * (N - 2) + [(m, k)]
        self.offsets = np.cumsum([0] + [a * b for a, b in self.shapes])
        self.size = float(np.sqrt(m * n))
        self._ones = np.ones(k)
        self._sv_cache: list[tuple[Any, Any]] = []  # (state, s) of the last few states
        self._prefix_cache: list[tuple[Any, Any]] = []  # (state, prefix products)
        self._direct_norm = m * n <= 4 * (m + n) * k  # form dW, else its Gram matrices
        self._probe = np.random.default_rng(20190101).standard_normal((k, min(k, 4)))
        #: number of rebalancing rebuilds (a diagnostic for tests and benchmarks)
        self.rebalanced = 0

    # state representation
    def split(self, y: np.ndarray) -> list[np.ndarray]:
        """W_1, ..., W_N as views into the flat state."""
        o = self.offsets
        return [y[o[j]: o[j + 1]].reshape(self.shapes[j]) for j in range(self.depth)]

    def initial_state(self, p: FixedRankPoint) -> np.ndarray:
        """The balanced chain of the point: diag(r) v^T, diag(r), ..., u diag(r), r = s^(1/N)
        (computed as exp(log(s) / N): no overflow for any s)."""
        r = np.exp(np.log(p.s) / self.depth)
        parts = [r[:, None] * p.vt] + [np.diag(r)] * (self.depth - 2) + [p.u * r]
        return np.concatenate([x.ravel() for x in parts])

    def to_array(self, y: np.ndarray) -> np.ndarray:
        return y

    def from_array(self, y: np.ndarray) -> np.ndarray:
        return np.array(y, dtype=float)

    def _prefix(self, Ws: list[np.ndarray], y: np.ndarray | None = None) -> list[np.ndarray]:
        """R_j = W_j ... W_1 (k x n), j = 1..N-1; kept for the last 8 states ``y`` (by identity:
        the error estimate of a step needs them at its start, whose slope was evaluated)."""
        if y is not None:
            for state, R in self._prefix_cache:
                if state is y:
                    return R
        R = [Ws[0]]
        for W in Ws[1:-1]:
            R.append(W @ R[-1])
        if y is not None:
            self._prefix_cache = [(y, R)] + self._prefix_cache[:7]
        return R

    def _svd_values(self, y: np.ndarray) -> np.ndarray:
        for state, s in self._sv_cache:  # by identity: the integrator asks for the step's two
            if state is y:                # ends several times (error scale, stop test, records)
                return s
        Ws = self.split(y)
        Bt = self._prefix(Ws)[-1]
        if self._direct_norm:  # small m n: the product itself (same absolute accuracy)
            core = Ws[-1] @ Bt
        else:
            core = _r_factor(Ws[-1]) @ _r_factor(Bt.T).T
        _, s, _, info = dgesdd(core, compute_uv=0)
        s = s[: self.k]
        if info != 0 or not np.all(np.isfinite(s)):
            raise StepFailure(f"the singular values of the chain's product are not finite "
                              f"(LAPACK info {info})")
        self._sv_cache = [(y, s)] + self._sv_cache[:3]
        return s

    def singular_values(self, y: np.ndarray) -> np.ndarray:
        return self._svd_values(y)

    def point(self, y: np.ndarray) -> FixedRankPoint:
        Ws = self.split(y)
        Bt = self._prefix(Ws)[-1]
        qa, ra = np.linalg.qr(Ws[-1])
        qb, rb = np.linalg.qr(Bt.T)
        a, s, bt = np.linalg.svd(ra @ rb.T)
        if not (np.all(np.isfinite(s)) and s[-1] > 0):
            raise StepFailure(f"the chain lost rank k = {self.k} (singular values {s})")
        return FixedRankPoint(qa @ a, s, (qb @ bt.T).T.copy())

    # right-hand side
    def rhs(self, y: np.ndarray) -> LazyEvaluation:
        Ws = self.split(y)
        N = self.depth
        R = self._prefix(Ws, y)
        Gb, Gta, loss = self.point_products(Ws[-1], self._ones, R[-1])  # G B, G^T W_N, f
        K = np.empty(y.shape[0])
        Ks = self.split(K)
        np.negative(Gb, out=Ks[-1])
        T = Gta.T  # (W_N ... W_{j+1})^T G for j = N - 1, k x n
        for j in range(N - 2, 0, -1):  # layers W_{j+1}, 0-based j: gradient T R_j^T
            np.matmul(T, R[j - 1].T, out=Ks[j])
            np.negative(Ks[j], out=Ks[j])
            T = Ws[j].T @ T
        np.negative(T, out=Ks[0])

        def values() -> tuple[float, float]:
            return float(loss), safe_norm(float(np.sqrt(K @ K)), lambda: (K,))

        return LazyEvaluation(K, values)

    def advance(self, y: np.ndarray, h: float, coeffs: Sequence[float],
                evals: Sequence[Any]) -> np.ndarray:
        out = y.copy()
        tmp = np.empty_like(y)
        for c, ev in zip(coeffs, evals):
            if c != 0.0:
                np.multiply(ev.K, h * c, out=tmp)
                out += tmp
        return out

    def normalize(self, y: np.ndarray) -> np.ndarray:
        r"""Rebuild the chain balanced when its imbalance exceeds ``balance_tol`` (module
        docstring); otherwise ``y`` itself.

        The imbalance is first estimated from :math:`D_j Z` for a fixed (seeded) k x 4 Gaussian
        Z, four thin products per layer instead of two k x k Gram matrices:
        :math:`\|D_jZ\|_F^2 / 4` is an unbiased estimate of :math:`\|D_j\|_F^2`; the exact
        relative imbalance is computed only when the estimate exceeds half the threshold.
        """
        Ws = self.split(y)
        Z = self._probe
        for j in range(self.depth - 1):
            a, b = Ws[j + 1], Ws[j]
            dz = a.T @ (a @ Z) - b @ (b.T @ Z)
            ref = max(float(np.sum(a * a)), float(np.sum(b * b))) / np.sqrt(self.k)
            if not ref > 0:
                raise StepFailure("a factor of the chain is zero or not finite")
            est = float(np.sqrt(np.sum(dz * dz) / Z.shape[1]))
            if est > 0.5 * self.balance_tol * ref and self._imbalance(a, b) > self.balance_tol:
                self.rebalanced += 1
                return self.initial_state(self.point(y))
        return y

    @staticmethod
    def _imbalance(a: np.ndarray, b: np.ndarray) -> float:
        """||a^T a - b b^T||_F / max(||a^T a||_F, ||b b^T||_F)."""
        upper, lower = a.T @ a, b @ b.T
        ref = max(float(np.linalg.norm(upper)), float(np.linalg.norm(lower)))
        return float(np.linalg.norm(upper - lower)) / ref

    # error control in the Frobenius norm of W
    def _dw_norm(self, base: np.ndarray, E: np.ndarray) -> float:
        """||dW||_F of the first-order change of W for the factor increment E at base:
        dW = E_N B^T + W_N Z with Z = sum_{j<N} (W_{N-1} ... W_{j+1}) E_j (W_{j-1} ... W_1)
        (Horner: Z_j = W_j Z_{j-1} + E_j R_{j-1})."""
        Ws, Es = self.split(base), self.split(E)
        R = self._prefix(Ws, base)
        Z = Es[0]
        for j in range(1, self.depth - 1):
            Z = Ws[j] @ Z
            Z += Es[j] @ R[j - 1]
        if self._direct_norm:
            D = Es[-1] @ R[-1]
            D += Ws[-1] @ Z
            return safe_norm(float(np.sqrt(np.einsum("ij,ij->", D, D))), lambda: (D,))
        X = np.hstack((Es[-1], Ws[-1]))
        Y = np.vstack((R[-1], Z))
        top = max(float(np.max(np.abs(X), initial=0.0)), 1e-300)
        Xs = X / top
        return top * float(np.sqrt(max(float(np.sum((Xs.T @ Xs) * (Y @ Y.T))), 0.0)))

    def error_scale(self, a: np.ndarray, b: np.ndarray, rtol: float, atol: float) -> float:
        na = float(np.linalg.norm(self.singular_values(a)))
        nb = float(np.linalg.norm(self.singular_values(b)))
        return atol + rtol * max(na, nb) / self.size

    def error_norm(self, base: np.ndarray, coeffs: Sequence[float], evals: Sequence[Any],
                   scale: float) -> float:
        E = np.zeros_like(base)
        tmp = np.empty_like(base)
        for c, ev in zip(coeffs, evals):
            if c != 0.0:
                np.multiply(ev.K, c, out=tmp)
                E += tmp
        return self._dw_norm(base, E) / self.size / scale

    def state_norm(self, y: np.ndarray, scale: float) -> float:
        return float(np.linalg.norm(self.singular_values(y))) / self.size / scale
