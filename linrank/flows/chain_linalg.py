r"""Linear algebra of a chain of factors that keeps tiny singular values: the SVD of a product
:math:`W = W_N \cdots W_1` from its factors, and the data products of :math:`L^1` at a product of
two factors that are not orthonormal.

**The product SVD** (:func:`chain_svd`). Forming W (or any product of the factors) and taking
its SVD has an absolute error :math:`\sim\varepsilon\|W\|`, so a singular value
:math:`s_k \ll \varepsilon s_1` is lost. The sweep here never forms the product. With
:math:`W_j \cdots W_1 = Z_j\,\mathrm{diag}(d_j)\,V_j^T` (Z_j orthogonal, V_j orthonormal), the next
factor gives

.. math:: W_{j+1} Z_j\,\mathrm{diag}(d_j) = Z_{j+1}\,\mathrm{diag}(d_{j+1})\,Y^T,\qquad
          V_{j+1} = V_j Y,

the SVD of a column-scaled matrix :math:`C = B\,\mathrm{diag}(d_j)` with
:math:`B = W_{j+1}Z_j` as well conditioned as the factor :math:`W_{j+1}` itself. The preconditioned
one-sided Jacobi SVD (LAPACK dgejsv, JOBA = 'F': matrices :math:`D_1 B D_2` with diagonal
:math:`D_1, D_2`; Drmac and Veselic 2008) computes the singular values of such a C to a relative
accuracy of about :math:`\varepsilon\,\kappa(B)`, whatever the spread of d_j, and is
column-wise backward stable. So the whole sweep is backward stable with
respect to relative perturbations of size :math:`\sim\varepsilon` of each factor (the rounding of
the factors themselves), and every singular value of W comes out with the relative error such
perturbations cause: for a balanced chain (each factor with singular values :math:`s^{1/N}`)
about :math:`N\varepsilon\,(s_1/s_i)^{1/N}` for :math:`s_i`, instead of
:math:`\varepsilon\,s_1/s_i` from the product. Cost: N Jacobi SVDs of k x k (the last m x k) and
N - 1 products of k x k matrices. Tested in ``tests/test_flows_chain_linalg.py`` against mpmath
(60 digits) on random balanced and unaligned graded chains (singular values down to
:math:`10^{-25}` of the largest) and against an exact construction with singular values down to
:math:`10^{-200}`.

**Data products at general factors** (:func:`linear_chain_products`). For :math:`W = AB^T`
(A m x k, B n x k, neither orthonormal) and :math:`G = \nabla L^1(W) = WXX^T - YX^T`:
:math:`GB = A(B^TXX^TB) - YX^TB` and :math:`G^TA = XX^TB(A^TA) - XY^TA`, from the samples
(:math:`X^TB`, :math:`Y^TA`) or the covariances, nothing of size m x n formed. Each column of
:math:`GB` is a sum of terms of the size of that column of B, so a column of B of size
:math:`10^{-12}` gives a product accurate to a few eps relative to it (not to :math:`\|G\|\,\|B\|`).
The loss is :math:`\tfrac12(\|Y\|^2 - 2\langle A, YX^TB\rangle + \langle A^TA, B^TXX^TB\rangle)`,
absolute error about :math:`\varepsilon(\|Y\|^2 + \|WX\|^2)` (as the covariance form of
:meth:`linrank.data.LinearData.point_products`).
"""

from __future__ import annotations

import numpy as np
from scipy.linalg.lapack import dgejsv

from ..data import LinearData
from ..linalg import thin_product
from .system import StepFailure

__all__ = ["chain_svd", "linear_chain_products"]


def _jacobi_svd(C: np.ndarray, vectors: bool) -> tuple:
    """(u, s, v) of a tall C = u diag(s) v^T by LAPACK dgejsv (JOBA='F': high relative accuracy
    for row- and column-scaled matrices; no range restriction, no perturbation); u, v None
    without ``vectors``."""
    job = 0 if vectors else 3
    sva, u, v, work, _, info = dgejsv(C, joba=2, jobu=job, jobv=job, jobr=0, jobt=0, jobp=0)
    if info != 0 or not np.all(np.isfinite(sva)):
        raise StepFailure(f"the Jacobi SVD of the chain failed (LAPACK dgejsv info {info})")
    scale = work[1] / work[0]
    s = sva * scale if scale != 1.0 else sva
    return (u, s, v) if vectors else (None, s, None)


def chain_svd(factors: list[np.ndarray], compute_uv: bool = True) -> tuple:
    r"""The thin SVD of :math:`W = W_N \cdots W_1` from the factors, small singular values
    with relative accuracy (module docstring).

    Parameters
    ----------
    factors : W_1 (k x n, k <= n), then W_2, ..., W_N with matching inner widths, each with at
        least k rows (a chain of width k: k x k inner factors, the last m x k, k <= m).
    compute_uv : also return the singular vectors.

    Returns
    -------
    (u, s, vt) with u m x k, s descending (k), vt k x n, or s alone without ``compute_uv``.
    Relative error of s_i about :math:`\varepsilon \sum_j \kappa_j(s_i)`, where
    :math:`\kappa_j(s_i)` is the ratio of the largest singular value of W_j to the one W_j
    contributes to s_i (for a balanced chain :math:`(s_1/s_i)^{1/N}` each).
    """
    W1 = factors[0]
    if W1.shape[0] > W1.shape[1]:
        raise ValueError(f"the first factor must be wide (k <= n), got shape {W1.shape}")
    last = len(factors) == 1
    Z, d, V = _jacobi_svd(W1.T, True)  # W_1^T = Z' diag(d) V'^T: W_1 = V' diag(d) Z'^T
    Z, V = V, Z
    for j, W in enumerate(factors[1:], start=2):
        last = j == len(factors)
        C = (W @ Z) * d
        if C.shape[0] < C.shape[1]:
            raise ValueError(f"factor {j} has fewer rows ({C.shape[0]}) than the width "
                             f"{C.shape[1]} before it")
        Z, d, Y = _jacobi_svd(C, compute_uv or not last)
        if Y is not None:
            V = V @ Y
    if not compute_uv:
        return d.copy()
    return Z.copy(), d.copy(), V.T.copy()


def linear_chain_products(data: LinearData, A: np.ndarray, Bt: np.ndarray,
                          orientations: dict | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    r"""At :math:`W = A\,B^T` (A m x k, Bt = :math:`B^T` k x n, any factors): :math:`(GB,\ G^TA,\
    L^1(W))` for the data of :math:`L^1` (module docstring), with the data products in the
    orientations of :meth:`linrank.data.LinearData.product_orientations` (the same names)."""
    o = {} if orientations is None else orientations
    B = Bt.T
    AtA = A.T @ A
    c = 0.0 if data.yy is None else data.yy
    if data.form == "samples":
        XB = thin_product(data.X, B, True, o.get("XT"))  # n x k
        YA = thin_product(data.Y, A, True, o.get("YT"))  # n x k
        K = XB.T @ XB  # B^T XX^T B
        GB = A @ K - thin_product(data.Y, XB, False, o.get("Y"))
        GtA = thin_product(data.X, XB @ AtA - YA, False, o.get("X"))
        loss = 0.5 * (c - 2.0 * float(np.sum(XB * YA)) + float(np.sum(AtA * K)))
        return GB, GtA, loss
    k = B.shape[1]
    if data.autoencoder:
        CV = thin_product(data.Cxx, np.hstack((B, A)), False, o.get("Cxx"))
        CB, CyxB, CyxtA = CV[:, :k], CV[:, :k], CV[:, k:]
    else:
        CB = thin_product(data.Cxx, B, False, o.get("Cxx"))
        CyxB = thin_product(data.Cyx, B, False, o.get("Cyx"))
        CyxtA = thin_product(data.Cyx, A, True, o.get("CyxT"))
    K = Bt @ CB
    GB = A @ K - CyxB
    GtA = CB @ AtA - CyxtA
    loss = 0.5 * (c - 2.0 * float(np.sum(A * CyxB)) + float(np.sum(AtA * K)))
    return GB, GtA, loss
