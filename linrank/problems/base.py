r"""The base of the factorization problems (:mod:`linrank.problems`): a
:class:`pymanopt.Problem` on :class:`~linrank.DeepLinearFixedRank` whose loss is evaluated from the
factors ``(u, s, vt)`` of the point, with a cached residual and the products the flows need.

Its Riemannian gradient is :math:`\mathcal{A}_W(P_T \nabla f)` (eq. (31)) and its Riemannian
Hessian the Levi-Civita one of :func:`linrank.connection.riemannian_hessian`. The losses are sums
of squares over p terms (observed entries, measurements); ``reduction="mean"`` divides the loss,
its gradient and its Hessian by p (the mean over the terms; p = 0 leaves them unscaled: f = 0).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pymanopt

from ..manifold import DeepLinearFixedRank, FixedRankPoint, TangentVector

__all__ = ["FactorizationProblem", "LossOverflowError", "REDUCTIONS", "check_manifold",
           "check_reduction", "half_sum_of_squares", "tangent"]


class LossOverflowError(ValueError):
    """The loss exceeds the largest float (raised instead of returning inf)."""



#: The reductions of the sum-of-squares losses: "sum" (1/2 sum of squares) and "mean" (divided by
#: the number of terms).
REDUCTIONS = ("sum", "mean")


def check_reduction(reduction: object, count: int) -> float:
    """The weight of the loss for ``reduction`` over ``count`` terms: 1 ("sum"), 1 / count
    ("mean"; 1 when count = 0, where the loss is 0 either way)."""
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    return 1.0 / count if reduction == "mean" and count > 0 else 1.0


def half_sum_of_squares(r: np.ndarray, weight: float, what: str) -> float:
    r"""The loss :math:`\tfrac{w}{2}\sum_i r_i^2` of the residuals r, never a silent inf.

    Plain einsum for ordinary scales (no BLAS thread wait); when that overflows, the sum is
    recomputed scaled by :math:`\max_i |r_i|` and returned if it is representable. Raises
    ValueError naming ``what`` if r is not finite, :class:`LossOverflowError` (a ValueError) if the loss exceeds
    the largest float (residuals beyond about
    1e154 / sqrt(p)): rescale the data (the flow of c A at time t is the flow of A at c^2 t for
    these homogeneous quadratic losses, with W scaled by c).
    """
    val = 0.5 * float(np.einsum("i,i->", r, r))
    if val < np.inf:
        return weight * val
    if not np.all(np.isfinite(r)):
        raise ValueError(f"{what} is not finite")
    top = float(np.max(np.abs(r)))  # > 1e150 here, so the products below grow monotonically
    with np.errstate(over="ignore"):
        val = ((0.5 * weight * float(np.sum((r / top) ** 2))) * top) * top
    if not val < np.inf:
        log10 = (np.log(0.5 * weight * float(np.sum((r / top) ** 2))) + 2 * np.log(top)) / np.log(10)
        raise LossOverflowError(
            f"the loss overflows: {what} reaches {top:.3e}, so the loss is ~1e{log10:.0f}, "
            "beyond the largest float (1.8e308); rescale the data (divide the values by their "
            "largest magnitude)"
        )
    return float(val)


def check_manifold(manifold: Any) -> DeepLinearFixedRank:
    """``manifold`` if it is a DeepLinearFixedRank, else a TypeError naming it."""
    if not isinstance(manifold, DeepLinearFixedRank):
        raise TypeError(
            f"manifold must be a linrank.DeepLinearFixedRank, got {type(manifold).__name__}"
        )
    return manifold


def tangent(manifold: DeepLinearFixedRank, xi: Any) -> TangentVector:
    """``xi`` as a TangentVector of the manifold's block shapes (TypeError/ValueError if not)."""
    if not isinstance(xi, (tuple, list)) or len(xi) != 3:
        raise TypeError(f"a tangent vector must be (Up, M, Vp), got {type(xi).__name__}")
    t = TangentVector(*(np.asarray(x, dtype=float) for x in xi))
    m, n, k = manifold.m, manifold.n, manifold.k
    if t.Up.shape != (m, k) or t.M.shape != (k, k) or t.Vp.shape != (n, k):
        raise ValueError(
            f"tangent vector (Up, M, Vp) must have shapes ({m}, {k}), ({k}, {k}), ({n}, {k}); "
            f"got {t.Up.shape}, {t.M.shape}, {t.Vp.shape}"
        )
    return t


class FactorizationProblem(pymanopt.Problem):
    """A :class:`pymanopt.Problem` on DeepLinearFixedRank for a loss evaluated from the factors.

    Subclasses implement ``_residual(point)`` (the data-dependent part computed once per point),
    ``_loss(res)``, ``_gradient(res)`` (an ambient form the manifold accepts) and
    ``_hessian(point, xi)``. The residual of the last point is cached (compared by value, so a
    point changed in place is never mistaken for the cached one): a cost and a gradient at the
    same point, as every pymanopt optimizer asks for, share one pass over the data.

    Attributes beyond pymanopt's: :meth:`loss_and_gradient`, :meth:`gradient_products` (the
    products ``(G v, G^T u, f)`` that the flows need).
    """

    #: "sum" or "mean" (set by the subclass before ``super().__init__``)
    reduction: str = "sum"
    #: the factor of the loss, gradient and Hessian: 1 ("sum") or 1 / p ("mean")
    weight: float = 1.0

    def __init__(self, manifold: DeepLinearFixedRank,
                 preconditioner: Callable[[Any, Any], Any] | None = None):
        check_manifold(manifold)
        if preconditioner is not None and not callable(preconditioner):
            raise TypeError(
                "preconditioner must be callable (point, tangent_vector) -> tangent, or None"
            )

        @pymanopt.function.numpy(manifold)
        def _cost(u, s, vt):
            return self.loss((u, s, vt))

        super().__init__(manifold, _cost, preconditioner=preconditioner)
        self._cache: tuple[tuple[np.ndarray, ...], Any] | None = None

    # ------------------------------------------------------------------ subclass hooks
    def _residual(self, point: FixedRankPoint) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _loss(self, res: Any) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def _gradient(self, res: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _hessian(self, point: FixedRankPoint, xi: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    # ------------------------------------------------------------------ shared machinery
    def _point(self, point: Any) -> FixedRankPoint:
        """Shape and finiteness check of a point (O(k); orthonormality is the caller's)."""
        man = self.manifold
        m, n, k = man.m, man.n, man.k
        if type(point) is FixedRankPoint:  # the flows' hot path: float arrays, no conversion
            u, s, vt = point
            if (type(u) is np.ndarray and type(s) is np.ndarray and type(vt) is np.ndarray
                    and u.dtype == s.dtype == vt.dtype == np.float64 and u.shape == (m, k)
                    and s.shape == (k,) and vt.shape == (k, n)):
                if not np.isfinite(s).all():
                    raise ValueError(f"singular values s must be finite, got {s}")
                return point
        if not isinstance(point, (tuple, list)) or len(point) != 3:
            raise TypeError(f"a point must be (u, s, vt), got {type(point).__name__}")
        u, s, vt = (np.asarray(x, dtype=float) for x in point)
        if u.shape != (m, k) or s.shape != (k,) or vt.shape != (k, n):
            raise ValueError(
                f"point (u, s, vt) must have shapes ({m}, {k}), ({k},), ({k}, {n}); got "
                f"{u.shape}, {s.shape}, {vt.shape}"
            )
        if not np.all(np.isfinite(s)):
            raise ValueError(f"singular values s must be finite, got {s}")
        return FixedRankPoint(u, s, vt)

    def _res(self, point: Any) -> Any:
        p = self._point(point)
        c = self._cache
        if c is not None and all(np.array_equal(a, b) for a, b in zip(c[0], p)):
            return c[1]
        res = self._residual(p)
        self._cache = (tuple(np.array(x, copy=True) for x in p), res)
        return res

    def loss(self, point: Any) -> float:
        """The loss f(W) at the point (u, s, vt)."""
        return self._loss(self._res(point))

    def loss_and_gradient(self, point: Any) -> tuple[float, Any]:
        """(f(W), Euclidean gradient) at the point, from one evaluation of the residual."""
        res = self._res(point)
        return self._loss(res), self._gradient(res)

    def dense_loss_and_gradient(self, W: np.ndarray) -> tuple[float, Any]:
        """(f(W), Euclidean gradient) for a dense m x n matrix W of any rank (the loss is a function
        of the matrix; used by :func:`linrank.factor_flow` on the product of the layers)."""
        W = np.asarray(W, dtype=float)
        shape = (self.manifold.m, self.manifold.n)
        if W.shape != shape:
            raise ValueError(f"W must have shape {shape}, got {W.shape}")
        res = self._dense_residual(W)
        return self._loss(res), self._gradient(res)

    def _dense_residual(self, W: np.ndarray) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def fingerprint_arrays(self) -> list[np.ndarray]:  # pragma: no cover - abstract
        """The arrays that define the loss (checkpoint fingerprints of the flows)."""
        raise NotImplementedError

    def gradient_products(self, point: Any) -> tuple[np.ndarray, np.ndarray, float]:
        """(G v, G^T u, f(W)) at the point (u, s, vt), G the Euclidean gradient, v = vt^T.

        For the flows, whose every evaluation is at a new point: the residual is computed
        directly, without the cache (its comparison and copies cost a third of a right-hand side
        of a small flow). A loss that overflows is returned as inf here (the flows treat a
        non-finite loss as a rejected step at a Runge-Kutta stage and as divergence, status
        "failed", at an accepted point), not raised as by :meth:`loss`."""
        p = self._point(point)
        res = self._residual(p)
        Gv, Gtu = self._products(res, p.u, p.vt.T)
        try:
            loss = self._loss(res)
        except LossOverflowError:
            loss = np.inf
        return Gv, Gtu, loss

    def _products(self, res: Any, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        G = self._gradient(res)
        return np.asarray(G @ v), np.asarray(G.T @ u)

    @property
    def euclidean_gradient(self):
        def gradient(point):
            return self._gradient(self._res(point))

        return gradient

    @property
    def riemannian_gradient(self):
        manifold = self.manifold

        def gradient(point):
            return manifold.euclidean_to_riemannian_gradient(point, self._gradient(self._res(point)))

        return gradient

    @property
    def euclidean_hessian(self):
        def hessian(point, tangent_vector):
            return self._hessian(self._point(point), tangent_vector)

        return hessian

    @property
    def riemannian_hessian(self):
        manifold = self.manifold

        def hessian(point, tangent_vector):
            p = self._point(point)
            return manifold.euclidean_to_riemannian_hessian(
                p, self._gradient(self._res(p)), self._hessian(p, tangent_vector), tangent_vector
            )

        return hessian


