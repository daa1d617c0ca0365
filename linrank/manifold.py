r"""The fixed-rank manifold :math:`\mathcal{M}_k` with the deep-linear metric, for pymanopt.

:class:`DeepLinearFixedRank` is the manifold of m x n real matrices of rank k with the Riemannian
metric of Bah, Rauhut, Terstiege and Westdickenberg (2019), eq. (29)/(30):

.. math::

    g_W(a, b) = \langle \mathcal{A}_W^{-1}(a), b \rangle_F ,

where :math:`\mathcal{A}_W` is the operator of Definition 4 (see :mod:`linrank.metric`). Training
:math:`W = W_N \cdots W_1` by gradient flow from balanced factors is the Riemannian gradient flow of
:math:`L^1` for this metric (Theorem 5 / Corollary 8). Depth 1 is the embedded (Euclidean) metric
of pymanopt's ``FixedRankEmbedded``, for which this class is a drop-in replacement.

This module is the thin pymanopt adapter on top of the layers :mod:`linrank.fixedrank`
(representation, projection, retractions), :mod:`linrank.metric` (A_W, g) and
:mod:`linrank.connection` (Levi-Civita connection, Hessian): every method delegates to them.

Representation (as in pymanopt)
-------------------------------
* A point is a thin SVD ``(u, s, vt)``: u (m x k) with orthonormal columns, s (k,) positive,
  vt (k x n) with orthonormal rows. Plain tuples are accepted everywhere.
* A tangent vector is ``(Up, M, Vp)`` with ``u.T @ Up = 0``, ``vt @ Vp = 0``; it stands for the
  m x n matrix ``u @ M @ vt + Up @ vt + u @ Vp.T``.
* Ambient (Euclidean) vectors, e.g. Euclidean gradients, are accepted as

  - a dense (m, n) array;
  - a factored triple ``(U, S, V)`` with S two-dimensional, meaning ``U @ S @ V.T``
    (pymanopt's convention; never formed as m x n);
  - a ``scipy.sparse.linalg.LinearOperator`` or sparse matrix of shape (m, n) (only
    ``matmat`` with k columns and ``rmatmat`` with k columns are used), e.g. the gradient
    ``(W X - Y) X^T`` of :math:`L^1` given as products with the data;
  - in :meth:`~DeepLinearFixedRank.euclidean_to_riemannian_gradient` only: pymanopt's factor
    gradients ``(du, ds, dvt)`` of a cost f(u, s, vt) (a triple whose middle entry is 1-d).

Every operation costs O((m + n) k^2) beyond the products with an ambient vector, whatever the depth.
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import Any

import numpy as np
from pymanopt.manifolds.manifold import Manifold

from . import fixedrank as fr
from . import retractions
from .connection import riemannian_hessian
from .fixedrank import FactorGradient, FixedRankPoint, TangentVector
from .metric import WeightCache, apply_A, apply_A_inverse, check_depth, inner_product

__all__ = ["DeepLinearFixedRank", "FixedRankPoint", "TangentVector", "FactorGradient"]


#: g(0, 0) as returned by inner_product: the smallest normal float, so that 1 / norm(0) and
#: 1 / g(0, 0) are finite (pymanopt's optimizers divide by them before testing the gradient).
_ZERO_NORM_SQ = float(np.finfo(float).tiny)


def _is_zero(t: TangentVector) -> bool:
    return not (np.any(t.Up) or np.any(t.M) or np.any(t.Vp))


class _InstanceOrClassMethod:
    """A method that receives the instance, or None when called on the class (kept for calls
    such as ``DeepLinearFixedRank.to_dense(point)`` written when it was a staticmethod)."""

    def __init__(self, fn):
        self._fn = fn
        functools.update_wrapper(self, fn)

    def __get__(self, obj, cls=None):
        fn = self._fn

        @functools.wraps(fn)
        def method(*args, **kwargs):
            return fn(obj, *args, **kwargs)

        del method.__wrapped__
        sig = inspect.signature(fn)  # (point), without self
        method.__signature__ = sig.replace(parameters=list(sig.parameters.values())[1:])
        return method


class DeepLinearFixedRank(Manifold):
    r"""m x n matrices of rank k with the deep-linear metric of depth N (eq. (29)).

    Parameters
    ----------
    m, n : matrix shape (rows = output dimension d_y, columns = input dimension d_x).
    k : the rank, 1 <= k <= min(m, n).
    depth : the number of layers N >= 1. ``depth=1`` is the embedded Euclidean metric.

    Notes
    -----
    In the SVD frame :math:`\mathcal{A}_W` multiplies the core block of a tangent vector by
    :math:`w_{ik} = (s_i^2 - s_k^2)/(s_i^{2/N} - s_k^{2/N})` and its side blocks by
    :math:`p_k = s_k^{2(N-1)/N}` (:mod:`linrank.metric`), so

    .. math::

        g_W(\xi, \eta) = \sum_{ik} \frac{M^\xi_{ik} M^\eta_{ik}}{w_{ik}}
            + \sum_k \frac{\langle U_p^\xi e_k, U_p^\eta e_k\rangle
                        + \langle V_p^\xi e_k, V_p^\eta e_k\rangle}{p_k},
        \qquad \operatorname{grad} f = \mathcal{A}_W(P_T \nabla f).

    Differences from pymanopt's ``FixedRankEmbedded`` at depth 1 (otherwise the same results to
    rounding): the gradient conversion from factor gradients never divides by
    :math:`s_j^2 - s_i^2` (pymanopt returns NaN at equal singular values; here the undetermined
    part is 0, see :mod:`linrank.factorgrad`); ``typical_dist`` is sqrt(dim) (pymanopt: dim);
    projection of a factored
    ``(U, S, V)`` uses :math:`V S^T U^T` for the transpose (pymanopt uses S); the retraction floors
    singular values at ``eps * s_max`` instead of adding ``eps`` to all of them; :meth:`dist` and
    the Hessian are provided.
    """

    #: Relative tolerance of the orthonormality check in :meth:`check_point`.
    orthonormality_tol: float = 1e-8

    #: Names accepted by the ``retraction`` argument.
    retractions: tuple[str, ...] = ("projection", "polar")

    def __init__(self, m: int, n: int, k: int, depth: int = 1, retraction: str = "projection"):
        if retraction not in self.retractions:
            raise ValueError(f"retraction must be one of {self.retractions}, got {retraction!r}")
        self._shape = fr.check_shape(m, n, k)
        self._m, self._n, self._k = self._shape
        self._depth = check_depth(depth)
        self._retraction = retraction
        self._weights = WeightCache(self._depth)
        self._frames: tuple | None = None  # transport's last frame products (see transport)
        name = f"Rank-{k} {m}x{n} matrices with the deep-linear metric of depth {self._depth}"
        super().__init__(name, (self._m + self._n - self._k) * self._k, point_layout=3)

    # ------------------------------------------------------------------ properties
    @property
    def m(self) -> int:
        """Number of rows."""
        return self._m

    @property
    def n(self) -> int:
        """Number of columns."""
        return self._n

    @property
    def k(self) -> int:
        """The rank."""
        return self._k

    @property
    def depth(self) -> int:
        """The depth N of the network whose metric this is."""
        return self._depth

    @property
    def retraction_kind(self) -> str:
        """The retraction in use: "projection" (default) or "polar" (see :meth:`retraction`)."""
        return self._retraction

    @property
    def typical_dist(self) -> float:
        """Scale used by TrustRegions for its radius: sqrt(dim) (a unit-size step per coordinate)."""
        return float(np.sqrt(self.dim))

    # ------------------------------------------------------------------ input checks
    def _name_non_finite(self, point: FixedRankPoint, t: TangentVector, name="tangent_vector"):
        """Raise the ValueError for a non-finite result: name the input, or say it overflowed."""
        fr.check_point_factors(point)
        fr.check_tangent(t, self._shape, name)
        raise ValueError("the result overflows the floating point range")

    def parse_point(self, point: Any) -> FixedRankPoint:
        """Cheap (O(k)) structural check of a point (:func:`linrank.fixedrank.parse_point`);
        see :meth:`check_point` for the full one."""
        return fr.parse_point(point, self._shape)

    def parse_tangent(self, tangent_vector: Any) -> TangentVector:
        """Structural check of a tangent vector (:func:`linrank.fixedrank.parse_tangent`)."""
        return fr.parse_tangent(tangent_vector, self._shape)

    def check_point(self, point: Any, tol: float | None = None) -> FixedRankPoint:
        """Validate a point fully and return it as a :class:`FixedRankPoint`.

        Checks shapes, finiteness, s > 0, and ``||u^T u - I||_max <= tol``,
        ``||vt vt^T - I||_max <= tol`` (default :attr:`orthonormality_tol`). O((m + n) k^2).

        Raises
        ------
        TypeError, ValueError
            Saying what is wrong.
        """
        tol = self.orthonormality_tol if tol is None else tol
        return fr.validate_point(point, self._shape, tol)

    def point_from_matrix(self, W: np.ndarray) -> FixedRankPoint:
        """The thin SVD (u, s, vt) of a dense m x n matrix of rank >= k, truncated to rank k.

        Raises ValueError if W has the wrong shape, is not finite, or its k-th singular value is
        not positive (relative to eps * s_max * max(m, n)).
        """
        return fr.point_from_matrix(W, self._shape)

    # ------------------------------------------------------------------ the operator A_W
    def weights(self, point: Any) -> tuple[np.ndarray, np.ndarray]:
        """The weights (w, p) of A_W at ``point``: core (k, k) and side (k,) (Definition 4).

        The last few weight sets are cached by the bytes of s (optimizers evaluate many inner
        products at one point); the returned arrays are read-only.
        """
        return self._weights(fr.parse_point(point, self._shape).s)

    def apply_A(self, point: Any, tangent_vector: Any) -> TangentVector:
        r"""Apply :math:`\mathcal{A}_W` (Definition 4) to a tangent vector: (Up p, w * M, Vp p).

        Exact to a few ulps in the weights; O((m + n) k).
        """
        w, p = self.weights(point)
        return apply_A(w, p, fr.check_tangent(tangent_vector, self._shape))

    def apply_A_inverse(self, point: Any, tangent_vector: Any) -> TangentVector:
        r"""Apply :math:`\mathcal{A}_W^{-1}` on the tangent space: (Up / p, M / w, Vp / p).

        This is the Riesz map of g (eq. (30)): g(a, b) = <A^-1 a, b>_F. O((m + n) k).
        """
        w, p = self.weights(point)
        return apply_A_inverse(w, p, fr.check_tangent(tangent_vector, self._shape))

    # ------------------------------------------------------------------ metric
    def inner_product(self, point: Any, tangent_vector_a: Any, tangent_vector_b: Any) -> float:
        r"""g_W(a, b) = <A_W^{-1} a, b>_F (eq. (30)), O((m + n) k).

        Scale-safe for singular values beyond about 1e+-70 (:func:`linrank.metric.inner_product`).
        When both vectors are exactly zero it returns the smallest normal float
        (``np.finfo(float).tiny``, 2.2e-308; so ``norm`` of the zero vector is 1.5e-154) instead
        of 0: pymanopt's optimizers divide by the gradient's norm (SteepestDescent's line search)
        and by its squared norm (TrustRegions' inner solver) before they test it, so at a
        critical point they would raise ZeroDivisionError or step by NaN; with the floor every
        optimizer takes a step of length 0 there and stops on its gradient-norm criterion.
        """
        s = fr.parse_point(point, self._shape).s
        a = fr.parse_tangent(tangent_vector_a, self._shape, "tangent_vector_a")
        b = fr.parse_tangent(tangent_vector_b, self._shape, "tangent_vector_b")
        if self._depth == 1:  # all weights are 1: the Frobenius product, one dot per block
            val = float(np.vdot(a.Up, b.Up) + np.vdot(a.M, b.M) + np.vdot(a.Vp, b.Vp))
        else:
            rec = self._weights.reciprocals(s)
            if rec is None:  # weights beyond [1e-140, 1e140]: the scaled form
                w, p = self._weights(s)
                val = inner_product(w, p, a, b)
            else:
                rw, rp = rec
                side = np.einsum("ij,ij->j", a.Up, b.Up) + np.einsum("ij,ij->j", a.Vp, b.Vp)
                val = float(np.vdot(a.M * rw, b.M) + side @ rp)
        if val == 0.0 and _is_zero(a) and _is_zero(b):
            return _ZERO_NORM_SQ
        if not math.isfinite(val):  # diagnose (rare path): which input, or an overflow
            fr.check_tangent(a, self._shape, "tangent_vector_a")
            fr.check_tangent(b, self._shape, "tangent_vector_b")
            raise ValueError(
                "inner product overflows the floating point range (tangent vectors too large "
                "for the metric's weights at this point)"
            )
        return val

    def norm(self, point: Any, tangent_vector: Any) -> float:
        """sqrt(g_W(v, v)); 1.5e-154 (not 0) for the zero vector, see :meth:`inner_product`."""
        return float(np.sqrt(self.inner_product(point, tangent_vector, tangent_vector)))

    def dist(self, point_a: Any, point_b: Any) -> float:
        r"""The ambient (chordal) distance :math:`\|W_a - W_b\|_F`, from the factors.

        This is not the geodesic distance of g (which has no closed form for depth >= 2); it is
        the Frobenius distance of the two matrices, computed in O((m + n) k^2) without forming
        them. For depth 1 it agrees with the geodesic distance to first order as the points
        approach each other.
        """
        a = fr.parse_point(point_a, self._shape, "point_a")
        b = fr.parse_point(point_b, self._shape, "point_b")
        val = fr.chordal_distance(a, b)
        if not np.isfinite(val):
            fr.check_point_factors(a, "point_a")
            fr.check_point_factors(b, "point_b")
            raise ValueError(f"dist not representable in floating point (overflow: {val})")
        return val

    # ------------------------------------------------------------------ ambient vectors
    def projection(self, point: Any, vector: Any) -> TangentVector:
        r"""Frobenius-orthogonal projection :math:`P_T` of an ambient vector onto the tangent space.

        With :math:`Z v` and :math:`Z^T u` only: :math:`M = u^T Z v`,
        :math:`U_p = Z v - u M`, :math:`V_p = Z^T u - v M^T`. O((m + n) k^2) after the products.
        Note that P_T is orthogonal for the Frobenius inner product, not for g (for depth >= 2).
        """
        return fr.projection(fr.parse_point(point, self._shape), vector, self._m, self._n, "vector")

    def to_tangent_space(self, point: Any, vector: Any) -> TangentVector:
        """Re-tangentialize (Up, M, Vp): remove the components of Up along u and of Vp along v."""
        p = fr.parse_point(point, self._shape)
        t = fr.parse_tangent(vector, self._shape, "vector")
        out = fr.to_tangent_space(p, t)
        if not fr.all_finite(*out):
            self._name_non_finite(p, t, "vector")
        return out

    def embedding(
        self, point: Any, tangent_vector: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The tangent vector as a factored ambient matrix (U, S, V) = ([u M + Up, u], I, [v, Vp]).

        ``U @ S @ V.T == u M vt + Up vt + u Vp^T`` (pymanopt's convention).
        """
        p = fr.parse_point(point, self._shape)
        t = fr.parse_tangent(tangent_vector, self._shape)
        out = fr.embedding(p, t)
        if not fr.all_finite(out[0], out[2]):
            self._name_non_finite(p, t)
        return out

    def tangent_to_dense(self, point: Any, tangent_vector: Any) -> np.ndarray:
        """The tangent vector as a dense m x n matrix (small sizes, tests, plots)."""
        p = fr.parse_point(point, self._shape)
        t = fr.parse_tangent(tangent_vector, self._shape)
        out = fr.tangent_to_dense(p, t)
        if not fr.all_finite(out):
            self._name_non_finite(p, t)
        return out

    @_InstanceOrClassMethod
    def to_dense(self, point: Any) -> np.ndarray:
        """The point as a dense matrix u diag(s) vt.

        On a manifold, the factors must have its shapes (m, k), (k,), (k, n) (ValueError naming
        them otherwise). Called on the class, ``DeepLinearFixedRank.to_dense(point)``, there is
        no manifold: any consistent shapes. Non-finite entries: ValueError.
        """
        return fr.to_dense(point, None if self is None else self._shape)

    def euclidean_to_riemannian_gradient(
        self, point: Any, euclidean_gradient: Any
    ) -> TangentVector:
        r"""Riemannian gradient of g: :math:`\operatorname{grad} f = \mathcal{A}_W(P_T \nabla f)`.

        (Theorem 5 / eq. (31): the layer-wise flow's product follows
        :math:`\dot W = -\mathcal{A}_W(\nabla L^1(W))`.)

        ``euclidean_gradient`` may be any ambient form listed in the module docstring, or
        pymanopt's factor gradients ``(du, ds, dvt)`` of a cost f(u, s, vt) (1-d middle entry, or a
        :class:`FactorGradient`), converted by :func:`linrank.factorgrad.factor_gradient_to_tangent`:
        exact for every cost that is a function on M_k wherever the singular values are separated
        (relative gap >= sqrt(eps)); for closer pairs the symmetric part of the pair's core block,
        which the factor gradients do not determine, is set to 0 (a dense or factored G is exact
        everywhere).
        """
        p = fr.parse_point(point, self._shape)
        grad = fr.gradient_to_tangent(p, euclidean_gradient, self._m, self._n, "euclidean_gradient")
        # grad's blocks are fresh arrays: scale them in place (saves two (m + n) x k copies)
        w, q = self._weights(p.s)
        np.multiply(grad.Up, q, out=grad.Up)
        np.multiply(grad.M, w, out=grad.M)
        np.multiply(grad.Vp, q, out=grad.Vp)
        return grad

    def euclidean_to_riemannian_hessian(
        self, point: Any, euclidean_gradient: Any, euclidean_hessian: Any, tangent_vector: Any
    ) -> TangentVector:
        r"""Exact Riemannian Hessian (Levi-Civita connection of g) applied to a tangent vector.

        See :func:`linrank.connection.riemannian_hessian` for the formula, the accepted forms of
        G and H (dense, (U, S, V), LinearOperator; not factor gradients, which lack the normal
        component of G) and the cost O((m + n) k^2 + k^3) beyond the products with G and H.
        """
        return riemannian_hessian(
            self, point, euclidean_gradient, euclidean_hessian, tangent_vector
        )

    # ------------------------------------------------------------------ retraction, transport
    def retraction(self, point: Any, tangent_vector: Any) -> FixedRankPoint:
        r"""Retraction :math:`R_W(\xi)`, chosen by the constructor's ``retraction`` argument.

        ``"projection"`` (default): the metric projection, the rank-k truncated SVD of
        :math:`W + \xi`. Second order for the embedded metric (depth 1), first order for depth >= 2.
        Computed from the Cholesky factors of the k x k Gram matrices of Up and Vp (a Householder
        QR where one is ill-conditioned, :data:`linrank.retractions.GRAM_RCOND`) and the SVD of a
        2k x 2k matrix, O((m + n) k^2); equal to pymanopt FixedRankEmbedded's QR form to rounding.

        ``"polar"``: with :math:`K = S + M` and :math:`\operatorname{pf}(A) = A (A^TA)^{-1/2}` the
        polar factor,

        .. math::

            R_W(\xi) = U' K V'^T,\quad U' = \operatorname{pf}(u + U_p K^{-1}),\quad
            V' = \operatorname{pf}(v + V_p K^{-T}),

        i.e. the orthographic retraction :math:`(u + U_pK^{-1}) K (v + V_pK^{-T})^T` (Absil and
        Oseledets 2015) with its non-orthonormal factors replaced by their polar factors. It is a
        first-order retraction (:math:`R_W(t\xi) = W + t\xi + O(t^2)`; at depth 1 not second
        order, unlike the projection): the singular subspaces turn by angles :math:`\arctan` of the
        step (at most 90 degrees) while the singular values are those of K, whereas the truncated
        SVD inflates the singular values quadratically along rotations (:math:`W = u_1u_1^T`,
        :math:`\xi = t(u_2u_1^T + u_1u_2^T)`: :math:`s = (1 + \sqrt{1 + 4t^2})/2`, polar: 1). For
        TrustRegions on costs whose flat directions are such rotations (the deep-linear losses
        near optima with close eigenvalues) the quadratic model then stays valid over larger
        steps (BENCHMARKS.md, "Hessian" section 4). K is inverted through its SVD with singular
        values floored at ``eps * s_max`` (huge steps, singular or zero K: ``u + U_p K^{-1}`` still
        has full column rank since its u-component is I); cost O((m + n) k^2) (two thin SVDs and a
        k x k one). The result is exact to rounding: orthonormality of u', v' to ~ k eps.

        In both, singular values below ``eps * s_max`` are floored so the result stays of rank k.
        """
        p = fr.parse_point(point, self._shape)
        t = fr.parse_tangent(tangent_vector, self._shape)
        if self._retraction == "polar":
            return retractions.polar_retraction(p, t)
        return retractions.projection_retraction(p, t)

    def transport(self, point_a: Any, point_b: Any, tangent_vector_a: Any) -> TangentVector:
        """Vector transport by Frobenius projection onto the tangent space at ``point_b``.

        Computed from k x k cross products of the frames (:func:`linrank.retractions.transport`),
        O((m + n) k^2), no m x n or m x 2k intermediate; the frames' products of the last pair
        of points are reused (recognized by the identity of the point's arrays, which must not be
        modified in place afterwards, as pymanopt's optimizers never do).
        """
        a = fr.parse_point(point_a, self._shape, "point_a")
        b = fr.parse_point(point_b, self._shape, "point_b")
        t = fr.parse_tangent(tangent_vector_a, self._shape, "tangent_vector_a")
        # optimizers transport several vectors between the same two points (ConjugateGradient:
        # two per iteration): the frames' cross products are kept for the last pair of points,
        # recognized by the identity of their arrays (points are not modified in place)
        c = self._frames
        if c is not None and all(x is y for x, y in zip(c[0], (a.u, a.vt, b.u, b.vt))):
            frames = c[1]
        else:
            frames = retractions.frame_products(a, b)
        try:
            out = retractions.transport(a, b, t, frames)
        except ValueError:  # non-finite products: name the input (checked only now)
            fr.check_tangent(t, self._shape, "tangent_vector_a")
            fr.check_point_factors(a, "point_a")
            fr.check_point_factors(b, "point_b")
            raise
        self._frames = ((a.u, a.vt, b.u, b.vt), frames)
        return out

    # ------------------------------------------------------------------ random, zero
    def random_point(self) -> FixedRankPoint:
        """A random point: Haar-like u, v (QR of Gaussians), s uniform in (0, 1), sorted descending.

        Uses numpy's global random state exactly as pymanopt's FixedRankEmbedded does.
        """
        return fr.random_point(self._shape)

    def random_tangent_vector(self, point: Any) -> TangentVector:
        """A random tangent vector of unit length in the metric g."""
        p = fr.parse_point(point, self._shape)
        t = fr.random_tangent(p)
        return t / self.norm(p, t)

    def zero_vector(self, point: Any) -> TangentVector:
        """The zero tangent vector."""
        return fr.zero_tangent(self._shape)
