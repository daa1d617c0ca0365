r"""The chain engine of :func:`linrank.manifold_flow` and :func:`linrank.riemannian_flow`: the
flow (31) on M_k integrated as a balanced chain of N factors of width k, for small depths.

By Corollary 8 (whose chain-rule argument holds for any loss f of the product) the product of the
layer-wise gradient flow from balanced factors is the Riemannian gradient flow of f on
:math:`\mathcal{M}_k` for the metric of depth N. A balanced chain of width k,

.. math::

    W = W_N W_{N-1} \cdots W_1,\quad W_1 = \mathrm{diag}(s^{1/N})\,v^T,\quad
    W_j = \mathrm{diag}(s^{1/N})\ (1 < j < N),\quad W_N = u\,\mathrm{diag}(s^{1/N}),

has rank at most k, and its right-hand side
:math:`\dot W_j = -(W_N \cdots W_{j+1})^T \nabla f(W)\,(W_{j-1} \cdots W_1)^T` needs only the two
products :math:`\nabla f(W) B` and :math:`\nabla f(W)^T W_N` (:math:`B^T = W_{N-1}\cdots W_1`;
for the data of :math:`L^1` by :func:`linrank.flows.chain_linalg.linear_chain_products`) and
O(N k^2 (m + n)) matrix products: no k x k SVD per evaluation, where the factored engine
(:mod:`linrank.flows.factored`) needs one (about 0.1 ms at k = 30 and 1 ms at k = 100, the bulk
of its right-hand side at full width). Its cost grows with N, the factored engine's does not:
``engine="auto"`` takes the chain for small N only (riemannian_flow: :func:`chain_is_cheaper`;
manifold_flow: N <= :data:`linrank.flows.riemannian.CHAIN_MAX_DEPTH` with RK45).

**Why it resolves tiny singular values.** The factored engine holds s in a k x k core whose
rounding is absolute, :math:`\varepsilon s_1`: :math:`s_k/s_1 \lesssim 10^{-12}` loses its
relative accuracy. Each factor of the chain holds :math:`s^{1/N}` with absolute rounding
:math:`\varepsilon s_1^{1/N}`, which moves :math:`s_k` by a relative
:math:`\sim N\varepsilon(s_1/s_k)^{1/N}` only (5e-11 at N = 3 and :math:`s_k/s_1 = 10^{-16}`), and
nothing here forms W. Three things keep that precision (docs/theory.rst, "Tiny singular
values"):

* singular values, points and rebalancing from the factors, never from the product:
  :func:`linrank.flows.chain_linalg.chain_svd` (a sweep of preconditioned Jacobi SVDs, each
  :math:`s_i` to the relative error the rounding of the factors causes) with
  ``relative_control``; without it (riemannian_flow) the product's SVD as before;
* error control (``relative_control``, set by manifold_flow): the first-order change of W in
  Frobenius norm against ``atol sqrt(m n) + rtol ||W||_F`` as in the factored engine, and also
  the first-order relative change :math:`|l_a^TE_j\rho_a|/r_a` of every singular value r_a of
  every factor below ``rtol`` per step (a normwise control lets s_k drift by rtol s_1 per step);
* balance: the flow conserves :math:`D_j = W_{j+1}^T W_{j+1} - W_j W_j^T` exactly (Lemma 2(3)),
  the integrator to its local error. The chain is rebuilt balanced from :func:`chain_svd`
  (W unchanged to the factors' relative accuracy) after every step whose imbalance
  :math:`\max_j \|D_j\|_F` exceeds ``rtol`` times :math:`\max_j \|W_j W_j^T\|_F`, and (with
  ``relative_control``) whenever the factors' a-th singular values differ by more than ``rtol``
  relative: :math:`D_j` holds the balance of a direction only to an absolute
  :math:`\varepsilon\|W_j\|^2`, all of :math:`r_a^2` once :math:`r_a^2 \lesssim \varepsilon`.

Nothing is divided by a singular value. What the chain cannot do: follow a trajectory whose own
conditioning is worse than its precision (a decay towards a saddle of lower rank amplifies
relative perturbations exponentially; measured at N = 2 in docs/theory.rst). At large N the
chain would resolve nearly everything above underflow (:math:`N\varepsilon(s_1/s_k)^{1/N} \to
N\varepsilon` as :math:`s^{1/N} \to 1`) but costs O(N) per evaluation: ``auto`` uses the
factored engine there, whose cost is independent of N and which resolves
:math:`s_k/s_1 \gtrsim 10^{-12}` (the message says when a run goes below).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.linalg.lapack import dgeqrf

from ..data import LinearData
from ..manifold import FixedRankPoint
from .chain_linalg import chain_svd, linear_chain_products
from .manifold_base import RESOLUTION, ManifoldFlowSystem
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


def _product_svd(A: np.ndarray, Bt: np.ndarray, compute_uv: bool):
    """The SVD of A Bt (A m x k, Bt k x n) from QR of A and of Bt^T and the k x k SVD of the R
    factors' product: absolute error ~eps ||A Bt||."""
    qa, ra = np.linalg.qr(A)
    qb, rb = np.linalg.qr(Bt.T)
    if not compute_uv:
        return np.linalg.svd(ra @ rb.T, compute_uv=False)
    a, s, bt = np.linalg.svd(ra @ rb.T)
    return qa @ a, s, (qb @ bt.T).T.copy()


class ChainSystem(ManifoldFlowSystem):
    r"""The flow (31) on M_k as the layer-wise flow of a balanced chain of N factors of width k.

    The state is the concatenation of the raveled :math:`W_1` (k x n), :math:`W_2, \dots,
    W_{N-1}` (k x k) and :math:`W_N` (m x k); ``data`` must give the products with the full
    Euclidean gradient at factors that are not orthonormal (a
    :class:`linrank.problems.base.FactorizationProblem` through
    :class:`linrank.flows.problem_data.ProblemData`). See the module docstring.
    """

    engine = "chain"
    orientation_name = "det W_j of an inner factor"

    #: relative imbalance above which a step's result is rebuilt balanced (set from rtol)
    balance_tol: float = 1e-8
    #: also keep the relative error of every singular value of every factor below rtol per step
    #: (manifold_flow sets it: tiny singular values followed to relative accuracy)
    relative_control: bool = False

    def __init__(self, *args: Any):
        super().__init__(*args)
        m, n, k, N = self.m, self.n, self.k, self.depth
        if N < 2:
            raise ValueError("the chain engine needs depth N >= 2")
        self.shapes = [(k, n)] + [(k, k)] * (N - 2) + [(m, k)]
        self.offsets = np.cumsum([0] + [a * b for a, b in self.shapes])
        self.size = float(np.sqrt(m * n))
        self._ones = np.ones(k)
        self._sv_cache: list[tuple[Any, bool, Any]] = []  # (state, with vectors, svd)
        self._norm_cache: list[tuple[Any, float]] = []  # (state, ||W||_F)
        self._frames_cache: tuple[Any, Any] = (None, None)  # (state, SVDs of the factors)
        self._rtol = 0.0
        self._prefix_cache: list[tuple[Any, Any]] = []  # (state, prefix products)
        self._direct_norm = m * n <= 4 * (m + n) * k  # form dW, else its Gram matrices
        self._probe = np.random.default_rng(20190101).standard_normal((k, min(k, 4)))
        #: number of rebalancing rebuilds (a diagnostic for tests and benchmarks)
        self.rebalanced = 0

    def _products(self, A: np.ndarray, Bt: np.ndarray):
        """(G B, G^T A, loss) at W = A Bt for factors that are not orthonormal: the data of L^1
        through :func:`linear_chain_products`, a problem through its own point_products."""
        if isinstance(self.data, LinearData):
            return linear_chain_products(self.data, A, Bt, self.orientations)
        return self.point_products(A, self._ones, Bt)

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

    def _norm(self, y: np.ndarray) -> float:
        """||W||_F of the state (error scale), from the product's k x k core (QR of W_N and of
        B^T): absolute error ~eps ||W||, enough for a norm."""
        for state, nrm in self._norm_cache:  # by identity: the integrator asks for the step's
            if state is y:                    # two ends several times
                return nrm
        Ws = self.split(y)
        Bt = self._prefix(Ws)[-1]
        if self._direct_norm:  # small m n: the product itself (same absolute accuracy)
            core = Ws[-1] @ Bt
        else:
            core = _r_factor(Ws[-1]) @ _r_factor(Bt.T).T
        nrm = safe_norm(float(np.sqrt(np.einsum("ij,ij->", core, core))), lambda: (core,))
        if not np.isfinite(nrm):
            raise StepFailure("the chain's product is not finite")
        self._norm_cache = [(y, nrm)] + self._norm_cache[:3]
        return nrm

    def _svd(self, y: np.ndarray, compute_uv: bool):
        """The SVD of the state's product (cached by identity): with ``relative_control``
        :func:`chain_svd` of the factors (relative accuracy), else the product's own SVD
        (:func:`_product_svd`: absolute error ~eps ||W||, 3-17x cheaper at k = 10-30)."""
        for state, uv, out in self._sv_cache:
            if state is y and (uv or not compute_uv):
                return out
        Ws = self.split(y)
        out = chain_svd(Ws, compute_uv) if self.relative_control else _product_svd(
            Ws[-1], self._prefix(Ws)[-1], compute_uv)
        s = out[1] if compute_uv else out
        if not np.all(np.isfinite(s)):
            raise StepFailure(f"the singular values of the chain's product are not finite ({s})")
        self._sv_cache = [(y, compute_uv, out)] + self._sv_cache[:3]
        return out

    def singular_values(self, y: np.ndarray) -> np.ndarray:
        """s of the product from the factors, each s_i to a relative error of about
        N eps (s_1 / s_i)^(1/N) (:func:`linrank.flows.chain_linalg.chain_svd`)."""
        out = self._svd(y, False)
        return out if isinstance(out, np.ndarray) else out[1]

    def point(self, y: np.ndarray) -> FixedRankPoint:
        u, s, vt = self._svd(y, True)
        if not s[-1] > 0:
            raise StepFailure(f"the chain lost rank k = {self.k} (singular values {s})")
        return FixedRankPoint(u.copy(), s.copy(), vt.copy())

    def resolution(self) -> tuple[float, str]:
        """1e-12^N with ``relative_control``: the factors hold s^(1/N), so s_k keeps a relative
        accuracy of about N eps (s_1 / s_k)^(1/N) (:func:`chain_svd`), 1e-4 at s_k / s_1 ~
        1e-12^N; without it the base's 1e-12 (normwise error control, product SVD)."""
        if not self.relative_control:
            return super().resolution()
        return RESOLUTION ** self.depth, (f"each factor holds s^(1/{self.depth}) with absolute "
                                          "rounding eps s_1^(1/N)")

    def _orientation(self, y: np.ndarray) -> float | None:
        """The product of sign det W_j over the inner k x k factors (None for N = 2). On M_k
        each inner factor of a balanced chain has singular values s^(1/N) > 0, so the sign never
        changes; it is computed by LU, right as long as s_k^(1/N) exceeds ~k eps s_1^(1/N)."""
        if self.depth < 3:
            return None
        sign = 1.0
        for W in self.split(y)[1:-1]:
            sign *= float(np.linalg.slogdet(W)[0])
        return sign

    # right-hand side
    def rhs(self, y: np.ndarray) -> LazyEvaluation:
        Ws = self.split(y)
        N = self.depth
        R = self._prefix(Ws, y)
        Gb, Gta, loss = self._products(Ws[-1], R[-1])  # G B, G^T W_N, f
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
        if self.relative_control and self._spread(y) > self.balance_tol:
            return self._rebalance(y, Ws)
        Z = self._probe
        for j in range(self.depth - 1):
            a, b = Ws[j + 1], Ws[j]
            dz = a.T @ (a @ Z) - b @ (b.T @ Z)
            ref = max(float(np.sum(a * a)), float(np.sum(b * b))) / np.sqrt(self.k)
            if not ref > 0:
                raise StepFailure("a factor of the chain is zero or not finite")
            est = float(np.sqrt(np.sum(dz * dz) / Z.shape[1]))
            if est > 0.5 * self.balance_tol * ref and self._imbalance(a, b) > self.balance_tol:
                return self._rebalance(y, Ws)
        return y

    def _rebalance(self, y: np.ndarray, Ws: list[np.ndarray]) -> np.ndarray:
        """The balanced chain of the product's SVD from the factors (:func:`chain_svd`: W kept
        to the factors' relative accuracy), or y itself when an inner factor's determinant
        is not positive (a crossing of det = 0, left to the collapse rule)."""
        if any(np.linalg.slogdet(W)[0] <= 0 for W in Ws[1:-1]):
            return y
        self.rebalanced += 1
        return self.initial_state(self.point(y))

    def _spread(self, y: np.ndarray) -> float:
        r"""The relative spread :math:`\max_a (\max_j r_{j,a} - \min_j r_{j,a}) / \min_j r_{j,a}`
        of the factors' a-th singular values (equal in a balanced chain). The conserved
        :math:`D_j` holds the balance of the a-th direction only to an absolute
        :math:`arepsilon\|W_j\|^2`, which is all of :math:`r_a^2` once :math:`r_a^2 \lesssim
        arepsilon r_1^2`: without this per-direction test the small directions drift out of
        balance (measured: N = 2, s_2/s_1 ~ 1e-16)."""
        r = np.array([f[1] for f in self._frames(y)])
        lo = r.min(axis=0)
        if not np.all(lo > 0):
            return 0.0  # a factor lost rank: left to the collapse rule
        return float(np.max((r.max(axis=0) - lo) / lo))

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
        self._rtol = rtol
        return atol + rtol * max(self._norm(a), self._norm(b)) / self.size

    def _frames(self, y: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """The SVD (L, r, R^T) of every factor of the state y (cached for the last state)."""
        if self._frames_cache[0] is y:
            return self._frames_cache[1]
        out = [np.linalg.svd(W, full_matrices=False) for W in self.split(y)]
        self._frames_cache = (y, out)
        return out

    def _relative_error(self, base: np.ndarray, E: np.ndarray) -> float:
        r"""max over factors j and their singular values r_a of the first-order relative change
        :math:`|l_a^T E_j \rho_a| / r_a` (l_a, rho_a the factor's singular vectors at ``base``):
        for a balanced chain, s_a of the product changes by the sum over j of these, so a bound
        on them keeps every singular value of W, however small, to a relative accuracy."""
        worst = 0.0
        for (L, r, Rt), Ej in zip(self._frames(base), self.split(E)):
            d = np.abs(np.einsum("ia,ij,aj->a", L, Ej, Rt))
            ok = r > 0
            if not np.all(ok):
                return float("inf") if np.any(d[~ok] > 0) else worst
            worst = max(worst, float(np.max(d / r)))
        return worst

    def error_norm(self, base: np.ndarray, coeffs: Sequence[float], evals: Sequence[Any],
                   scale: float) -> float:
        E = np.zeros_like(base)
        tmp = np.empty_like(base)
        for c, ev in zip(coeffs, evals):
            if c != 0.0:
                np.multiply(ev.K, c, out=tmp)
                E += tmp
        err = self._dw_norm(base, E) / self.size / scale
        if self.relative_control and self._rtol > 0:
            err = max(err, self._relative_error(base, E) / self._rtol)
        return err

    def state_norm(self, y: np.ndarray, scale: float) -> float:
        return self._norm(y) / self.size / scale
