r"""The Frobenius gradient on :math:`\mathcal{M}_k` from the factor gradients of a cost f(u, s, vt).

pymanopt's autodiff backends differentiate a cost written on the thin SVD factors,
:math:`f(u, s, v^T)`, and hand over the partial derivatives ``(du, ds, dvt)``. The cost is a
function :math:`F` on the manifold :math:`\mathcal{M}_k` of rank-k matrices only through its values
at orthonormal u, v: :math:`f(u, s, v^T) = F(u\,\mathrm{diag}(s)\,v^T)` there, while off that set
(u not orthonormal) f depends on how the cost is written (``||W||^2`` and ``sum(s**2)`` agree on the
manifold, not off it). :func:`factor_gradient_to_tangent` extracts from ``(du, ds, dvt)`` exactly
the parts that the values on the manifold determine, and returns the Frobenius projection
:math:`P_T \nabla F` as a tangent vector ``(Up, M, Vp)`` (meaning ``u M vt + Up vt + u Vp^T``). The
Riemannian gradient of the deep-linear metric is then :math:`\mathcal{A}_W(P_T \nabla F)` (eq. (31)
of Bah, Rauhut, Terstiege and Westdickenberg 2019), applied by the manifold.

Derivation
----------
Write :math:`S = \mathrm{diag}(s)`, :math:`W = u S v^T` and let
:math:`\xi = P_T G = u M v^T + U_p v^T + u V_p^T` with :math:`G = \nabla F(W)`, so
:math:`M = u^T G v`, :math:`U_p = (I - uu^T) G v`, :math:`V_p = (I - vv^T) G^T u`. Along any
curve of factors that stays orthonormal, the derivative of f,
:math:`\langle du, \dot u\rangle + \langle ds, \dot s\rangle + \langle dvt, \dot v^T\rangle`, must
equal :math:`\langle G, \dot W\rangle = \langle \xi, \dot W\rangle` with
:math:`\dot W = \dot u S v^T + u\,\mathrm{diag}(\dot s)\,v^T + u S \dot v^T`. The velocities of
orthonormal factors are :math:`\dot u = u\Omega + (I - uu^T)X`,
:math:`\dot v = v\Theta + (I - vv^T)Y` with :math:`\Omega, \Theta` skew and X, Y arbitrary.
Taking one kind of velocity at a time:

* :math:`\dot s`: :math:`\langle ds, \dot s\rangle = \sum_i \dot s_i M_{ii}`, so
  :math:`\mathrm{diag}(M) = ds`.
* :math:`\dot u = (I - uu^T)X`: :math:`(I - uu^T)\,du = (I - uu^T) G v S`, so
  :math:`U_p = (I - uu^T)\,du\,S^{-1}`; likewise :math:`V_p = (I - vv^T)\,dvt^T S^{-1}`.
* :math:`\dot u = u\Omega`: :math:`\langle u^T du, \Omega\rangle = \langle M, \Omega S\rangle
  = \langle M S, \Omega\rangle` for every skew :math:`\Omega`, so with :math:`A = u^T du`,
  :math:`a_{ij} = A_{ij} - A_{ji} = s_j M_{ij} - s_i M_{ji}`.
* :math:`\dot v = v\Theta`, :math:`\dot v^T = -\Theta v^T`: with :math:`B = v^T dvt^T` (``vt @
  dvt.T``), :math:`\langle B, \Theta\rangle = \langle M^T S, \Theta\rangle`, so
  :math:`b_{ij} = B_{ij} - B_{ji} = s_j M_{ji} - s_i M_{ij}`.

The symmetric parts of :math:`u^T du` and :math:`v^T dvt^T` are derivatives across the manifold
(changes of :math:`u^Tu`) and carry no information. For :math:`i \ne j` the two equations
:math:`s_j M_{ij} - s_i M_{ji} = a_{ij}`, :math:`-s_i M_{ij} + s_j M_{ji} = b_{ij}` have determinant
:math:`s_j^2 - s_i^2`; adding and subtracting them decouples them:

.. math::

    M_{ij} + M_{ji} = \frac{a_{ij} + b_{ij}}{s_j - s_i}, \qquad
    M_{ij} - M_{ji} = \frac{a_{ij} - b_{ij}}{s_i + s_j}.

(The same solution as pymanopt's :math:`M_{ij} = (s_j a_{ij} + s_i b_{ij})/(s_j^2 - s_i^2)`, without
squares, so nothing overflows before the result does.) The antisymmetric part of each off-diagonal
pair is always determined. The symmetric part is not at equal singular values: there the curve
that turns u and v by the same rotation inside the pair does not move W, :math:`a_{ij} + b_{ij} = 0`
for every cost, and the factor derivatives say nothing about :math:`M_{ij} + M_{ji}`.

Accuracy and the separation
---------------------------
Everything but the symmetric off-diagonal part is computed without a difference in a denominator:
its error is a few units of roundoff relative to the factor gradients (and to 1/s for Up, Vp). The
symmetric part divides :math:`a_{ij} + b_{ij}`, whose rounding error is about
:math:`\epsilon\,(\|du_i\| + \|du_j\| + \|dvt_i\| + \|dvt_j\|)` (columns of du, rows of dvt), by
:math:`s_j - s_i`. For a cost of the product :math:`F(u S v^T)` these columns are
:math:`\approx \|G\| \max(s_i, s_j)`, so with the pair's relative gap
:math:`\gamma_{ij} = |s_i - s_j| / \max(s_i, s_j)` the error is about
:math:`\epsilon\,\|G\| / \gamma_{ij}` (measured at most :math:`0.4\,\epsilon\|G\|/\gamma` for gaps
from 0.1 down to :math:`1.5\cdot 10^{-8}`; tests/test_factorgrad.py asserts
:math:`4\epsilon/\gamma`).
The division is therefore used where :math:`\gamma_{ij} \ge` ``gap_tol`` (default
:data:`GAP_TOL` :math:`= \sqrt{\epsilon} \approx 1.5 \cdot 10^{-8}`): there the result is
:math:`P_T \nabla F` to about :math:`10^{-8}\|G\|` at worst, and to a few eps for well separated
values. Closer pairs, equal ones included, get what the factor gradients determine reliably: the
antisymmetric part (exact) and the symmetric part set to 0. At equal values this is the
minimum-norm tangent vector consistent with the factor gradients; at unequal values closer than
``gap_tol`` the symmetric part would be known only to :math:`\epsilon/\gamma` relative, more than
half the digits lost, and is dropped rather than returned with that error. The choice of
:math:`\sqrt\epsilon` balances the two errors: where an optimizer drives two singular values
together (a minimizer with a repeated singular value), the gap and the missing symmetric part are
both of the order of the distance d to the minimizer while the cost is within :math:`O(d^2)` of
its minimum, so below the threshold the cost has converged to rounding; above it the division
loses at most half the digits (tests/test_factorgrad.py: such runs reach the minimum to 1e-12).
Dropping the part keeps the result a descent direction: the returned vector is the orthogonal
projection of :math:`P_T \nabla F` onto a subspace (for every depth, since the weights of
:math:`\mathcal{A}_W` are symmetric in i, j). A cost given on W (a dense or factored gradient) has
no such limit: use that form where singular values coincide.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["GAP_TOL", "factor_gradient_to_tangent", "undetermined_pairs"]

#: Default relative gap below which a pair's symmetric part is treated as undetermined.
GAP_TOL: float = float(np.sqrt(np.finfo(float).eps))


def _as_real(name: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise TypeError(f"{name} must be a real floating-point array, got dtype {arr.dtype}")
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    return arr.astype(float, copy=False)


def _check_gap_tol(gap_tol: float) -> float:
    if isinstance(gap_tol, bool) or not isinstance(gap_tol, (int, float, np.floating)):
        raise TypeError(f"gap_tol must be a real number in [0, 1), got {gap_tol!r}")
    if not 0.0 <= gap_tol < 1.0:
        raise ValueError(f"gap_tol must lie in [0, 1), got {gap_tol}")
    return float(gap_tol)


def undetermined_pairs(s: Any, gap_tol: float = GAP_TOL) -> np.ndarray:
    r"""Mask of the pairs (i, j), i != j, whose symmetric part :math:`M_{ij} + M_{ji}` is not used.

    ``True`` where :math:`|s_i - s_j| < \mathrm{gap\_tol} \cdot \max(s_i, s_j)` (the relative gap of
    the module docstring). With ``gap_tol=0`` only exactly equal values are undetermined.

    Parameters
    ----------
    s : (k,) array of positive finite singular values.
    gap_tol : relative gap in [0, 1), default :data:`GAP_TOL` = sqrt(eps).

    Returns
    -------
    (k, k) boolean array, symmetric, ``False`` on the diagonal.
    """
    gap_tol = _check_gap_tol(gap_tol)
    s = np.asarray(s)
    if s.ndim != 1:
        raise ValueError(f"s must be a 1-d array of singular values, got shape {s.shape}")
    s = _as_real("s", s, s.shape)
    if not (np.all(np.isfinite(s)) and np.all(s > 0)):
        raise ValueError(f"singular values s must be finite and positive, got {s}")
    gap = np.abs(np.subtract.outer(s, s))
    close = gap < gap_tol * np.maximum.outer(s, s)
    close |= gap == 0
    np.fill_diagonal(close, False)
    return close


def factor_gradient_to_tangent(
    point: Any, factor_gradient: Any, gap_tol: float = GAP_TOL
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""The Frobenius projection :math:`P_T \nabla F` from the factor gradients of f(u, s, vt).

    With :math:`A = u^T du`, :math:`B = v^T dvt^T`, :math:`a = A - A^T`, :math:`b = B - B^T`
    (derivation in the module docstring):

    .. math::

        U_p = (I - uu^T)\,du\,S^{-1},\quad V_p = (I - vv^T)\,dvt^T S^{-1},\quad M_{ii} = ds_i,

        M_{ij} = \tfrac12\Big(\frac{a_{ij} + b_{ij}}{s_j - s_i}
                 + \frac{a_{ij} - b_{ij}}{s_i + s_j}\Big)\quad (i \ne j),

    where the first fraction (the symmetric part :math:`M_{ij} + M_{ji}`) is replaced by 0 for
    the pairs of :func:`undetermined_pairs` (relative gap below ``gap_tol``, equal values
    included): the factor gradients do not determine it there, and 0 is the minimum-norm answer.
    Never NaN for finite input.

    Accuracy: exact to a few ulps (relative to the factor gradients) except the symmetric
    off-diagonal part, whose absolute error is about
    :math:`\epsilon (\|du_i\| + \|du_j\| + \|dvt_i\| + \|dvt_j\|) / |s_i - s_j|`: for a cost of the
    product, :math:`\epsilon \|G\| / \gamma_{ij}` with the pair's relative gap
    :math:`\gamma_{ij} \ge` ``gap_tol``. Cost O((m + n) k^2).

    Parameters
    ----------
    point : the thin SVD ``(u, s, vt)`` of a point of :math:`\mathcal{M}_k`, u (m, k) and vt (k, n)
        orthonormal, s (k,) positive.
    factor_gradient : ``(du, ds, dvt)``, the partial derivatives of f at ``point`` with shapes
        (m, k), (k,), (k, n) (as pymanopt's autodiff backends return them).
    gap_tol : the relative separation of a pair below which its symmetric part is not used,
        in [0, 1); default :data:`GAP_TOL` = sqrt(eps).

    Returns
    -------
    (Up, M, Vp) : fresh arrays of shapes (m, k), (k, k), (n, k), with ``u^T Up = 0``,
        ``vt Vp = 0``: the tangent vector ``u M vt + Up vt + u Vp^T``.

    Raises
    ------
    TypeError, ValueError
        For a point or factor gradient of the wrong structure, shape or dtype, non-positive or
        non-finite singular values, non-finite factor gradients, or a ``gap_tol`` outside [0, 1).
    """
    if not isinstance(point, (tuple, list)) or len(point) != 3:
        raise TypeError(f"point must be a thin SVD (u, s, vt), got {type(point).__name__}")
    if not isinstance(factor_gradient, (tuple, list)) or len(factor_gradient) != 3:
        raise TypeError(
            "factor_gradient must be the triple (du, ds, dvt), got "
            f"{type(factor_gradient).__name__}"
        )
    u, s, vt = (np.asarray(x) for x in point)
    if u.ndim != 2 or s.ndim != 1 or vt.ndim != 2:
        raise ValueError(
            "point (u, s, vt) must be 2-d, 1-d, 2-d arrays; got dimensions "
            f"{u.ndim}, {s.ndim}, {vt.ndim}"
        )
    m, k = u.shape
    n = vt.shape[1]
    u = _as_real("u", u, (m, k))
    vt = _as_real("vt", vt, (k, n))
    close = undetermined_pairs(s, gap_tol)
    s = _as_real("s", s, (k,))
    du, ds, dvt = factor_gradient
    du = _as_real("du", du, (m, k))
    ds = _as_real("ds", ds, (k,))
    dvt = _as_real("dvt", dvt, (k, n))
    for name, arr in (("du", du), ("ds", ds), ("dvt", dvt)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"factor gradient {name} must be finite (it contains NaN or inf)")

    A = u.T @ du
    B = vt @ dvt.T
    a = A - A.T
    b = B - B.T
    diff = np.subtract.outer(s, s).T  # diff[i, j] = s_j - s_i
    total = np.add.outer(s, s)
    denom = np.where(close | (diff == 0), 1.0, diff)
    sym = np.where(close, 0.0, (a + b) / denom)
    np.fill_diagonal(sym, 0.0)
    skew = (a - b) / total
    M = 0.5 * (sym + skew)
    M[np.diag_indices(k)] = ds

    Up = du - u @ A
    Up /= s
    Vp = dvt.T - vt.T @ B
    Vp /= s
    return Up, M, Vp
