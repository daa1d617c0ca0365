r"""Matrix completion on :class:`~linrank.DeepLinearFixedRank`, exactly:
:math:`f(W) = \tfrac{c}{2} \sum_{(i,j)\in\Omega} (W_{ij} - A_{ij})^2` with c = 1 (``reduction="sum"``)
or :math:`c = 1/|\Omega|` (``"mean"``). W is evaluated on :math:`\Omega` only, as
:math:`W_{ij} = \sum_l u_{il} s_l v_{jl}`; the gradient is the sparse matrix of residuals on
:math:`\Omega`; nothing of size m x n is formed. Re-exported by
:mod:`linrank.problems`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..manifold import DeepLinearFixedRank
from .base import (
    FactorizationProblem,
    check_manifold,
    check_reduction,
    half_sum_of_squares,
    tangent,
)

__all__ = ["MatrixCompletionProblem", "matrix_completion_problem", "observed_entries"]

#: Observed entries processed per block when W is evaluated on the observed set (bounds the
#: temporaries to ~2 * block * k floats, a few MB, whatever the number of observations).
_BLOCK = 1 << 16

#: Up to this m n k the flows' products G v, G^T u use a dense scratch copy of the sparse G.
_DENSE_FLOPS = 2_000_000


def _index_array(name: str, a: Any, size: int) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-d array of indices, got shape {arr.shape}")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        if arr.size == 0:  # np.asarray([]) is float64: an empty list of indices is fine
            return np.zeros(0, dtype=np.int64)
        raise TypeError(
            f"{name} must hold integers, got dtype {arr.dtype} (convert whole-number floats with "
            ".astype(int) yourself: a non-integer index is a data error, not rounded here)"
        )
    if arr.size and (arr.min() < 0 or arr.max() >= size):
        bad = int(np.flatnonzero((arr < 0) | (arr >= size))[0])
        raise ValueError(
            f"{name}[{bad}] = {int(arr[bad])} is out of range: indices must lie in [0, {size}) "
            "(negative indices do not wrap around)"
        )
    return arr.astype(np.int64, copy=False)


def observed_entries(m: int, n: int, rows: Any, cols: Any, values: Any, *, sort: bool = True
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated observations of an m x n matrix: (rows, cols, values) as int64, int64, float
    arrays, sorted row-major if ``sort`` (the checks of :func:`matrix_completion_problem`).

    Raises
    ------
    TypeError : indices not integers; values complex or not numbers.
    ValueError : lengths differ; an index out of range; a duplicated entry; a non-finite value.
    """
    rows = _index_array("rows", rows, m)
    cols = _index_array("cols", cols, n)
    values = np.asarray(values)
    if np.iscomplexobj(values):
        raise TypeError("values must be real, got complex numbers")
    if values.ndim != 1 or not (np.issubdtype(values.dtype, np.number)
                                or values.dtype == bool or values.size == 0):
        kind = "numbers" if values.ndim != 1 else "real numbers"
        raise TypeError(f"values must be a 1-d array of {kind}, got shape {values.shape}, "
                        f"dtype {values.dtype}")
    values = values.astype(float)
    if not (rows.size == cols.size == values.size):
        raise ValueError(
            f"rows, cols and values must have equal lengths, got {rows.size}, {cols.size}, "
            f"{values.size}"
        )
    if not np.all(np.isfinite(values)):
        bad = int(np.flatnonzero(~np.isfinite(values))[0])
        raise ValueError(f"values must be finite, values[{bad}] = {values[bad]}")
    lin = rows * n + cols
    order = np.argsort(lin, kind="stable")
    dup = np.flatnonzero(lin[order][1:] == lin[order][:-1])
    if dup.size:
        i, j = divmod(int(lin[order][dup[0]]), n)
        raise ValueError(
            f"duplicated observation of entry ({i}, {j}) ({dup.size} duplicates in all): each "
            "observed entry must appear once; average repeated measurements of an entry first"
        )
    if sort:
        return rows[order], cols[order], values[order]
    return rows, cols, values


class MatrixCompletionProblem(FactorizationProblem):
    r"""The loss :math:`\tfrac{c}{2} \sum_{(i,j)\in\Omega} (W_{ij} - A_{ij})^2` (c = 1, or
    :math:`1/|\Omega|` for ``reduction="mean"``); see :func:`matrix_completion_problem`."""

    def __init__(self, manifold, rows, cols, values, preconditioner=None, reduction="sum"):
        man = check_manifold(manifold)
        m, n = man.m, man.n
        rows, cols, values = observed_entries(m, n, rows, cols, values)  # sorted row-major
        self.reduction = reduction
        self.weight = check_reduction(reduction, values.size)
        lin = rows * n + cols  # row-major linear index, sorted: CSR order
        idx = np.int32 if max(m, n, lin.size) < 2**31 - 1 else np.int64
        self.rows = rows.astype(idx)
        self.cols = cols.astype(idx)
        self.values = values
        self.indptr = np.zeros(m + 1, dtype=idx)
        np.cumsum(np.bincount(self.rows, minlength=m), out=self.indptr[1:])
        # private work matrices for G v and G^T u (CSR of G and of G^T; only their data change):
        # scipy's constructor checks the index arrays, a cost that dominates small problems
        self._by_col = np.lexsort((self.rows, self.cols))
        indptr_t = np.zeros(n + 1, dtype=idx)
        np.cumsum(np.bincount(self.cols, minlength=n), out=indptr_t[1:])
        self._work = sp.csr_matrix((self.values.copy(), self.cols, self.indptr), shape=(m, n))
        self._work_t = sp.csr_matrix(
            (self.values.copy(), self.rows[self._by_col], indptr_t), shape=(n, m)
        )
        # small matrices (m n k <= _DENSE_FLOPS): G v and G^T u by BLAS on a dense scratch copy
        # of G (only the observed positions are ever written, so it is never re-zeroed): faster
        # than scipy's sparse products, whose per-call overhead (~0.1 ms) dominates there
        self._lin = lin if m * n * man.k <= _DENSE_FLOPS else None
        self._scratch = np.zeros(m * n) if self._lin is not None else None
        super().__init__(man, preconditioner)

    @property
    def n_observed(self) -> int:
        r"""The number of observed entries :math:`|\Omega|`."""
        return int(self.values.size)

    def observed(self, point: Any) -> np.ndarray:
        r"""The entries :math:`W_{ij} = \sum_l u_{il} s_l v_{jl}` of the point on :math:`\Omega`
        (in the order of :attr:`rows`, :attr:`cols`: sorted row-major).

        Blocks of 65536 entries; :math:`O(|\Omega| k)` flops, memory O(block k). Each entry is a
        k-term dot product: absolute error :math:`\le k \epsilon \sum_l |u_{il}| s_l |v_{jl}|`.
        """
        return self._sample(*self._point(point))

    def _sample(self, u, s, vt):
        if self._lin is not None:  # small m n k: one BLAS product, then a gather (faster)
            return np.take(((u * s) @ vt).ravel(), self._lin)
        return _gather_dot(u * s, vt.T, self.rows, self.cols)

    def _residual(self, p):
        return self._sample(*p) - self.values

    def _dense_residual(self, W):
        return W[self.rows, self.cols] - self.values

    def fingerprint_arrays(self) -> list[np.ndarray]:
        """rows, cols (sorted), values and the reduction's weight: what defines the loss."""
        return [self.rows.astype(float), self.cols.astype(float), self.values,
                np.array([self.weight])]

    def _loss(self, r):
        # einsum, not BLAS ddot: a threaded BLAS call waits for its threads (tens of ms on a
        # loaded machine for a few 1e4 entries); an overflow is an error, never a silent inf
        return half_sum_of_squares(r, self.weight, "the residual W_ij - A_ij on the observed set")

    def _csr(self, data):
        m, n = self.manifold.m, self.manifold.n
        return sp.csr_matrix((data, self.cols, self.indptr), shape=(m, n), copy=False)

    def _gradient(self, r):
        return self._csr(r if self.weight == 1.0 else self.weight * r)

    def _products(self, r, u, v):
        if self.weight != 1.0:
            r = self.weight * r
        if self._lin is not None:
            self._scratch[self._lin] = r
            G = self._scratch.reshape(self.manifold.m, self.manifold.n)
            return G @ v, G.T @ u
        self._work.data[:] = r
        np.take(r, self._by_col, out=self._work_t.data)
        return self._work @ v, self._work_t @ u

    def _hessian(self, p, xi):
        t = tangent(self.manifold, xi)
        u, _, vt = p
        # xi = (u M + Up) vt + u Vp^T = [u M + Up, u] [v, Vp]^T: one gather of 2k columns
        left = np.hstack((u @ t.M + t.Up, u))
        right = np.hstack((vt.T, t.Vp))
        h = _gather_dot(left, right, self.rows, self.cols)
        return self._csr(h if self.weight == 1.0 else self.weight * h)


def _gather_dot(left: np.ndarray, right: np.ndarray, rows: np.ndarray, cols: np.ndarray
                ) -> np.ndarray:
    """The row-wise dot products left[rows] . right[cols], in blocks of ``_BLOCK`` entries.

    ``np.take`` on C-contiguous tables (3-4x faster than fancy indexing here).
    """
    left = np.ascontiguousarray(left)
    right = np.ascontiguousarray(right)
    out = np.empty(rows.size)
    for a in range(0, rows.size, _BLOCK):
        b = min(a + _BLOCK, rows.size)
        out[a:b] = np.einsum("ij,ij->i", np.take(left, rows[a:b], axis=0),
                             np.take(right, cols[a:b], axis=0))
    return out


def matrix_completion_problem(
    manifold: DeepLinearFixedRank,
    rows: Any,
    cols: Any,
    values: Any,
    preconditioner: Callable[[Any, Any], Any] | None = None,
    *,
    reduction: str = "sum",
) -> MatrixCompletionProblem:
    r"""Matrix completion on ``manifold``: :math:`f(W) = \tfrac{c}{2} \sum_{(i,j)\in\Omega} (W_{ij} - A_{ij})^2`.

    c = 1 for ``reduction="sum"`` (default), :math:`c = 1/|\Omega|` for ``reduction="mean"``
    (the mean squared error over the observations, halved, as most papers write the loss).

    Parameters
    ----------
    manifold : the DeepLinearFixedRank (m x n, rank k, depth N) to optimize over.
    rows, cols : integer arrays of equal length p: the observed set
        :math:`\Omega = \{(rows_l, cols_l)\}`, 0 <= rows < m, 0 <= cols < n. Every entry at most
        once: a duplicated (i, j) is refused with a ValueError (repeated measurements are to be
        averaged by the caller). An empty set is allowed (f = 0).
    values : the observed values :math:`A_{ij}` (finite reals), in the order of rows, cols.
    preconditioner : optional, passed to pymanopt (TrustRegions).
    reduction : "sum" or "mean": the loss, its gradient and its Hessian are multiplied by c
        (with p = 0 observations, c = 1 and f = 0). The gradient flow of the mean is the flow of
        the sum at time t / p.

    Returns
    -------
    MatrixCompletionProblem
        A :class:`FactorizationProblem` (pymanopt.Problem) with

        * cost: the entries of W on :math:`\Omega` from the factors, :math:`W_{ij} = (u_i \circ s)\cdot
          v_j`, never the m x n matrix: O(p k) flops, O((m + n) k) memory beyond the data;
        * Euclidean gradient :math:`\nabla f = c P_\Omega(W - A)`, a ``scipy.sparse.csr_matrix``
          (built on the stored index arrays, no copy);
          :math:`\operatorname{grad} f = \mathcal{A}_W(P_T \nabla f)` (eq. (31)) takes two sparse
          products with k columns;
        * Euclidean Hessian-vector product :math:`\nabla^2 f[\xi] = c P_\Omega(\xi)`: the sparse matrix of
          the entries of :math:`\xi = u M v^T + U_p v^T + u V_p^T` on :math:`\Omega`, O(p k); the
          Riemannian Hessian is the exact Levi-Civita one.

        The last point's residual is cached (compared by value), so a cost and a gradient at one
        point cost one pass over the observations. For the flows (``gradient_products``) small
        problems (m n k <= 2e6) multiply by a dense scratch copy of the sparse gradient, kept
        between calls (at most 2e6 / k floats), which is faster there than scipy's sparse products.

    Raises
    ------
    TypeError : manifold not a DeepLinearFixedRank; indices not integers; values complex or
        not numbers.
    ValueError : lengths differ; an index out of range; a duplicated entry; a non-finite value;
        an unknown reduction. Evaluating the loss raises ValueError when it overflows (values
        or W entries beyond ~1e154: the squares exceed the float range), never returns inf.
    """
    return MatrixCompletionProblem(manifold, rows, cols, values, preconditioner, reduction)


