r"""The fixed-rank manifold :math:`\mathcal{M}_k` with the deep-linear metric, for pymanopt.

:class:`DeepLinearFixedRank` is the manifold of m x n real matrices of rank k with the Riemannian
metric of Bah, Rauhut, Terstiege and Westdickenberg (2019), eq. (29)/(30):

.. math::

    g_W(a, b) = \langle \mathcal{A}_W^{-1}(a), b \rangle_F ,

where :math:`\mathcal{A}_W` is the operator of Definition 4 (see :mod:`linrank.metric`). Training
:math:`W = W_N \cdots W_1` by gradient flow from balanced factors is the Riemannian gradient flow of
:math:`L^1` for this metric (Theorem 5 / Corollary 8). Depth 1 is the embedded (Euclidean) metric
of pymanopt's ``FixedRankEmbedded``, for which this class is a drop-in replacement.

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

import collections
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp
from pymanopt.manifolds.manifold import Manifold
from scipy.sparse.linalg import LinearOperator

from .factorgrad import factor_gradient_to_tangent
from .metric import check_depth, core_weights, side_weights

__all__ = ["DeepLinearFixedRank", "FixedRankPoint", "TangentVector", "FactorGradient"]


class _Arith:
    """Elementwise arithmetic on tuples of arrays (tuple ``+`` is concatenation otherwise)."""

    # keep numpy scalars from broadcasting over the tuple: np.float64(2) * v -> v.__rmul__
    __array_priority__ = 1000
    __array_ufunc__ = None

    def __add__(self, other):
        return type(self)(*(a + b for a, b in zip(self, other, strict=True)))

    def __radd__(self, other):
        if isinstance(other, (int, float)) and other == 0:  # sum([...]) starts from 0
            return self
        return type(self)(*(b + a for a, b in zip(self, other, strict=True)))

    def __sub__(self, other):
        return type(self)(*(a - b for a, b in zip(self, other, strict=True)))

    def __rsub__(self, other):
        return type(self)(*(b - a for a, b in zip(self, other, strict=True)))

    def __mul__(self, other):
        return type(self)(*(a * other for a in self))

    __rmul__ = __mul__

    def __truediv__(self, other):
        return type(self)(*(a / other for a in self))

    def __neg__(self):
        return type(self)(*(-a for a in self))

    def __pos__(self):
        return self


class FixedRankPoint(_Arith, collections.namedtuple("FixedRankPoint", ("u", "s", "vt"))):
    """A point of M_k as a thin SVD ``u @ diag(s) @ vt`` (fields u, s, vt)."""

    __slots__ = ()


class TangentVector(_Arith, collections.namedtuple("TangentVector", ("Up", "M", "Vp"))):
    """A tangent vector ``(Up, M, Vp)`` at ``(u, s, vt)``: the matrix ``u M vt + Up vt + u Vp^T``.

    Supports ``+``, ``-``, ``*`` and ``/`` by scalars and unary minus, elementwise on the blocks.
    """

    __slots__ = ()


class FactorGradient(NamedTuple):
    """pymanopt's factor gradients ``(du, ds, dvt)`` of a cost f(u, s, vt), made explicit."""

    du: np.ndarray
    ds: np.ndarray
    dvt: np.ndarray


def _colnorm_sq(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Column-wise inner products sum_i A_ij B_ij without an m x k temporary."""
    return np.einsum("ij,ij->j", A, B)


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
        for name, val in (("m", m), ("n", n), ("k", k)):
            if isinstance(val, bool) or not isinstance(val, (int, np.integer)):
                raise TypeError(f"{name} must be a positive integer, got {val!r}")
            if val < 1:
                raise ValueError(f"{name} must be a positive integer, got {val}")
        if k > min(m, n):
            raise ValueError(f"rank k must satisfy 1 <= k <= min(m, n) = {min(m, n)}, got k = {k}")
        self._m, self._n, self._k = int(m), int(n), int(k)
        self._depth = check_depth(depth)
        self._retraction = retraction
        self._weights_cache: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}
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
    def _point(self, point: Any) -> FixedRankPoint:
        """Cheap (O(k)) structural check of a point; see :meth:`check_point` for the full one."""
        if isinstance(point, FixedRankPoint):
            p = point
        else:
            if not isinstance(point, (tuple, list)) or len(point) != 3:
                raise TypeError(
                    "a point must be a thin SVD (u, s, vt) of three arrays, got "
                    f"{type(point).__name__}"
                )
            p = FixedRankPoint(*(np.asarray(x) for x in point))
        m, n, k = self._m, self._n, self._k
        u, s, vt = p
        if np.shape(u) != (m, k) or np.shape(s) != (k,) or np.shape(vt) != (k, n):
            raise ValueError(
                f"point (u, s, vt) must have shapes ({m}, {k}), ({k},), ({k}, {n}); got "
                f"{np.shape(u)}, {np.shape(s)}, {np.shape(vt)}"
            )
        smin, smax = s.min(), s.max()
        if not (smin > 0 and smax < np.inf):
            raise ValueError(f"singular values s must be finite and positive, got {s}")
        return p

    def _tangent(self, vector: Any) -> TangentVector:
        if isinstance(vector, TangentVector):
            t = vector
        else:
            if not isinstance(vector, (tuple, list)) or len(vector) != 3:
                raise TypeError(
                    f"a tangent vector must be (Up, M, Vp), got {type(vector).__name__}"
                )
            t = TangentVector(*(np.asarray(x) for x in vector))
        m, n, k = self._m, self._n, self._k
        if np.shape(t.Up) != (m, k) or np.shape(t.M) != (k, k) or np.shape(t.Vp) != (n, k):
            raise ValueError(
                f"tangent vector (Up, M, Vp) must have shapes ({m}, {k}), ({k}, {k}), ({n}, {k}); "
                f"got {np.shape(t.Up)}, {np.shape(t.M)}, {np.shape(t.Vp)}"
            )
        return t

    def check_point(self, point: Any, tol: float | None = None) -> FixedRankPoint:
        """Validate a point fully and return it as a :class:`FixedRankPoint`.

        Checks shapes, finiteness, s > 0, and ``||u^T u - I||_max <= tol``,
        ``||vt vt^T - I||_max <= tol`` (default :attr:`orthonormality_tol`). O((m + n) k^2).

        Raises
        ------
        TypeError, ValueError
            Saying what is wrong.
        """
        p = self._point(point)
        tol = self.orthonormality_tol if tol is None else tol
        u, s, vt = p
        if not (np.all(np.isfinite(u)) and np.all(np.isfinite(vt))):
            raise ValueError("u and vt must be finite")
        eye = np.eye(self._k)
        eu = np.max(np.abs(u.T @ u - eye))
        ev = np.max(np.abs(vt @ vt.T - eye))
        if eu > tol:
            raise ValueError(f"u must have orthonormal columns: max |u^T u - I| = {eu:.2e} > {tol}")
        if ev > tol:
            raise ValueError(f"vt must have orthonormal rows: max |vt vt^T - I| = {ev:.2e} > {tol}")
        return p

    def point_from_matrix(self, W: np.ndarray) -> FixedRankPoint:
        """The thin SVD (u, s, vt) of a dense m x n matrix of rank >= k, truncated to rank k.

        Raises ValueError if W has the wrong shape, is not finite, or its k-th singular value is
        not positive (relative to eps * s_max * max(m, n)).
        """
        W = np.asarray(W, dtype=float)
        if W.shape != (self._m, self._n):
            raise ValueError(f"W must have shape ({self._m}, {self._n}), got {W.shape}")
        if not np.all(np.isfinite(W)):
            raise ValueError("W must be finite")
        u, s, vt = np.linalg.svd(W, full_matrices=False)
        k = self._k
        if s[k - 1] <= s[0] * max(W.shape) * np.finfo(float).eps:
            raise ValueError(f"W has numerical rank below k = {k} (singular values {s[: k + 1]})")
        return FixedRankPoint(u[:, :k], s[:k], vt[:k])

    # ------------------------------------------------------------------ the operator A_W
    def weights(self, point: Any) -> tuple[np.ndarray, np.ndarray]:
        """The weights (w, p) of A_W at ``point``: core (k, k) and side (k,) (Definition 4).

        The last few weight sets are cached by the bytes of s (optimizers evaluate many inner
        products at one point); the returned arrays are read-only.
        """
        s = self._point(point).s
        key = np.ascontiguousarray(s, dtype=float).tobytes()
        hit = self._weights_cache.get(key)
        if hit is not None:
            return hit
        w = core_weights(s, self._depth)
        p = side_weights(s, self._depth)
        w.flags.writeable = False
        p.flags.writeable = False
        if len(self._weights_cache) >= 8:
            self._weights_cache.pop(next(iter(self._weights_cache)))
        self._weights_cache[key] = (w, p)
        return w, p

    def apply_A(self, point: Any, tangent_vector: Any) -> TangentVector:
        r"""Apply :math:`\mathcal{A}_W` (Definition 4) to a tangent vector: (Up p, w * M, Vp p).

        Exact to a few ulps in the weights; O((m + n) k).
        """
        w, p = self.weights(point)
        t = self._tangent(tangent_vector)
        return TangentVector(t.Up * p, w * t.M, t.Vp * p)

    def apply_A_inverse(self, point: Any, tangent_vector: Any) -> TangentVector:
        r"""Apply :math:`\mathcal{A}_W^{-1}` on the tangent space: (Up / p, M / w, Vp / p).

        This is the Riesz map of g (eq. (30)): g(a, b) = <A^-1 a, b>_F. O((m + n) k).
        """
        w, p = self.weights(point)
        t = self._tangent(tangent_vector)
        return TangentVector(t.Up / p, t.M / w, t.Vp / p)

    # ------------------------------------------------------------------ metric
    def inner_product(self, point: Any, tangent_vector_a: Any, tangent_vector_b: Any) -> float:
        r"""g_W(a, b) = <A_W^{-1} a, b>_F (eq. (30)), O((m + n) k).

        When a weight lies outside [1e-140, 1e140] (singular values beyond about 1e+-70), the
        blocks are scaled by 1/sqrt(weight) before they are multiplied, so that neither the
        products nor the weights' reciprocals underflow or overflow (a further O((m + n) k) copy).
        """
        w, p = self.weights(point)
        a = self._tangent(tangent_vector_a)
        b = self._tangent(tangent_vector_b)
        lo, hi = min(w.min(), p.min()), max(w.max(), p.max())
        if 1e-140 <= lo and hi <= 1e140:
            side = _colnorm_sq(a.Up, b.Up) + _colnorm_sq(a.Vp, b.Vp)
            return float(np.sum(a.M * b.M / w) + side @ (1.0 / p))
        rw, rp = np.sqrt(w), np.sqrt(p)
        core = np.sum((a.M / rw) * (b.M / rw))
        side = _colnorm_sq(a.Up / rp, b.Up / rp) + _colnorm_sq(a.Vp / rp, b.Vp / rp)
        return float(core + side.sum())

    def norm(self, point: Any, tangent_vector: Any) -> float:
        """sqrt(g_W(v, v))."""
        return float(np.sqrt(self.inner_product(point, tangent_vector, tangent_vector)))

    def dist(self, point_a: Any, point_b: Any) -> float:
        r"""The ambient (chordal) distance :math:`\|W_a - W_b\|_F`, from the factors.

        This is not the geodesic distance of g (which has no closed form for depth >= 2); it is
        the Frobenius distance of the two matrices, computed in O((m + n) k^2) without forming
        them. For depth 1 it agrees with the geodesic distance to first order as the points
        approach each other.
        """
        a = self._point(point_a)
        b = self._point(point_b)
        # ||A||^2 + ||B||^2 - 2 <A, B>, <A, B> = tr(S_a (u_a^T u_b) S_b (vt_b vt_a^T))
        cross = np.sum((a.s[:, None] * (a.u.T @ b.u) * b.s[None, :]) * (a.vt @ b.vt.T))
        val = np.sum(a.s**2) + np.sum(b.s**2) - 2.0 * cross
        return float(np.sqrt(max(val, 0.0)))

    # ------------------------------------------------------------------ ambient vectors
    def _ambient_products(self, point: FixedRankPoint, vector: Any):
        """(Z v, Z^T u) for an ambient vector Z in any accepted form; v = vt^T."""
        u, _, vt = point
        v = vt.T
        m, n = self._m, self._n
        if isinstance(vector, np.ndarray) and vector.ndim == 2:
            if vector.shape != (m, n):
                raise ValueError(f"ambient vector must have shape ({m}, {n}), got {vector.shape}")
            return vector @ v, vector.T @ u
        if isinstance(vector, LinearOperator) or sp.issparse(vector):
            if vector.shape != (m, n):
                raise ValueError(f"ambient operator must have shape ({m}, {n}), got {vector.shape}")
            if sp.issparse(vector):
                return np.asarray(vector @ v), np.asarray(vector.T @ u)
            return np.asarray(vector.matmat(v)), np.asarray(vector.rmatmat(u))
        if isinstance(vector, (tuple, list)) and len(vector) == 3:
            U, S, V = (np.asarray(x) for x in vector)
            if S.ndim != 2 or U.ndim != 2 or V.ndim != 2:
                raise ValueError(
                    "a factored ambient vector is (U, S, V) with 2-d arrays meaning U @ S @ V.T; "
                    f"got dimensions {U.ndim}, {S.ndim}, {V.ndim}"
                )
            if U.shape[0] != m or V.shape[0] != n or S.shape != (U.shape[1], V.shape[1]):
                raise ValueError(
                    f"factored ambient vector (U, S, V) needs U ({m}, r), S (r, q), V ({n}, q); "
                    f"got {U.shape}, {S.shape}, {V.shape}"
                )
            return U @ (S @ (V.T @ v)), V @ (S.T @ (U.T @ u))
        raise TypeError(
            "an ambient vector must be a dense (m, n) array, a factored (U, S, V) triple, "
            f"a scipy LinearOperator or a sparse matrix; got {type(vector).__name__}"
        )

    @staticmethod
    def _is_factor_gradient(vector: Any) -> bool:
        if isinstance(vector, FactorGradient):
            return True
        return isinstance(vector, (tuple, list)) and len(vector) == 3 and np.ndim(vector[1]) == 1

    def projection(self, point: Any, vector: Any) -> TangentVector:
        r"""Frobenius-orthogonal projection :math:`P_T` of an ambient vector onto the tangent space.

        With :math:`Z v` and :math:`Z^T u` only: :math:`M = u^T Z v`,
        :math:`U_p = Z v - u M`, :math:`V_p = Z^T u - v M^T`. O((m + n) k^2) after the products.
        Note that P_T is orthogonal for the Frobenius inner product, not for g (for depth >= 2).
        """
        p = self._point(point)
        Zv, Ztu = self._ambient_products(p, vector)
        return self._project_products(p, Zv, Ztu)

    @staticmethod
    def _project_products(p: FixedRankPoint, Zv: np.ndarray, Ztu: np.ndarray) -> TangentVector:
        u, _, vt = p
        M = u.T @ Zv
        return TangentVector(Zv - u @ M, M, Ztu - vt.T @ M.T)

    def to_tangent_space(self, point: Any, vector: Any) -> TangentVector:
        """Re-tangentialize (Up, M, Vp): remove the components of Up along u and of Vp along v."""
        u, _, vt = self._point(point)
        t = self._tangent(vector)
        return TangentVector(t.Up - u @ (u.T @ t.Up), t.M, t.Vp - vt.T @ (vt @ t.Vp))

    def embedding(
        self, point: Any, tangent_vector: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The tangent vector as a factored ambient matrix (U, S, V) = ([u M + Up, u], I, [v, Vp]).

        ``U @ S @ V.T == u M vt + Up vt + u Vp^T`` (pymanopt's convention).
        """
        u, _, vt = self._point(point)
        t = self._tangent(tangent_vector)
        U = np.hstack((u @ t.M + t.Up, u))
        S = np.eye(2 * self._k)
        V = np.hstack((vt.T, t.Vp))
        return U, S, V

    def tangent_to_dense(self, point: Any, tangent_vector: Any) -> np.ndarray:
        """The tangent vector as a dense m x n matrix (small sizes, tests, plots)."""
        U, S, V = self.embedding(point, tangent_vector)
        return U @ S @ V.T

    @staticmethod
    def to_dense(point: Any) -> np.ndarray:
        """The point as a dense matrix u diag(s) vt."""
        u, s, vt = point
        return (np.asarray(u) * np.asarray(s)) @ np.asarray(vt)

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
        p = self._point(point)
        if self._is_factor_gradient(euclidean_gradient):
            grad = TangentVector(*factor_gradient_to_tangent(p, euclidean_gradient))
        else:
            grad = self.projection(p, euclidean_gradient)
        # grad's blocks are fresh arrays: scale them in place (saves two (m + n) x k copies)
        w, q = self.weights(p)
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
        from .connection import riemannian_hessian

        return riemannian_hessian(
            self, point, euclidean_gradient, euclidean_hessian, tangent_vector
        )

    # ------------------------------------------------------------------ retraction, transport
    def retraction(self, point: Any, tangent_vector: Any) -> FixedRankPoint:
        r"""Retraction :math:`R_W(\xi)`, chosen by the constructor's ``retraction`` argument.

        ``"projection"`` (default): the metric projection, the rank-k truncated SVD of
        :math:`W + \xi`. Second order for the embedded metric (depth 1), first order for depth >= 2.
        Computed from the QR factors of Up and Vp and the SVD of a 2k x 2k matrix, O((m + n) k^2)
        (as pymanopt's FixedRankEmbedded).

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
        has full column rank since its u-component is I); cost O((m + n) k^2) (two thin SVDs and a k x k one).
        The result is exact to rounding: orthonormality of u', v' to ~ k eps.

        In both, singular values below ``eps * s_max`` are floored so the result stays of rank k.
        """
        u, s, vt = self._point(point)
        t = self._tangent(tangent_vector)
        if self._retraction == "polar":
            return self._polar_retraction(u, s, vt, t)
        k = self._k
        Qu, Ru = np.linalg.qr(t.Up)
        Qv, Rv = np.linalg.qr(t.Vp)
        T = np.block([[np.diag(s) + t.M, Rv.T], [Ru, np.zeros((k, k))]])
        Ut, St, Vtt = np.linalg.svd(T, full_matrices=False)
        U = np.hstack((u, Qu)) @ Ut[:, :k]
        S = St[:k]
        if not np.all(np.isfinite(S)):
            raise ValueError("retraction produced non-finite singular values (step not finite)")
        S = np.maximum(S, S[0] * np.finfo(float).eps)
        Vt = Vtt[:k] @ np.vstack((vt, Qv.T))
        return FixedRankPoint(U, S, Vt)

    @staticmethod
    def _polar_retraction(u, s, vt, t: TangentVector) -> FixedRankPoint:
        K = np.diag(s) + t.M
        if not np.all(np.isfinite(K)):
            raise ValueError("retraction produced non-finite singular values (step not finite)")
        a, sig, bt = np.linalg.svd(K)
        if not np.all(np.isfinite(sig)):
            raise ValueError("retraction produced non-finite singular values (step not finite)")
        # floor relative to K's scale (to the point's when K = S + M is exactly zero)
        sig = np.maximum(sig, (sig[0] if sig[0] > 0 else s[0]) * np.finfo(float).eps)
        # K^{-1} = bt^T diag(1/sig) a^T; U' a = pf(u + Up K^{-1}) a = pf((u a + Up bt^T / sig)),
        # since pf(A a) = pf(A) a for orthogonal a (the same for V' with bt^T).
        Au = u @ a + (t.Up @ bt.T) / sig
        Av = vt.T @ bt.T + (t.Vp @ a) / sig
        if not (np.all(np.isfinite(Au)) and np.all(np.isfinite(Av))):
            raise ValueError("retraction produced non-finite factors (step not finite)")
        Qa, _, Rat = np.linalg.svd(Au, full_matrices=False)
        Qb, _, Rbt = np.linalg.svd(Av, full_matrices=False)
        return FixedRankPoint(Qa @ Rat, sig, (Qb @ Rbt).T)

    def transport(self, point_a: Any, point_b: Any, tangent_vector_a: Any) -> TangentVector:
        """Vector transport by Frobenius projection onto the tangent space at ``point_b``.

        Computed from the factored embedding, O((m + n) k^2), no m x n intermediate.
        """
        return self.projection(point_b, self.embedding(point_a, tangent_vector_a))

    # ------------------------------------------------------------------ random, zero
    def random_point(self) -> FixedRankPoint:
        """A random point: Haar-like u, v (QR of Gaussians), s uniform in (0, 1), sorted descending.

        Uses numpy's global random state exactly as pymanopt's FixedRankEmbedded does.
        """
        from pymanopt.manifolds.stiefel import Stiefel

        u = Stiefel(self._m, self._k).random_point()
        s = np.sort(np.random.uniform(size=self._k))[::-1]
        vt = Stiefel(self._n, self._k).random_point().T
        s = np.maximum(s, np.finfo(float).tiny)
        return FixedRankPoint(u, s, vt)

    def random_tangent_vector(self, point: Any) -> TangentVector:
        """A random tangent vector of unit length in the metric g."""
        p = self._point(point)
        Up = np.random.normal(size=(self._m, self._k))
        Vp = np.random.normal(size=(self._n, self._k))
        M = np.random.normal(size=(self._k, self._k))
        t = self.to_tangent_space(p, TangentVector(Up, M, Vp))
        return t / self.norm(p, t)

    def zero_vector(self, point: Any) -> TangentVector:
        """The zero tangent vector."""
        return TangentVector(
            np.zeros((self._m, self._k)), np.zeros((self._k, self._k)), np.zeros((self._n, self._k))
        )
