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
Input checks (:func:`real_array`, :func:`all_finite`, :func:`check_shape`, :func:`parse_point`,
:func:`parse_tangent`, :func:`check_tangent`, :func:`check_point_factors`,
:func:`validate_point`, :func:`point_from_matrix`), the Frobenius-orthogonal projection onto the
tangent space (:func:`ambient_products`, :func:`project_products`, :func:`projection`,
:func:`gradient_to_tangent`), conversions (:func:`to_dense`, :func:`embedding`,
:func:`tangent_to_dense`, :func:`to_tangent_space`), :func:`chordal_distance` and random points.
The retractions and the transport, built on these, are in :mod:`linrank.retractions`. Every
operation costs O((m + n) k^2) beyond the products with an ambient vector.

Errors: wrong types (complex and non-numeric arrays included) raise TypeError, wrong shapes and
NaN or inf raise ValueError, each naming the argument. The checks cost O(k) for a point (its
singular values; u and vt are checked, by sums, where they are used) and O(1) for a tangent's
types; finiteness of tangent vectors costs O((m + n) k) sums where checked.
"""

from __future__ import annotations

import collections
import math
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
    "real_array",
    "all_finite",
    "require_finite",
    "parse_point",
    "parse_tangent",
    "check_tangent",
    "check_tangent_at",
    "check_point_factors",
    "validate_point",
    "point_from_matrix",
    "is_factor_gradient",
    "ambient_products",
    "project_products",
    "projection",
    "gradient_to_tangent",
    "to_tangent_space",
    "embedding",
    "tangent_to_dense",
    "to_dense",
    "chordal_distance",
    "random_point",
    "random_tangent",
    "zero_tangent",
]

Shape = tuple[int, int, int]

_ADD = np.add.reduce  # np.sum without its Python wrapper (all_finite runs on every operation)


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
def real_array(name: str, x: Any) -> np.ndarray:
    """``x`` as a numpy array of real numbers (float, integer or bool dtype), without copying.

    Raises
    ------
    TypeError
        Naming ``name``: complex numbers (linrank works over the reals; numpy would otherwise
        drop the imaginary part silently), strings, objects, or something that is not an array.
    """
    if _is_real_ndarray(x):  # the common case, fast
        return x
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"{name} must be an array of real numbers, got {type(x).__name__}")
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as exc:
        raise TypeError(f"{name} must be an array of real numbers ({exc})") from None
    kind = arr.dtype.kind
    if kind in "fiub":
        return arr
    if kind == "c":
        raise TypeError(
            f"{name} must be real, got complex dtype {arr.dtype} (complex input is refused, not "
            "cut to its real part; pass the real part explicitly if that is what you mean)"
        )
    raise TypeError(f"{name} must be an array of real numbers, got dtype {arr.dtype}")


def all_finite(*arrays: Any) -> bool:
    """Whether every entry of every array is finite, in O(size) without a boolean temporary.

    Sums first (NaN and inf propagate through a sum); only when a sum is not finite (which
    finite entries near the largest float can also cause) are the entries checked one by one.
    """
    with np.errstate(over="ignore", invalid="ignore"):  # inf - inf or overflow: checked below
        for a in arrays:
            if not math.isfinite(_ADD(a, axis=None)) and not np.all(np.isfinite(a)):
                return False
    return True


def require_finite(name: str, *arrays: Any) -> None:
    """Raise ValueError naming ``name`` unless every entry of ``arrays`` is finite."""
    if not all_finite(*arrays):
        raise ValueError(f"{name} contains NaN or inf")


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


def _is_real_ndarray(x: Any) -> bool:
    return isinstance(x, np.ndarray) and x.dtype.kind in "fiub"


def parse_point(point: Any, shape: Shape, name: str = "point") -> FixedRankPoint:
    """Cheap structural check of a point of M_k of ``shape = (m, n, k)``; errors name ``name``.

    Checks, in O(k), that it is a triple of real arrays of shapes (m, k), (k,), (k, n) with
    finite positive s. The finiteness of u and vt is checked by the operations that use them;
    see :func:`validate_point` for the full (orthonormality) check.
    """
    if not isinstance(point, (tuple, list)) or len(point) != 3:
        raise TypeError(
            f"{name} must be a thin SVD (u, s, vt) of three arrays, got {type(point).__name__}"
        )
    u, s, vt = point
    if _is_real_ndarray(u) and _is_real_ndarray(s) and _is_real_ndarray(vt):  # the common case
        p = point if isinstance(point, FixedRankPoint) else FixedRankPoint(u, s, vt)
    else:
        p = FixedRankPoint(
            *(real_array(f"{name}: {f}", x) for f, x in zip(FixedRankPoint._fields, point))
        )
        u, s, vt = p
    m, n, k = shape
    if u.shape != (m, k) or s.shape != (k,) or vt.shape != (k, n):
        raise ValueError(
            f"{name} (u, s, vt) must have shapes ({m}, {k}), ({k},), ({k}, {n}); got "
            f"{u.shape}, {s.shape}, {vt.shape}"
        )
    smin, smax = s.min(), s.max()
    if not (smin > 0 and smax < np.inf):
        raise ValueError(f"{name}: singular values s must be finite and positive, got {s}")
    return p


def parse_tangent(vector: Any, shape: Shape, name: str = "tangent_vector") -> TangentVector:
    """Structural check of a tangent vector (Up, M, Vp): real arrays of shapes (m, k), (k, k),
    (n, k); O(1), errors name ``name``. Finiteness: :func:`check_tangent`."""
    if not isinstance(vector, (tuple, list)) or len(vector) != 3:
        raise TypeError(f"{name} must be a tangent vector (Up, M, Vp), got {type(vector).__name__}")
    Up, M, Vp = vector
    if _is_real_ndarray(Up) and _is_real_ndarray(M) and _is_real_ndarray(Vp):  # the common case
        t = vector if isinstance(vector, TangentVector) else TangentVector(Up, M, Vp)
    else:
        t = TangentVector(
            *(real_array(f"{name}: {f}", x) for f, x in zip(TangentVector._fields, vector))
        )
        Up, M, Vp = t
    m, n, k = shape
    if Up.shape != (m, k) or M.shape != (k, k) or Vp.shape != (n, k):
        raise ValueError(
            f"{name} (Up, M, Vp) must have shapes ({m}, {k}), ({k}, {k}), ({n}, {k}); "
            f"got {Up.shape}, {M.shape}, {Vp.shape}"
        )
    return t


def check_tangent(vector: Any, shape: Shape, name: str = "tangent_vector") -> TangentVector:
    """:func:`parse_tangent` and finite entries (O((m + n) k) sums); errors name ``name``."""
    t = parse_tangent(vector, shape, name)
    if not all_finite(*t):
        raise ValueError(f"{name} contains NaN or inf")
    return t


def check_tangent_at(point: FixedRankPoint, vector: Any, shape: Shape, name: str) -> TangentVector:
    r""":func:`check_tangent` and tangency at ``point``: :math:`u^T U_p = 0` and
    :math:`v^T V_p = 0` to rounding; else a ValueError naming ``name``. O((m + n) k^2).

    Tolerance (from the conditioning of how a tangent vector is computed): projecting an ambient
    Z leaves :math:`\|u^T U_p\|_F \lesssim (m + n)\,\epsilon\,\|Z\|_F + \delta \|Z\|_F`, with
    :math:`\delta` the orthonormality defect :math:`\max(\|u^Tu - I\|_F, \|v^Tv - I\|_F)` of the
    point. The check allows :math:`\|Z\|` up to 100 times the tangent vector's norm
    :math:`\|X\| = (\|U_p\|^2 + \|M\|^2 + \|V_p\|^2)^{1/2}`:
    :math:`\max(\|u^T U_p\|_F, \|v^T V_p\|_F) \le 100\,((m + n)\,\epsilon + \delta)\,\|X\|`.
    A normal component that passes changes results built on X by at most that relative amount.
    """
    t = check_tangent(vector, shape, name)
    u, _, vt = check_point_factors(point)
    m, n, k = shape
    eye = np.eye(k)
    defect = max(np.linalg.norm(u.T @ u - eye), np.linalg.norm(vt @ vt.T - eye))
    size = np.sqrt(sum(float(np.sum(b * b)) for b in t))
    off = max(np.linalg.norm(u.T @ t.Up), np.linalg.norm(vt @ t.Vp))
    tol = 100.0 * ((m + n) * np.finfo(float).eps + defect) * size
    if not off <= tol:
        raise ValueError(
            f"{name} is not tangent at the point: its Up must be orthogonal to u and its Vp to v "
            f"(max(|u^T Up|, |v^T Vp|) = {off:.3g} > {tol:.3g}, 100 (m + n) eps |{name}| plus the "
            "point's orthonormality defect); project it first (manifold.to_tangent_space or "
            "manifold.projection)"
        )
    return t


def check_point_factors(point: FixedRankPoint, name: str = "point") -> FixedRankPoint:
    """Finite u and vt of a parsed point (O((m + n) k) sums); errors name ``name``."""
    if not all_finite(point.u, point.vt):
        raise ValueError(f"{name}: u or vt contains NaN or inf")
    return point


def validate_point(point: Any, shape: Shape, tol: float, name: str = "point") -> FixedRankPoint:
    """Full check of a point: :func:`parse_point`, finite factors and orthonormality.

    ``||u^T u - I||_max <= tol`` and ``||vt vt^T - I||_max <= tol``. O((m + n) k^2).
    """
    p = parse_point(point, shape, name)
    u, s, vt = p
    if not (np.all(np.isfinite(u)) and np.all(np.isfinite(vt))):
        raise ValueError(f"{name}: u and vt must be finite (they contain NaN or inf)")
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
    W = real_array("W", W).astype(float, copy=False)
    if W.shape != (m, n):
        raise ValueError(f"W must have shape ({m}, {n}), got {W.shape}")
    if not np.all(np.isfinite(W)):
        raise ValueError("W must be finite (it contains NaN or inf)")
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


def ambient_products(
    point: Any, vector: Any, m: int, n: int, name: str = "ambient vector"
) -> tuple[np.ndarray, np.ndarray]:
    """``(Z v, Z^T u)`` for an ambient m x n vector Z in any accepted form (v = vt^T).

    Only ``point[0]`` (u, m x r) and ``point[2]`` (vt, q x n) are read, so frames wider than k
    columns may be passed (the connection passes [u, Up] and [v, Vp]).

    Raises
    ------
    TypeError
        Z of no accepted form, complex or non-numeric (naming ``name``).
    ValueError
        Wrong shape; NaN or inf in the products (naming ``name``, or the point if its u or vt
        are the cause). Checked by sums, O((m + n) r) beyond the products.
    """
    u, _, vt = point
    v = vt.T
    if isinstance(vector, np.ndarray) and vector.ndim == 2:
        real_array(name, vector)
        if vector.shape != (m, n):
            raise ValueError(f"{name} must have shape ({m}, {n}), got {vector.shape}")
        # the faster memory orientation of each product (measured, linrank.linalg)
        Zv, Ztu = thin_product(vector, v), thin_product(vector, u, transpose=True)
    elif isinstance(vector, LinearOperator) or sp.issparse(vector):
        if vector.shape != (m, n):
            raise ValueError(f"{name} (an operator) must have shape ({m}, {n}), got {vector.shape}")
        if vector.dtype is not None and np.dtype(vector.dtype).kind == "c":
            raise TypeError(f"{name} must be real, got an operator of dtype {vector.dtype}")
        if sp.issparse(vector):
            Zv, Ztu = np.asarray(vector @ v), np.asarray(vector.T @ u)
        else:
            Zv, Ztu = np.asarray(vector.matmat(v)), np.asarray(vector.rmatmat(u))
        real_array(f"{name}: its products", Zv)
        real_array(f"{name}: its products", Ztu)
    elif isinstance(vector, (tuple, list)) and len(vector) == 3:
        U, S, V = (real_array(f"{name}: {f}", x) for f, x in zip("USV", vector))
        if S.ndim != 2 or U.ndim != 2 or V.ndim != 2:
            raise ValueError(
                f"a factored {name} is (U, S, V) with 2-d arrays meaning U @ S @ V.T; "
                f"got dimensions {U.ndim}, {S.ndim}, {V.ndim}"
            )
        if U.shape[0] != m or V.shape[0] != n or S.shape != (U.shape[1], V.shape[1]):
            raise ValueError(
                f"factored {name} (U, S, V) needs U ({m}, r), S (r, q), V ({n}, q); "
                f"got {U.shape}, {S.shape}, {V.shape}"
            )
        Zv, Ztu = U @ (S @ (V.T @ v)), V @ (S.T @ (U.T @ u))
    else:
        raise TypeError(
            f"{name} must be an ambient ({m}, {n}) vector: a dense array, a factored (U, S, V) "
            "triple, "
            f"a scipy LinearOperator or a sparse matrix; got {type(vector).__name__}"
        )
    if not all_finite(Zv, Ztu):
        if not all_finite(u, vt):
            raise ValueError("point: u or vt contains NaN or inf")
        raise ValueError(f"{name} contains NaN or inf (its products with the point are not finite)")
    return Zv, Ztu


def project_products(point: Any, Zv: np.ndarray, Ztu: np.ndarray) -> TangentVector:
    r""":math:`P_T Z` from :math:`Z v` and :math:`Z^T u`: :math:`M = u^T Z v`,
    :math:`U_p = Z v - u M`, :math:`V_p = Z^T u - v M^T`. O((m + n) k^2); fresh arrays."""
    u, _, vt = point
    M = u.T @ Zv
    return TangentVector(Zv - u @ M, M, Ztu - vt.T @ M.T)


def projection(
    point: Any, vector: Any, m: int, n: int, name: str = "ambient vector"
) -> TangentVector:
    r"""Frobenius-orthogonal projection :math:`P_T Z` of an ambient vector onto the tangent space.

    ``point`` must already be parsed (:func:`parse_point`). O((m + n) k^2) after the products.
    """
    Zv, Ztu = ambient_products(point, vector, m, n, name)
    return project_products(point, Zv, Ztu)


def gradient_to_tangent(
    point: FixedRankPoint, gradient: Any, m: int, n: int, name: str = "euclidean_gradient"
) -> TangentVector:
    r""":math:`P_T \nabla f` for a Euclidean gradient in any accepted form, factor gradients included.

    The one place where factor gradients are told apart from ambient vectors, checked and
    converted (:func:`linrank.factorgrad.factor_gradient_to_tangent`). Returns fresh arrays
    (the caller may scale them in place).
    """
    if is_factor_gradient(gradient):
        try:  # factor_gradient_to_tangent checks shapes, dtypes and finiteness of du, ds, dvt
            return TangentVector(*factor_gradient_to_tangent(point, gradient))
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{name} (factor gradients): {exc}") from None
    return projection(point, gradient, m, n, name)


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


def to_dense(point: Any, shape: Shape | None = None) -> np.ndarray:
    """The point as a dense matrix u diag(s) vt (ValueError if it has NaN or inf entries).

    With ``shape = (m, n, k)`` the factors must have shapes (m, k), (k,), (k, n) (ValueError
    naming them otherwise); without it, any consistent shapes (m, j), (j,), (j, n).
    """
    if not isinstance(point, (tuple, list)) or len(point) != 3:
        raise TypeError(f"point must be a thin SVD (u, s, vt), got {type(point).__name__}")
    u, s, vt = (real_array(f"point: {f}", x) for f, x in zip(FixedRankPoint._fields, point))
    if shape is not None:
        m, n, k = shape
        want = ((m, k), (k,), (k, n))
    else:
        j = s.shape[0] if s.ndim == 1 else -1
        want = ((u.shape[0] if u.ndim == 2 else -1, j), (j,), (j, vt.shape[-1] if vt.ndim else -1))
    if (u.shape, s.shape, vt.shape) != want:
        raise ValueError(
            f"point (u, s, vt) must have shapes {want[0]}, {want[1]}, {want[2]}; got {u.shape}, "
            f"{s.shape}, {vt.shape}"
        )
    W = (u * s) @ vt
    if not all_finite(W):
        raise ValueError("point contains NaN or inf (or u diag(s) vt overflows)")
    return W


def chordal_distance(a: FixedRankPoint, b: FixedRankPoint) -> float:
    r""":math:`\|W_a - W_b\|_F` from the factors, O((m + n) k^2), no m x n matrix."""
    # ||A||^2 + ||B||^2 - 2 <A, B>, <A, B> = tr(S_a (u_a^T u_b) S_b (vt_b vt_a^T))
    cross = np.sum((a.s[:, None] * (a.u.T @ b.u) * b.s[None, :]) * (a.vt @ b.vt.T))
    val = np.sum(a.s**2) + np.sum(b.s**2) - 2.0 * cross
    return float(np.sqrt(max(val, 0.0)))


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
