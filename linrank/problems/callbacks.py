"""pymanopt problems on :class:`~linrank.DeepLinearFixedRank` from costs written on the dense W.

pymanopt's own :class:`pymanopt.Problem` expects costs of the factors (u, s, vt). Costs of
deep-linear training are functions of the product W; these helpers take them as written and route
the Euclidean gradient (dense or factored) and Hessian-vector products through the manifold's
exact conversions. Costs of (u, s, vt) with pymanopt's decorators keep working unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pymanopt

from ..fixedrank import all_finite, real_array
from ..manifold import DeepLinearFixedRank

__all__ = ["AmbientProblem", "ambient_problem", "real_cost"]


class AmbientProblem(pymanopt.Problem):
    """A :class:`pymanopt.Problem` whose callbacks take the point as a dense m x n matrix W.

    ``euclidean_gradient`` returns the ambient gradient of the cost at W in any form that
    :meth:`DeepLinearFixedRank.projection` accepts (dense, (U, S, V), LinearOperator);
    ``euclidean_hessian(W, Z)`` returns the Euclidean Hessian-vector product for a dense
    direction Z (the tangent vector as an m x n matrix).
    """

    def __init__(
        self,
        manifold: DeepLinearFixedRank,
        cost: Callable[[np.ndarray], float],
        euclidean_gradient: Callable[[np.ndarray], Any],
        euclidean_hessian: Callable[[np.ndarray, np.ndarray], Any] | None = None,
        preconditioner: Callable[[Any, Any], Any] | None = None,
    ):
        if not isinstance(manifold, DeepLinearFixedRank):
            raise TypeError(
                f"manifold must be a linrank.DeepLinearFixedRank, got {type(manifold).__name__}"
            )
        for name, fn in (("cost", cost), ("euclidean_gradient", euclidean_gradient)):
            if not callable(fn):
                raise TypeError(f"{name} must be callable taking the dense m x n matrix W")
        if euclidean_hessian is not None and not callable(euclidean_hessian):
            raise TypeError("euclidean_hessian must be callable (W, Z) -> m x n, or None")
        if preconditioner is not None and not callable(preconditioner):
            raise TypeError(
                "preconditioner must be callable (point, tangent_vector) -> tangent, or None"
            )

        to_dense = manifold.to_dense

        @pymanopt.function.numpy(manifold)
        def _cost(u, s, vt):
            return real_cost(cost(to_dense((u, s, vt))))

        super().__init__(manifold, _cost, preconditioner=preconditioner)
        self._dense_cost = cost
        self._dense_gradient = euclidean_gradient
        self._dense_hessian = euclidean_hessian

    def _checked_gradient(self, W: np.ndarray) -> Any:
        """The user's gradient at W, refused with a ValueError if dense and not finite."""
        G = self._dense_gradient(W)
        _check_callback_value("euclidean_gradient", G)
        return G

    def dense_loss_and_gradient(self, W: np.ndarray) -> tuple[float, Any]:
        """(cost(W), euclidean_gradient(W)) for a dense m x n matrix W of any rank (the callbacks
        as given; used by :func:`linrank.factor_flow` for a loss of the product)."""
        return real_cost(self._dense_cost(W)), self._checked_gradient(W)

    def gradient_products(self, point: Any) -> tuple[np.ndarray, np.ndarray, float]:
        """(G v, G^T u, f(W)) at the point (u, s, vt), G the Euclidean gradient at W = u diag(s) vt
        (for the flows; the tangent parts of G v and G^T u are exact, from the projection)."""
        u, _, vt = point
        W = self.manifold.to_dense(point)
        t = self.manifold.projection(point, self._checked_gradient(W))
        return t.Up + u @ t.M, t.Vp + vt.T @ t.M.T, real_cost(self._dense_cost(W))

    @property
    def euclidean_gradient(self):
        def gradient(point):
            return self._checked_gradient(self.manifold.to_dense(point))

        return gradient

    @property
    def riemannian_gradient(self):
        manifold = self.manifold

        def gradient(point):
            return manifold.euclidean_to_riemannian_gradient(
                point, self._checked_gradient(manifold.to_dense(point))
            )

        return gradient

    @property
    def euclidean_hessian(self):
        if self._dense_hessian is None:
            raise NotImplementedError(
                "this problem was built without euclidean_hessian; pass one to ambient_problem "
                "or use autograd_problem"
            )
        manifold = self.manifold

        def hessian(point, tangent_vector):
            H = self._dense_hessian(
                manifold.to_dense(point), manifold.tangent_to_dense(point, tangent_vector)
            )
            _check_callback_value("euclidean_hessian", H)
            return H

        return hessian

    @property
    def riemannian_hessian(self):
        manifold = self.manifold
        euclidean_hessian = self.euclidean_hessian

        def hessian(point, tangent_vector):
            W = manifold.to_dense(point)
            return manifold.euclidean_to_riemannian_hessian(
                point,
                self._checked_gradient(W),
                euclidean_hessian(point, tangent_vector),
                tangent_vector,
            )

        return hessian


def real_cost(value: Any) -> float:
    """The cost callback's value as a float: a real number (Python or numpy scalar, or a 0-d
    array), not NaN; anything else is refused naming the callback and what it returned."""
    what = f"{type(value).__name__} {value!r}" if np.ndim(value) == 0 else (
        f"an array of shape {np.shape(value)}"
    )
    if np.ndim(value) != 0 or isinstance(value, (bool, np.bool_, str, bytes)) or value is None:
        raise TypeError(f"the cost callback must return a real number, got {what}"[:300])
    if np.iscomplexobj(value):
        raise TypeError(
            f"the cost callback must return a real number, got the complex {value!r} (complex "
            "values are refused, not cut to their real part)"
        )
    try:
        val = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"the cost callback must return a real number, got {what}"[:300]) from None
    if np.isnan(val):
        raise ValueError(f"the cost callback returned {value!r}: expected a real number")
    return val


def _check_callback_value(name: str, value: Any) -> None:
    """A dense callback value must be real and finite (other forms are checked by the manifold,
    which names the same callback)."""
    if isinstance(value, np.ndarray) or np.isscalar(value):
        arr = real_array(f"the {name} callback's value", value)
        if not all_finite(arr):
            raise ValueError(
                f"the {name} callback returned NaN or inf (at the current point of the optimizer)"
            )


def ambient_problem(
    manifold: DeepLinearFixedRank,
    cost: Callable[[np.ndarray], float],
    euclidean_gradient: Callable[[np.ndarray], Any],
    euclidean_hessian: Callable[[np.ndarray, np.ndarray], Any] | None = None,
    preconditioner: Callable[[Any, Any], Any] | None = None,
) -> pymanopt.Problem:
    """A pymanopt Problem on ``manifold`` from callbacks on the dense matrix W.

    Parameters
    ----------
    manifold : the DeepLinearFixedRank to optimize over.
    cost : W -> float.
    euclidean_gradient : W -> the ambient gradient (dense m x n, or factored (U, S, V), or a
        scipy LinearOperator of shape (m, n)).
    euclidean_hessian : optional (W, Z) -> the Euclidean Hessian of the cost at W applied to the
        dense direction Z (m x n). Needed by TrustRegions.
    preconditioner : optional (point, tangent_vector) -> tangent vector, a symmetric positive
        definite operator used by TrustRegions' inner solver (pymanopt's convention).

    Returns
    -------
    A :class:`pymanopt.Problem` (an :class:`AmbientProblem`) whose Riemannian gradient is
    :math:`\\mathcal{A}_W(P_T \\nabla f)` computed by the manifold.
    """
    return AmbientProblem(manifold, cost, euclidean_gradient, euclidean_hessian, preconditioner)
