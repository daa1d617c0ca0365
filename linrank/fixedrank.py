r"""The fixed-rank representation: points, tangent vectors and ambient vectors of :math:`\mathcal{M}_k`.

The lowest layer of the geometry (no metric here; see :mod:`linrank.metric` for it). Everything is
a function of the shape ``(m, n, k)`` and of arrays; :class:`linrank.DeepLinearFixedRank` delegates
to these functions.

Representation (as in pymanopt's ``FixedRankEmbedded``)
-------------------------------------------------------
* A point is a thin SVD ``(u, s, vt)`` (:class:`FixedRankPoint`): u (m x k) with orthonormal
  columns, s (k,) positive, vt (k x n) with orthonormal rows. Plain tuples are accepted.
* A tangent vector is ``(Up, M, Vp)`` (:class:`TangentVector`) with ``u.T @ Up = 0``,
  ``vt @ Vp = 0``; it stands for the m x n matrix ``u @ M @ vt + Up @ vt + u @ Vp.T``.
* An ambient (Euclidean) vector Z, e.g. a Euclidean gradient, is one of

  - a dense (m, n) array;
  - a factored triple ``(U, S, V)`` with S two-dimensional, meaning ``U @ S @ V.T`` (pymanopt's
    convention; never formed as m x n);
  - a ``scipy.sparse.linalg.LinearOperator`` or sparse matrix of shape (m, n) (only products with
    k columns are taken);
  - for gradients only: pymanopt's factor gradients ``(du, ds, dvt)`` of a cost f(u, s, vt) (a
    triple whose middle entry is 1-d, or a :class:`FactorGradient`).

  Only the products :math:`Z v` and :math:`Z^T u` are used (:func:`ambient_products`).

What this layer offers the ones above
-------------------------------------
Input checks (:func:`check_shape`, :func:`parse_point`, :func:`parse_tangent`,
:func:`validate_point`, :func:`point_from_matrix`), the Frobenius-orthogonal projection onto the
tangent space (:func:`ambient_products`, :func:`project_products`, :func:`projection`,
:func:`gradient_to_tangent`), conversions (:func:`to_dense`, :func:`embedding`,
:func:`tangent_to_dense`, :func:`to_tangent_space`), the two retractions
(:func:`projection_retraction`, :func:`polar_retraction`), :func:`transport`,
:func:`chordal_distance` and random points. Every operation costs O((m + n) k^2) beyond the products
with an ambient vector.
"""

from __future__ import annotations

import collections
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp
from pymanopt.manifolds.stiefel import Stiefel
from scipy.sparse.linalg import LinearOperator

from .factorgrad import factor_gradient_to_tangent
from .linalg import thin_product

__all__ = [
    "FixedRankPoint",
    "TangentVector",
    "FactorGradient",
    "check_shape",
    "parse_point",
    "parse_tangent",
    "validate_point",
    "point_from_matrix",
    "is_factor_gradient",
    "ambient_products",
    "project_products",
    "projection",
    "factor_gradient_to_tangent",
    "gradient_to_tangent",
    "to_tangent_space",
    "embedding",
    "tangent_to_dense",
    "to_dense",
    "GRAM_RCOND",
    "gram_factor",
    "projection_retraction",
    "polar_retraction",
    "frame_products",
    "transport",
    "chordal_distance",
    "random_point",
    "random_tangent",
    "zero_tangent",
]

Shape = tuple[int, int, int]


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


# ---------------------------------------------------------------------------------- input checks
def check_shape(m: Any, n: Any, k: Any) -> Shape:
    """Validate the shape of M_k: positive integers m, n and 1 <= k <= min(m, n).

    Raises
    ------
    TypeError
        If one is not an integer (bool rejected).
    ValueError
        If one is not positive or k > min(m, n).
    """
    for name, val in (("m", m), ("n", n), ("k", k)):
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)):
            raise TypeError(f"{name} must be a positive integer, got {val!r}")
        if val < 1:
            raise ValueError(f"{name} must be a positive integer, got {val}")
    if k > min(m, n):
        raise ValueError(f"rank k must satisfy 1 <= k <= min(m, n) = {min(m, n)}, got k = {k}")
    return int(m), int(n), int(k)


def parse_point(point: Any, shape: Shape) -> FixedRankPoint:
    """Cheap (O(k)) structural check of a point of M_k of ``shape = (m, n, k)``.

    Checks that it is a triple of arrays of shapes (m, k), (k,), (k, n) with finite positive s;
    see :func:`validate_point` for the full (orthonormality) check.
    """
    if isinstance(point, FixedRankPoint):
        p = point
    else:
        if not isinstance(point, (tuple, list)) or len(point) != 3:
            raise TypeError(
                "a point must be a thin SVD (u, s, vt) of three arrays, got "
                f"{type(point).__name__}"
            )
        p = FixedRankPoint(*(np.asarray(x) for x in point))
    m, n, k = shape
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


def parse_tangent(vector: Any, shape: Shape) -> TangentVector:
    """Structural check of a tangent vector (Up, M, Vp): shapes (m, k), (k, k), (n, k)."""
    if isinstance(vector, TangentVector):
        t = vector
    else:
        if not isinstance(vector, (tuple, list)) or len(vector) != 3:
            raise TypeError(f"a tangent vector must be (Up, M, Vp), got {type(vector).__name__}")
        t = TangentVector(*(np.asarray(x) for x in vector))
    m, n, k = shape
    if np.shape(t.Up) != (m, k) or np.shape(t.M) != (k, k) or np.shape(t.Vp) != (n, k):
        raise ValueError(
            f"tangent vector (Up, M, Vp) must have shapes ({m}, {k}), ({k}, {k}), ({n}, {k}); "
            f"got {np.shape(t.Up)}, {np.shape(t.M)}, {np.shape(t.Vp)}"
        )
    return t


def validate_point(point: Any, shape: Shape, tol: float) -> FixedRankPoint:
    """Full check of a point: :func:`parse_point`, finite factors and orthonormality.

    ``||u^T u - I||_max <= tol`` and ``||vt vt^T - I||_max <= tol``. O((m + n) k^2).
    """
    p = parse_point(point, shape)
    u, s, vt = p
    if not (np.all(np.isfinite(u)) and np.all(np.isfinite(vt))):
        raise ValueError("u and vt must be finite")
    eye = np.eye(shape[2])
    eu = np.max(np.abs(u.T @ u - eye))
    ev = np.max(np.abs(vt @ vt.T - eye))
    if eu > tol:
        raise ValueError(f"u must have orthonormal columns: max |u^T u - I| = {eu:.2e} > {tol}")
    if ev > tol:
        raise ValueError(f"vt must have orthonormal rows: max |vt vt^T - I| = {ev:.2e} > {tol}")
    return p


def point_from_matrix(W: Any, shape: Shape) -> FixedRankPoint:
    """The thin SVD (u, s, vt) of a dense m x n matrix of rank >= k, truncated to rank k.

    Raises ValueError if W has the wrong shape, is not finite, or its k-th singular value is not
    positive (relative to eps * s_max * max(m, n)).
    """
    m, n, k = shape
    W = np.asarray(W, dtype=float)
    if W.shape != (m, n):
        raise ValueError(f"W must have shape ({m}, {n}), got {W.shape}")
    if not np.all(np.isfinite(W)):
        raise ValueError("W must be finite")
    u, s, vt = np.linalg.svd(W, full_matrices=False)
    if s[k - 1] <= s[0] * max(W.shape) * np.finfo(float).eps:
        raise ValueError(f"W has numerical rank below k = {k} (singular values {s[: k + 1]})")
    return FixedRankPoint(u[:, :k], s[:k], vt[:k])


# ------------------------------------------------------------------------------ ambient vectors
def is_factor_gradient(vector: Any) -> bool:
    """Whether ``vector`` is pymanopt's factor gradients (du, ds, dvt): a 1-d middle entry."""
    if isinstance(vector, FactorGradient):
        return True
    return isinstance(vector, (tuple, list)) and len(vector) == 3 and np.ndim(vector[1]) == 1


def ambient_products(point: Any, vector: Any, m: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(Z v, Z^T u)`` for an ambient m x n vector Z in any accepted form (v = vt^T).

    Only ``point[0]`` (u, m x r) and ``point[2]`` (vt, q x n) are read, so frames wider than k
    columns may be passed (the connection passes [u, Up] and [v, Vp]).
    """
    u, _, vt = point
    v = vt.T
    if isinstance(vector, np.ndarray) and vector.ndim == 2:
        if vector.shape != (m, n):
            raise ValueError(f"ambient vector must have shape ({m}, {n}), got {vector.shape}")
        # the faster memory orientation of each product (measured, linrank.linalg)
        return thin_product(vector, v), thin_product(vector, u, transpose=True)
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


def project_products(point: Any, Zv: np.ndarray, Ztu: np.ndarray) -> TangentVector:
    r""":math:`P_T Z` from :math:`Z v` and :math:`Z^T u`: :math:`M = u^T Z v`,
    :math:`U_p = Z v - u M`, :math:`V_p = Z^T u - v M^T`. O((m + n) k^2); fresh arrays."""
    u, _, vt = point
    M = u.T @ Zv
    return TangentVector(Zv - u @ M, M, Ztu - vt.T @ M.T)


def projection(point: Any, vector: Any, m: int, n: int) -> TangentVector:
    r"""Frobenius-orthogonal projection :math:`P_T Z` of an ambient vector onto the tangent space.

    ``point`` must already be parsed (:func:`parse_point`). O((m + n) k^2) after the products.
    """
    Zv, Ztu = ambient_products(point, vector, m, n)
    return project_products(point, Zv, Ztu)


def gradient_to_tangent(point: FixedRankPoint, gradient: Any, m: int, n: int) -> TangentVector:
    r""":math:`P_T \nabla f` for a Euclidean gradient in any accepted form, factor gradients included.

    The one place where factor gradients are told apart from ambient vectors and converted
    (:func:`factor_gradient_to_tangent`). Returns fresh arrays (the caller may scale them in place).
    """
    if is_factor_gradient(gradient):
        return TangentVector(*factor_gradient_to_tangent(point, gradient))
    return projection(point, gradient, m, n)


# ---------------------------------------------------------------------------------- conversions
def to_tangent_space(point: Any, vector: TangentVector) -> TangentVector:
    """Re-tangentialize (Up, M, Vp): remove the components of Up along u and of Vp along v."""
    u, _, vt = point
    t = vector
    return TangentVector(t.Up - u @ (u.T @ t.Up), t.M, t.Vp - vt.T @ (vt @ t.Vp))


def embedding(point: Any, vector: TangentVector) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The tangent vector as a factored ambient matrix (U, S, V) = ([u M + Up, u], I, [v, Vp]).

    ``U @ S @ V.T == u M vt + Up vt + u Vp^T`` (pymanopt's convention).
    """
    u, _, vt = point
    t = vector
    U = np.hstack((u @ t.M + t.Up, u))
    S = np.eye(2 * u.shape[1])
    V = np.hstack((vt.T, t.Vp))
    return U, S, V


def tangent_to_dense(point: Any, vector: TangentVector) -> np.ndarray:
    """The tangent vector as a dense m x n matrix (small sizes, tests, plots)."""
    U, S, V = embedding(point, vector)
    return U @ S @ V.T


def to_dense(point: Any) -> np.ndarray:
    """The point as a dense matrix u diag(s) vt."""
    u, s, vt = point
    return (np.asarray(u) * np.asarray(s)) @ np.asarray(vt)


def chordal_distance(a: FixedRankPoint, b: FixedRankPoint) -> float:
    r""":math:`\|W_a - W_b\|_F` from the factors, O((m + n) k^2), no m x n matrix."""
    # ||A||^2 + ||B||^2 - 2 <A, B>, <A, B> = tr(S_a (u_a^T u_b) S_b (vt_b vt_a^T))
    cross = np.sum((a.s[:, None] * (a.u.T @ b.u) * b.s[None, :]) * (a.vt @ b.vt.T))
    val = np.sum(a.s**2) + np.sum(b.s**2) - 2.0 * cross
    return float(np.sqrt(max(val, 0.0)))


# ---------------------------------------------------------------------------------- retractions
#: The projection retraction uses the Cholesky factor of the Gram matrix ``Up^T Up`` (``Vp^T Vp``)
#: instead of a Householder QR of Up (Vp) unless Cholesky fails or the ratio of the smallest to
#: the largest diagonal entry of the factor (a lower bound of ``1 / cond(Up)``) is below this;
#: then that side falls back to the QR. Measured: results equal to the QR form to <= 2e-15
#: relative up to ``cond(Up) = 1e8`` (tests/test_retraction.py), so the threshold leaves margin
#: for the estimate's underestimation of the condition number.
GRAM_RCOND = 1e-6


def gram_factor(A: np.ndarray) -> np.ndarray | None:
    """Upper triangular R with ``A^T A = R^T R`` (Cholesky of the Gram matrix), or None when A is
    rank deficient or ill-conditioned (diagonal ratio of R below :data:`GRAM_RCOND`)."""
    try:
        L = np.linalg.cholesky(A.T @ A)
    except np.linalg.LinAlgError:
        return None
    d = np.diagonal(L)
    if not d.min() > GRAM_RCOND * d.max():  # also catches NaN
        return None
    return L.T


def _side_factor(A: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """(B, R, Q-or-None): A = Q R with Q = A R^{-1} (Gram form, returned as (A, R, None)) or a
    Householder QR (returned as (Q, R, Q)) when the Gram form is ill-conditioned."""
    R = gram_factor(A)
    if R is not None:
        return A, R, None
    Q, R = np.linalg.qr(A)
    return Q, R, Q


def _apply_side(B: np.ndarray, R: np.ndarray, Q: np.ndarray | None, C: np.ndarray) -> np.ndarray:
    """``Q @ C`` with Q = B R^{-1} (Gram form: a k x k triangular solve, no m x k Q formed)."""
    if Q is not None:
        return Q @ C
    # numpy's LAPACK (not scipy's dtrtrs: alternating between the two OpenBLAS builds costs
    # thread-pool hand-overs, see README "Threads")
    return B @ np.linalg.solve(R, C)


def projection_retraction(point: FixedRankPoint, t: TangentVector) -> FixedRankPoint:
    r"""The rank-k truncated SVD of :math:`W + \xi` (the metric projection onto M_k).

    With :math:`U_p = Q_u R_u`, :math:`V_p = Q_v R_v`,
    :math:`W + \xi = [u\ Q_u]\,T\,[v\ Q_v]^T`, :math:`T = \begin{pmatrix} S + M & R_v^T \\
    R_u & 0\end{pmatrix}`, and the SVD of the 2k x 2k matrix T gives the result. R_u, R_v come
    from the Cholesky factors of the k x k Gram matrices :math:`U_p^T U_p`, :math:`V_p^T V_p`
    and Q_u, Q_v are never formed (:math:`[u\ Q_u] a = u a_1 + U_p R_u^{-1} a_2`); a side whose
    Gram matrix is ill-conditioned (:data:`GRAM_RCOND`) uses a Householder QR instead (as
    pymanopt's FixedRankEmbedded). O((m + n) k^2). Singular values below ``eps * s_max`` are
    floored.
    """
    u, s, vt = point
    k = s.shape[0]
    Bu, Ru, Qu = _side_factor(t.Up)
    Bv, Rv, Qv = _side_factor(t.Vp)
    T = np.zeros((2 * k, 2 * k))
    T[:k, :k] = t.M
    i = np.arange(k)
    T[i, i] += s
    T[:k, k:] = Rv.T
    T[k:, :k] = Ru
    Ut, St, Vtt = np.linalg.svd(T)
    S = St[:k]
    if not np.all(np.isfinite(S)):
        raise ValueError("retraction produced non-finite singular values (step not finite)")
    S = np.maximum(S, S[0] * np.finfo(float).eps)
    U = u @ Ut[:k, :k]
    U += _apply_side(Bu, Ru, Qu, Ut[k:, :k])
    Vt = Vtt[:k, :k] @ vt
    Vt += _apply_side(Bv, Rv, Qv, Vtt[:k, k:].T).T
    return FixedRankPoint(U, S, Vt)


def polar_retraction(point: FixedRankPoint, t: TangentVector) -> FixedRankPoint:
    r"""The polar retraction :math:`U' K V'^T`, :math:`K = S + M`,
    :math:`U' = \operatorname{pf}(u + U_p K^{-1})`, :math:`V' = \operatorname{pf}(v + V_p K^{-T})`.

    See :meth:`linrank.DeepLinearFixedRank.retraction`. K is inverted through its SVD with
    singular values floored at ``eps * s_max``. O((m + n) k^2).
    """
    u, s, vt = point
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


def frame_products(point_a: FixedRankPoint, point_b: FixedRankPoint) -> tuple[np.ndarray, np.ndarray]:
    """The k x k cross products ``(u_a^T u_b, v_a^T v_b)`` of two points' frames (what
    :func:`transport` needs of the points alone). O((m + n) k^2)."""
    return point_a.u.T @ point_b.u, point_a.vt @ point_b.vt.T


def transport(
    point_a: FixedRankPoint, point_b: FixedRankPoint, vector_a: TangentVector,
    frames: tuple[np.ndarray, np.ndarray] | None = None,
) -> TangentVector:
    r"""Vector transport by Frobenius projection onto the tangent space at ``point_b``.

    With :math:`Z = u_a M v_a^T + U_p v_a^T + u_a V_p^T`, :math:`P_u = u_a^T u_b`,
    :math:`P_v = v_a^T v_b`: :math:`Z v_b = u_a A + U_p P_v`, :math:`A = M P_v + V_p^T v_b`;
    :math:`Z^T u_b = v_a B + V_p P_u`, :math:`B = M^T P_u + U_p^T u_b`;
    :math:`M_b = u_b^T Z v_b = P_u^T A + (U_p^T u_b)^T P_v`, and the result is
    :math:`(Z v_b - u_b M_b,\ M_b,\ Z^T u_b - v_b M_b^T)` (:func:`project_products`). Only
    k x k intermediates beside the result, no m x n or m x 2k array, O((m + n) k^2).
    ``frames`` may pass :func:`frame_products` of the two points (reused when several vectors
    are transported between the same points).
    """
    ua, vta = point_a.u, point_a.vt
    ub, vtb = point_b.u, point_b.vt
    Pu, Pv = frame_products(point_a, point_b) if frames is None else frames
    Up, M, Vp = vector_a
    Uu = Up.T @ ub  # k x k
    A = M @ Pv + Vp.T @ vtb.T
    B = M.T @ Pu + Uu
    Mb = Pu.T @ A + Uu.T @ Pv
    Upb = ua @ A
    Upb += Up @ Pv
    Upb -= ub @ Mb
    Vpb = vta.T @ B
    Vpb += Vp @ Pu
    Vpb -= vtb.T @ Mb.T
    return TangentVector(Upb, Mb, Vpb)


# ------------------------------------------------------------------------------- random, zero
def random_point(shape: Shape) -> FixedRankPoint:
    """A random point: Haar-like u, v (QR of Gaussians), s uniform in (0, 1), sorted descending.

    Uses numpy's global random state exactly as pymanopt's FixedRankEmbedded does.
    """
    m, n, k = shape
    u = Stiefel(m, k).random_point()
    s = np.sort(np.random.uniform(size=k))[::-1]
    vt = Stiefel(n, k).random_point().T
    s = np.maximum(s, np.finfo(float).tiny)
    return FixedRankPoint(u, s, vt)


def random_tangent(point: FixedRankPoint) -> TangentVector:
    """A random tangent vector with i.i.d. Gaussian blocks (before tangentialization), unnormalized.

    Draws Up, Vp, M in that order from numpy's global random state.
    """
    u, s, vt = point
    m, k, n = u.shape[0], s.shape[0], vt.shape[1]
    Up = np.random.normal(size=(m, k))
    Vp = np.random.normal(size=(n, k))
    M = np.random.normal(size=(k, k))
    return to_tangent_space(point, TangentVector(Up, M, Vp))


def zero_tangent(shape: Shape) -> TangentVector:
    """The zero tangent vector."""
    m, n, k = shape
    return TangentVector(np.zeros((m, k)), np.zeros((k, k)), np.zeros((n, k)))
